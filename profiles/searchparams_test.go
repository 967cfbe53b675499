package profiles

import (
	"net/url"
	"os"
	"sort"
	"testing"

	"github.com/fmtbank/cmts/fhir/search"
	"github.com/google/go-cmp/cmp"
)

// TestSearchParameters checks the registry indexes the guide's parameters on
// the examples, and parses chains through them.
func TestSearchParameters(t *testing.T) {
	t.Parallel()
	sps, err := SearchParameters()
	if err != nil {
		t.Fatal(err)
	}
	if len(sps) != 7 {
		t.Fatalf("%d search parameters, want 7", len(sps))
	}
	engine, err := search.New(sps...)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		file, typ string
		want      []string // param=system|code|value
	}{
		{"Procedure-procedure-1.json", "Procedure", []string{"course=number", "product-lot=Specimen|product-l1", "route=|colonic-tet"}},
		{"AdverseEvent-ae-1.json", "AdverseEvent", []string{"ctcae-grade=number", "relatedness=" + Canonical + "/CodeSystem/relatedness|possibly"}},
		{"Specimen-product-l1.json", "Specimen", []string{"release-status=|released"}},
		{"Observation-efficacy-1.json", "Observation", []string{"follow-up=|w12"}},
	} {
		b, err := os.ReadFile("examples/" + c.file)
		if err != nil {
			t.Fatal(err)
		}
		entries, err := engine.Entries(c.typ, b)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, e := range entries {
			switch e.Param {
			case "course", "product-lot", "route", "ctcae-grade", "relatedness", "release-status", "follow-up":
				if e.Kind == "number" {
					if e.Low == "" || e.Low != e.High {
						t.Errorf("%s: %s is not one number: %+v", c.file, e.Param, e)
					}
					got = append(got, e.Param+"=number")
					continue
				}
				got = append(got, e.Param+"="+e.System+"|"+e.Code)
			}
		}
		sort.Strings(got)
		if diff := cmp.Diff(c.want, got); diff != "" {
			t.Errorf("%s entries (-want +got):\n%s\nall: %+v", c.file, diff, entries)
		}
	}
	for _, q := range []struct{ typ, query string }{
		{"Procedure", "product-lot.identifier=L-2026-0412-01"},
		{"Procedure", "product-lot:Specimen.subject:Patient.identifier=http://fmtbank.org/fhir/sid/donor-code|D-000123"},
		// As wmt-ig.md writes it: identifier is a token on every target of
		// Specimen.subject, so the chain is their union.
		{"Procedure", "product-lot:Specimen.subject.identifier=http://fmtbank.org/fhir/sid/donor-code|D-000123"},
		{"AdverseEvent", "substance:Procedure.product-lot=Specimen/x"},
		{"Procedure", "course=ge2&_sort=-course"},
		{"Procedure", "_include=Procedure:product-lot"},
		{"Specimen", "release-status=recalled"},
	} {
		params, _ := url.ParseQuery(q.query)
		if _, err := engine.Parse(q.typ, params, true); err != nil {
			t.Errorf("%s?%s: %v", q.typ, q.query, err)
		}
	}
}
