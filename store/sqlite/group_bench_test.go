package sqlite

import (
	"context"
	"fmt"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fmtbank/cmts/store"
)

// BenchmarkGroupCommit measures creates of 1 KB resources through the store
// by 16 concurrent writers, each acknowledged once durable: "each" commits
// every create in a transaction (and fsync) of its own, as Put did before
// group commit; "grouped" is Put, whose concurrent callers share one.
// Reported as creates/s.
func BenchmarkGroupCommit(b *testing.B) {
	const writers = 16
	body := []byte(fmt.Sprintf(`{"resourceType":"Patient","text":{"div":"%0900d"}}`, 0))
	idx := []store.IndexEntry{{Param: "identifier", Kind: store.KindToken, System: "urn:mrn", Code: "x"}}
	for _, mode := range []string{"each", "grouped"} {
		b.Run(mode, func(b *testing.B) {
			s, err := Open(context.Background(), b.TempDir())
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			var n atomic.Int64
			b.SetParallelism(max(1, writers/runtime.GOMAXPROCS(0)))
			start := time.Now()
			b.RunParallel(func(pb *testing.PB) {
				ctx := context.Background()
				for pb.Next() {
					i := n.Add(1)
					v := store.Version{Tenant: "t1", Type: "Patient", ID: fmt.Sprintf("p%d", i), VersionID: 1,
						LastUpdated: time.Now().UTC(), Resource: body, Index: idx}
					var err error
					if mode == "each" {
						r := &queuedPut{ws: []store.Write{{Version: v}}, done: make(chan error, 1)}
						s.commitGroupTx(ctx, []*queuedPut{r})
						err = <-r.done
					} else {
						err = s.Put(ctx, store.Write{Version: v})
					}
					if err != nil {
						b.Error(err)
						return
					}
				}
			})
			b.ReportMetric(float64(n.Load())/time.Since(start).Seconds(), "creates/s")
		})
	}
}
