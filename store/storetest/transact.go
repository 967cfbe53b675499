package storetest

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fmtbank/cmts/store"
	"github.com/google/go-cmp/cmp"
)

// writes returns a decide function that ignores the matches and returns ws.
func writes(ws ...store.Write) func([][]*store.Version) ([]store.Write, error) {
	return func([][]*store.Version) ([]store.Write, error) { return ws, nil }
}

func create(v store.Version) store.Write { return store.Write{Version: v} }

func update(v store.Version) store.Write {
	return store.Write{PrevVersion: v.VersionID - 1, Version: v}
}

// present reports which of the tenant h1's Patients ids exist.
func present(t *testing.T, s store.Store, ids ...string) []bool {
	t.Helper()
	got := make([]bool, len(ids))
	for i, id := range ids {
		_, err := s.Read(context.Background(), store.Tenant("h1"), "Patient", id)
		switch {
		case err == nil:
			got[i] = true
		case !errors.Is(err, store.ErrNotFound):
			t.Fatalf("Read %s: %v", id, err)
		}
	}
	return got
}

// testTransact checks that a transaction stores all its writes, or none.
func testTransact(t *testing.T, s store.Store) {
	ctx := context.Background()
	mustPut(t, s, 0, version("h1", "Patient", "u", 1, base, condTok("U1")))

	t.Run("all writes are stored", func(t *testing.T) {
		err := s.Transact(ctx, nil, writes(
			create(version("h1", "Patient", "t1", 1, base, condTok("T"))),
			create(version("h1", "Patient", "t2", 1, base, condTok("T"))),
			update(version("h1", "Patient", "u", 2, base, condTok("T"))),
		))
		if err != nil {
			t.Fatalf("Transact: %v", err)
		}
		if got := ids(matching(t, s, "T")); !cmp.Equal(got, []string{"Patient/t1", "Patient/t2", "Patient/u"}) {
			t.Errorf("search after the transaction: %v", got)
		}
		if got := matching(t, s, "U1"); len(got) != 0 {
			t.Errorf("the updated resource's old index entries still match: %v", ids(got))
		}
		h, err := s.History(ctx, store.HistoryQuery{Access: store.Tenant("h1"), Type: "Patient", ID: "u", Count: 10})
		if err != nil || len(h.Versions) != 2 {
			t.Fatalf("history of u = %v, %v; want two versions", h, err)
		}
	})

	t.Run("a failing precondition stores nothing", func(t *testing.T) {
		for _, tc := range []struct {
			name string
			bad  store.Write
		}{
			{"stale update", update(version("h1", "Patient", "u", 2, base))},
			{"create of an existing id", create(version("h1", "Patient", "t1", 1, base))},
			{"update of a missing resource", update(version("h1", "Patient", "none", 2, base))},
			{"another tenant's resource", update(version("h2", "Patient", "u", 3, base))},
			{"the same resource twice", update(version("h1", "Patient", "f1", 2, base))},
		} {
			t.Run(tc.name, func(t *testing.T) {
				err := s.Transact(ctx, nil, writes(
					create(version("h1", "Patient", "f1", 1, base, condTok("F"))),
					create(version("h1", "Patient", "f2", 1, base, condTok("F"))),
					tc.bad,
				))
				if !errors.Is(err, store.ErrConflict) {
					t.Fatalf("Transact = %v, want ErrConflict", err)
				}
				if got := present(t, s, "f1", "f2"); got[0] || got[1] {
					t.Errorf("f1, f2 present = %v after a failed transaction", got)
				}
				if got := matching(t, s, "F"); len(got) != 0 {
					t.Errorf("search finds %v after a failed transaction", ids(got))
				}
			})
		}
		// Version numbers are free again: the same creates now succeed.
		if err := s.Transact(ctx, nil, writes(create(version("h1", "Patient", "f1", 1, base)), create(version("h1", "Patient", "f2", 1, base)))); err != nil {
			t.Errorf("Transact after the failed ones: %v", err)
		}
	})

	t.Run("no writes, nothing stored", func(t *testing.T) {
		called := 0
		err := s.Transact(ctx, []store.Query{condQuery("T", false, false)}, func(m [][]*store.Version) ([]store.Write, error) {
			called++
			if len(m) != 1 || len(m[0]) != 2 {
				return nil, fmt.Errorf("matches = %v, want one list of two (Count)", m)
			}
			return nil, nil
		})
		if err != nil || called != 1 {
			t.Errorf("Transact = %v, decide called %d times; want nil, once", err, called)
		}
		if err := s.Transact(ctx, nil, writes()); err != nil {
			t.Errorf("Transact with no writes = %v", err)
		}
	})

	t.Run("decide's error comes back unchanged", func(t *testing.T) {
		err := s.Transact(ctx, []store.Query{condQuery("T", false, false), condQuery("Z", false, false)},
			func(m [][]*store.Version) ([]store.Write, error) {
				if len(m) != 2 || len(m[0]) != 2 || len(m[1]) != 0 {
					return nil, fmt.Errorf("matches = %v", m)
				}
				return nil, errMany
			})
		if !errors.Is(err, errMany) {
			t.Errorf("Transact = %v, want decide's error", err)
		}
		err = s.Transact(ctx, nil, func([][]*store.Version) ([]store.Write, error) { return nil, errMany })
		if !errors.Is(err, errMany) {
			t.Errorf("Transact without conditions = %v, want decide's error", err)
		}
	})
}

