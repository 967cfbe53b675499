package opstest

import (
	"context"
	"encoding/json"
	"errors"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/fmtbank/cmts/fhir"
	"github.com/fmtbank/cmts/fhir/ops"
	"github.com/google/go-cmp/cmp"
)

// RecipientBorn writes hospital's recipient id born on birthDate, with the
// financial-hardship extension when hardship is not nil.
func (r *Registry) RecipientBorn(hospital, id, birthDate string, hardship *bool) {
	res := map[string]any{"resourceType": "Patient", "id": id, "meta": meta("cmts-recipient"),
		"identifier": []any{map[string]any{"system": sid + "recipient-code", "value": "R-" + id}},
		"name":       []any{map[string]any{"family": "Recipient " + id}}, "gender": "male", "birthDate": birthDate}
	if hardship != nil {
		res["extension"] = []any{map[string]any{"url": sd + "financial-hardship", "valueBoolean": *hardship}}
	}
	r.put(hospital, res)
}

// Assessment is one cmts-efficacy Observation as Efficacy writes it.
type Assessment struct {
	Hospital, ID, Patient string
	// Focus is the procedure assessed (the last of its course).
	Focus, FollowUp, Measure string
	Value                    bool
	// Effective is the effectiveDateTime.
	Effective string
}

// Efficacy writes a cmts-efficacy Observation.
func (r *Registry) Efficacy(a Assessment) {
	r.put(a.Hospital, map[string]any{"resourceType": "Observation", "id": a.ID, "meta": meta("cmts-efficacy"),
		"extension": []any{map[string]any{"url": sd + "follow-up", "valueCode": a.FollowUp}},
		"status":    "final", "code": map[string]any{"coding": []any{map[string]any{"system": cs + "efficacy-measure", "code": a.Measure}}},
		"subject": ref("Patient/" + a.Patient), "focus": []any{ref("Procedure/" + a.Focus)},
		"effectiveDateTime": a.Effective, "valueBoolean": a.Value})
}

