package storetest

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/fmtbank/cmts/store"
	"github.com/google/go-cmp/cmp"
)

// testSearchHeads: a Heads search finds what the same search finds, the
// same versions page by page (tenant, version, time, deletion, reach),
// with a resource, if any, that is the version's own.
func testSearchHeads(t *testing.T, s store.Store) {
	ctx := context.Background()
	for i := range 5 {
		id := fmt.Sprintf("h%d", i)
		mustPut(t, s, 0, version("h1", "Observation", id, 1, base))
		if i%2 == 0 {
			mustPut(t, s, 1, version("h1", "Observation", id, 2, base.Add(time.Second)))
		}
	}
	lot := version("b1", "Observation", "shared", 1, base)
	lot.Reach = store.ReachShared
	mustPut(t, s, 0, lot)
	mustPut(t, s, 0, version("h2", "Observation", "other", 1, base))
	head := func(v *store.Version) store.Version {
		c := comparable(v)
		c.Resource, c.Method = nil, ""
		return c
	}
	a := store.Access{Tenants: []string{"h1"}, Everyone: true}
	for _, count := range []int{2, 100} {
		q := store.Query{Access: a, Type: "Observation", Count: count}
		var want, got []store.Version
		for {
			full, err := s.Search(ctx, q)
			if err != nil {
				t.Fatal(err)
			}
			hq := q
			hq.Heads = true
			heads, err := s.Search(ctx, hq)
			if err != nil {
				t.Fatal(err)
			}
			for i, v := range heads.Versions {
				if v.Resource != nil && i < len(full.Versions) && string(v.Resource) != string(full.Versions[i].Resource) {
					t.Errorf("head %s/%s carries another resource", v.Type, v.ID)
				}
				got = append(got, head(v))
			}
			for _, v := range full.Versions {
				want = append(want, head(v))
			}
			if heads.More != full.More {
				t.Fatalf("More = %v, want %v", heads.More, full.More)
			}
			if !full.More {
				break
			}
			last := full.Versions[len(full.Versions)-1]
			q.After = &store.SearchCursor{Type: last.Type, ID: last.ID}
		}
		if len(want) != 7 {
			t.Fatalf("the full search found %d, want 7", len(want))
		}
		if d := cmp.Diff(want, got); d != "" {
			t.Errorf("count %d (-full +heads):\n%s", count, d)
		}
	}
}
