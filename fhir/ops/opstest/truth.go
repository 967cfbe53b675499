package opstest

import (
	"context"
	"net/url"
	"strconv"
	"strings"
	"testing"

	"github.com/fmtbank/cmts/fhir"
	"github.com/fmtbank/cmts/fhir/ops"
	"github.com/fmtbank/cmts/profiles/synth"
	"github.com/fmtbank/cmts/store"
	"github.com/google/go-cmp/cmp"
)

// Synth writes the synthetic registry of patients recipients and seed into
// r's store (`cmts gen`) and returns its truth.
func (r *Registry) Synth(patients int, seed uint64) synth.Truth {
	r.t.Helper()
	g, err := synth.Generate(synth.Options{Patients: patients, Seed: seed})
	if err != nil {
		r.t.Fatal(err)
	}
	if err := g.Write(context.Background(), synth.WriteOptions{Store: r.St, Indexer: r.Engine}); err != nil {
		r.t.Fatal(err)
	}
	return g.Truth()
}

// SynthReport is Synth storing only what $ae-report reads (Procedures,
// Conditions, AdverseEvents): on FerretDB the registry's donors, lots and
// observations would take minutes to write.
func (r *Registry) SynthReport(patients int, seed uint64) synth.Truth {
	r.t.Helper()
	g, err := synth.Generate(synth.Options{Patients: patients, Seed: seed})
	if err != nil {
		r.t.Fatal(err)
	}
	if err := g.Write(context.Background(), synth.WriteOptions{Store: reportOnly{r.St}, Indexer: r.Engine}); err != nil {
		r.t.Fatal(err)
	}
	return g.Truth()
}

// reportOnly stores only the versions of the types $ae-report reads.
type reportOnly struct{ st store.Store }

func (w reportOnly) Transact(ctx context.Context, conds []store.Query, decide func([][]*store.Version) ([]store.Write, error)) error {
	return w.st.Transact(ctx, conds, func(m [][]*store.Version) ([]store.Write, error) {
		ws, err := decide(m)
		var keep []store.Write
		for _, x := range ws {
			switch x.Version.Type {
			case "Procedure", "Condition", "AdverseEvent":
				keep = append(keep, x)
			}
		}
		return keep, err
	})
}

// truthFigures are a report's figures keyed "group,stratifier,stratum",
// valued "denominator,numerator" ("" for the events' denominator).
func truthFigures(rep synth.AEReport) map[string]string {
	out := map[string]string{}
	for _, g := range []struct {
		name string
		gr   synth.Group
	}{{"patients", rep.Patients}, {"courses", rep.Courses}, {"procedures", rep.Procedures}} {
		out[g.name+",,"] = strconv.Itoa(g.gr.Denominator) + "," + strconv.Itoa(g.gr.Numerator)
		for by, strata := range g.gr.Strata {
			for v, c := range strata {
				out[g.name+","+by+","+v] = strconv.Itoa(c.Denominator) + "," + strconv.Itoa(c.Numerator)
			}
		}
	}
	out["events,,"] = "," + strconv.Itoa(rep.Events.Count)
	for by, strata := range rep.Events.Strata {
		for v, n := range strata {
			out["events,"+by+","+v] = "," + strconv.Itoa(n)
		}
	}
	return out
}

// reportFigures keys lines of Figures (one report) as truthFigures does.
func reportFigures(lines []string) map[string]string {
	out := map[string]string{}
	for _, l := range lines {
		f := strings.Split(l, ",")
		out[strings.Join(f[2:5], ",")] = strings.Join(f[5:], ",")
	}
	return out
}

// masked is the truth as the regulator sees it: counts 1 to 4 masked.
func masked(m map[string]string) map[string]string {
	out := map[string]string{}
	for k, v := range m {
		f := strings.Split(v, ",")
		for i, x := range f {
			if n, err := strconv.Atoi(x); err == nil && n > 0 && n < 5 {
				f[i] = "masked"
			}
		}
		out[k] = strings.Join(f, ",")
	}
	return out
}

// CheckTruth checks $ae-report on a synthetic registry (Synth) against
// the generator's truth: each hospital's own report, and the regulator's
// over every tenant, whole and by calendar year (interval=year), where
// exactly the counts from 1 to 4 are masked.
func (r *Registry) CheckTruth(t testing.TB, truth synth.Truth) {
	t.Helper()
	o := ops.New(ops.Options{Store: r.St, Policy: r.Pol})
	ctx := context.Background()
	report := func(p *fhir.Principal, params url.Values) []string {
		t.Helper()
		q, err := ops.ParseAEQuery(params)
		if err != nil {
			t.Fatal(err)
		}
		body, err := o.AEReport(ctx, p, q, false)
		if err != nil {
			t.Fatal(err)
		}
		return Figures(t, body)
	}
	if len(truth.ByHospital) == 0 || truth.AEReport.Events.Count == 0 {
		t.Fatalf("the truth holds no hospital or no event: %+v", truth.AEReport)
	}
	for h, want := range truth.ByHospital {
		got := reportFigures(report(principal(h, fhir.TenantHospital, fhir.RoleClinician), nil))
		if diff := cmp.Diff(truthFigures(want), got); diff != "" {
			t.Errorf("hospital %s (-want +got):\n%s", h, diff)
		}
	}
	nhc := principal("nhc", fhir.TenantAuthority, fhir.RoleRegulator)
	if diff := cmp.Diff(masked(truthFigures(truth.AEReport)), reportFigures(report(nhc, nil))); diff != "" {
		t.Errorf("the regulator (-want +got):\n%s", diff)
	}
	byYear := map[string][]string{}
	for _, l := range report(nhc, url.Values{"interval": {"year"}}) {
		byYear[l[:4]] = append(byYear[l[:4]], l)
	}
	for y, want := range truth.ByYear {
		if diff := cmp.Diff(masked(truthFigures(want)), reportFigures(byYear[y])); diff != "" {
			t.Errorf("the regulator, %s (-want +got):\n%s", y, diff)
		}
	}
	if len(byYear) != len(truth.ByYear) {
		t.Errorf("the regulator: reports for years %v, the truth for %d years", byYear, len(truth.ByYear))
	}
}
