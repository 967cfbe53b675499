package mongo_test

import (
	"testing"

	"github.com/fmtbank/cmts/fhir/rest/resttest"
	"github.com/fmtbank/cmts/store"
	"github.com/fmtbank/cmts/store/mongo/mongotest"
)

// TestSearchCases runs the hand-worked search table, the same code path as
// the embedded store's. FerretDB answers every search by reading the whole
// collection into Go. With all 5,306 examples in one database, each of the
// 410 queries would read some 130 MB. So on FerretDB each group of cases gets
// a database of its own, loaded with the examples of the types it can see
// (see docs/testing-mongodb.md). A real MongoDB (CMTS_TEST_MONGO_URI) runs
// every case over all the examples.
func TestSearchCases(t *testing.T) {
	t.Parallel()
	srv := mongotest.Start(t)
	newStore := func(t testing.TB) store.Store { return open(t, srv) }
	if srv.External() {
		resttest.RunSearchCases(t, newStore)
		return
	}
	resttest.RunSearchCasesByType(t, newStore)
}
