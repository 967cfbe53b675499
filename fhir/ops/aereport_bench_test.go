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
	"time"

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
	r, truth := benchRegistry(b)
	r.CheckTruth(b, truth)
	benchOperation(b, r, "AdverseEvent", "$ae-report", url.Values{})
}

// benchRegistry is the synthetic registry of the report benchmarks
// (CMTS_BENCH_PATIENTS, default 10,000, seed 1) on the embedded store, kept
// in CMTS_BENCH_DIR when set, and its truth. A truth file written before
// the follow-up figures existed is completed from the generator (the same
// seed gives the same registry).
func benchRegistry(b *testing.B) (*opstest.Registry, synth.Truth) {
	b.Helper()
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
	if len(truth.EfficacyReport) == 0 {
		g, err := synth.Generate(synth.Options{Patients: n, Seed: 1})
		if err != nil {
			b.Fatal(err)
		}
		truth = g.Truth()
	}
	return r, truth
}

// BenchmarkEfficacyReport is the regulator's $efficacy-report and
// $follow-up-due over the registry of BenchmarkAEReport, their figures
// (and every recipient's $aid-eligibility) checked against the
// generator's truth first.
//
//	CMTS_BENCH_DIR=/tmp/cmts-bench go test ./fhir/ops -run '^$' -bench 'EfficacyReport|FollowUpDue' -benchtime 5x
func BenchmarkEfficacyReport(b *testing.B) {
	r, truth := benchRegistry(b)
	r.CheckFollowUpTruth(b, truth)
	benchOperation(b, r, "Observation", "$efficacy-report", url.Values{"on": {truth.On}})
}

// BenchmarkFollowUpDue is the regulator's $follow-up-due over the same
// registry (every tenant's missed visits, de-identified).
func BenchmarkFollowUpDue(b *testing.B) {
	r, truth := benchRegistry(b)
	benchOperation(b, r, "Patient", "$follow-up-due", url.Values{"on": {truth.On}})
}

// benchOperation times the regulator's operation name on typ: the first
// call (first-ms: a new server's, which loads the report views) apart,
// then the calls after it, with their CPU time.
func benchOperation(b *testing.B, r *opstest.Registry, typ, name string, params url.Values) {
	b.Helper()
	o := ops.New(ops.Options{Store: r.St, Policy: r.Pol})
	scopes := []string{"user/*.rs"}
	nhc := &fhir.Principal{Tenant: "nhc", TenantKind: fhir.TenantAuthority, Subject: "s",
		Roles: []fhir.Role{fhir.RoleRegulator}, Scopes: scopes, Grants: fhir.ParseScopes(scopes)}
	ctx := context.Background()
	first := time.Now()
	if _, _, _, _, err := o.Operation(ctx, nhc, typ, "", name, params, nil); err != nil {
		b.Fatal(err)
	}
	cold := time.Since(first)
	cpu0 := cpuTime()
	k := 0
	for b.Loop() {
		k++
		if _, _, _, _, err := o.Operation(ctx, nhc, typ, "", name, params, nil); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64((cpuTime()-cpu0).Nanoseconds())/float64(k), "cpu-ns/op")
	// Reported after the loop: b.Loop's start deletes metrics reported before.
	b.ReportMetric(float64(cold.Milliseconds()), "first-ms")
}
