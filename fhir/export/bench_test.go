package export

import (
	"context"
	"fmt"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fmtbank/cmts/auth/policy"
	"github.com/fmtbank/cmts/fhir"
	"github.com/fmtbank/cmts/fhir/ops/opstest"
	"github.com/fmtbank/cmts/store"
	"github.com/fmtbank/cmts/store/sqlite"
)

// BenchmarkExport exports n Patients of one hospital on the embedded store
// (the whole system-level job: every type searched, each resource checked
// by the policy and written as NDJSON), and, for comparison, reads the same
// resources a search page at a time with the same policy checks
// (search-pages). It reports resources/s and the peak heap in use while the
// export runs: the target is a peak that does not grow with n and a rate
// within 2x of search-pages.
func BenchmarkExport(b *testing.B) {
	for _, n := range []int{10_000, 100_000} {
		ctx := context.Background()
		st, err := sqlite.Open(ctx, b.TempDir())
		if err != nil {
			b.Fatal(err)
		}
		r := opstest.NewRegistry(b, st)
		seed(b, r, n)
		codec, err := fhir.NewCodec()
		if err != nil {
			b.Fatal(err)
		}
		scopes := []string{"system/*.read"}
		p := &fhir.Principal{Tenant: "h1", TenantKind: fhir.TenantHospital, Subject: "s", Roles: []fhir.Role{fhir.RoleSystem},
			Scopes: scopes, Grants: fhir.ParseScopes(scopes)}
		b.Run(fmt.Sprintf("export/n=%d", n), func(b *testing.B) {
			ex, err := New(Options{Store: st, Policy: r.Pol, Indexer: r.Engine, Types: codec.ResourceTypes(),
				Compartment: policy.PatientCompartment, Files: Dir(b.TempDir())})
			if err != nil {
				b.Fatal(err)
			}
			peak := watchHeap()
			start := time.Now()
			runs := 0
			for b.Loop() {
				id, err := ex.Kickoff(ctx, p, fhir.ExportKickoff{Level: "system"})
				if err != nil {
					b.Fatal(err)
				}
				if err := ex.Step(ctx); err != nil {
					b.Fatal(err)
				}
				s, err := ex.Status(ctx, p, id, "http://x/fhir")
				if err != nil || !s.Done {
					b.Fatalf("%+v %v", s, err)
				}
				if err := ex.Cancel(ctx, p, id); err != nil {
					b.Fatal(err)
				}
				runs++
			}
			b.ReportMetric(float64(n*runs)/time.Since(start).Seconds(), "resources/s")
			b.ReportMetric(float64(peak())/(1<<20), "peak-heap-MB")
		})
		b.Run(fmt.Sprintf("search-pages/n=%d", n), func(b *testing.B) {
			peak := watchHeap()
			start := time.Now()
			runs := 0
			for b.Loop() {
				var after *store.SearchCursor
				got := 0
				for {
					page, err := st.Search(ctx, store.Query{Access: r.Pol.Access(p), Type: "Patient", Count: 500, After: after})
					if err != nil {
						b.Fatal(err)
					}
					for _, v := range page.Versions {
						if r.Pol.Readable(p, v) {
							if _, err := r.Pol.View(p, v); err != nil {
								b.Fatal(err)
							}
							got++
						}
					}
					if !page.More {
						break
					}
					last := page.Versions[len(page.Versions)-1]
					after = &store.SearchCursor{Type: last.Type, ID: last.ID}
				}
				if got != n {
					b.Fatalf("read %d, want %d", got, n)
				}
				runs++
			}
			b.ReportMetric(float64(n*runs)/time.Since(start).Seconds(), "resources/s")
			b.ReportMetric(float64(peak())/(1<<20), "peak-heap-MB")
		})
		st.Close()
	}
}

// seed writes n Patients of hospital h1, a thousand to a transaction.
func seed(b *testing.B, r *opstest.Registry, n int) {
	b.Helper()
	ctx := context.Background()
	now := time.Now().UTC()
	for i := 0; i < n; {
		var ws []store.Write
		for ; i < n && len(ws) < 1000; i++ {
			body := fmt.Appendf(nil, `{"resourceType":"Patient","id":"p%07d","meta":{"versionId":"1","lastUpdated":%q},`+
				`"identifier":[{"system":"http://fmtbank.org/fhir/sid/recipient-code","value":"R-%d"}],`+
				`"name":[{"family":"Recipient %d"}],"gender":"female","birthDate":"1970-05-06"}`, i, now.Format(time.RFC3339Nano), i, i)
			idx, err := r.Engine.Entries("Patient", body)
			if err != nil {
				b.Fatal(err)
			}
			ws = append(ws, store.Write{Version: store.Version{Tenant: "h1", Type: "Patient", ID: fmt.Sprintf("p%07d", i), VersionID: 1,
				LastUpdated: now, Resource: body, Index: idx, Method: "PUT"}})
		}
		if err := r.St.Transact(ctx, nil, func([][]*store.Version) ([]store.Write, error) { return ws, nil }); err != nil {
			b.Fatal(err)
		}
	}
}

// watchHeap samples the heap in use (garbage not yet collected included)
// every 10 ms, from a collected heap, until the returned function is
// called, which answers the largest sample.
func watchHeap() func() uint64 {
	runtime.GC()
	var peak atomic.Uint64
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(10 * time.Millisecond)
		defer t.Stop()
		var m runtime.MemStats
		for {
			runtime.ReadMemStats(&m)
			if m.HeapInuse > peak.Load() {
				peak.Store(m.HeapInuse)
			}
			select {
			case <-stop:
				return
			case <-t.C:
			}
		}
	}()
	return func() uint64 { close(stop); <-done; return peak.Load() }
}
