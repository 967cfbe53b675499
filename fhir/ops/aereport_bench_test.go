package ops_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/fmtbank/cmts/fhir"
	"github.com/fmtbank/cmts/fhir/ops"
	"github.com/fmtbank/cmts/fhir/ops/opstest"
	"github.com/fmtbank/cmts/profiles/synth"
	"github.com/fmtbank/cmts/store/sqlite"
)

// BenchmarkAEReport is $ae-report over a synthetic registry of
// CMTS_BENCH_PATIENTS recipients (default 10,000; target under 200 ms,
// issue 12) on the embedded store, asked by the regulator (every tenant,
// the largest report). Generating the registry takes minutes: with
// CMTS_BENCH_DIR set it is kept there and reused by later runs.
//
//	CMTS_BENCH_DIR=/tmp/cmts-bench go test ./fhir/ops -run '^$' -bench AEReport -benchtime 20x
//
// The figures are checked against the generator's truth before timing.
func BenchmarkAEReport(b *testing.B) {
	n := 10000
	if v := os.Getenv("CMTS_BENCH_PATIENTS"); v != "" {
		var err error
		if n, err = strconv.Atoi(v); err != nil || n < 1 {
			b.Fatalf("CMTS_BENCH_PATIENTS=%q: want a positive number", v)
		}
	}
	dir := b.TempDir()
	if d := os.Getenv("CMTS_BENCH_DIR"); d != "" {
		dir = filepath.Join(d, fmt.Sprintf("aereport-p%d-s1", n))
	}
	ctx := context.Background()
	truthFile := filepath.Join(dir, "truth.json")
	var truth synth.Truth
	cached := false
	if raw, err := os.ReadFile(truthFile); err == nil && json.Unmarshal(raw, &truth) == nil {
		cached = true
	} else if err := os.RemoveAll(dir); err != nil {
		b.Fatal(err)
	}
	st, err := sqlite.Open(ctx, dir)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { st.Close() })
	r := opstest.NewRegistry(b, st)
	if !cached {
		truth = r.Synth(n, 1)
		raw, err := json.Marshal(truth)
		if err != nil {
			b.Fatal(err)
		}
		if err := os.WriteFile(truthFile, raw, 0o600); err != nil {
			b.Fatal(err)
		}
	}
	r.CheckTruth(b, truth)
	o := ops.New(ops.Options{Store: r.St, Policy: r.Pol})
	scopes := []string{"user/*.rs"}
	nhc := &fhir.Principal{Tenant: "nhc", TenantKind: fhir.TenantAuthority, Subject: "s",
		Roles: []fhir.Role{fhir.RoleRegulator}, Scopes: scopes, Grants: fhir.ParseScopes(scopes)}
	q, err := ops.ParseAEQuery(url.Values{})
	if err != nil {
		b.Fatal(err)
	}
	cpu0 := cpuTime()
	k := 0
	for b.Loop() {
		k++
		if _, err := o.AEReport(ctx, nhc, q, false); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64((cpuTime()-cpu0).Nanoseconds())/float64(k), "cpu-ns/op")
}