// testTransactRace races transactions that each create one shared resource
// and one of their own: exactly one wins, and nothing of the others is stored.
func testTransactRace(t *testing.T, s store.Store) {
	ctx := context.Background()
	mustPut(t, s, 0, version("h1", "Patient", "shared-u", 1, base))
	errs := make([]error, racers)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range racers {
		wg.Go(func() {
			<-start
			var shared store.Write
			if i%2 == 0 {
				shared = create(version("h1", "Patient", "shared", 1, base))
			} else {
				shared = update(version("h1", "Patient", "shared-u", 2, base))
			}
			errs[i] = s.Transact(ctx, nil, writes(
				create(version("h1", "Patient", fmt.Sprintf("own%02d", i), 1, base, condTok("OWN"))),
				shared,
				create(version("h1", "Patient", fmt.Sprintf("own%02db", i), 1, base, condTok("OWN"))),
			))
		})
	}
	close(start)
	wg.Wait()
	// The even racers race on "shared", the odd ones on "shared-u".
	for parity := range 2 {
		won := 0
		for i := parity; i < racers; i += 2 {
			own := present(t, s, fmt.Sprintf("own%02d", i), fmt.Sprintf("own%02db", i))
			switch {
			case errs[i] == nil:
				won++
				if !own[0] || !own[1] {
					t.Errorf("racer %d won but its own resources present = %v", i, own)
				}
			case errors.Is(errs[i], store.ErrConflict):
				if own[0] || own[1] {
					t.Errorf("racer %d lost but its own resources present = %v", i, own)
				}
			default:
				t.Errorf("racer %d: %v", i, errs[i])
			}
		}
		if won != 1 {
			t.Errorf("%d racers of parity %d won, want 1", won, parity)
		}
	}
	if got := matching(t, s, "OWN"); len(got) != 4 {
		t.Errorf("search finds %d own resources, want 4 (two winners)", len(got))
	}
}

