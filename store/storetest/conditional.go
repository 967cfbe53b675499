package storetest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/fmtbank/cmts/store"
	"github.com/google/go-cmp/cmp"
)

// racers is how many goroutines race one conditional write.
const racers = 20

// errMany is what the suite's decide functions return for several matches
// (the REST layer's 412).
var errMany = errors.New("storetest: the condition matches several resources")

// condTok is the index entry the conditional tests match on.
func condTok(code string) store.IndexEntry {
	return store.IndexEntry{Param: "identifier", Kind: store.KindToken, System: "http://cu", Code: code}
}

var condActive = store.IndexEntry{Param: "active", Kind: store.KindToken, Code: "true"}

// condQuery selects the tenant's Patients with identifier http://cu|code
// (and active=true, the operands in either order, when both is set).
func condQuery(code string, both, reversed bool) store.Query {
	var f store.Expr = store.Token{Param: "identifier", System: ptr("http://cu"), Code: code}
	if both {
		active := store.Token{Param: "active", Code: "true"}
		if reversed {
			f = store.And{active, f}
		} else {
			f = store.And{f, active}
		}
	}
	return store.Query{Access: store.Tenant("h1"), Type: "Patient", Filter: f, Count: 2}
}

// createIfNone is a conditional create's decision: a new resource when none
// matches, nothing when one does.
func createIfNone(id, code string, wrote *bool) func([]*store.Version) (*store.Write, error) {
	return func(m []*store.Version) (*store.Write, error) {
		switch len(m) {
		case 0:
			*wrote = true
			return &store.Write{Version: version("h1", "Patient", id, 1, base, condTok(code), condActive)}, nil
		case 1:
			return nil, nil
		}
		return nil, errMany
	}
}

// updateOrCreate is a conditional update's decision: the next version of
// the one match, or a new resource when none matches.
func updateOrCreate(id, code string, wrote *bool) func([]*store.Version) (*store.Write, error) {
	return func(m []*store.Version) (*store.Write, error) {
		switch len(m) {
		case 0:
			*wrote = true
			return &store.Write{Version: version("h1", "Patient", id, 1, base, condTok(code), condActive)}, nil
		case 1:
			*wrote = true
			cur := m[0]
			return &store.Write{PrevVersion: cur.VersionID,
				Version: version("h1", "Patient", cur.ID, cur.VersionID+1, base.Add(time.Second), condTok(code), condActive)}, nil
		}
		return nil, errMany
	}
}

// raceIf runs one PutIf per decision at once and fails the test on any error.
func raceIf(t *testing.T, s store.Store, calls []func() error) {
	t.Helper()
	errs := make([]error, len(calls))
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i, call := range calls {
		wg.Go(func() {
			<-start
			errs[i] = call()
		})
	}
	close(start)
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("racer %d: %v", i, err)
		}
	}
}

// matching returns every current Patient with identifier http://cu|code.
func matching(t *testing.T, s store.Store, code string) []*store.Version {
	t.Helper()
	q := condQuery(code, false, false)
	q.Count, q.WantTotal = 100, true
	p, err := s.Search(context.Background(), q)
	if err != nil {
		t.Fatalf("Search: %v", err)
	}
	// The total counts what the page shows: a version a reader may not see
	// (an undecided or aborted transaction's) is not counted either.
	if p.Total != len(p.Versions) {
		t.Errorf("Search %s: total %d, but %d matches", code, p.Total, len(p.Versions))
	}
	return p.Versions
}

func countTrue(b []bool) int {
	n := 0
	for _, x := range b {
		if x {
			n++
		}
	}
	return n
}

