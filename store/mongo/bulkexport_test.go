package mongo_test

import (
	"testing"

	"github.com/fmtbank/cmts/fhir/export"
	"github.com/fmtbank/cmts/fhir/export/exporttest"
	"github.com/fmtbank/cmts/store"
	"github.com/fmtbank/cmts/store/mongo/mongotest"
)

// TestBulkExport runs the Bulk Data $export suite (jobs as store records,
// their files, access), the same as on the embedded store.
func TestBulkExport(t *testing.T) {
	t.Parallel()
	srv := mongotest.Start(t)
	exporttest.Run(t, func(t testing.TB) store.Store { return open(t, srv) },
		func(t testing.TB, _ store.Store) export.Files { return export.Dir(t.TempDir()) })
}
