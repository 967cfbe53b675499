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

// TestTransactionsUnstreamed runs the transaction tests with the store
// behind store.Store alone, without TransactSeq: the way a store that
// cannot take writes as they are built is written to, large transactions
// parsed entry by entry as they are built.
func TestTransactionsUnstreamed(t *testing.T) {
	resttest.RunTransactions(t, func(t testing.TB) store.Store { return struct{ store.Store }{openStore(t)} })
}

func TestOfficialExamplesRoundTrip(t *testing.T) { resttest.RunExamples(t, openStore, 1) }
