package sqlite_test

import (
	"context"
	"testing"

	"github.com/fmtbank/cmts/store"
	"github.com/fmtbank/cmts/store/sqlite"
	"github.com/fmtbank/cmts/store/storetest"
)

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store {
		s, err := sqlite.Open(context.Background(), t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		return s
	})
}

// TestCrash runs the shared crash suite: a transaction stopped at each step
// is rolled back, as SQLite's recovery does for a process that died there.
func TestCrash(t *testing.T) {
	storetest.RunCrash(t, storetest.Crasher{Steps: sqlite.CrashSteps, New: func(t *testing.T) func(string) store.Store {
		dir := t.TempDir()
		return func(step string) store.Store {
			s, err := sqlite.Open(context.Background(), dir)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { s.Close() })
			s.CrashAfter(step)
			return s
		}
	}, Seq: true})
}
