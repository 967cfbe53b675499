package opstest

import (
	"bytes"
	"context"
	"net/url"
	"strconv"
	"strings"
	"sync"
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

// SynthFollowUp is Synth storing only what the follow-up operations read
// (Procedures, Conditions, recipients and efficacy Observations): on
// FerretDB the rest would take minutes to write. It writes the recipients
// first, then the rest, each through the store's batches: on FerretDB a
// Read by id scans the versions stored before the one it finds, so
// $aid-eligibility of every recipient then reads past recipients only,
// not past thousands of observations.
func (r *Registry) SynthFollowUp(patients int, seed uint64) synth.Truth {
	r.t.Helper()
	g, err := synth.Generate(synth.Options{Patients: patients, Seed: seed})
	if err != nil {
		r.t.Fatal(err)
	}
	recipient := func(v *store.Version) bool {
		return v.Type == "Patient" && bytes.Contains(v.Resource, []byte("cmts-recipient"))
	}
	rest := func(v *store.Version) bool {
		switch v.Type {
		case "Procedure", "Condition":
			return true
		case "Observation":
			return bytes.Contains(v.Resource, []byte("cmts-efficacy"))
		}
		return false
	}
	for _, keep := range []func(*store.Version) bool{recipient, rest} {
		if err := g.Write(context.Background(), synth.WriteOptions{Store: only{r.St, keep}, Indexer: r.Engine}); err != nil {
			r.t.Fatal(err)
		}
	}
	return g.Truth()
}

// only stores only the versions keep returns true for.
type only struct {
	st   store.Store
	keep func(*store.Version) bool
}

func (w only) Transact(ctx context.Context, conds []store.Query, decide func([][]*store.Version) ([]store.Write, error)) error {
	return w.st.Transact(ctx, conds, func(m [][]*store.Version) ([]store.Write, error) {
		ws, err := decide(m)
		var keep []store.Write
		for _, x := range ws {
			if w.keep(&x.Version) {
				keep = append(keep, x)
			}
		}
		return keep, err
	})
}

// efficacyTruth keys the truth's rows as EfficacyFigures' lines:
// "follow-up,stratifier,stratum" to "denominator,response,remission,due".
func efficacyTruth(rows []synth.EfficacyFigures) map[string]string {
	out := map[string]string{}
	for _, x := range rows {
		k := x.FollowUp + ",,"
		if x.Indication != "" {
			k = x.FollowUp + ",indication," + x.Indication
		}
		out[k] = strings.Join([]string{strconv.Itoa(x.Denominator), strconv.Itoa(x.Response), strconv.Itoa(x.Remission),
			strconv.Itoa(x.DueNotAssessed)}, ",")
	}
	return out
}

func efficacyLines(lines []string) map[string]string {
	out := map[string]string{}
	for _, l := range lines {
		f := strings.Split(l, ",")
		out[strings.Join(f[:3], ",")] = strings.Join(f[3:], ",")
	}
	return out
}

// CheckFollowUpTruth checks the follow-up operations on a synthetic
// registry (Synth or SynthFollowUp) against the generator's truth, on the
// truth's day: $efficacy-report for each hospital and for the regulator
// (counts from 1 to 4 masked), $follow-up-due's visits for each hospital,
// and $aid-eligibility of every recipient.
func (r *Registry) CheckFollowUpTruth(t testing.TB, truth synth.Truth) {
	t.Helper()
	for _, check := range r.followUpTruthChecks(truth) {
		check.run(t)
	}
}

// CheckFollowUpTruthTogether is CheckFollowUpTruth with its three parts
// ($efficacy-report, $follow-up-due, $aid-eligibility) run side by side,
// as subtests of t started from goroutines of their own (they only read):
// on FerretDB each part is a few seconds of scans.
func (r *Registry) CheckFollowUpTruthTogether(t *testing.T, truth synth.Truth) {
	t.Helper()
	var wg sync.WaitGroup
	for _, check := range r.followUpTruthChecks(truth) {
		wg.Go(func() { t.Run(check.name, func(t *testing.T) { check.run(t) }) })
	}
	wg.Wait()
}

// followUpTruthCheck is one part of CheckFollowUpTruth.
type followUpTruthCheck struct {
	name string
	run  func(t testing.TB)
}

// followUpTruthChecks are the parts of CheckFollowUpTruth.
func (r *Registry) followUpTruthChecks(truth synth.Truth) []followUpTruthCheck {
	o := ops.New(ops.Options{Store: r.St, Policy: r.Pol})
	on := url.Values{"on": {truth.On}}
	return []followUpTruthCheck{
		{"EfficacyReport", func(t testing.TB) { r.checkEfficacyTruth(t, truth, o, on) }},
		{"FollowUpDue", func(t testing.TB) { r.checkFollowUpDueTruth(t, truth, o, on) }},
		{"AidEligibility", func(t testing.TB) { r.checkAidTruth(t, truth, o, on) }},
	}
}

// checkEfficacyTruth: $efficacy-report for each hospital and the regulator.
func (r *Registry) checkEfficacyTruth(t testing.TB, truth synth.Truth, o *ops.Ops, on url.Values) {
	t.Helper()
	if len(truth.EfficacyReport) == 0 || truth.EfficacyReport[0].Denominator == 0 {
		t.Fatalf("the truth holds no efficacy figures: %+v", truth.EfficacyReport)
	}
	report := func(p *fhir.Principal) map[string]string {
		t.Helper()
		body, _, err := operation(o, p, "Observation", "", "$efficacy-report", on)
		if err != nil {
			t.Fatal(err)
		}
		_, lines := EfficacyFigures(t, body)
		return efficacyLines(lines)
	}
	for h, want := range truth.EfficacyReportByHospital {
		if diff := cmp.Diff(efficacyTruth(want), report(principal(h, fhir.TenantHospital, fhir.RoleClinician))); diff != "" {
			t.Errorf("$efficacy-report, hospital %s (-want +got):\n%s", h, diff)
		}
	}
	nhc := principal("nhc", fhir.TenantAuthority, fhir.RoleRegulator)
	if diff := cmp.Diff(masked(efficacyTruth(truth.EfficacyReport)), report(nhc)); diff != "" {
		t.Errorf("$efficacy-report, the regulator (-want +got):\n%s", diff)
	}
}

// checkFollowUpDueTruth: $follow-up-due's recipients and visits for each
// hospital.
func (r *Registry) checkFollowUpDueTruth(t testing.TB, truth synth.Truth, o *ops.Ops, on url.Values) {
	t.Helper()
	for h, want := range truth.FollowUpDue {
		p := principal(h, fhir.TenantHospital, fhir.RoleClinician)
		body, _, err := operation(o, p, "Patient", "", "$follow-up-due", on)
		if err != nil {
			t.Fatal(err)
		}
		var got synth.FollowUpDueTruth
		for _, l := range followUpLines(t, body) {
			switch {
			case !strings.HasPrefix(l, " "):
				got.Recipients++
			case strings.Contains(l, " open "):
				got.Open++
			case strings.Contains(l, " overdue "):
				got.Overdue++
			}
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("$follow-up-due, hospital %s (-want +got):\n%s", h, diff)
		}
	}
}

// checkAidTruth: the recipients $aid-eligibility admits, for each hospital.
func (r *Registry) checkAidTruth(t testing.TB, truth synth.Truth, o *ops.Ops, on url.Values) {
	t.Helper()
	for h, want := range truth.AidEligibleByHospital {
		p := principal(h, fhir.TenantHospital, fhir.RoleClinician)
		got := 0
		q := store.Query{Access: store.Tenant(h), Type: "Patient", Count: 1000}
		for {
			page, err := r.St.Search(context.Background(), q)
			if err != nil {
				t.Fatal(err)
			}
			for _, v := range page.Versions {
				body, _, err := operation(o, p, "Patient", v.ID, "$aid-eligibility", on)
				if err != nil {
					t.Fatal(err)
				}
				if strings.Contains(string(body), `"valueBoolean":true`) {
					got++
				}
			}
			if !page.More || len(page.Versions) == 0 {
				break
			}
			last := page.Versions[len(page.Versions)-1]
			q.After = &store.SearchCursor{Type: last.Type, ID: last.ID}
		}
		if got != want {
			t.Errorf("$aid-eligibility, hospital %s: %d eligible, the truth %d", h, got, want)
		}
	}
}
