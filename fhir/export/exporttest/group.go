package exporttest

import (
	"context"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/fmtbank/cmts/store"
)

// putGroup stores a Group of tenant.
func putGroup(t *testing.T, e *env, tenant, id, body string) {
	t.Helper()
	b := []byte(body)
	idx, err := e.r.Engine.Entries("Group", b)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.r.St.Put(context.Background(), store.Write{Version: store.Version{Tenant: tenant, Type: "Group", ID: id, VersionID: 1,
		LastUpdated: time.Now().UTC(), Resource: b, Index: idx, Method: "PUT"}}); err != nil {
		t.Fatal(err)
	}
}

const (
	diagnosis = `"code":{"coding":[{"system":"http://snomed.info/sct","code":"439401001"}]}`
	icd10     = "http://hl7.org/fhir/sid/icd-10"
)

func param(name string) string {
	return `"code":{"coding":[{"system":"http://hl7.org/fhir/SearchParameter","code":"` + name + `"}]}`
}

// testGroupCharacteristics: a Group defined by characteristics covers the
// Patients the caller sees that match them all (a diagnosis: a Condition
// with the code; a Patient search parameter: its value) and their
// compartments; a characteristic outside that subset is a 400.
func testGroupCharacteristics(t *testing.T, b backend) {
	e := newEnv(t, b, setup{maxJobs: 100})
	e.r.Indication("h2", "c2", "r2", "A04.7")
	e.r.Indication("h2", "c3", "r3", "K50.9")
	e.r.Indication("h1", "c1", "r1", "A04.7")
	for _, tc := range []struct {
		name, characteristics string
		patients, procedures  []string
	}{
		{"diagnosis", `{` + diagnosis + `,"valueCodeableConcept":{"coding":[{"system":"` + icd10 + `","code":"A04.7"}]},"exclude":false}`,
			[]string{"r2"}, []string{"p2"}},
		{"gender and not an identifier", `{` + param("gender") + `,"valueCodeableConcept":{"coding":[{"code":"female"}]},"exclude":false},` +
			`{` + param("identifier") + `,"valueCodeableConcept":{"coding":[{"system":"http://fmtbank.org/fhir/sid/recipient-code","code":"R-r4"}]},"exclude":true}`,
			[]string{"r2", "r3"}, []string{"p2", "p3"}},
		{"diagnosis and gender", `{` + diagnosis + `,"valueCodeableConcept":{"coding":[{"system":"` + icd10 + `","code":"K50.9"}]},"exclude":false},` +
			`{` + param("gender") + `,"valueCodeableConcept":{"coding":[{"code":"female"}]},"exclude":false}`,
			[]string{"r3"}, []string{"p3"}},
		{"active", `{` + param("active") + `,"valueBoolean":true,"exclude":false}`, nil, nil},
	} {
		id := strings.ReplaceAll(tc.name, " ", "-")
		putGroup(t, e, "h2", id, `{"resourceType":"Group","id":"`+id+`","type":"person","actual":false,"characteristic":[`+tc.characteristics+`]}`)
		got := e.download("h2", e.poll("h2", e.kickoff("h2", "/Group/"+id+"/$export?_type=Patient,Procedure")), "output")
		if g := ids(got["Patient"]); !slices.Equal(tc.patients, g) {
			t.Errorf("%s: Patients: want %v, got %v", tc.name, tc.patients, g)
		}
		if g := ids(got["Procedure"]); !slices.Equal(tc.procedures, g) {
			t.Errorf("%s: Procedures: want %v, got %v", tc.name, tc.procedures, g)
		}
	}
	h := append(slices.Clone(kickoffHeaders), "Authorization", "Bearer h2")
	for i, c := range []string{
		`{` + diagnosis + `,"valueRange":{"low":{"value":1}},"exclude":false}`,
		`{"code":{"coding":[{"system":"http://loinc.org","code":"8302-2"}]},"valueQuantity":{"value":170},"exclude":false}`,
		`{` + param("nosuchparam") + `,"valueBoolean":true,"exclude":false}`,
		`{` + param("birthdate") + `,"valueReference":{"reference":"Patient/r2"},"exclude":true}`,
		`{` + diagnosis + `,"valueCodeableConcept":{"coding":[{"code":"A04.7"}]},"exclude":true}`,
	} {
		id := "bad" + string(rune('a'+i))
		putGroup(t, e, "h2", id, `{"resourceType":"Group","id":"`+id+`","type":"person","actual":false,"characteristic":[`+c+`]}`)
		res := e.c.Do(http.MethodGet, "/Group/"+id+"/$export", nil, h...)
		if res.Status != http.StatusBadRequest || res.JSON(t)["resourceType"] != "OperationOutcome" {
			t.Errorf("%s: want 400 with an OperationOutcome, got %d %s", c, res.Status, res.Body)
		}
	}
}

// testGroupGone: a Group deleted between the kick-off and the run fails
// the job; the status URL answers 500 with an OperationOutcome saying so.
func testGroupGone(t *testing.T, b backend) {
	e := newEnv(t, b, setup{noWorker: true})
	putGroup(t, e, "h2", "g1", `{"resourceType":"Group","id":"g1","type":"person","actual":true,"member":[{"entity":{"reference":"Patient/r2"}}]}`)
	status := e.kickoff("h2", "/Group/g1/$export?_type=Patient")
	next(t, e.r, "Group", "g1", nil)
	if err := e.ex.Step(context.Background()); err != nil {
		t.Fatal(err)
	}
	res := e.c.Do(http.MethodGet, status, nil, "Authorization", "Bearer h2")
	if res.Status != http.StatusInternalServerError || res.JSON(t)["resourceType"] != "OperationOutcome" ||
		!strings.Contains(string(res.Body), "Group/g1") {
		t.Errorf("status of a job whose Group is gone: want 500 naming Group/g1, got %d %s", res.Status, res.Body)
	}
}
