package main

import (
	"context"
	"io"
	"net/http"
	"testing"

	"github.com/fmtbank/cmts/fhir/rest/resttest"
	"github.com/fmtbank/cmts/store"
	"github.com/fmtbank/cmts/store/mongo"
	"github.com/fmtbank/cmts/store/mongo/mongotest"
	"github.com/fmtbank/cmts/store/sqlite"
)

// BenchmarkREST measures read, update and create through HTTP on each
// backend, side by side: go test ./cmd/cmts -run '^$' -bench REST
// The MongoDB run uses FerretDB (or CMTS_TEST_MONGO_URI); compare it with
// BenchmarkRaw* in store/mongo, the driver's own rate on the same server,
// and with the store's own benchmarks there. On FerretDB, read and update
// cost in proportion to the number of documents stored (it scans even for
// a lookup by _id; see docs/mongodb.md), so compare them with the store
// benchmarks named resources=N, not with those on a nearly empty collection.
func BenchmarkREST(b *testing.B) {
	b.Run("sqlite", func(b *testing.B) {
		st, err := sqlite.Open(context.Background(), b.TempDir())
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { st.Close() })
		resttest.Bench(b, st)
	})
	b.Run("mongo", func(b *testing.B) { resttest.Bench(b, benchMongo(b)) })
}

// BenchmarkTransaction measures transactions, concurrent creates and the
// parser alone on the embedded store (issue 9's targets: >= 5,000
// resources/s in a 1,000-entry transaction, >= 2,000 concurrent creates/s):
// go test ./cmd/cmts -run '^$' -bench '^BenchmarkTransaction$' -benchtime 5x
// It runs with the garbage collector set as serve sets it (gcConfig;
// GOGC and GOMEMLIMIT, when set, win as they do there).
func BenchmarkTransaction(b *testing.B) {
	b.Cleanup(defaultGC().apply())
	st, err := sqlite.Open(context.Background(), b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { st.Close() })
	resttest.BenchTransaction(b, st)
}

// BenchmarkTransactionServe is BenchmarkTransaction against `serve` itself
// on a new embedded store (--insecure-no-auth), over loopback HTTP: with
// what the bare REST API of BenchmarkTransaction leaves out, the guide's
// profile checks, the access policy and the audit trail (an AuditEvent
// stored with every write: one per create, one per transaction).
// go test ./cmd/cmts -run '^$' -bench '^BenchmarkTransactionServe$/^(Transaction1000|ConcurrentCreates16)$' -benchtime 20x
func BenchmarkTransactionServe(b *testing.B) {
	b.Cleanup(defaultGC().apply())
	base, _ := startMain(b, "--data", b.TempDir(), "--insecure-no-auth")
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = 32
	client := &http.Client{Transport: tr}
	b.Cleanup(client.CloseIdleConnections)
	resttest.BenchTransactionOn(b, forward{base: base, client: client})
}

// forward is an http.Handler that sends each request to the server at base
// and copies back its status and body.
type forward struct {
	base   string
	client *http.Client
}

func (f forward) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	req, err := http.NewRequestWithContext(r.Context(), r.Method, f.base+r.URL.RequestURI(), r.Body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	req.Header = r.Header.Clone()
	resp, err := f.client.Do(req)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	defer resp.Body.Close()
	w.WriteHeader(resp.StatusCode)
	io.Copy(w, resp.Body)
}

// BenchmarkTransactionUnstreamed is BenchmarkTransaction on the embedded
// store hidden behind the store.Store interface alone (no TransactSeq), as
// a store that cannot take a transaction's writes as they are built is:
// Transaction10000 there shows what such a transaction holds.
// go test ./cmd/cmts -run '^$' -bench 'TransactionUnstreamed/Transaction10000$' -benchtime 2x
func BenchmarkTransactionUnstreamed(b *testing.B) {
	b.Cleanup(defaultGC().apply())
	st, err := sqlite.Open(context.Background(), b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { st.Close() })
	resttest.BenchTransaction(b, struct{ store.Store }{st})
}

// BenchmarkTransactionMongo is BenchmarkTransaction on MongoDB (FerretDB, or
// CMTS_TEST_MONGO_URI): what a large transaction holds there (peak-MiB,
// live-MiB) against its body, and its rate:
// go test ./cmd/cmts -run '^$' -bench 'TransactionMongo/Transaction10000$' -benchtime 1x -timeout 20m
func BenchmarkTransactionMongo(b *testing.B) {
	b.Cleanup(defaultGC().apply())
	resttest.BenchTransaction(b, benchMongo(b))
}

// benchMongo opens a MongoDB store on FerretDB (or CMTS_TEST_MONGO_URI),
// closed when b ends.
func benchMongo(b *testing.B) *mongo.Store {
	srv := mongotest.Start(b)
	st, err := mongo.Open(context.Background(), mongo.Options{URI: srv.URI(), Database: srv.Database(b)})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { st.Close() })
	return st
}
