package export_test

import (
	"context"
	"testing"

	"github.com/fmtbank/cmts/fhir/export"
	"github.com/fmtbank/cmts/fhir/export/exporttest"
	"github.com/fmtbank/cmts/store"
	"github.com/fmtbank/cmts/store/sqlite"
)

func newStore(t testing.TB) store.Store {
	t.Helper()
	st, err := sqlite.Open(context.Background(), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// TestExport runs the $export suite on the embedded store.
func TestExport(t *testing.T) {
	t.Parallel()
	exporttest.Run(t, newStore, func(t testing.TB, _ store.Store) export.Files { return export.Dir(t.TempDir()) })
}
