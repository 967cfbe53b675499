package opstest

import (
	"context"
	"encoding/json"
	"net/url"
	"strconv"
	"strings"
	"testing"

	"github.com/fmtbank/cmts/fhir"
	"github.com/fmtbank/cmts/fhir/ops"
	"github.com/google/go-cmp/cmp"
)

const cs = "http://fmtbank.org/fhir/CodeSystem/"

// Indication writes hospital's cmts-indication Condition id of patient
// with an ICD-10 code.
func (r *Registry) Indication(hospital, id, patient, icd10 string) {
	r.put(hospital, map[string]any{"resourceType": "Condition", "id": id, "meta": meta("cmts-indication"),
		"subject": ref("Patient/" + patient),
		"code":    map[string]any{"coding": []any{map[string]any{"system": "http://hl7.org/fhir/sid/icd-10", "code": icd10}}}})
}

// WMT is one cmts-wmt-procedure as WMTProcedure writes it.
type WMT struct {
	Hospital, ID, Patient, Condition string
	Course                           int
	// Performed is a dateTime; Route a route code; Type the transplant
	// type (default wmt).
	Performed, Route, Type string
}

// WMTProcedure writes a cmts-wmt-procedure.
func (r *Registry) WMTProcedure(p WMT) {
	if p.Type == "" {
		p.Type = "wmt"
	}
	r.put(p.Hospital, map[string]any{"resourceType": "Procedure", "id": p.ID, "meta": meta("cmts-wmt-procedure"),
		"extension": []any{
			map[string]any{"url": sd + "route", "valueCode": p.Route},
			map[string]any{"url": sd + "product-lot", "valueReference": ref("Specimen/l1")},
			map[string]any{"url": sd + "dose", "valueQuantity": map[string]any{"value": 5, "unit": "U"}},
			map[string]any{"url": sd + "course", "valuePositiveInt": p.Course},
			map[string]any{"url": sd + "session", "valuePositiveInt": 1}},
		"status": "completed", "code": map[string]any{"coding": []any{map[string]any{"system": cs + "transplant-type", "code": p.Type}}},
		"subject": ref("Patient/" + p.Patient), "performedDateTime": p.Performed,
		"reasonReference": []any{ref("Condition/" + p.Condition)}})
}

// AE is one cmts-adverse-event as AdverseEvent writes it.
type AE struct {
	Hospital, ID, Patient string
	// Suspects are procedure ids, each assessed with Relatedness.
	Suspects                                 []string
	Relatedness, Severity, Seriousness, Term string
	Grade                                    int
	// Potential writes actuality potential (not an event that happened).
	Potential bool
}

// AdverseEvent writes a cmts-adverse-event.
func (r *Registry) AdverseEvent(e AE) {
	var s []any
	for _, p := range e.Suspects {
		s = append(s, map[string]any{"instance": ref("Procedure/" + p), "causality": []any{map[string]any{
			"assessment": map[string]any{"coding": []any{map[string]any{"system": cs + "relatedness", "code": e.Relatedness}}}}}})
	}
	actuality := "actual"
	if e.Potential {
		actuality = "potential"
	}
	r.put(e.Hospital, map[string]any{"resourceType": "AdverseEvent", "id": e.ID, "meta": meta("cmts-adverse-event"),
		"extension": []any{map[string]any{"url": sd + "ctcae-grade", "valueInteger": e.Grade}},
		"actuality": actuality, "subject": ref("Patient/" + e.Patient),
		"event":         map[string]any{"coding": []any{map[string]any{"system": cs + "ae-term", "code": e.Term}}},
		"date":          "2026-04-05",
		"seriousness":   map[string]any{"coding": []any{map[string]any{"system": "http://terminology.hl7.org/CodeSystem/adverse-event-seriousness", "code": e.Seriousness}}},
		"severity":      map[string]any{"coding": []any{map[string]any{"system": "http://terminology.hl7.org/CodeSystem/adverse-event-severity", "code": e.Severity}}},
		"suspectEntity": s})
}

