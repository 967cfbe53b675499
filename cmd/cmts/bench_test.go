package main

import (
	"context"
	"testing"

	"github.com/fmtbank/cmts/fhir/rest/resttest"
	"github.com/fmtbank/cmts/store/sqlite"
)

// BenchmarkREST measures create, read and update through HTTP on each
// backend: go test ./cmd/cmts -run '^$' -bench REST
func BenchmarkREST(b *testing.B) {
	b.Run("sqlite", func(b *testing.B) {
		st, err := sqlite.Open(context.Background(), b.TempDir())
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { st.Close() })
		resttest.Bench(b, st)
	})
}