// FollowUpCohort writes the hand-worked cohort of the follow-up tests
// (docs/safety.md works its figures): in hospital h1, fa (K51) with two
// courses (fa1, fa2 on 5 and 6 January; fa3 on 10 February), fb (K50) one
// procedure on 20 March, fc (K51) one on 1 June, fe (A04.7) one on 1
// February; in hospital h2, fd (K51) one on 1 April; their assessments,
// some visits missed and one recorded on 2 July.
func FollowUpCohort(t testing.TB, r *Registry) {
	t.Helper()
	for _, p := range []struct{ h, id, code string }{{"h1", "fa", "K51"}, {"h1", "fb", "K50"}, {"h1", "fc", "K51"}, {"h1", "fe", "A04.7"}, {"h2", "fd", "K51"}} {
		r.Recipient(p.h, p.id)
		r.Indication(p.h, "c"+p.id, p.id, p.code)
	}
	for _, p := range []WMT{
		{"h1", "fa1", "fa", "cfa", 1, "2026-01-05T09:00:00+08:00", "colonic-tet", ""},
		{"h1", "fa2", "fa", "cfa", 1, "2026-01-06T09:00:00+08:00", "colonic-tet", ""},
		{"h1", "fa3", "fa", "cfa", 2, "2026-02-10T09:00:00+08:00", "colonic-tet", ""},
		{"h1", "fb1", "fb", "cfb", 1, "2026-03-20T10:00:00+08:00", "mid-gut-tet", ""},
		{"h1", "fc1", "fc", "cfc", 1, "2026-06-01T10:00:00+08:00", "colonic-tet", ""},
		{"h1", "fe1", "fe", "cfe", 1, "2026-02-01T10:00:00+08:00", "colonoscopy", ""},
		{"h2", "fd1", "fd", "cfd", 1, "2026-04-01T10:00:00+08:00", "enema", ""},
	} {
		r.WMTProcedure(p)
	}
	const resp, rem, cure = "clinical-response", "clinical-remission", "cdi-cure"
	for _, a := range []Assessment{
		// fa, course 1 (last fa2): w1 responds; w4 assessed through its
		// first procedure (still course 1), no response; w8 on is
		// superseded by course 2 (10 February, within w8's window).
		{"h1", "oa1", "fa", "fa2", "w1", resp, true, "2026-01-13T09:00:00+08:00"},
		{"h1", "oa2", "fa", "fa1", "w4", resp, false, "2026-02-03T09:00:00+08:00"},
		// fa, course 2 (fa3): w1 no, w4 yes, w8 missed, w12 response and
		// remission.
		{"h1", "oa3", "fa", "fa3", "w1", resp, false, "2026-02-17T09:00:00+08:00"},
		{"h1", "oa4", "fa", "fa3", "w4", resp, true, "2026-03-10T09:00:00+08:00"},
		{"h1", "oa5", "fa", "fa3", "w12", resp, true, "2026-05-05T09:00:00+08:00"},
		{"h1", "oa6", "fa", "fa3", "w12", rem, true, "2026-05-05T09:00:00+08:00"},
		// fb: w1 yes, w4 missed, w8 yes on the window's last day, w12
		// recorded on 2 July (after the window, and after 1 July).
		{"h1", "ob1", "fb", "fb1", "w1", resp, true, "2026-03-27T09:00:00+08:00"},
		{"h1", "ob2", "fb", "fb1", "w8", resp, true, "2026-05-22T09:00:00+08:00"},
		{"h1", "ob3", "fb", "fb1", "w12", resp, true, "2026-07-02T09:00:00+08:00"},
		{"h1", "ob4", "fb", "fb1", "w12", rem, false, "2026-07-02T09:00:00+08:00"},
		// fc: nothing recorded. fe: w1 and w4 respond; at w8 no clinical
		// response but C. difficile cured; w12 missed.
		{"h1", "oe1", "fe", "fe1", "w1", resp, true, "2026-02-08T09:00:00+08:00"},
		{"h1", "oe2", "fe", "fe1", "w4", resp, true, "2026-03-01T09:00:00+08:00"},
		{"h1", "oe3", "fe", "fe1", "w8", resp, false, "2026-03-29T09:00:00+08:00"},
		{"h1", "oe4", "fe", "fe1", "w8", cure, true, "2026-03-29T09:00:00+08:00"},
		// fd (h2): w1, w4 respond; w8 missed; w12 open on 1 July.
		{"h2", "od1", "fd", "fd1", "w1", resp, true, "2026-04-08T09:00:00+08:00"},
		{"h2", "od2", "fd", "fd1", "w4", resp, true, "2026-04-29T09:00:00+08:00"},
	} {
		r.Efficacy(a)
	}
}