// AECohort writes the hand-worked cohort of the $ae-report tests: in
// hospital h1, recipient pa (K51) with two courses (pa1 on 31 January and
// pa2 on 1 February, then pa3), one event suspecting both pa1 and pa2 and
// one suspecting pa3; pb (K50) with one manual FMT and no event (but a
// potential one and a procedure that is no WMT); pc (K50) with one course
// of two, the second suspected of a serious event; in hospital h2, pd
// (K51) with one procedure and one event.
func AECohort(t testing.TB, r *Registry) {
	t.Helper()
	for _, p := range []struct{ h, id, code string }{{"h1", "pa", "K51"}, {"h1", "pb", "K50"}, {"h1", "pc", "K50"}, {"h2", "pd", "K51"}} {
		r.Recipient(p.h, p.id)
		r.Indication(p.h, "c"+p.id, p.id, p.code)
	}
	for _, p := range []WMT{
		{"h1", "pa1", "pa", "cpa", 1, "2026-01-31T09:00:00+08:00", "colonic-tet", ""},
		{"h1", "pa2", "pa", "cpa", 1, "2026-02-01T09:00:00+08:00", "colonic-tet", ""},
		{"h1", "pa3", "pa", "cpa", 2, "2026-03-05T10:00:00+08:00", "colonic-tet", ""},
		{"h1", "pb1", "pb", "cpb", 1, "2026-02-20T10:00:00+08:00", "mid-gut-tet", "fmt-manual"},
		{"h1", "pc1", "pc", "cpc", 1, "2026-03-30T10:00:00+08:00", "mid-gut-tet", ""},
		{"h1", "pc2", "pc", "cpc", 1, "2026-04-02T10:00:00+08:00", "mid-gut-tet", ""},
		{"h2", "pd1", "pd", "cpd", 1, "2026-01-15T10:00:00+08:00", "enema", ""},
	} {
		r.WMTProcedure(p)
	}
	// Not a WMT procedure: neither the profile nor a transplant type.
	r.put("h1", map[string]any{"resourceType": "Procedure", "id": "px", "status": "completed",
		"subject": ref("Patient/pb"), "performedDateTime": "2026-02-21",
		"code": map[string]any{"coding": []any{map[string]any{"system": "http://snomed.info/sct", "code": "73761001"}}}})
	for _, e := range []AE{
		{"h1", "ea1", "pa", []string{"pa1", "pa2"}, "probably", "mild", "Non-serious", "diarrhoea", 1, false},
		{"h1", "ea2", "pa", []string{"pa3"}, "unrelated", "moderate", "Non-serious", "fever", 2, false},
		{"h1", "ec1", "pc", []string{"pc2"}, "possibly", "severe", "Serious", "vomiting", 3, false},
		{"h1", "eb1", "pb", []string{"pb1", "px"}, "possibly", "mild", "Non-serious", "fever", 1, true},
		{"h2", "ed1", "pd", []string{"pd1"}, "definitely", "mild", "Non-serious", "bloating", 1, false},
	} {
		r.AdverseEvent(e)
	}
}