// testTransactCondRace races conditional creates of one condition through
// Transact and PutIf: one resource results.
func testTransactCondRace(t *testing.T, s store.Store) {
	ctx := context.Background()
	wrote := make([]bool, racers)
	calls := make([]func() error, racers)
	for i := range calls {
		id := fmt.Sprintf("c%02d", i)
		if i%2 == 0 {
			calls[i] = func() error {
				return s.PutIf(ctx, condQuery("TXC", true, false), createIfNone(id, "TXC", &wrote[i]))
			}
			continue
		}
		calls[i] = func() error {
			return s.Transact(ctx, []store.Query{condQuery("TXC", true, true)}, func(m [][]*store.Version) ([]store.Write, error) {
				w, err := createIfNone(id, "TXC", &wrote[i])(m[0])
				if err != nil || w == nil {
					return nil, err
				}
				// A second write of its own, so the transaction is not a single write.
				return []store.Write{*w, create(version("h1", "Patient", id+"x", 1, base))}, nil
			})
		}
	}
	raceIf(t, s, calls)
	if got := matching(t, s, "TXC"); len(got) != 1 {
		t.Fatalf("%d resources after racing conditional creates, want 1: %v", len(got), ids(got))
	}
	if n := countTrue(wrote); n != 1 {
		t.Errorf("%d racers wrote, want 1", n)
	}
}

// txnSize is how many resources each transaction of testTransactReaders
// writes, one of them an update of a shared resource.
const txnSize = 5

// testTransactReaders streams transactions while readers check that they
// never see part of one: transaction k creates txnSize-1 resources and
// updates "counter" to version k+1, all indexed with marker Mk.
func testTransactReaders(t *testing.T, s store.Store) {
	ctx := context.Background()
	const txns = 30
	mustPut(t, s, 0, version("h1", "Patient", "counter", 1, base))
	var done atomic.Bool
	var wg sync.WaitGroup
	wg.Go(func() {
		defer done.Store(true)
		for k := range txns {
			var ws []store.Write
			for j := range txnSize - 1 {
				ws = append(ws, create(version("h1", "Patient", fmt.Sprintf("t%02d-%d", k, j), 1, base.Add(time.Duration(k)*time.Second), condTok(fmt.Sprintf("M%02d", k)))))
			}
			ws = append(ws, update(version("h1", "Patient", "counter", int64(k+2), base.Add(time.Duration(k)*time.Second), condTok(fmt.Sprintf("M%02d", k)))))
			if err := s.Transact(ctx, nil, writes(ws...)); err != nil {
				t.Errorf("transaction %d: %v", k, err)
				return
			}
		}
	})
	check := func(what string, seen map[string]int) {
		t.Helper()
		for m, n := range seen {
			if n != txnSize {
				t.Errorf("%s: %d of the %d writes of transaction %s", what, n, txnSize, m)
			}
		}
	}
	for range 2 {
		wg.Go(func() {
			for !done.Load() {
				// Search: every marker's writes, or none; for the last
				// transaction committed before the search, all of them (but
				// the counter, if a later one moved it on meanwhile).
				c0, err := s.Read(ctx, store.Tenant("h1"), "Patient", "counter")
				if err != nil {
					t.Errorf("Read: %v", err)
					return
				}
				last := int(c0.VersionID) - 2
				for k := last; k <= last+1; k++ {
					if k < 0 || k >= txns {
						continue
					}
					m := fmt.Sprintf("M%02d", k)
					q := condQuery(m, false, false)
					q.Count = 100
					p, err := s.Search(ctx, q)
					if err != nil {
						t.Errorf("Search: %v", err)
						return
					}
					n := len(p.Versions)
					switch {
					case n == txnSize:
					case n == txnSize-1 && !hasID(p.Versions, "counter"):
						// The counter must have moved on.
						if c1, err := s.Read(ctx, store.Tenant("h1"), "Patient", "counter"); err != nil || c1.VersionID <= int64(k+2) {
							t.Errorf("search %s: %v without the counter, which is at %v (%v)", m, ids(p.Versions), c1, err)
						}
					case n == 0 && k > last:
					default:
						t.Errorf("search %s: %d resources %v, want 0 or %d (counter was at %d)", m, n, ids(p.Versions), txnSize, c0.VersionID)
					}
				}
				// History: every version of a transaction, or none.
				h, err := s.History(ctx, store.HistoryQuery{Access: store.Tenant("h1"), Type: "Patient", Count: 1000})
				if err != nil {
					t.Errorf("History: %v", err)
					return
				}
				seen := map[string]int{}
				for _, v := range h.Versions {
					switch {
					case v.ID == "counter" && v.VersionID > 1:
						seen[fmt.Sprintf("%02d", v.VersionID-2)]++
					case strings.HasPrefix(v.ID, "t"):
						seen[v.ID[1:3]]++
					}
				}
				check("history", seen)
				// Read: the counter, then the first resource of the transaction
				// that wrote it, which must be there since it committed with it.
				c, err := s.Read(ctx, store.Tenant("h1"), "Patient", "counter")
				if err != nil {
					t.Errorf("Read: %v", err)
					return
				}
				if c.VersionID > 1 {
					if _, err := s.Read(ctx, store.Tenant("h1"), "Patient", fmt.Sprintf("t%02d-0", c.VersionID-2)); err != nil {
						t.Errorf("counter at version %d, but its transaction's first resource: %v", c.VersionID, err)
					}
				}
			}
		})
	}
	wg.Wait()
}

