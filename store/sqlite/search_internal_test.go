package sqlite

import (
	"context"
	"testing"

	"github.com/fmtbank/cmts/store"
	"github.com/fmtbank/cmts/store/storetest"
)

// TestConformanceTinyEstimates runs the conformance suite with estimates
// capped at two rows and never stopping early, so that on its small data set
// every search with competing candidate sets estimates all of them, and
// costly ones are read whole and drive as lists: the paths the default
// tuning takes only on large data.
func TestConformanceTinyEstimates(t *testing.T) {
	for _, tc := range []struct {
		name string
		t    tuning
	}{
		{"cap 2", tuning{estimateCap: 2, cheapEnough: -1}},
		{"cap 0", tuning{estimateCap: 0, cheapEnough: -1}},
		{"cap 50", tuning{estimateCap: 50, cheapEnough: -1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			storetest.Run(t, func(t *testing.T) store.Store {
				s, err := Open(context.Background(), t.TempDir())
				if err != nil {
					t.Fatal(err)
				}
				s.tuning = tc.t
				return s
			})
		})
	}
}