// EfficacyFigures flattens an $efficacy-report answer into lines
// "follow-up,stratifier,stratum,denominator,response,remission,due-not-assessed"
// (a masked count "masked"), checking the report's shape.
func EfficacyFigures(t testing.TB, body []byte) (period string, lines []string) {
	t.Helper()
	type pop struct {
		Code struct {
			Coding []struct{ System, Code string }
		}
		Count  *int
		XCount *struct {
			Extension []struct{ URL, ValueCode string }
		} `json:"_count"`
	}
	var r struct {
		ResourceType, Status, Type, Measure string
		Period                              struct{ Start, End string }
		Group                               []struct {
			Code struct {
				Coding []struct{ System, Code string }
				Text   string
			}
			Population []pop
			Stratifier []struct {
				Code    []struct{ Text string }
				Stratum []struct {
					Value      struct{ Text string }
					Population []pop
				}
			}
		}
	}
	if err := json.Unmarshal(body, &r); err != nil {
		t.Fatalf("%v: %s", err, body)
	}
	if r.ResourceType != "MeasureReport" || r.Type != "summary" || r.Status != "complete" || r.Measure != ops.EfficacyMeasure {
		t.Fatalf("not a summary MeasureReport of %s: %s", ops.EfficacyMeasure, body)
	}
	want := []struct{ system, code string }{{"http://terminology.hl7.org/CodeSystem/measure-population", "denominator"},
		{"", "numerator-response"}, {"", "numerator-remission"}, {"", "due-not-assessed"}}
	figs := func(ps []pop) []string {
		if len(ps) != len(want) {
			t.Fatalf("populations %+v", ps)
		}
		var out []string
		for i, p := range ps {
			if len(p.Code.Coding) != 1 || p.Code.Coding[0].System != want[i].system || p.Code.Coding[0].Code != want[i].code {
				t.Fatalf("population %d: %+v", i, p.Code)
			}
			switch {
			case p.Count != nil && p.XCount == nil:
				out = append(out, strconv.Itoa(*p.Count))
			case p.Count == nil && p.XCount != nil && len(p.XCount.Extension) == 1 && p.XCount.Extension[0].ValueCode == "masked" &&
				p.XCount.Extension[0].URL == "http://hl7.org/fhir/StructureDefinition/data-absent-reason":
				out = append(out, "masked")
			default:
				t.Fatalf("population with neither a count nor a masked one: %+v", p)
			}
		}
		return out
	}
	for _, g := range r.Group {
		if len(g.Code.Coding) != 1 || g.Code.Coding[0].System != cs+"follow-up" || g.Code.Coding[0].Code != g.Code.Text {
			t.Fatalf("group code %+v", g.Code)
		}
		lines = append(lines, strings.Join(append([]string{g.Code.Text, "", ""}, figs(g.Population)...), ","))
		for _, st := range g.Stratifier {
			for _, s := range st.Stratum {
				lines = append(lines, strings.Join(append([]string{g.Code.Text, st.Code[0].Text, s.Value.Text}, figs(s.Population)...), ","))
			}
		}
	}
	return r.Period.Start + "/" + r.Period.End, lines
}

// followUpNow is the clock of the follow-up tests ("today" is 1 July).
var followUpNow = time.Date(2026, 7, 1, 2, 0, 0, 0, time.UTC)

func (r *Registry) followUpOps() *ops.Ops {
	return ops.New(ops.Options{Store: r.St, Policy: r.Pol, Now: func() time.Time { return followUpNow }})
}

// operation runs an operation and answers its body, or its error.
func operation(o *ops.Ops, p *fhir.Principal, typ, id, name string, params url.Values) ([]byte, string, error) {
	status, body, ct, ok, err := o.Operation(context.Background(), p, typ, id, name, params, nil)
	switch {
	case err != nil:
		return nil, "", err
	case !ok:
		return nil, "", errors.New(name + " not offered")
	case status != 200:
		return nil, "", errors.New(name + ": status " + strconv.Itoa(status))
	}
	return body, ct, nil
}

