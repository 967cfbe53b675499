package main

import (
	"context"
	"testing"

	"github.com/fmtbank/cmts/fhir/rest/resttest"
	"github.com/fmtbank/cmts/store/mongo"
	"github.com/fmtbank/cmts/store/mongo/mongotest"
	"github.com/fmtbank/cmts/store/sqlite"
)

// BenchmarkREST measures create, read and update through HTTP on each
// backend, side by side: go test ./cmd/cmts -run '^$' -bench REST
// The MongoDB run uses FerretDB (or CMTS_TEST_MONGO_URI); compare it with
// BenchmarkRaw* in store/mongo, the driver's own rate on the same server.
func BenchmarkREST(b *testing.B) {
	b.Run("sqlite", func(b *testing.B) {
		st, err := sqlite.Open(context.Background(), b.TempDir())
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { st.Close() })
		resttest.Bench(b, st)
	})
	b.Run("mongo", func(b *testing.B) {
		srv := mongotest.Start(b)
		st, err := mongo.Open(context.Background(), mongo.Options{URI: srv.URI(), Database: srv.Database(b)})
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { st.Close() })
		resttest.Bench(b, st)
	})
}
