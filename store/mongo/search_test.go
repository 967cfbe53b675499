package mongo_test

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/fmtbank/cmts/store"
	"github.com/fmtbank/cmts/store/mongo/mongotest"
	"github.com/google/go-cmp/cmp"
)

// TestSearchRandom compares Search with store.Match on random resources and
// random expressions, with values full of the characters the encodings
// escape, so that every form the compiler calls exact is checked to be exact,
// and every superset to be re-checked.
func TestSearchRandom(t *testing.T) {
	t.Parallel()
	srv := mongotest.Start(t)
	s := open(t, srv)
	ctx := t.Context()
	rng := rand.New(rand.NewPCG(1, 2))
	pick := func(xs ...string) string { return xs[rng.IntN(len(xs))] }
	params := []string{"a", "b", "a|b", `c\`, "cv$0", "cv$1"}
	texts := []string{"", "x", "xy", `x|y`, `x\`, `\|`, "|", "张", "张三", "Y"}
	types := []string{"Patient", "Specimen"}
	entry := func() store.IndexEntry {
		e := store.IndexEntry{Param: pick(params...)}
		if rng.IntN(3) == 0 {
			e.Group = 1 + rng.IntN(2)
		}
		switch rng.IntN(5) {
		case 0:
			e.Kind, e.System, e.Code, e.Value = store.KindToken, pick("", "s", "s|t"), pick(texts...), pick(texts...)
		case 1:
			e.Kind, e.Value, e.Code = store.KindString, pick(texts...), pick(texts...)
		case 2:
			e.Kind, e.Value = store.KindURI, pick(texts...)
		case 3:
			e.Kind = store.KindReference
			if rng.IntN(4) == 0 {
				e.Value = pick(texts...)
			} else {
				e.System, e.Code = pick(types...), fmt.Sprintf("r%d", rng.IntN(8))
			}
		default:
			e.Kind = store.KindNumber
			lo, hi := rng.IntN(10), rng.IntN(10)
			e.Low, e.High = store.EncodeNumber(float64(min(lo, hi))), store.EncodeNumber(float64(max(lo, hi)))
			if rng.IntN(2) == 0 {
				e.Kind, e.System, e.Code = store.KindQuantity, pick("", "u"), pick("mg", "g")
			}
		}
		return e
	}
	cur := map[string]*store.Version{}
	clock := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for i := range 40 {
		typ, id := types[i%2], fmt.Sprintf("r%d", i/2%8)
		if i >= 16 {
			typ, id = types[rng.IntN(2)], fmt.Sprintf("r%d", rng.IntN(8))
		}
		var prev int64
		if old := cur[typ+"/"+id]; old != nil {
			prev = old.VersionID
		}
		clock = clock.Add(time.Second)
		v := store.Version{Tenant: "h1", Type: typ, ID: id, VersionID: prev + 1, LastUpdated: clock, Resource: []byte(`{}`)}
		if prev > 0 && rng.IntN(6) == 0 {
			v.Deleted, v.Resource = true, nil
		} else {
			for range rng.IntN(6) {
				v.Index = append(v.Index, entry())
			}
		}
		if err := s.Put(ctx, store.Write{PrevVersion: prev, Version: v}); err != nil {
			t.Fatal(err)
		}
		cur[typ+"/"+id] = &v
	}
	look := lookupMap(cur)

	var expr func(depth int) store.Expr
	expr = func(depth int) store.Expr {
		n := rng.IntN(12)
		if depth <= 0 {
			n = 3 + rng.IntN(7)
		}
		sys := pick("", "s", "s|t")
		switch n {
		case 0:
			return store.And{expr(depth - 1), expr(depth - 1)}
		case 1:
			return store.Or{expr(depth - 1), expr(depth - 1)}
		case 2:
			return store.Not{Expr: expr(depth - 1)}
		case 3:
			if rng.IntN(2) == 0 {
				return store.Token{Param: pick(params...), Code: pick(texts...)}
			}
			return store.Token{Param: pick(params...), System: &sys, Code: pick(texts...)}
		case 4:
			return store.ID{IDs: []string{fmt.Sprintf("r%d", rng.IntN(8)), fmt.Sprintf("r%d", rng.IntN(8))}}
		case 5:
			return store.String{Param: pick(params...), Mode: store.StringMode(rng.IntN(6)), Text: pick(texts...)}
		case 6:
			return store.Missing{Param: pick(params...), Missing: rng.IntN(2) == 0}
		case 7:
			r := store.Range{Param: pick(params...)}
			for range rng.IntN(3) {
				r.Bounds = append(r.Bounds, store.Bound{High: rng.IntN(2) == 0, Op: store.CompareOp(rng.IntN(4)), Value: store.EncodeNumber(float64(rng.IntN(10)))})
			}
			if rng.IntN(3) == 0 {
				c := pick("mg", "g")
				r.Code = &c
			}
			return r
		case 8:
			if rng.IntN(4) == 0 {
				return store.Reference{Param: pick(params...), URL: pick(texts...)}
			}
			return store.Reference{Param: pick(params...), Type: pick("", "Patient", "Specimen"), ID: fmt.Sprintf("r%d", rng.IntN(8))}
		case 9:
			return store.Composite{Param: "cv", Components: []store.Expr{expr(0), expr(0)}}
		case 10:
			return store.Chain{Param: pick(params...), TargetType: pick("", "Patient"), Filter: expr(depth - 1)}
		default:
			return store.Has{Type: pick(types...), Param: pick(params...), Filter: expr(depth - 1)}
		}
	}
	for i := range 300 {
		q := store.Query{Access: store.Tenant("h1"), Type: pick("", "Patient"), Filter: expr(2), Count: 100, WantTotal: true}
		if i%4 == 0 {
			q.Sort = []store.SortKey{{Param: pick(params...), Desc: rng.IntN(2) == 0}}
		}
		var want []*store.Version
		for _, v := range cur {
			if v.Deleted || (q.Type != "" && v.Type != q.Type) {
				continue
			}
			ok, err := store.Match(q.Filter, v, look)
			if err != nil {
				t.Fatal(err)
			}
			if ok {
				want = append(want, v)
			}
		}
		slices.SortFunc(want, func(a, b *store.Version) int { return store.Compare(a, b, q.Sort) })
		p, err := s.Search(ctx, q)
		if err != nil {
			t.Fatalf("Search(%#v): %v", q.Filter, err)
		}
		if d := cmp.Diff(names(want), names(p.Versions)); d != "" || p.Total != len(want) {
			t.Errorf("Search(%#v, sort %v): Total %d, want %d; (-want +got):\n%s", q.Filter, q.Sort, p.Total, len(want), d)
		}
	}
}

func names(vs []*store.Version) []string {
	out := []string{}
	for _, v := range vs {
		out = append(out, v.Type+"/"+v.ID)
	}
	return out
}

// lookupMap serves store.Match from the current versions.
type lookupMap map[string]*store.Version

func (m lookupMap) Current(typ, id string) (*store.Version, error) { return m[typ+"/"+id], nil }

func (m lookupMap) Referrers(typ, param, targetType, targetID string) ([]*store.Version, error) {
	var out []*store.Version
	for _, v := range m {
		if v.Type != typ || v.Deleted {
			continue
		}
		if store.RefersTo(v, param, targetType, targetID) {
			out = append(out, v)
		}
	}
	return out, nil
}