func testEfficacyReport(t *testing.T, newStore NewStore) {
	r := NewRegistry(t, newStore(t))
	FollowUpCohort(t, r)
	o := r.followUpOps()
	h1 := principal("h1", fhir.TenantHospital, fhir.RoleClinician)
	h2 := principal("h2", fhir.TenantHospital, fhir.RoleClinician)
	nhc := principal("nhc", fhir.TenantAuthority, fhir.RoleRegulator)
	none := []string{"m6,,,0,0,0,0", "m12,,,0,0,0,0", "m24,,,0,0,0,0"}
	h1On0701 := append([]string{
		// Due: fa course 1 and 2, fb, fc, fe. Response: fa#1, fb, fe.
		"w1,,,5,3,0,1", "w1,indication,A04.7,1,1,0,0", "w1,indication,K50,1,1,0,0", "w1,indication,K51,3,1,0,1",
		// fc's w4 window ends 2 July: not due. fa#1 counts by its first
		// procedure's assessment (no response); fb missed.
		"w4,,,4,2,0,1", "w4,indication,A04.7,1,1,0,0", "w4,indication,K50,1,0,0,1", "w4,indication,K51,2,1,0,0",
		// fa#1 superseded by course 2; fe: cdi-cure is no clinical response.
		"w8,,,3,1,0,1", "w8,indication,A04.7,1,0,0,0", "w8,indication,K50,1,1,0,0", "w8,indication,K51,1,0,0,1",
		// fb's w12 was recorded on 2 July: not yet on 1 July.
		"w12,,,3,1,1,2", "w12,indication,A04.7,1,0,0,1", "w12,indication,K50,1,0,0,1", "w12,indication,K51,1,1,1,0",
	}, none...)
	for _, tc := range []struct {
		name   string
		p      *fhir.Principal
		params url.Values
		// totals compares the time points' own figures only.
		totals bool
		want   []string
		period string
	}{
		{name: "hospital, today (1 July)", p: h1, want: h1On0701, period: "2026-01-06/2026-06-01"},
		{name: "on the same day, given", p: h1, params: url.Values{"on": {"2026-07-01"}}, want: h1On0701},
		// On 3 July fc's w4 window (ends 2 July) is due and missed; fb's
		// w12 assessment of 2 July counts.
		{name: "on 3 July", p: h1, params: url.Values{"on": {"2026-07-03"}}, totals: true,
			want: append([]string{"w1,,,5,3,0,1", "w4,,,5,2,0,2", "w8,,,3,1,0,1", "w12,,,3,2,1,1"}, none...)},
		// On its window's last day (2 July) fc's w4 is not yet due; fb's
		// w12 assessment of that day counts.
		{name: "on a window's last day", p: h1, params: url.Values{"on": {"2026-07-02"}}, totals: true,
			want: append([]string{"w1,,,5,3,0,1", "w4,,,4,2,0,1", "w8,,,3,1,0,1", "w12,,,3,2,1,1"}, none...)},
		{name: "cdi-cure as the response", p: h1, params: url.Values{"measure": {"cdi-cure"}}, totals: true,
			want: append([]string{"w1,,,5,0,0,1", "w4,,,4,0,0,1", "w8,,,3,1,0,1", "w12,,,3,0,1,2"}, none...)},
		// Courses whose last procedure is in February or March: fa#2, fb,
		// fe (fa#1 and fc are out).
		{name: "a period", p: h1, params: url.Values{"start": {"2026-02-01"}, "end": {"2026-03-31"}}, totals: true,
			want: append([]string{"w1,,,3,2,0,0", "w4,,,3,2,0,1", "w8,,,3,1,0,1", "w12,,,3,1,1,2"}, none...), period: "2026-02-01/2026-03-31"},
		// January holds fa's first course only: its w8 on are superseded
		// by the second course, though that course is outside the period.
		{name: "a period cutting between two courses", p: h1, params: url.Values{"start": {"2026-01"}, "end": {"2026-01"}}, totals: true,
			want: append([]string{"w1,,,1,1,0,0", "w4,,,1,0,0,0", "w8,,,0,0,0,0", "w12,,,0,0,0,0"}, none...)},
		{name: "indication", p: h1, params: url.Values{"indication": {"http://hl7.org/fhir/sid/icd-10|K51"}}, totals: true,
			want: append([]string{"w1,,,3,1,0,1", "w4,,,2,1,0,0", "w8,,,1,0,0,1", "w12,,,1,1,1,0"}, none...)},
		{name: "route", p: h1, params: url.Values{"route": {"mid-gut-tet"}}, totals: true,
			want: append([]string{"w1,,,1,1,0,0", "w4,,,1,0,0,1", "w8,,,1,1,0,0", "w12,,,1,0,0,1"}, none...)},
		{name: "transplant type", p: h1, params: url.Values{"transplant-type": {"smt"}}, totals: true,
			want: append([]string{"w1,,,0,0,0,0", "w4,,,0,0,0,0", "w8,,,0,0,0,0", "w12,,,0,0,0,0"}, none...)},
		{name: "the other hospital: its own only", p: h2, want: append([]string{
			"w1,,,1,1,0,0", "w1,indication,K51,1,1,0,0", "w4,,,1,1,0,0", "w4,indication,K51,1,1,0,0",
			"w8,,,1,0,0,1", "w8,indication,K51,1,0,0,1", "w12,,,0,0,0,0"}, none...)},
		// Every tenant, counts 1-4 masked.
		{name: "the regulator", p: nhc, want: append([]string{
			"w1,,,6,masked,0,masked", "w1,indication,A04.7,masked,masked,0,0", "w1,indication,K50,masked,masked,0,0", "w1,indication,K51,masked,masked,0,masked",
			"w4,,,5,masked,0,masked", "w4,indication,A04.7,masked,masked,0,0", "w4,indication,K50,masked,0,0,masked", "w4,indication,K51,masked,masked,0,0",
			"w8,,,masked,masked,0,masked", "w8,indication,A04.7,masked,0,0,0", "w8,indication,K50,masked,masked,0,0", "w8,indication,K51,masked,0,0,masked",
			"w12,,,masked,masked,masked,masked", "w12,indication,A04.7,masked,0,0,masked", "w12,indication,K50,masked,0,0,masked", "w12,indication,K51,masked,masked,masked,0",
		}, none...)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			body, _, err := operation(o, tc.p, "Observation", "", "$efficacy-report", tc.params)
			if err != nil {
				t.Fatal(err)
			}
			period, lines := EfficacyFigures(t, body)
			got := lines
			if tc.totals {
				got = nil
				for _, l := range lines {
					if strings.Split(l, ",")[1] == "" {
						got = append(got, l)
					}
				}
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("figures (-want +got):\n%s", diff)
			}
			if tc.period != "" && period != tc.period {
				t.Errorf("period %s, want %s", period, tc.period)
			}
			// The CSV holds the same figures.
			params := url.Values{"_format": {"text/csv"}}
			for k, v := range tc.params {
				params[k] = v
			}
			csv, ct, err := operation(o, tc.p, "Observation", "", "$efficacy-report", params)
			if err != nil {
				t.Fatal(err)
			}
			if !strings.HasPrefix(ct, "text/csv") {
				t.Errorf("content type %q", ct)
			}
			rows := strings.Split(strings.TrimSuffix(string(csv), "\r\n"), "\r\n")
			if rows[0] != "period_start,period_end,on,follow_up,stratifier,stratum,denominator,numerator_response,numerator_remission,due_not_assessed" {
				t.Errorf("CSV header %q", rows[0])
			}
			var csvLines []string
			for _, row := range rows[1:] {
				csvLines = append(csvLines, strings.Join(strings.Split(row, ",")[3:], ","))
			}
			if diff := cmp.Diff(lines, csvLines); diff != "" {
				t.Errorf("CSV (-want +got):\n%s", diff)
			}
		})
	}
	for _, bad := range []url.Values{{"on": {"tomorrow"}}, {"start": {"x"}}, {"measure": {"http://loinc.org|1234-5"}}, {"measure": {"mayo-score"}}} {
		var fe *fhir.Error
		if _, _, err := operation(o, h1, "Observation", "", "$efficacy-report", bad); !errors.As(err, &fe) || fe.Status != 400 {
			t.Errorf("%v: want 400, got %v", bad, err)
		}
	}
}

