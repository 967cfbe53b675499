package sqlite_test

import (
	"context"
	"testing"

	"github.com/fmtbank/cmts/fhir/rest/resttest"
	"github.com/fmtbank/cmts/store"
	"github.com/fmtbank/cmts/store/sqlite"
)

func openStore(t testing.TB) store.Store {
	s, err := sqlite.Open(context.Background(), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestREST(t *testing.T) { resttest.Run(t, openStore) }

func TestOfficialExamplesRoundTrip(t *testing.T) { resttest.RunExamples(t, openStore, 1) }
