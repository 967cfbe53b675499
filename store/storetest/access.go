package storetest

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/fmtbank/cmts/store"
	"github.com/google/go-cmp/cmp"
)

// The accesses of testAccess: a hospital, a bank, two hospitals together,
// a regulator (every tenant), every tenant without one of its own, and
// nobody.
var (
	accH1    = store.Tenant("h1")
	accB1    = store.Tenant("b1")
	accMulti = store.Access{Tenants: []string{"h1", "h2"}}
	accReg   = store.Access{Tenants: []string{"nhc"}, Everyone: true}
	accAll   = store.Access{Everyone: true}
	accNone  = store.Access{}
)

// loadAccess writes the data of testAccess, one second apart: bank b1's
// donor (owner only), donation (tenant) and product lot (tenant in version
// 1, shared in version 2); hospital h1's recipient and the procedure that
// used the lot; hospital h2's recipient.
func loadAccess(t *testing.T, s store.Store) {
	t.Helper()
	tok := func(code string) store.IndexEntry {
		return store.IndexEntry{Param: "identifier", Kind: store.KindToken, Code: code}
	}
	ref := func(param, typ, id string) store.IndexEntry {
		return store.IndexEntry{Param: param, Kind: store.KindReference, System: typ, Code: id}
	}
	at := func(n int) time.Time { return base.Add(time.Duration(n) * time.Second) }
	for i, w := range []struct {
		prev  int64
		reach store.Reach
		v     store.Version
	}{
		{0, store.ReachOwner, version("b1", "Patient", "donor", 1, at(1), tok("D1"))},
		{0, store.ReachTenant, version("b1", "Specimen", "donation", 1, at(2), tok("DN1"), ref("subject", "Patient", "donor"))},
		{0, store.ReachTenant, version("b1", "Specimen", "lot", 1, at(3), tok("L1"), ref("parent", "Specimen", "donation"))},
		{1, store.ReachShared, version("b1", "Specimen", "lot", 2, at(4), tok("L1"), ref("parent", "Specimen", "donation"))},
		{0, store.ReachTenant, version("h1", "Patient", "r1", 1, at(5), tok("R1"))},
		{0, store.ReachTenant, version("h2", "Patient", "r2", 1, at(6), tok("R2"))},
		{0, store.ReachTenant, version("h1", "Procedure", "p1", 1, at(7), ref("subject", "Patient", "r1"), ref("product", "Specimen", "lot"))},
	} {
		w.v.Reach = w.reach
		putEitherWay(t, s, i, w.prev, w.v)
	}
}

// putEitherWay writes the i-th version of a fixture through Put (even i)
// or Transact (odd i), so that both write paths are seen to keep what the
// version carries.
func putEitherWay(t *testing.T, s store.Store, i int, prev int64, v store.Version) {
	t.Helper()
	if i%2 == 0 {
		mustPut(t, s, prev, v)
		return
	}
	if err := s.Transact(context.Background(), nil, func([][]*store.Version) ([]store.Write, error) {
		return []store.Write{{PrevVersion: prev, Version: v}}, nil
	}); err != nil {
		t.Fatalf("Transact %s/%s: %v", v.Type, v.ID, err)
	}
}

