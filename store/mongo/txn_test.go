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

// TestCrash runs the shared crash suite on the commit-record protocol.
func TestCrash(t *testing.T) {
	srv := mongotest.Start(t)
	storetest.RunCrash(t, storetest.Crasher{Steps: mongo.CrashSteps, Stale: crashLease, New: func(t *testing.T) func(string) store.Store {
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
			return s
		}
	}})
}