// testPutIfCreateRace races conditional creates with one condition: one
// resource results, written by exactly one racer.
func testPutIfCreateRace(t *testing.T, s store.Store) {
	ctx := context.Background()
	wrote := make([]bool, racers)
	calls := make([]func() error, racers)
	for i := range calls {
		calls[i] = func() error {
			return s.PutIf(ctx, condQuery("CREATE", false, false), createIfNone(fmt.Sprintf("c%02d", i), "CREATE", &wrote[i]))
		}
	}
	raceIf(t, s, calls)
	if got := matching(t, s, "CREATE"); len(got) != 1 {
		t.Fatalf("%d resources after %d racing conditional creates, want 1: %v", len(got), racers, ids(got))
	}
	if n := countTrue(wrote); n != 1 {
		t.Errorf("%d racers wrote, want 1", n)
	}
}

// testPutIfUpdateRace races conditional updates with one condition: the
// first creates the resource, every other one updates it, one after the
// other, so it ends with one version per racer.
func testPutIfUpdateRace(t *testing.T, s store.Store) {
	ctx := context.Background()
	wrote := make([]bool, racers)
	calls := make([]func() error, racers)
	for i := range calls {
		calls[i] = func() error {
			return s.PutIf(ctx, condQuery("ONE", false, false), updateOrCreate(fmt.Sprintf("u%02d", i), "ONE", &wrote[i]))
		}
	}
	raceIf(t, s, calls)
	got := matching(t, s, "ONE")
	if len(got) != 1 {
		t.Fatalf("%d resources after %d racing conditional updates, want 1: %v", len(got), racers, ids(got))
	}
	if got[0].VersionID != racers {
		t.Errorf("the resource is at version %d, want %d (one per racer)", got[0].VersionID, racers)
	}
}

// testPutIfMixedRace races conditional creates and updates whose
// conditions are the same up to the order of their operands.
func testPutIfMixedRace(t *testing.T, s store.Store) {
	ctx := context.Background()
	wrote := make([]bool, racers)
	calls := make([]func() error, racers)
	for i := range calls {
		q := condQuery("MIX", true, i%4 >= 2)
		id := fmt.Sprintf("m%02d", i)
		if i%2 == 0 {
			calls[i] = func() error { return s.PutIf(ctx, q, createIfNone(id, "MIX", &wrote[i])) }
		} else {
			calls[i] = func() error { return s.PutIf(ctx, q, updateOrCreate(id, "MIX", &wrote[i])) }
		}
	}
	raceIf(t, s, calls)
	got := matching(t, s, "MIX")
	if len(got) != 1 {
		t.Fatalf("%d resources after racing conditional creates and updates, want 1: %v", len(got), ids(got))
	}
	if n := countTrue(wrote); got[0].VersionID != int64(n) {
		t.Errorf("the resource is at version %d, but %d racers wrote", got[0].VersionID, n)
	}
}

// testPutIfDeleteRace races conditional deletes of one resource: one
// tombstone, the other racers find nothing left to delete.
func testPutIfDeleteRace(t *testing.T, s store.Store) {
	ctx := context.Background()
	mustPut(t, s, 0, version("h1", "Patient", "d1", 1, base, condTok("DEL")))
	wrote := make([]bool, racers)
	calls := make([]func() error, racers)
	for i := range calls {
		calls[i] = func() error {
			return s.PutIf(ctx, condQuery("DEL", false, false), func(m []*store.Version) (*store.Write, error) {
				switch len(m) {
				case 0:
					return nil, nil
				case 1:
					wrote[i] = true
					cur := m[0]
					return &store.Write{PrevVersion: cur.VersionID, Version: store.Version{Tenant: "h1", Type: "Patient", ID: cur.ID,
						VersionID: cur.VersionID + 1, LastUpdated: base.Add(time.Second), Deleted: true}}, nil
				}
				return nil, errMany
			})
		}
	}
	raceIf(t, s, calls)
	if n := countTrue(wrote); n != 1 {
		t.Errorf("%d racers deleted, want 1", n)
	}
	h, err := s.History(ctx, store.HistoryQuery{Access: store.Tenant("h1"), Type: "Patient", ID: "d1", Count: 100})
	if err != nil || len(h.Versions) != 2 || !h.Versions[0].Deleted {
		t.Fatalf("history = %v, %v; want the create and one tombstone", h, err)
	}
}