// testAccess checks that every read honours its Access and every version's
// Reach: shared versions reach every tenant, owner-only ones not even the
// readers of every tenant.
func testAccess(t *testing.T, s store.Store) {
	ctx := context.Background()
	loadAccess(t, s)

	t.Run("Read", func(t *testing.T) {
		for _, tc := range []struct {
			name    string
			a       store.Access
			typ, id string
			vid     int64 // 0: Read; else ReadVersion
			want    bool
		}{
			{"own", accH1, "Patient", "r1", 0, true},
			{"other tenant's", accH1, "Patient", "r2", 0, false},
			{"shared", accH1, "Specimen", "lot", 0, true},
			{"shared version", accH1, "Specimen", "lot", 2, true},
			{"version before it was shared", accH1, "Specimen", "lot", 1, false},
			{"owner's own version before sharing", accB1, "Specimen", "lot", 1, true},
			{"donation", accH1, "Specimen", "donation", 0, false},
			{"donor", accH1, "Patient", "donor", 0, false},
			{"donor by its bank", accB1, "Patient", "donor", 0, true},
			{"donor version by its bank", accB1, "Patient", "donor", 1, true},
			{"donor by the regulator", accReg, "Patient", "donor", 0, false},
			{"donor version by the regulator", accReg, "Patient", "donor", 1, false},
			{"donor by everyone", accAll, "Patient", "donor", 0, false},
			{"donation by the regulator", accReg, "Specimen", "donation", 0, true},
			{"recipient by the regulator", accReg, "Patient", "r2", 1, true},
			{"shared by the regulator", accReg, "Specimen", "lot", 0, true},
			{"first of two tenants", accMulti, "Patient", "r1", 0, true},
			{"second of two tenants", accMulti, "Patient", "r2", 0, true},
			{"donor by two tenants", accMulti, "Patient", "donor", 0, false},
			{"shared by two tenants", accMulti, "Specimen", "lot", 0, true},
			{"shared by nobody", accNone, "Specimen", "lot", 0, false},
		} {
			t.Run(tc.name, func(t *testing.T) {
				var v *store.Version
				var err error
				if tc.vid == 0 {
					v, err = s.Read(ctx, tc.a, tc.typ, tc.id)
				} else {
					v, err = s.ReadVersion(ctx, tc.a, tc.typ, tc.id, tc.vid)
				}
				switch {
				case tc.want && err != nil:
					t.Fatalf("read: %v", err)
				case tc.want && (v.Type != tc.typ || v.ID != tc.id):
					t.Fatalf("read %s/%s, want %s/%s", v.Type, v.ID, tc.typ, tc.id)
				case !tc.want && !errors.Is(err, store.ErrNotFound):
					t.Fatalf("read = %v, %v; want ErrNotFound", v, err)
				}
			})
		}
		v, err := s.Read(ctx, accH1, "Specimen", "lot")
		if err != nil || v.Reach != store.ReachShared || v.Tenant != "b1" {
			t.Errorf("Read lot = %+v, %v; want reach shared, tenant b1", v, err)
		}
		if v, err := s.ReadVersion(ctx, accB1, "Specimen", "lot", 1); err != nil || v.Reach != store.ReachTenant {
			t.Errorf("ReadVersion lot 1 = %+v, %v; want reach tenant", v, err)
		}
		if v, err := s.Read(ctx, accB1, "Patient", "donor"); err != nil || v.Reach != store.ReachOwner {
			t.Errorf("Read donor = %+v, %v; want reach owner", v, err)
		}
	})

	t.Run("Search", func(t *testing.T) {
		tok := func(code string) store.Expr { return store.Token{Param: "identifier", Code: code} }
		for _, tc := range []struct {
			name   string
			a      store.Access
			typ    string
			types  []string
			filter store.Expr
			sort   []store.SortKey
			want   []string
		}{
			{"own", accH1, "Patient", nil, nil, nil, []string{"Patient/r1"}},
			{"shared without filter", accH1, "Specimen", nil, nil, nil, []string{"Specimen/lot"}},
			{"shared by token", accH1, "Specimen", nil, tok("L1"), nil, []string{"Specimen/lot"}},
			{"shared sorted", accH1, "Specimen", nil, nil, []store.SortKey{{Param: "identifier"}}, []string{"Specimen/lot"}},
			{"bank", accB1, "Specimen", nil, nil, nil, []string{"Specimen/donation", "Specimen/lot"}},
			{"bank's donor", accB1, "Patient", nil, tok("D1"), nil, []string{"Patient/donor"}},
			{"donor hidden", accH1, "Patient", nil, tok("D1"), nil, []string{}},
			{"regulator", accReg, "Patient", nil, nil, nil, []string{"Patient/r1", "Patient/r2"}},
			{"regulator, donor hidden", accReg, "Patient", nil, tok("D1"), nil, []string{}},
			{"regulator, donations", accReg, "Specimen", nil, nil, nil, []string{"Specimen/donation", "Specimen/lot"}},
			{"everyone", accAll, "Patient", nil, nil, nil, []string{"Patient/r1", "Patient/r2"}},
			{"two tenants", accMulti, "Patient", nil, nil, nil, []string{"Patient/r1", "Patient/r2"}},
			{"two tenants, token", accMulti, "Patient", nil, tok("R2"), nil, []string{"Patient/r2"}},
			{"nobody", accNone, "Specimen", nil, nil, nil, []string{}},
			{"several types", accH1, "", []string{"Patient", "Specimen"}, nil, nil, []string{"Patient/r1", "Specimen/lot"}},
			{"every type", accH1, "", nil, nil, nil, []string{"Patient/r1", "Procedure/p1", "Specimen/lot"}},
			{"ids, as an include", accH1, "Specimen", nil, store.ID{IDs: []string{"donation", "lot"}}, nil, []string{"Specimen/lot"}},
			{"ids, regulator", accReg, "Patient", nil, store.ID{IDs: []string{"donor", "r1"}}, nil, []string{"Patient/r1"}},
			{"chain to shared", accH1, "Procedure", nil,
				store.Chain{Param: "product", TargetType: "Specimen", Filter: tok("L1")}, nil, []string{"Procedure/p1"}},
			{"chain to shared, any target type", accH1, "Procedure", nil,
				store.Chain{Param: "product", Filter: tok("L1")}, nil, []string{"Procedure/p1"}},
			{"chain to hidden donation", accH1, "Specimen", nil,
				store.Chain{Param: "parent", TargetType: "Specimen", Filter: tok("DN1")}, nil, []string{}},
			{"chain to own donation", accB1, "Specimen", nil,
				store.Chain{Param: "parent", TargetType: "Specimen", Filter: tok("DN1")}, nil, []string{"Specimen/lot"}},
			{"chain to donor, regulator", accReg, "Specimen", nil,
				store.Chain{Param: "subject", TargetType: "Patient"}, nil, []string{}},
			{"chain to donor, bank", accB1, "Specimen", nil,
				store.Chain{Param: "subject", TargetType: "Patient", Filter: tok("D1")}, nil, []string{"Specimen/donation"}},
			{"has, own referrer", accH1, "Specimen", nil,
				store.Has{Type: "Procedure", Param: "product"}, nil, []string{"Specimen/lot"}},
			{"has, other tenant's referrer", accB1, "Specimen", nil,
				store.Has{Type: "Procedure", Param: "product"}, nil, []string{}},
			{"has, referrer of another hospital", store.Tenant("h2"), "Specimen", nil,
				store.Has{Type: "Procedure", Param: "product", Filter: store.Reference{Param: "subject", Type: "Patient", ID: "r1"}}, nil, []string{}},
			{"has, regulator", accReg, "Specimen", nil,
				store.Has{Type: "Procedure", Param: "product"}, nil, []string{"Specimen/lot"}},
			{"reverse include of the lot", accH1, "Procedure", nil,
				store.Reference{Param: "product", Type: "Specimen", ID: "lot"}, nil, []string{"Procedure/p1"}},
			{"reverse include, another hospital", store.Tenant("h2"), "Procedure", nil,
				store.Reference{Param: "product", Type: "Specimen", ID: "lot"}, nil, []string{}},
			{"not, shared", accH1, "Specimen", nil, store.Not{Expr: tok("X")}, nil, []string{"Specimen/lot"}},
		} {
			t.Run(tc.name, func(t *testing.T) {
				q := store.Query{Access: tc.a, Type: tc.typ, Types: tc.types, Filter: tc.filter, Sort: tc.sort, Count: 100, WantTotal: true}
				p, err := s.Search(ctx, q)
				if err != nil {
					t.Fatalf("Search: %v", err)
				}
				if d := cmp.Diff(tc.want, refs(p.Versions)); d != "" {
					t.Errorf("Search (-want +got):\n%s", d)
				}
				if p.Total != len(tc.want) {
					t.Errorf("Total = %d, want %d", p.Total, len(tc.want))
				}
				for _, v := range p.Versions {
					if !tc.a.Sees(v.Tenant, v.Reach, v.Addressee) {
						t.Errorf("%s/%s of tenant %s, reach %d: not visible to the access", v.Type, v.ID, v.Tenant, v.Reach)
					}
				}
				// Page by one: the walk in page order sees the same.
				q.Count, q.WantTotal = 1, false
				got := []string{}
				for {
					p, err := s.Search(ctx, q)
					if err != nil {
						t.Fatalf("Search: %v", err)
					}
					got = append(got, refs(p.Versions)...)
					if !p.More || len(got) > len(tc.want) {
						break
					}
					q.After = store.PositionOf(p.Versions[0], q.Sort)
				}
				if d := cmp.Diff(tc.want, got); d != "" {
					t.Errorf("Search by pages of one (-want +got):\n%s", d)
				}
			})
		}
	})

	t.Run("History", func(t *testing.T) {
		type key struct {
			Type, ID string
			VID      int64
		}
		for _, tc := range []struct {
			name string
			a    store.Access
			q    store.HistoryQuery
			want []key
		}{
			{"hospital, system", accH1, store.HistoryQuery{}, []key{{"Procedure", "p1", 1}, {"Patient", "r1", 1}, {"Specimen", "lot", 2}}},
			{"hospital, type", accH1, store.HistoryQuery{Type: "Specimen"}, []key{{"Specimen", "lot", 2}}},
			{"hospital, instance", accH1, store.HistoryQuery{Type: "Specimen", ID: "lot"}, []key{{"Specimen", "lot", 2}}},
			{"hospital, donor", accH1, store.HistoryQuery{Type: "Patient", ID: "donor"}, nil},
			{"bank, system", accB1, store.HistoryQuery{},
				[]key{{"Specimen", "lot", 2}, {"Specimen", "lot", 1}, {"Specimen", "donation", 1}, {"Patient", "donor", 1}}},
			{"regulator, system", accReg, store.HistoryQuery{}, []key{{"Procedure", "p1", 1}, {"Patient", "r2", 1}, {"Patient", "r1", 1},
				{"Specimen", "lot", 2}, {"Specimen", "lot", 1}, {"Specimen", "donation", 1}}},
			{"regulator, donor", accReg, store.HistoryQuery{Type: "Patient", ID: "donor"}, nil},
			{"regulator, patients", accReg, store.HistoryQuery{Type: "Patient"}, []key{{"Patient", "r2", 1}, {"Patient", "r1", 1}}},
			{"two tenants, system", accMulti, store.HistoryQuery{},
				[]key{{"Procedure", "p1", 1}, {"Patient", "r2", 1}, {"Patient", "r1", 1}, {"Specimen", "lot", 2}}},
			{"two tenants, since", accMulti, store.HistoryQuery{Since: base.Add(5 * time.Second)},
				[]key{{"Procedure", "p1", 1}, {"Patient", "r2", 1}, {"Patient", "r1", 1}}},
			{"nobody", accNone, store.HistoryQuery{}, nil},
		} {
			t.Run(tc.name, func(t *testing.T) {
				for _, size := range []int{1, 2, 100} {
					q := tc.q
					q.Access, q.Count = tc.a, size
					var got []key
					for pages := 0; ; pages++ {
						if pages > 20 {
							t.Fatal("paging does not end")
						}
						h, err := s.History(ctx, q)
						if err != nil {
							t.Fatalf("History: %v", err)
						}
						for _, v := range h.Versions {
							got = append(got, key{v.Type, v.ID, v.VersionID})
						}
						if h.Next == nil {
							break
						}
						q.After = h.Next
					}
					if d := cmp.Diff(tc.want, got); d != "" {
						t.Errorf("page size %d (-want +got):\n%s", size, d)
					}
				}
			})
		}
	})

	t.Run("Conditions", func(t *testing.T) {
		for _, tc := range []struct {
			name string
			q    store.Query
			want []string
		}{
			{"shared", store.Query{Access: accH1, Type: "Specimen", Filter: store.Token{Param: "identifier", Code: "L1"}, Count: 2}, []string{"Specimen/lot"}},
			{"donor hidden", store.Query{Access: accReg, Type: "Patient", Filter: store.Token{Param: "identifier", Code: "D1"}, Count: 2}, []string{}},
			{"other hospital", store.Query{Access: store.Tenant("h2"), Type: "Patient", Filter: store.Token{Param: "identifier", Code: "R1"}, Count: 2}, []string{}},
			{"two tenants", store.Query{Access: accMulti, Type: "Patient", Filter: store.Token{Param: "identifier", Code: "R2"}, Count: 2}, []string{"Patient/r2"}},
		} {
			t.Run(tc.name, func(t *testing.T) {
				var got []string
				if err := s.PutIf(ctx, tc.q, func(m []*store.Version) (*store.Write, error) {
					got = refs(m)
					return nil, nil
				}); err != nil {
					t.Fatalf("PutIf: %v", err)
				}
				if d := cmp.Diff(tc.want, got); d != "" {
					t.Errorf("PutIf matches (-want +got):\n%s", d)
				}
				got = nil
				other := store.Query{Access: accB1, Type: "Patient", Filter: store.Token{Param: "identifier", Code: "D1"}, Count: 2}
				if err := s.Transact(ctx, []store.Query{tc.q, other}, func(m [][]*store.Version) ([]store.Write, error) {
					got = refs(m[0])
					if d := cmp.Diff([]string{"Patient/donor"}, refs(m[1])); d != "" {
						t.Errorf("Transact's second condition (-want +got):\n%s", d)
					}
					return nil, nil
				}); err != nil {
					t.Fatalf("Transact: %v", err)
				}
				if d := cmp.Diff(tc.want, got); d != "" {
					t.Errorf("Transact matches (-want +got):\n%s", d)
				}
			})
		}
		a := store.Query{Access: accH1, Type: "Specimen", Filter: store.Token{Param: "identifier", Code: "L1"}}
		b := a
		b.Access = accB1
		if a.ConditionKey() == b.ConditionKey() {
			t.Errorf("two accesses share the condition key %s", a.ConditionKey())
		}
	})

	t.Run("WriteOverShared", func(t *testing.T) {
		lot := version("h1", "Specimen", "lot", 3, base.Add(time.Minute))
		lot.Reach = store.ReachShared
		for _, w := range []store.Write{{PrevVersion: 2, Version: lot}, {PrevVersion: 0, Version: func() store.Version {
			v := lot
			v.VersionID = 1
			return v
		}()}} {
			if err := s.Put(ctx, w); !errors.Is(err, store.ErrConflict) {
				t.Errorf("Put by another tenant over prev %d = %v, want ErrConflict", w.PrevVersion, err)
			}
			second := version("h1", "Patient", "new", 1, base.Add(time.Minute))
			err := s.Transact(ctx, nil, func([][]*store.Version) ([]store.Write, error) {
				return []store.Write{w, {Version: second}}, nil
			})
			if !errors.Is(err, store.ErrConflict) {
				t.Errorf("Transact by another tenant over prev %d = %v, want ErrConflict", w.PrevVersion, err)
			}
		}
		if v, err := s.Read(ctx, accB1, "Specimen", "lot"); err != nil || v.VersionID != 2 || v.Tenant != "b1" {
			t.Errorf("lot after the refused writes = %+v, %v; want version 2 of b1", v, err)
		}
		if _, err := s.Read(ctx, accH1, "Patient", "new"); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("the refused transaction's other write: %v, want ErrNotFound", err)
		}
	})
}
