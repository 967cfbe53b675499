package storetest

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"sync"
	"testing"
	"time"

	"github.com/fmtbank/cmts/store"
)

// Crasher is how a backend lets the crash suite stop a transaction at each
// step of its write.
type Crasher struct {
	// Steps names the points of Transact a writer can die after, in order.
	Steps []string
	// New makes a fresh, empty database and returns how to open stores on
	// it: open(step) returns a Store whose Transact stops after step,
	// returning an error and leaving the database as a process that died
	// there would ("" never stops). The suite abandons a stopped store
	// without using it again; New's cleanup closes every store.
	New func(t *testing.T) (open func(step string) store.Store)
	// Stale is how long a dead writer's transaction may hold its resources
	// before others may recover it; the suite waits that long before the
	// next writers come, as a restart would take.
	Stale time.Duration
	// Seq says the stores also store writes as they are made
	// (TransactSeq, which bundle.SeqStore names).
	Seq bool
}

// RunCrash stops a transaction after each of the backend's steps, then
// opens new stores on the database, as a restarted server would, and
// checks that the transaction is entirely present or entirely absent to
// every reader, including while two stores recover it at once, and that
// later transactions on the same resources succeed: recovery frees the
// version numbers a dead writer took.
//
// With Seq, the same transaction is stopped there through TransactSeq too.
func RunCrash(t *testing.T, c Crasher) {
	for _, step := range c.Steps {
		t.Run("after "+step, func(t *testing.T) {
			testCrashAfter(t, c.New(t), step, c.Stale, false)
		})
		if c.Seq {
			t.Run("TransactSeq after "+step, func(t *testing.T) {
				testCrashAfter(t, c.New(t), step, c.Stale, true)
			})
		}
	}
}

// seqStore is bundle.SeqStore, which this package cannot import.
type seqStore interface {
	TransactSeq(ctx context.Context, conds []store.Query, writes func(matches [][]*store.Version) iter.Seq2[store.Write, error]) error
}

// transactVia is s's Transact, or with seq, the same through TransactSeq.
func transactVia(s store.Store, seq bool) func(context.Context, []store.Query, func([][]*store.Version) ([]store.Write, error)) error {
	if !seq {
		return s.Transact
	}
	return func(ctx context.Context, conds []store.Query, decide func([][]*store.Version) ([]store.Write, error)) error {
		return s.(seqStore).TransactSeq(ctx, conds, func(m [][]*store.Version) iter.Seq2[store.Write, error] {
			return store.Writes(decide(m))
		})
	}
}

// crashIDs are the resources the crashed transaction writes: the first
// exists before (an update), the others are created.
var crashIDs = []string{"c1", "c2", "c3"}

func testCrashAfter(t *testing.T, open func(string) store.Store, step string, stale time.Duration, seq bool) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	s1 := open(step)
	mustPut(t, s1, 0, version("h1", "Patient", "c1", 1, base, condTok("OLD")))
	err := transactVia(s1, seq)(ctx, []store.Query{condQuery("OLD", false, false)}, func(m [][]*store.Version) ([]store.Write, error) {
		if len(m[0]) != 1 {
			return nil, fmt.Errorf("matches = %v, want c1", ids(m[0]))
		}
		return []store.Write{
			update(version("h1", "Patient", "c1", 2, base.Add(time.Second), condTok("NEW"))),
			create(version("h1", "Patient", "c2", 1, base.Add(time.Second), condTok("NEW"))),
			create(version("h1", "Patient", "c3", 1, base.Add(time.Second), condTok("NEW"))),
		}, nil
	})
	if err == nil {
		t.Fatalf("Transact stopped after %s returned no error: the step was never reached", step)
	}

	// Two restarted instances look at once, each recovering what it finds.
	s2, s3 := open(""), open("")
	var wg sync.WaitGroup
	for _, s := range []store.Store{s2, s3} {
		wg.Go(func() { checkWhole(t, s) })
	}
	wg.Wait()
	committed := checkWhole(t, s2)
	time.Sleep(stale)

	// Both write the same resources next, from what they read before
	// either writes: one wins.
	errs := make([]error, 2)
	var read sync.WaitGroup
	read.Add(2)
	for i, s := range []store.Store{s2, s3} {
		wg.Go(func() {
			var ws []store.Write
			for _, id := range crashIDs {
				cur, err := s.Read(ctx, store.Tenant("h1"), "Patient", id)
				var prev int64
				switch {
				case err == nil:
					prev = cur.VersionID
				case !errors.Is(err, store.ErrNotFound):
					t.Errorf("Read %s: %v", id, err)
				}
				ws = append(ws, store.Write{PrevVersion: prev, Version: version("h1", "Patient", id, prev+1, base.Add(2*time.Second), condTok("LATER"))})
			}
			read.Done()
			read.Wait()
			errs[i] = s.Transact(ctx, nil, writes(ws...))
		})
	}
	wg.Wait()
	won := 0
	for i, err := range errs {
		switch {
		case err == nil:
			won++
		case !errors.Is(err, store.ErrConflict):
			t.Errorf("later transaction %d: %v", i, err)
		}
	}
	if won != 1 {
		t.Fatalf("%d of two racing later transactions succeeded (%v), want 1", won, errs)
	}
	want := map[string]int64{"c1": 2, "c2": 1, "c3": 1}
	if committed {
		want = map[string]int64{"c1": 3, "c2": 2, "c3": 2}
	}
	for _, id := range crashIDs {
		v, err := s3.Read(ctx, store.Tenant("h1"), "Patient", id)
		if err != nil || v.VersionID != want[id] {
			t.Errorf("after the later transaction, Read %s = %+v, %v; want version %d", id, v, err, want[id])
		}
	}
	if got := matching(t, s3, "LATER"); len(got) != 3 {
		t.Errorf("search finds %v of the later transaction, want all three", ids(got))
	}
	if got := append(matching(t, s3, "OLD"), matching(t, s3, "NEW")...); len(got) != 0 {
		t.Errorf("search still finds %v of earlier versions", ids(got))
	}
}

// checkWhole checks that every reader of s sees the crashed transaction
// whole or not at all, and reports which.
func checkWhole(t *testing.T, s store.Store) bool {
	t.Helper()
	ctx := context.Background()
	c1, err := s.Read(ctx, store.Tenant("h1"), "Patient", "c1")
	if err != nil {
		t.Errorf("Read c1: %v", err)
		return false
	}
	committed := c1.VersionID == 2
	if got := present(t, s, "c2", "c3"); got[0] != committed || got[1] != committed {
		t.Errorf("c1 at version %d but c2, c3 present = %v", c1.VersionID, got)
	}
	old, nw := matching(t, s, "OLD"), matching(t, s, "NEW")
	if committed && (len(old) != 0 || len(nw) != 3) || !committed && (len(old) != 1 || len(nw) != 0) {
		t.Errorf("committed %v, but search finds %v with the old entries and %v with the new", committed, ids(old), ids(nw))
	}
	h, err := s.History(ctx, store.HistoryQuery{Access: store.Tenant("h1"), Type: "Patient", Count: 100})
	if err != nil {
		t.Errorf("History: %v", err)
		return committed
	}
	if want := map[bool]int{false: 1, true: 4}[committed]; len(h.Versions) != want {
		t.Errorf("committed %v, but history holds %d versions, want %d", committed, len(h.Versions), want)
	}
	if _, err := s.ReadVersion(ctx, store.Tenant("h1"), "Patient", "c1", 2); committed != (err == nil) {
		t.Errorf("committed %v, but ReadVersion c1/2: %v", committed, err)
	}
	return committed
}
