package storetest

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/fmtbank/cmts/store"
	"github.com/google/go-cmp/cmp"
)

// The accesses of testAddressee: expert centres c1 and c2, the hospitals,
// the centre together with a hospital, the regulator.
var (
	accC1      = store.Tenant("c1")
	accC2      = store.Tenant("c2")
	accC1H1    = store.Access{Tenants: []string{"c1", "h1"}}
	accAddrReg = store.Access{Tenants: []string{"nhc"}, Everyone: true}
)

// loadAddressee writes, one second apart: hospital h1's Task t1 addressed
// to c1 (version 2, still h1's, as the centre's update stores it), its
// Task t2 addressed to nobody, its Task t4 addressed to c1 in version 1 and
// to nobody in version 2; hospital h2's Task t3 addressed to c2 (owner
// only, which the addressee still reads); centre c1's own Patient pc1.
func loadAddressee(t *testing.T, s store.Store) {
	t.Helper()
	status := func(code string) store.IndexEntry {
		return store.IndexEntry{Param: "status", Kind: store.KindToken, Code: code}
	}
	at := func(n int) time.Time { return base.Add(time.Duration(n) * time.Second) }
	for i, w := range []struct {
		prev int64
		to   string
		v    store.Version
	}{
		{0, "c1", version("h1", "Task", "t1", 1, at(1), status("requested"))},
		{0, "", version("h1", "Task", "t2", 1, at(2), status("requested"))},
		{0, "c2", version("h2", "Task", "t3", 1, at(3), status("requested"))},
		{0, "", version("c1", "Patient", "pc1", 1, at(4))},
		{1, "c1", version("h1", "Task", "t1", 2, at(5), status("accepted"))},
		{0, "c1", version("h1", "Task", "t4", 1, at(6), status("requested"))},
		{1, "", version("h1", "Task", "t4", 2, at(7), status("requested"))},
	} {
		w.v.Addressee = w.to
		if w.v.ID == "t3" {
			w.v.Reach = store.ReachOwner
		}
		putEitherWay(t, s, i, w.prev, w.v)
	}
}