// hasID reports whether vs holds the Patient id.
func hasID(vs []*store.Version, id string) bool {
	for _, v := range vs {
		if v.ID == id {
			return true
		}
	}
	return false
}

// testMethod checks that the interaction that made a version comes back
// from every read.
func testMethod(t *testing.T, s store.Store) {
	ctx := context.Background()
	v1 := version("h1", "Patient", "m", 1, base, condTok("METHOD"))
	v1.Method = "PUT"
	mustPut(t, s, 0, v1)
	v2 := version("h1", "Patient", "m", 2, base.Add(time.Second), condTok("METHOD"))
	v2.Method = "PATCH"
	if err := s.Transact(ctx, nil, writes(update(v2))); err != nil {
		t.Fatal(err)
	}
	old := version("h1", "Patient", "old", 1, base)
	mustPut(t, s, 0, old)
	if v, err := s.Read(ctx, store.Tenant("h1"), "Patient", "m"); err != nil || v.Method != "PATCH" {
		t.Errorf("Read = %+v, %v; want method PATCH", v, err)
	}
	if v, err := s.ReadVersion(ctx, store.Tenant("h1"), "Patient", "m", 1); err != nil || v.Method != "PUT" {
		t.Errorf("ReadVersion = %+v, %v; want method PUT", v, err)
	}
	if v, err := s.Read(ctx, store.Tenant("h1"), "Patient", "old"); err != nil || v.Method != "" {
		t.Errorf("Read of a version without a method = %+v, %v; want none", v, err)
	}
	h, err := s.History(ctx, store.HistoryQuery{Access: store.Tenant("h1"), Type: "Patient", ID: "m", Count: 10})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, v := range h.Versions {
		got = append(got, v.Method)
	}
	if d := cmp.Diff([]string{"PATCH", "PUT"}, got); d != "" {
		t.Errorf("history methods (-want +got):\n%s", d)
	}
	if got := matching(t, s, "METHOD"); len(got) != 1 || got[0].Method != "PATCH" {
		t.Errorf("Search = %+v; want version 2 with method PATCH", got)
	}
}

// testPutsIndependent races creates of which half fail (the id is taken):
// a backend that batches concurrent writes must still fail only those.
func testPutsIndependent(t *testing.T, s store.Store) {
	ctx := context.Background()
	mustPut(t, s, 0, version("h1", "Patient", "taken", 1, base))
	errs := make([]error, racers)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range racers {
		wg.Go(func() {
			<-start
			id := fmt.Sprintf("free%02d", i)
			if i%2 == 1 {
				id = "taken"
			}
			errs[i] = s.Put(ctx, store.Write{Version: version("h1", "Patient", id, 1, base, condTok("IND"))})
		})
	}
	close(start)
	wg.Wait()
	for i, err := range errs {
		if i%2 == 1 && !errors.Is(err, store.ErrConflict) || i%2 == 0 && err != nil {
			t.Errorf("racer %d: %v", i, err)
		}
	}
	if got := matching(t, s, "IND"); len(got) != racers/2 {
		t.Errorf("search finds %d created resources, want %d", len(got), racers/2)
	}
}