// followUpLines flattens a $follow-up-due answer: each patient (id,
// tenant, named or de-identified), then each of its missed visits
// (follow-up code, window, status, focus, tenant).
func followUpLines(t testing.TB, body []byte) []string {
	t.Helper()
	var b struct {
		ResourceType, Type string
		Total              int
		Entry              []struct {
			Resource map[string]any
			Search   struct{ Mode string }
		}
	}
	if err := json.Unmarshal(body, &b); err != nil {
		t.Fatal(err)
	}
	if b.ResourceType != "Bundle" || b.Type != "searchset" {
		t.Fatalf("not a searchset Bundle: %s", body)
	}
	var out []string
	patients := 0
	current := ""
	for _, e := range b.Entry {
		res := e.Resource
		src := strings.TrimPrefix(res["meta"].(map[string]any)["source"].(string), ops.TenantSource)
		switch res["resourceType"] {
		case "Patient":
			if e.Search.Mode != "match" {
				t.Errorf("patient entry mode %q", e.Search.Mode)
			}
			patients++
			current = res["id"].(string)
			named := "de-identified"
			if _, ok := res["name"]; ok {
				named = "named"
			}
			out = append(out, current+" "+src+" "+named)
		case "Task":
			if e.Search.Mode != "include" || res["status"] != "requested" || res["intent"] != "plan" {
				t.Errorf("task %v (mode %s)", res, e.Search.Mode)
			}
			if got := res["for"].(map[string]any)["reference"]; got != "Patient/"+current {
				t.Errorf("task for %v after Patient/%s", got, current)
			}
			code := res["code"].(map[string]any)["coding"].([]any)[0].(map[string]any)
			if code["system"] != cs+"follow-up" {
				t.Errorf("task code %v", code)
			}
			per := res["executionPeriod"].(map[string]any)
			status := res["businessStatus"].(map[string]any)["coding"].([]any)[0].(map[string]any)["code"]
			focus := res["focus"].(map[string]any)["reference"]
			out = append(out, "  "+code["code"].(string)+" "+per["start"].(string)+" "+per["end"].(string)+" "+status.(string)+" "+focus.(string)+" "+src)
		default:
			t.Errorf("entry %v", res["resourceType"])
		}
	}
	if b.Total != patients {
		t.Errorf("total %d, %d patients", b.Total, patients)
	}
	return out
}

