package ops_test

import (
	"context"
	"net/http"
	"strings"
	"testing"

	"github.com/fmtbank/cmts/fhir"
	"github.com/fmtbank/cmts/fhir/bundle"
	"github.com/fmtbank/cmts/fhir/ops"
	"github.com/fmtbank/cmts/fhir/ops/opstest"
	"github.com/fmtbank/cmts/fhir/rest"
	"github.com/fmtbank/cmts/fhir/rest/resttest"
	"github.com/fmtbank/cmts/profiles"
	"github.com/fmtbank/cmts/store"
	"github.com/fmtbank/cmts/store/sqlite"
	"github.com/google/go-cmp/cmp"
)

func newStore(t testing.TB) store.Store {
	t.Helper()
	st, err := sqlite.Open(context.Background(), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// TestOps runs the suite on the embedded store.
func TestOps(t *testing.T) {
	t.Parallel()
	opstest.Run(t, newStore)
}

// as authenticates every request as one principal.
type as struct{ p *fhir.Principal }

func (a as) Authenticate(*http.Request) (*fhir.Principal, error) { return a.p, nil }

// TestTraceOverREST: the router dispatches $trace to the operations and
// leaves the operations they do not offer to the rest of the server.
func TestTraceOverREST(t *testing.T) {
	t.Parallel()
	r := opstest.Cohort(t, newStore(t))
	scopes := []string{"user/*.cruds"}
	hosp1 := &fhir.Principal{Tenant: "h1", TenantKind: fhir.TenantHospital, Subject: "s",
		Roles: []fhir.Role{fhir.RoleClinician}, Scopes: scopes, Grants: fhir.ParseScopes(scopes)}
	c := resttest.Serve(t, r.St, func(o *rest.Options) {
		o.Auth = as{hosp1}
		o.Policy = r.Pol
		o.Operations = ops.New(ops.Options{Store: r.St, Policy: r.Pol})
	})
	res := c.Do(http.MethodGet, "/Specimen/l2/$trace", nil)
	if res.Status != http.StatusOK {
		t.Fatalf("GET $trace: %d %s", res.Status, res.Body)
	}
	if b := res.JSON(t); b["type"] != "collection" || len(b["entry"].([]any)) != 4 {
		t.Errorf("GET $trace: want a collection of 4 entries, got %s", res.Body)
	}
	for _, tc := range []struct {
		method, path string
		want         int
	}{
		{http.MethodGet, "/Patient/d1/$trace", http.StatusNotFound},
		{http.MethodGet, "/Observation/o1/$trace", http.StatusNotFound},
		{http.MethodGet, "/Specimen/l2/$nothing", http.StatusNotFound},
		// No writer: $recall is not offered.
		{http.MethodPost, "/Specimen/l2/$recall", http.StatusNotFound},
	} {
		if res := c.Do(tc.method, tc.path, nil); res.Status != tc.want {
			t.Errorf("%s %s: want %d, got %d %s", tc.method, tc.path, tc.want, res.Status, res.Body)
		}
	}
}

// TestRecallOverREST: POST $recall with a Parameters body, by the bank
// (200, the trace with the lots recalled) and by a hospital (403).
func TestRecallOverREST(t *testing.T) {
	t.Parallel()
	r := opstest.Cohort(t, newStore(t))
	codec, err := fhir.NewCodec()
	if err != nil {
		t.Fatal(err)
	}
	w, err := bundle.NewWriter(bundle.Options{Store: r.St, Codec: codec, Indexer: r.Engine, Guard: r.Pol})
	if err != nil {
		t.Fatal(err)
	}
	serve := func(tenant string, kind fhir.TenantKind, role fhir.Role) *resttest.Client {
		scopes := []string{"user/*.cruds"}
		p := &fhir.Principal{Tenant: tenant, TenantKind: kind, Subject: "s", Roles: []fhir.Role{role},
			Scopes: scopes, Grants: fhir.ParseScopes(scopes)}
		return resttest.Serve(t, r.St, func(o *rest.Options) {
			o.Auth = as{p}
			o.Policy = r.Pol
			o.Operations = ops.New(ops.Options{Store: r.St, Policy: r.Pol, Writer: w})
		})
	}
	params := []byte(`{"resourceType":"Parameters","parameter":[{"name":"reason","valueString":"screening positive"}]}`)
	ct := []string{"Content-Type", "application/fhir+json"}
	if res := serve("h1", fhir.TenantHospital, fhir.RoleClinician).Do(http.MethodPost, "/Specimen/l1/$recall", params, ct...); res.Status != http.StatusForbidden {
		t.Errorf("hospital: want 403, got %d %s", res.Status, res.Body)
	}
	res := serve("b1", fhir.TenantBank, fhir.RoleBankStaff).Do(http.MethodPost, "/Specimen/l1/$recall", params, ct...)
	if res.Status != http.StatusOK {
		t.Fatalf("bank: %d %s", res.Status, res.Body)
	}
	if n := strings.Count(string(res.Body), `"valueCode":"recalled"`); n != 2 {
		t.Errorf("bank: want the trace with 2 lots recalled (l1, l2), got %d: %s", n, res.Body)
	}
}

// TestAEReportOverREST: $ae-report at type level answers the MeasureReport,
// or the same figures as CSV when Accept or _format asks for text/csv
// (which the other operations and interactions refuse, 406); the Measure
// it cites is served with the guide.
func TestAEReportOverREST(t *testing.T) {
	t.Parallel()
	r := opstest.NewRegistry(t, newStore(t))
	opstest.AECohort(t, r)
	scopes := []string{"user/*.rs"}
	hosp1 := &fhir.Principal{Tenant: "h1", TenantKind: fhir.TenantHospital, Subject: "s",
		Roles: []fhir.Role{fhir.RoleClinician}, Scopes: scopes, Grants: fhir.ParseScopes(scopes)}
	defs, err := profiles.Embedded()
	if err != nil {
		t.Fatal(err)
	}
	conf, err := profiles.NewService(defs, r.St, false)
	if err != nil {
		t.Fatal(err)
	}
	c := resttest.Serve(t, r.St, func(o *rest.Options) {
		o.Auth = as{hosp1}
		o.Policy = r.Pol
		o.Conformance = conf
		o.Operations = ops.New(ops.Options{Store: r.St, Policy: r.Pol})
	})
	res := c.Do(http.MethodGet, "/AdverseEvent/$ae-report?start=2026-02-01&end=2026-03-31", nil)
	if res.Status != http.StatusOK {
		t.Fatalf("GET $ae-report: %d %s", res.Status, res.Body)
	}
	codec, err := fhir.NewCodec()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := codec.Parse(res.Body); err != nil {
		t.Errorf("the MeasureReport is not valid R4: %v", err)
	}
	for _, q := range []string{"interval=month", "start=2030"} {
		res := c.Do(http.MethodGet, "/AdverseEvent/$ae-report?"+q, nil)
		if _, err := codec.Parse(res.Body); res.Status != http.StatusOK || err != nil {
			t.Errorf("GET $ae-report?%s: %d %v", q, res.Status, err)
		}
	}
	lines := opstest.Figures(t, res.Body)
	if len(lines) == 0 || lines[0] != "2026-02-01,2026-03-31,patients,,,3,1" {
		t.Errorf("GET $ae-report: first figures %q", lines)
	}
	want := "period_start,period_end,group,stratifier,stratum,denominator,numerator\r\n" + strings.Join(lines, "\r\n") + "\r\n"
	for _, h := range [][]string{
		{"Accept", "text/csv"},
		{"Accept", "application/fhir+json;q=0.5, text/csv"},
	} {
		res := c.Do(http.MethodGet, "/AdverseEvent/$ae-report?start=2026-02-01&end=2026-03-31", nil, h...)
		if res.Status != http.StatusOK || !strings.HasPrefix(res.Header.Get("Content-Type"), "text/csv") {
			t.Fatalf("%v: %d %s %s", h, res.Status, res.Header.Get("Content-Type"), res.Body)
		}
		if diff := cmp.Diff(want, string(res.Body)); diff != "" {
			t.Errorf("%v: CSV (-want +got):\n%s", h, diff)
		}
	}
	if res := c.Do(http.MethodGet, "/AdverseEvent/$ae-report?_format=csv&start=2026-02-01&end=2026-03-31", nil); string(res.Body) != want {
		t.Errorf("_format=csv: %d %s", res.Status, res.Body)
	}
	for _, tc := range []struct {
		path   string
		header []string
		want   int
	}{
		{"/Specimen/l1/$trace", []string{"Accept", "text/csv"}, http.StatusNotAcceptable},
		{"/Patient", []string{"Accept", "text/csv"}, http.StatusNotAcceptable},
		{"/AdverseEvent/$ae-report?interval=week", nil, http.StatusBadRequest},
		{"/Patient/pa/$ae-report", nil, http.StatusNotFound},
	} {
		if res := c.Do(http.MethodGet, tc.path, nil, tc.header...); res.Status != tc.want {
			t.Errorf("GET %s %v: want %d, got %d %s", tc.path, tc.header, tc.want, res.Status, res.Body)
		}
	}
	res = c.Do(http.MethodGet, "/Measure/ae-report", nil)
	if m := res.JSON(t); res.Status != http.StatusOK || m["url"] != ops.AEMeasure {
		t.Errorf("GET Measure/ae-report: %d %s", res.Status, res.Body)
	}
}

// TestFollowUpOverREST: the follow-up operations through the router: each
// answer valid R4, CSV by Accept for the efficacy report and the visit
// list (406 for the eligibility), 400 for a bad date, 404 for a recipient
// of another hospital; the efficacy report's Measure is served.
func TestFollowUpOverREST(t *testing.T) {
	t.Parallel()
	r := opstest.NewRegistry(t, newStore(t))
	opstest.FollowUpCohort(t, r)
	yes := true
	r.RecipientBorn("h1", "old", "1960-01-01", &yes)
	scopes := []string{"user/*.rs"}
	hosp1 := &fhir.Principal{Tenant: "h1", TenantKind: fhir.TenantHospital, Subject: "s",
		Roles: []fhir.Role{fhir.RoleClinician}, Scopes: scopes, Grants: fhir.ParseScopes(scopes)}
	defs, err := profiles.Embedded()
	if err != nil {
		t.Fatal(err)
	}
	conf, err := profiles.NewService(defs, r.St, false)
	if err != nil {
		t.Fatal(err)
	}
	c := resttest.Serve(t, r.St, func(o *rest.Options) {
		o.Auth = as{hosp1}
		o.Policy = r.Pol
		o.Conformance = conf
		o.Operations = ops.New(ops.Options{Store: r.St, Policy: r.Pol})
	})
	codec, err := fhir.NewCodec()
	if err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{"/Observation/$efficacy-report?on=2026-07-01", "/Observation/$efficacy-report?start=2030",
		"/Patient/$follow-up-due?on=2026-07-01", "/Patient/old/$aid-eligibility?on=2026-07-01"} {
		res := c.Do(http.MethodGet, path, nil)
		if res.Status != http.StatusOK {
			t.Fatalf("GET %s: %d %s", path, res.Status, res.Body)
		}
		if _, err := codec.Parse(res.Body); err != nil {
			t.Errorf("GET %s: not valid R4: %v\n%s", path, err, res.Body)
		}
	}
	res := c.Do(http.MethodGet, "/Observation/$efficacy-report?on=2026-07-01", nil)
	_, lines := opstest.EfficacyFigures(t, res.Body)
	if len(lines) == 0 || lines[0] != "w1,,,5,3,0,1" {
		t.Errorf("$efficacy-report: first figures %q", lines)
	}
	if res := c.Do(http.MethodGet, "/Patient/old/$aid-eligibility?on=2026-07-01", nil); !strings.Contains(string(res.Body), `"valueBoolean":true`) {
		t.Errorf("$aid-eligibility of a recipient aged 66 with hardship: %s", res.Body)
	}
	for _, path := range []string{"/Observation/$efficacy-report?on=2026-07-01", "/Patient/$follow-up-due?on=2026-07-01"} {
		res := c.Do(http.MethodGet, path, nil, "Accept", "text/csv")
		if res.Status != http.StatusOK || !strings.HasPrefix(res.Header.Get("Content-Type"), "text/csv") || strings.Count(string(res.Body), "\r\n") < 5 {
			t.Errorf("GET %s as CSV: %d %s %s", path, res.Status, res.Header.Get("Content-Type"), res.Body)
		}
	}
	for _, tc := range []struct {
		path   string
		header []string
		want   int
	}{
		{"/Patient/old/$aid-eligibility", []string{"Accept", "text/csv"}, http.StatusNotAcceptable},
		{"/Patient/old/$aid-eligibility?on=2026-02-30", nil, http.StatusBadRequest},
		{"/Patient/fd/$aid-eligibility", nil, http.StatusNotFound},
		{"/Patient/$follow-up-due?on=soon", nil, http.StatusBadRequest},
		{"/Observation/$efficacy-report?on=soon", nil, http.StatusBadRequest},
		{"/Observation/oa1/$efficacy-report", nil, http.StatusNotFound},
	} {
		if res := c.Do(http.MethodGet, tc.path, nil, tc.header...); res.Status != tc.want {
			t.Errorf("GET %s %v: want %d, got %d %s", tc.path, tc.header, tc.want, res.Status, res.Body)
		}
	}
	res = c.Do(http.MethodGet, "/Measure/efficacy-report", nil)
	if m := res.JSON(t); res.Status != http.StatusOK || m["url"] != ops.EfficacyMeasure {
		t.Errorf("GET Measure/efficacy-report: %d %s", res.Status, res.Body)
	}
}
