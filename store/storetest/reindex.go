package storetest

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/fmtbank/cmts/store"
	"github.com/google/go-cmp/cmp"
)

// RunMaintenance checks Scan and SetIndex, what `cmts reindex` stands on.
func RunMaintenance(t *testing.T, newStore NewStore) {
	t.Run("ScanAllTenantsInOrder", func(t *testing.T) {
		s := newStore(t)
		t.Cleanup(func() { s.Close() })
		ctx := context.Background()
		var want []string
		for i := 0; i < 7; i++ {
			tenant := fmt.Sprintf("h%d", i%2)
			id := fmt.Sprintf("r%d", i)
			mustPut(t, s, 0, version(tenant, "Patient", id, 1, base))
			want = append(want, "Patient/"+id)
		}
		mustPut(t, s, 0, version("h1", "Observation", "o1", 1, base))
		mustPut(t, s, 1, version("h1", "Observation", "o1", 2, base))
		mustPut(t, s, 0, version("h1", "Observation", "gone", 1, base))
		mustPut(t, s, 1, store.Version{Tenant: "h1", Type: "Observation", ID: "gone", VersionID: 2, LastUpdated: base, Deleted: true})
		want = append([]string{"Observation/o1"}, want...)
		var got []string
		var after *store.SearchCursor
		for i := 0; ; i++ {
			if i > 10 {
				t.Fatal("scan does not end")
			}
			vs, err := s.Scan(ctx, after, 3)
			if err != nil {
				t.Fatal(err)
			}
			if len(vs) == 0 {
				break
			}
			for _, v := range vs {
				got = append(got, v.Type+"/"+v.ID)
				if v.ID == "o1" && v.VersionID != 2 {
					t.Errorf("scan gave o1 version %d, want the current 2", v.VersionID)
				}
			}
			last := vs[len(vs)-1]
			after = &store.SearchCursor{Type: last.Type, ID: last.ID}
		}
		if d := cmp.Diff(want, got); d != "" {
			t.Errorf("scan (-want +got):\n%s", d)
		}
		if n, err := s.Count(ctx); err != nil || n != len(want) {
			t.Errorf("Count = %d, %v; want %d", n, err, len(want))
		}
	})
	t.Run("SetIndexReplacesEntries", func(t *testing.T) {
		s := newStore(t)
		t.Cleanup(func() { s.Close() })
		ctx := context.Background()
		old := store.IndexEntry{Param: "identifier", Kind: store.KindToken, System: "urn:x", Code: "old"}
		mustPut(t, s, 0, version("h1", "Patient", "p1", 1, base, old))
		v, err := s.Read(ctx, store.Tenant("h1"), "Patient", "p1")
		if err != nil {
			t.Fatal(err)
		}
		fresh := []store.IndexEntry{{Param: "identifier", Kind: store.KindToken, System: "urn:x", Code: "new"}}
		if err := s.SetIndex(ctx, v, fresh); err != nil {
			t.Fatalf("SetIndex: %v", err)
		}
		find := func(code string) int {
			p, err := s.Search(ctx, store.Query{Access: store.Tenant("h1"), Type: "Patient", Filter: store.Token{Param: "identifier", Code: code}, Count: 10})
			if err != nil {
				t.Fatal(err)
			}
			return len(p.Versions)
		}
		if find("old") != 0 || find("new") != 1 {
			t.Errorf("after SetIndex: old matches %d, new matches %d; want 0 and 1", find("old"), find("new"))
		}
		cur, _ := s.Read(ctx, store.Tenant("h1"), "Patient", "p1")
		if cur.VersionID != 1 {
			t.Errorf("SetIndex made a version: %d", cur.VersionID)
		}
		// A stale version is refused, and its entries are not applied.
		mustPut(t, s, 1, version("h1", "Patient", "p1", 2, base.Add(time.Second), old))
		if err := s.SetIndex(ctx, v, fresh); !errors.Is(err, store.ErrConflict) {
			t.Errorf("SetIndex of a superseded version: %v, want ErrConflict", err)
		}
		if find("old") != 1 || find("new") != 0 {
			t.Errorf("stale SetIndex applied: old %d new %d", find("old"), find("new"))
		}
	})
}