func testFollowUpDue(t *testing.T, newStore NewStore) {
	r := NewRegistry(t, newStore(t))
	FollowUpCohort(t, r)
	o := r.followUpOps()
	h1 := principal("h1", fhir.TenantHospital, fhir.RoleClinician)
	nhc := principal("nhc", fhir.TenantAuthority, fhir.RoleRegulator)
	h1On0701 := []string{
		// fa: course 1 fully followed until course 2; course 2's w8 missed.
		"fa h1 named", "  w8 2026-03-31 2026-04-14 overdue Procedure/fa3 h1",
		"fb h1 named", "  w4 2026-04-14 2026-04-20 overdue Procedure/fb1 h1",
		"  w12 2026-06-05 2026-06-19 overdue Procedure/fb1 h1", // recorded only on 2 July
		"fe h1 named", "  w12 2026-04-19 2026-05-03 overdue Procedure/fe1 h1",
		"fc h1 named", "  w1 2026-06-05 2026-06-11 overdue Procedure/fc1 h1",
		"  w4 2026-06-26 2026-07-02 open Procedure/fc1 h1",
	}
	for _, tc := range []struct {
		name   string
		p      *fhir.Principal
		params url.Values
		want   []string
	}{
		{name: "hospital, today", p: h1, want: h1On0701},
		{name: "hospital, on 1 July", p: h1, params: url.Values{"on": {"2026-07-01"}}, want: h1On0701},
		// On 3 July fe's m6 window opens, fb's w12 is recorded and fc's w4
		// is overdue.
		{name: "on 3 July", p: h1, params: url.Values{"on": {"2026-07-03"}}, want: []string{
			"fa h1 named", "  w8 2026-03-31 2026-04-14 overdue Procedure/fa3 h1",
			"fb h1 named", "  w4 2026-04-14 2026-04-20 overdue Procedure/fb1 h1",
			"fe h1 named", "  w12 2026-04-19 2026-05-03 overdue Procedure/fe1 h1", "  m6 2026-07-03 2026-09-01 open Procedure/fe1 h1",
			"fc h1 named", "  w1 2026-06-05 2026-06-11 overdue Procedure/fc1 h1", "  w4 2026-06-26 2026-07-02 overdue Procedure/fc1 h1",
		}},
		// On 27 February fa's first course would be in its w8 window, but
		// course 2 began on 10 February; fe's w4 window is open and its
		// assessment of 1 March does not count yet.
		{name: "on 27 February", p: h1, params: url.Values{"on": {"2026-02-27"}}, want: []string{
			"fe h1 named", "  w4 2026-02-26 2026-03-04 open Procedure/fe1 h1",
		}},
		{name: "the regulator: every tenant, de-identified", p: nhc, want: []string{
			"fa h1 de-identified", "  w8 2026-03-31 2026-04-14 overdue Procedure/fa3 h1",
			"fb h1 de-identified", "  w4 2026-04-14 2026-04-20 overdue Procedure/fb1 h1",
			"  w12 2026-06-05 2026-06-19 overdue Procedure/fb1 h1",
			"fe h1 de-identified", "  w12 2026-04-19 2026-05-03 overdue Procedure/fe1 h1",
			"fd h2 de-identified", "  w8 2026-05-20 2026-06-03 overdue Procedure/fd1 h2", "  w12 2026-06-17 2026-07-01 open Procedure/fd1 h2",
			"fc h1 de-identified", "  w1 2026-06-05 2026-06-11 overdue Procedure/fc1 h1",
			"  w4 2026-06-26 2026-07-02 open Procedure/fc1 h1",
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			body, _, err := operation(o, tc.p, "Patient", "", "$follow-up-due", tc.params)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, followUpLines(t, body)); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
	// The CSV: one row per visit.
	csv, ct, err := operation(o, h1, "Patient", "", "$follow-up-due", url.Values{"_format": {"csv"}})
	if err != nil {
		t.Fatal(err)
	}
	want := "patient,recipient_code,tenant,course,procedure,follow_up,window_start,window_end,status\r\n" +
		"fa,R-fa,h1,2,fa3,w8,2026-03-31,2026-04-14,overdue\r\n" +
		"fb,R-fb,h1,1,fb1,w4,2026-04-14,2026-04-20,overdue\r\n" +
		"fb,R-fb,h1,1,fb1,w12,2026-06-05,2026-06-19,overdue\r\n" +
		"fe,R-fe,h1,1,fe1,w12,2026-04-19,2026-05-03,overdue\r\n" +
		"fc,R-fc,h1,1,fc1,w1,2026-06-05,2026-06-11,overdue\r\n" +
		"fc,R-fc,h1,1,fc1,w4,2026-06-26,2026-07-02,open\r\n"
	if diff := cmp.Diff(want, string(csv)); diff != "" || !strings.HasPrefix(ct, "text/csv") {
		t.Errorf("CSV (%s) (-want +got):\n%s", ct, diff)
	}
	var fe *fhir.Error
	if _, _, err := operation(o, h1, "Patient", "", "$follow-up-due", url.Values{"on": {"2026-13-01"}}); !errors.As(err, &fe) || fe.Status != 400 {
		t.Errorf("a bad date: want 400, got %v", err)
	}
}

func testAidEligibility(t *testing.T, newStore NewStore) {
	r := NewRegistry(t, newStore(t))
	yes, no := true, false
	r.RecipientBorn("h1", "a1", "2010-07-01", &yes) // 16 on 1 July 2026
	r.RecipientBorn("h1", "a2", "1965-07-01", &yes) // 61 on 1 July 2026
	r.RecipientBorn("h1", "a3", "1964-02-29", &yes) // 61 on 1 March 2025 (no 29 February)
	r.RecipientBorn("h1", "a4", "1950-01-01", &no)
	r.RecipientBorn("h1", "a5", "2015-03-03", nil)
	r.RecipientBorn("h1", "a7", "2008-02-29", &yes) // 16 on 29 February 2024
	r.RecipientBorn("h2", "a6", "2015-03-03", &yes)
	o := r.followUpOps()
	h1 := principal("h1", fhir.TenantHospital, fhir.RoleClinician)
	nhc := principal("nhc", fhir.TenantAuthority, fhir.RoleRegulator)
	for _, tc := range []struct {
		name   string
		p      *fhir.Principal
		id, on string
		want   bool
		// reason holds these words.
		reason []string
		status int
	}{
		{name: "16th birthday: no longer under 16", p: h1, id: "a1", on: "2026-07-01", want: false, reason: []string{"aged 16 on 2026-07-01", "16 周岁"}},
		{name: "the day before it", p: h1, id: "a1", on: "2026-06-30", want: true, reason: []string{"aged 15", "under 16", "未满16周岁"}},
		{name: "today by default (1 July: 16)", p: h1, id: "a1", want: false},
		{name: "61st birthday: over 60", p: h1, id: "a2", on: "2026-07-01", want: true, reason: []string{"aged 61", "over 60", "符合条件"}},
		{name: "60 the day before", p: h1, id: "a2", on: "2026-06-30", want: false, reason: []string{"aged 60", "不符合条件"}},
		{name: "born 29 February: 60 on 28 February of a common year", p: h1, id: "a3", on: "2025-02-28", want: false},
		{name: "born 29 February: 61 on 1 March", p: h1, id: "a3", on: "2025-03-01", want: true},
		{name: "born 29 February: 15 on 28 February of a leap year", p: h1, id: "a7", on: "2024-02-28", want: true},
		{name: "born 29 February: 16 on 29 February", p: h1, id: "a7", on: "2024-02-29", want: false},
		{name: "no financial hardship", p: h1, id: "a4", on: "2026-07-01", want: false, reason: []string{"no financial hardship", "无经济困难"}},
		{name: "financial hardship not recorded", p: h1, id: "a5", on: "2026-07-01", want: false, reason: []string{"not recorded", "未记录经济困难"}},
		{name: "not yet born", p: h1, id: "a5", on: "2015-03-02", want: false, reason: []string{"born after"}},
		{name: "another hospital's recipient", p: h1, id: "a6", status: 404},
		{name: "no such recipient", p: h1, id: "zz", status: 404},
		{name: "a bad date", p: h1, id: "a1", on: "01/07/2026", status: 400},
		// The regulator sees the birth year only: 1965 gives 60 or 61 on 1
		// July 2026, 61 or 62 on 1 January 2027.
		{name: "the regulator, birth year only: undecided", p: nhc, id: "a2", on: "2026-07-01", want: false, reason: []string{"does not tell"}},
		{name: "the regulator, birth year only: decided", p: nhc, id: "a2", on: "2027-01-01", want: true, reason: []string{"61-62"}},
		{name: "the regulator reads every hospital", p: nhc, id: "a6", on: "2026-07-01", want: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			params := url.Values{}
			if tc.on != "" {
				params.Set("on", tc.on)
			}
			body, _, err := operation(o, tc.p, "Patient", tc.id, "$aid-eligibility", params)
			if tc.status != 0 {
				var fe *fhir.Error
				if !errors.As(err, &fe) || fe.Status != tc.status {
					t.Fatalf("want %d, got %v (%s)", tc.status, err, body)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var ps struct {
				ResourceType string
				Parameter    []struct {
					Name         string
					ValueBoolean *bool
					ValueString  *string
				}
			}
			if err := json.Unmarshal(body, &ps); err != nil {
				t.Fatal(err)
			}
			if ps.ResourceType != "Parameters" || len(ps.Parameter) != 2 || ps.Parameter[0].Name != "eligible" || ps.Parameter[0].ValueBoolean == nil ||
				ps.Parameter[1].Name != "reason" || ps.Parameter[1].ValueString == nil {
				t.Fatalf("not Parameters with eligible and reason: %s", body)
			}
			if *ps.Parameter[0].ValueBoolean != tc.want {
				t.Errorf("eligible %v, want %v: %s", *ps.Parameter[0].ValueBoolean, tc.want, *ps.Parameter[1].ValueString)
			}
			reason := *ps.Parameter[1].ValueString
			if !strings.Contains(reason, " / ") {
				t.Errorf("reason not in English and Chinese: %s", reason)
			}
			for _, w := range tc.reason {
				if !strings.Contains(reason, w) {
					t.Errorf("reason %q lacks %q", reason, w)
				}
			}
		})
	}
}