// Figures flattens an $ae-report answer (a MeasureReport or a Bundle of
// them) into lines "start,end,group,stratifier,stratum,denominator,numerator"
// in the order given, a masked count as "masked" and an absent
// denominator as "": the CSV the operation answers, without its header.
func Figures(t testing.TB, body []byte) []string {
	t.Helper()
	type pop struct {
		Code struct {
			Coding []struct{ System, Code string }
		}
		Count  *int
		XCount *struct {
			Extension []struct {
				URL       string
				ValueCode string
			}
		} `json:"_count"`
	}
	type report struct {
		ResourceType, Type, Measure string
		Period                      struct{ Start, End string }
		Group                       []struct {
			Code       struct{ Text string }
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
	var head struct {
		ResourceType string
		Entry        []struct{ Resource json.RawMessage }
	}
	if err := json.Unmarshal(body, &head); err != nil {
		t.Fatalf("%v: %s", err, body)
	}
	raws := []json.RawMessage{body}
	if head.ResourceType == "Bundle" {
		raws = nil
		for _, e := range head.Entry {
			raws = append(raws, e.Resource)
		}
	}
	figs := func(ps []pop) (den, num string) {
		for _, p := range ps {
			if len(p.Code.Coding) != 1 || p.Code.Coding[0].System != "http://terminology.hl7.org/CodeSystem/measure-population" {
				t.Fatalf("population code %+v", p.Code)
			}
			v := ""
			switch {
			case p.Count != nil && p.XCount == nil:
				v = strconv.Itoa(*p.Count)
			case p.Count == nil && p.XCount != nil && len(p.XCount.Extension) == 1 &&
				p.XCount.Extension[0].URL == "http://hl7.org/fhir/StructureDefinition/data-absent-reason" &&
				p.XCount.Extension[0].ValueCode == "masked":
				v = "masked"
			default:
				t.Fatalf("population with neither a count nor a masked one: %+v", p)
			}
			switch p.Code.Coding[0].Code {
			case "denominator":
				den = v
			case "numerator":
				num = v
			default:
				t.Fatalf("population %s", p.Code.Coding[0].Code)
			}
		}
		return den, num
	}
	var out []string
	for _, raw := range raws {
		var r report
		if err := json.Unmarshal(raw, &r); err != nil {
			t.Fatal(err)
		}
		if r.ResourceType != "MeasureReport" || r.Type != "summary" || r.Measure != ops.AEMeasure {
			t.Fatalf("not a summary MeasureReport of %s: %s", ops.AEMeasure, raw)
		}
		for _, g := range r.Group {
			den, num := figs(g.Population)
			out = append(out, strings.Join([]string{r.Period.Start, r.Period.End, g.Code.Text, "", "", den, num}, ","))
			for _, st := range g.Stratifier {
				for _, s := range st.Stratum {
					den, num := figs(s.Population)
					out = append(out, strings.Join([]string{r.Period.Start, r.Period.End, g.Code.Text, st.Code[0].Text, s.Value.Text, den, num}, ","))
				}
			}
		}
	}
	return out
}

// aeLines is a report's lines as the tests write them: without the
// period, prefixed with it when several.
func aeLines(lines []string, withPeriod bool) []string {
	var out []string
	for _, l := range lines {
		if !withPeriod {
			l = strings.SplitN(l, ",", 3)[2]
		}
		out = append(out, l)
	}
	return out
}

func testAEReport(t *testing.T, newStore NewStore) {
	r := NewRegistry(t, newStore(t))
	AECohort(t, r)
	o := ops.New(ops.Options{Store: r.St, Policy: r.Pol})
	h1 := principal("h1", fhir.TenantHospital, fhir.RoleClinician)
	h2 := principal("h2", fhir.TenantHospital, fhir.RoleClinician)
	nhc := principal("nhc", fhir.TenantAuthority, fhir.RoleRegulator)
	ctx := context.Background()
	h1All := []string{
		"patients,,,3,2",
		"patients,relatedness,probably,3,1", "patients,relatedness,possibly,3,1", "patients,relatedness,unrelated,3,1",
		"patients,severity,mild,3,1", "patients,severity,moderate,3,1", "patients,severity,severe,3,1",
		"patients,route,colonic-tet,1,1", "patients,route,mid-gut-tet,2,1",
		"patients,indication,K50,2,1", "patients,indication,K51,1,1",
		// pa has two courses; pa1 and pa2 are one course.
		"courses,,,4,3",
		"courses,relatedness,probably,4,1", "courses,relatedness,possibly,4,1", "courses,relatedness,unrelated,4,1",
		"courses,severity,mild,4,1", "courses,severity,moderate,4,1", "courses,severity,severe,4,1",
		"courses,route,colonic-tet,2,2", "courses,route,mid-gut-tet,2,1",
		"courses,indication,K50,2,1", "courses,indication,K51,2,2",
		// ea1 suspects two procedures: both in the numerator.
		"procedures,,,6,4",
		"procedures,relatedness,probably,6,2", "procedures,relatedness,possibly,6,1", "procedures,relatedness,unrelated,6,1",
		"procedures,severity,mild,6,2", "procedures,severity,moderate,6,1", "procedures,severity,severe,6,1",
		"procedures,route,colonic-tet,3,3", "procedures,route,mid-gut-tet,3,1",
		"procedures,indication,K50,3,1", "procedures,indication,K51,3,3",
		// ... and is one event.
		"events,,,,3",
		"events,relatedness,probably,,1", "events,relatedness,possibly,,1", "events,relatedness,unrelated,,1",
		"events,severity,mild,,1", "events,severity,moderate,,1", "events,severity,severe,,1",
		"events,ctcae-grade,1,,1", "events,ctcae-grade,2,,1", "events,ctcae-grade,3,,1",
		"events,seriousness,Non-serious,,2", "events,seriousness,Serious,,1",
		"events,ae-term,diarrhoea,,1", "events,ae-term,fever,,1", "events,ae-term,vomiting,,1",
	}
	// What a line list holds for the given group (and its strata when
	// all).
	pick := func(lines []string, all bool, groups ...string) []string {
		var out []string
		for _, l := range lines {
			f := strings.Split(l, ",")
			for _, g := range groups {
				if f[len(f)-5] == g && (all || f[len(f)-4] == "") {
					out = append(out, l)
				}
			}
		}
		return out
	}
	for _, tc := range []struct {
		name       string
		p          *fhir.Principal
		params     url.Values
		withPeriod bool
		// totalsOnly compares the groups' own figures only.
		totalsOnly bool
		want       []string
	}{
		{name: "hospital, everything", p: h1, want: h1All},
		{name: "the other hospital sees only its own", p: h2, totalsOnly: true,
			want: []string{"patients,,,1,1", "courses,,,1,1", "procedures,,,1,1", "events,,,,1"}},
		// pa1 (31 January) and pc2 (2 April) are outside: ea1 counts
		// through pa2, ec1 not at all.
		{name: "a period cutting two courses", p: h1, params: url.Values{"start": {"2026-02-01"}, "end": {"2026-03-31"}},
			want: []string{
				"patients,,,3,1", "patients,relatedness,probably,3,1", "patients,relatedness,unrelated,3,1",
				"patients,severity,mild,3,1", "patients,severity,moderate,3,1",
				"patients,route,colonic-tet,1,1", "patients,route,mid-gut-tet,2,0",
				"patients,indication,K50,2,0", "patients,indication,K51,1,1",
				"courses,,,4,2", "courses,relatedness,probably,4,1", "courses,relatedness,unrelated,4,1",
				"courses,severity,mild,4,1", "courses,severity,moderate,4,1",
				"courses,route,colonic-tet,2,2", "courses,route,mid-gut-tet,2,0",
				"courses,indication,K50,2,0", "courses,indication,K51,2,2",
				"procedures,,,4,2", "procedures,relatedness,probably,4,1", "procedures,relatedness,unrelated,4,1",
				"procedures,severity,mild,4,1", "procedures,severity,moderate,4,1",
				"procedures,route,colonic-tet,2,2", "procedures,route,mid-gut-tet,2,0",
				"procedures,indication,K50,2,0", "procedures,indication,K51,2,2",
				"events,,,,2", "events,relatedness,probably,,1", "events,relatedness,unrelated,,1",
				"events,severity,mild,,1", "events,severity,moderate,,1",
				"events,ctcae-grade,1,,1", "events,ctcae-grade,2,,1",
				"events,seriousness,Non-serious,,2", "events,ae-term,diarrhoea,,1", "events,ae-term,fever,,1",
			}},
		// ea1's suspects fall in January and February: it counts in both.
		{name: "monthly intervals", p: h1, params: url.Values{"start": {"2026-01"}, "end": {"2026-04"}, "interval": {"month"}},
			withPeriod: true, totalsOnly: true, want: []string{
				"2026-01-01,2026-01-31,patients,,,1,1", "2026-01-01,2026-01-31,courses,,,1,1", "2026-01-01,2026-01-31,procedures,,,1,1", "2026-01-01,2026-01-31,events,,,,1",
				"2026-02-01,2026-02-28,patients,,,2,1", "2026-02-01,2026-02-28,courses,,,2,1", "2026-02-01,2026-02-28,procedures,,,2,1", "2026-02-01,2026-02-28,events,,,,1",
				"2026-03-01,2026-03-31,patients,,,2,1", "2026-03-01,2026-03-31,courses,,,2,1", "2026-03-01,2026-03-31,procedures,,,2,1", "2026-03-01,2026-03-31,events,,,,1",
				"2026-04-01,2026-04-30,patients,,,1,1", "2026-04-01,2026-04-30,courses,,,1,1", "2026-04-01,2026-04-30,procedures,,,1,1", "2026-04-01,2026-04-30,events,,,,1",
			}},
		// The first interval is clipped to start; ec1 (pc2, April) is in Q2.
		{name: "quarterly intervals", p: h1, params: url.Values{"start": {"2026-02-01"}, "end": {"2026-06-30"}, "interval": {"quarter"}},
			withPeriod: true, totalsOnly: true, want: []string{
				"2026-02-01,2026-03-31,patients,,,3,1", "2026-02-01,2026-03-31,courses,,,4,2", "2026-02-01,2026-03-31,procedures,,,4,2", "2026-02-01,2026-03-31,events,,,,2",
				"2026-04-01,2026-06-30,patients,,,1,1", "2026-04-01,2026-06-30,courses,,,1,1", "2026-04-01,2026-06-30,procedures,,,1,1", "2026-04-01,2026-06-30,events,,,,1",
			}},
		{name: "route", p: h1, params: url.Values{"route": {"colonic-tet"}}, totalsOnly: true,
			want: []string{"patients,,,1,1", "courses,,,2,2", "procedures,,,3,3", "events,,,,2"}},
		{name: "indication", p: h1, params: url.Values{"indication": {"http://hl7.org/fhir/sid/icd-10|K50"}}, totalsOnly: true,
			want: []string{"patients,,,2,1", "courses,,,2,1", "procedures,,,3,1", "events,,,,1"}},
		{name: "transplant type", p: h1, params: url.Values{"transplant-type": {"fmt-manual"}}, totalsOnly: true,
			want: []string{"patients,,,1,0", "courses,,,1,0", "procedures,,,1,0", "events,,,,0"}},
		// Every tenant: counts 1-4 masked, 0 and 5 up shown.
		{name: "the regulator", p: nhc, want: []string{
			"patients,,,masked,masked",
			"patients,relatedness,definitely,masked,masked", "patients,relatedness,probably,masked,masked",
			"patients,relatedness,possibly,masked,masked", "patients,relatedness,unrelated,masked,masked",
			"patients,severity,mild,masked,masked", "patients,severity,moderate,masked,masked", "patients,severity,severe,masked,masked",
			"patients,route,colonic-tet,masked,masked", "patients,route,enema,masked,masked", "patients,route,mid-gut-tet,masked,masked",
			"patients,indication,K50,masked,masked", "patients,indication,K51,masked,masked",
			"courses,,,5,masked",
			"courses,relatedness,definitely,5,masked", "courses,relatedness,probably,5,masked",
			"courses,relatedness,possibly,5,masked", "courses,relatedness,unrelated,5,masked",
			"courses,severity,mild,5,masked", "courses,severity,moderate,5,masked", "courses,severity,severe,5,masked",
			"courses,route,colonic-tet,masked,masked", "courses,route,enema,masked,masked", "courses,route,mid-gut-tet,masked,masked",
			"courses,indication,K50,masked,masked", "courses,indication,K51,masked,masked",
			"procedures,,,7,5",
			"procedures,relatedness,definitely,7,masked", "procedures,relatedness,probably,7,masked",
			"procedures,relatedness,possibly,7,masked", "procedures,relatedness,unrelated,7,masked",
			"procedures,severity,mild,7,masked", "procedures,severity,moderate,7,masked", "procedures,severity,severe,7,masked",
			"procedures,route,colonic-tet,masked,masked", "procedures,route,enema,masked,masked", "procedures,route,mid-gut-tet,masked,masked",
			"procedures,indication,K50,masked,masked", "procedures,indication,K51,masked,masked",
			"events,,,,masked",
			"events,relatedness,definitely,,masked", "events,relatedness,probably,,masked", "events,relatedness,possibly,,masked", "events,relatedness,unrelated,,masked",
			"events,severity,mild,,masked", "events,severity,moderate,,masked", "events,severity,severe,,masked",
			"events,ctcae-grade,1,,masked", "events,ctcae-grade,2,,masked", "events,ctcae-grade,3,,masked",
			"events,seriousness,Non-serious,,masked", "events,seriousness,Serious,,masked",
			"events,ae-term,bloating,,masked", "events,ae-term,diarrhoea,,masked", "events,ae-term,fever,,masked", "events,ae-term,vomiting,,masked",
		}},
		{name: "the regulator, nothing in the period", p: nhc, params: url.Values{"start": {"2025"}, "end": {"2025"}}, totalsOnly: true,
			want: []string{"patients,,,0,0", "courses,,,0,0", "procedures,,,0,0", "events,,,,0"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			q, err := ops.ParseAEQuery(tc.params)
			if err != nil {
				t.Fatal(err)
			}
			body, err := o.AEReport(ctx, tc.p, q, false)
			if err != nil {
				t.Fatal(err)
			}
			lines := Figures(t, body)
			got := aeLines(lines, tc.withPeriod)
			if tc.totalsOnly {
				got = pick(got, false, "patients", "courses", "procedures", "events")
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("figures (-want +got):\n%s", diff)
			}
			// The CSV holds the same figures.
			csv, err := o.AEReport(ctx, tc.p, q, true)
			if err != nil {
				t.Fatal(err)
			}
			rows := strings.Split(strings.TrimSuffix(string(csv), "\r\n"), "\r\n")
			if diff := cmp.Diff(append([]string{"period_start,period_end,group,stratifier,stratum,denominator,numerator"}, lines...), rows); diff != "" {
				t.Errorf("CSV (-want +got):\n%s", diff)
			}
		})
	}
	for _, bad := range []url.Values{{"start": {"yesterday"}}, {"interval": {"week"}}, {"start": {"2026-03"}, "end": {"2026-01"}}} {
		if _, err := ops.ParseAEQuery(bad); err == nil {
			t.Errorf("ParseAEQuery(%v): want an error", bad)
		}
	}
}
