package mongo_test

import (
	"context"
	"testing"
	"time"

	"github.com/fmtbank/cmts/store"
	"github.com/fmtbank/cmts/store/mongo"
	"github.com/fmtbank/cmts/store/mongo/mongotest"
	"github.com/fmtbank/cmts/store/storetest"
)

// crashLease is the lease of the stores the crash suite opens: a dead
// writer's transaction goes stale, and is recovered, after it.
const crashLease = time.Second

// TestCrash runs the shared crash suite on the commit-record protocol, with
// the marks of a committed transaction cleared as it is rolled forward (as
// on MongoDB) and left until a writer builds on them (as on FerretDB v1),
// the latter with the writes stored in batches of two.
// It runs before the parallel tests, so that no load of theirs stretches
// a step past the one-second lease; its two halves, each a database of its
// own and mostly waiting for leases to run out, run side by side.
func TestCrash(t *testing.T) {
	srv := mongotest.Start(t)
	for _, clear := range []bool{true, false} {
		steps := mongo.CrashSteps
		if !clear {
			steps = steps[:len(steps)-1] // no "cleared"
		}
		t.Run(map[bool]string{true: "clear at once", false: "clear later"}[clear], func(t *testing.T) {
			t.Parallel()
			storetest.RunCrash(t, storetest.Crasher{Steps: steps, Stale: crashLease, New: func(t *testing.T) func(string) store.Store {
				db := srv.Database(t)
				return func(step string) store.Store {
					ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
					defer cancel()
					s, err := mongo.Open(ctx, mongo.Options{URI: srv.URI(), Database: db, ClaimLease: crashLease})
					if err != nil {
						t.Fatalf("Open: %v", err)
					}
					t.Cleanup(func() { s.Close() })
					s.CrashAfter(step)
					s.ClearOnCommit(clear)
					if !clear {
						// in batches of two: the suite's transaction
						// of three writes takes two
						s.SetTxnBatch(2)
					}
					return s
				}
			}})
		})
	}
}