// testAddressee checks that a version is visible to its addressee's tenant
// as to its owner's, on every read, once each, and that the addressee
// cannot write it at the store (an update keeps the owner's tenant).
func testAddressee(t *testing.T, s store.Store) {
	ctx := context.Background()
	loadAddressee(t, s)

	t.Run("Read", func(t *testing.T) {
		for _, tc := range []struct {
			name    string
			a       store.Access
			id      string
			vid     int64 // 0: Read; else ReadVersion
			want    bool
			wantTo  string
			wantVID int64
		}{
			{"addressee", accC1, "t1", 0, true, "c1", 2},
			{"addressee, first version", accC1, "t1", 1, true, "c1", 1},
			{"owner", accH1, "t1", 0, true, "c1", 2},
			{"another hospital", store.Tenant("h2"), "t1", 0, false, "", 0},
			{"another centre", accC2, "t1", 0, false, "", 0},
			{"not addressed", accC1, "t2", 0, false, "", 0},
			{"owner only, by its addressee", accC2, "t3", 0, true, "c2", 1},
			{"owner only, by the regulator", accAddrReg, "t3", 0, false, "", 0},
			{"addressed away", accC1, "t4", 0, false, "", 0},
			{"addressed away, the addressed version", accC1, "t4", 1, true, "c1", 1},
			{"addressed away, the later version", accC1, "t4", 2, false, "", 0},
			{"regulator", accAddrReg, "t1", 0, true, "c1", 2},
		} {
			t.Run(tc.name, func(t *testing.T) {
				var v *store.Version
				var err error
				if tc.vid == 0 {
					v, err = s.Read(ctx, tc.a, "Task", tc.id)
				} else {
					v, err = s.ReadVersion(ctx, tc.a, "Task", tc.id, tc.vid)
				}
				switch {
				case tc.want && err != nil:
					t.Fatalf("read: %v", err)
				case tc.want:
					if v.ID != tc.id || v.Addressee != tc.wantTo || v.VersionID != tc.wantVID {
						t.Errorf("read Task/%s/_history/%d addressed to %q; want Task/%s/_history/%d addressed to %q",
							v.ID, v.VersionID, v.Addressee, tc.id, tc.wantVID, tc.wantTo)
					}
				case !errors.Is(err, store.ErrNotFound):
					t.Fatalf("read = %v, %v; want ErrNotFound", v, err)
				}
			})
		}
	})

	t.Run("Search", func(t *testing.T) {
		requested := store.Token{Param: "status", Code: "requested"}
		accepted := store.Token{Param: "status", Code: "accepted"}
		for _, tc := range []struct {
			name   string
			a      store.Access
			typ    string
			filter store.Expr
			want   []string
		}{
			{"addressee", accC1, "Task", nil, []string{"Task/t1"}},
			{"addressee, by status", accC1, "Task", accepted, []string{"Task/t1"}},
			{"addressee, no match", accC1, "Task", requested, []string{}},
			{"addressee, every type", accC1, "", nil, []string{"Patient/pc1", "Task/t1"}},
			{"another centre", accC2, "Task", nil, []string{"Task/t3"}},
			{"owner", accH1, "Task", nil, []string{"Task/t1", "Task/t2", "Task/t4"}},
			{"addressee and owner, once each", accC1H1, "Task", nil, []string{"Task/t1", "Task/t2", "Task/t4"}},
			{"regulator, once each", accAddrReg, "Task", nil, []string{"Task/t1", "Task/t2", "Task/t4"}},
			{"another hospital", store.Tenant("h2"), "Task", nil, []string{"Task/t3"}},
			{"ids, as an include", accC1, "Task", store.ID{IDs: []string{"t1", "t2", "t3"}}, []string{"Task/t1"}},
		} {
			t.Run(tc.name, func(t *testing.T) {
				q := store.Query{Access: tc.a, Type: tc.typ, Filter: tc.filter, Count: 100, WantTotal: true}
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
			ID  string
			VID int64
		}
		for _, tc := range []struct {
			name string
			a    store.Access
			q    store.HistoryQuery
			want []key
		}{
			{"addressee, system", accC1, store.HistoryQuery{}, []key{{"t4", 1}, {"t1", 2}, {"pc1", 1}, {"t1", 1}}},
			{"addressee, instance", accC1, store.HistoryQuery{Type: "Task", ID: "t1"}, []key{{"t1", 2}, {"t1", 1}}},
			{"addressee and owner, once each", accC1H1, store.HistoryQuery{Type: "Task"},
				[]key{{"t4", 2}, {"t4", 1}, {"t1", 2}, {"t2", 1}, {"t1", 1}}},
			{"another centre", accC2, store.HistoryQuery{}, []key{{"t3", 1}}},
		} {
			t.Run(tc.name, func(t *testing.T) {
				for _, size := range []int{1, 100} {
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
							got = append(got, key{v.ID, v.VersionID})
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
		q := store.Query{Access: accC1, Type: "Task", Filter: store.Token{Param: "status", Code: "accepted"}, Count: 2}
		var got []string
		if err := s.PutIf(ctx, q, func(m []*store.Version) (*store.Write, error) {
			got = refs(m)
			return nil, nil
		}); err != nil {
			t.Fatalf("PutIf: %v", err)
		}
		if d := cmp.Diff([]string{"Task/t1"}, got); d != "" {
			t.Errorf("PutIf matches (-want +got):\n%s", d)
		}
	})

	t.Run("AddresseeWritesNothing", func(t *testing.T) {
		v := version("c1", "Task", "t1", 3, base.Add(time.Minute))
		v.Addressee = "c1"
		if err := s.Put(ctx, store.Write{PrevVersion: 2, Version: v}); !errors.Is(err, store.ErrConflict) {
			t.Errorf("Put by the addressee's tenant = %v, want ErrConflict", err)
		}
		if got, err := s.Read(ctx, accH1, "Task", "t1"); err != nil || got.VersionID != 2 || got.Tenant != "h1" {
			t.Errorf("t1 after the refused write = %+v, %v; want version 2 of h1", got, err)
		}
	})
}