// testPutIf checks what PutIf passes to decide and does with its answer.
func testPutIf(t *testing.T, s store.Store) {
	ctx := context.Background()
	mustPut(t, s, 0, version("h1", "Patient", "a", 1, base, condTok("A"), condActive))
	mustPut(t, s, 0, version("h1", "Patient", "b", 1, base, condTok("B"), condActive))
	mustPut(t, s, 0, version("h1", "Patient", "c", 1, base, condTok("B")))
	mustPut(t, s, 0, version("h2", "Patient", "x", 1, base, condTok("A")))

	t.Run("matches", func(t *testing.T) {
		for _, tc := range []struct {
			name string
			q    store.Query
			want []string
		}{
			{"one", condQuery("A", false, false), []string{"Patient/a"}},
			{"none", condQuery("Z", false, false), []string{}},
			{"at most Count", condQuery("B", false, false), []string{"Patient/b", "Patient/c"}},
			{"both operands", condQuery("B", true, false), []string{"Patient/b"}},
			{"other tenant", store.Query{Access: store.Tenant("h2"), Type: "Patient", Filter: store.Token{Param: "identifier", Code: "A"}, Count: 2}, []string{"Patient/x"}},
		} {
			t.Run(tc.name, func(t *testing.T) {
				var got []string
				err := s.PutIf(ctx, tc.q, func(m []*store.Version) (*store.Write, error) {
					got = ids(m)
					return nil, nil
				})
				if err != nil {
					t.Fatalf("PutIf: %v", err)
				}
				if d := cmp.Diff(tc.want, got); d != "" {
					t.Errorf("matches (-want +got):\n%s", d)
				}
			})
		}
	})

	t.Run("decide's error comes back unchanged and nothing is written", func(t *testing.T) {
		err := s.PutIf(ctx, condQuery("B", false, false), func(m []*store.Version) (*store.Write, error) { return nil, errMany })
		if !errors.Is(err, errMany) {
			t.Errorf("PutIf = %v, want decide's error", err)
		}
	})

	t.Run("the write is stored as Put stores it", func(t *testing.T) {
		err := s.PutIf(ctx, condQuery("A", false, false), func(m []*store.Version) (*store.Write, error) {
			return &store.Write{PrevVersion: m[0].VersionID, Version: version("h1", "Patient", "a", 2, base.Add(time.Second), condTok("A2"))}, nil
		})
		if err != nil {
			t.Fatalf("PutIf: %v", err)
		}
		cur, err := s.Read(ctx, store.Tenant("h1"), "Patient", "a")
		if err != nil || cur.VersionID != 2 {
			t.Fatalf("Read = %+v, %v; want version 2", cur, err)
		}
		if got := matching(t, s, "A2"); len(got) != 1 {
			t.Errorf("the new version's index entries: %d matches, want 1", len(got))
		}
	})

	t.Run("a stale write is a conflict", func(t *testing.T) {
		err := s.PutIf(ctx, condQuery("A2", false, false), func(m []*store.Version) (*store.Write, error) {
			return &store.Write{PrevVersion: 1, Version: version("h1", "Patient", "a", 2, base.Add(2*time.Second))}, nil
		})
		if !errors.Is(err, store.ErrConflict) {
			t.Errorf("PutIf = %v, want ErrConflict", err)
		}
	})

	t.Run("decide may read", func(t *testing.T) {
		err := s.PutIf(ctx, condQuery("B", true, false), func(m []*store.Version) (*store.Write, error) {
			cur, err := s.Read(ctx, store.Tenant("h1"), "Patient", "c")
			if err != nil || cur.VersionID != 1 {
				return nil, fmt.Errorf("Read inside decide = %+v, %v", cur, err)
			}
			return nil, nil
		})
		if err != nil {
			t.Error(err)
		}
	})
}
