package profiles

import (
	"context"
	"encoding/json"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// at walks a dotted path with [i] indexes ("extension[0].valueCode") to the
// map that holds its last segment.
func at(t *testing.T, m map[string]any, path string) (map[string]any, string) {
	t.Helper()
	segs := strings.Split(path, ".")
	cur := m
	for _, seg := range segs[:len(segs)-1] {
		name, idx, hasIdx := strings.Cut(strings.TrimSuffix(seg, "]"), "[")
		next := cur[name]
		if hasIdx {
			i, _ := strconv.Atoi(idx)
			arr, _ := next.([]any)
			if i >= len(arr) {
				t.Fatalf("no %s in %s", seg, path)
			}
			next = arr[i]
		}
		nm, ok := next.(map[string]any)
		if !ok {
			t.Fatalf("%s: %s is not an object", path, seg)
		}
		cur = nm
	}
	return cur, segs[len(segs)-1]
}

func set(path string, v any) func(*testing.T, map[string]any) {
	return func(t *testing.T, m map[string]any) {
		obj, k := at(t, m, path)
		if s, ok := v.(string); ok && strings.HasPrefix(s, "{") || strings.HasPrefix(fmtAny(v), "[") {
			var x any
			if err := json.Unmarshal([]byte(v.(string)), &x); err != nil {
				t.Fatal(err)
			}
			v = x
		}
		if name, idx, ok := strings.Cut(strings.TrimSuffix(k, "]"), "["); ok {
			i, _ := strconv.Atoi(idx)
			obj[name].([]any)[i] = v
			return
		}
		obj[k] = v
	}
}

func fmtAny(v any) string { s, _ := v.(string); return s }

func del(path string) func(*testing.T, map[string]any) {
	return func(t *testing.T, m map[string]any) {
		obj, k := at(t, m, path)
		if name, idx, ok := strings.Cut(strings.TrimSuffix(k, "]"), "["); ok {
			i, _ := strconv.Atoi(idx)
			arr := obj[name].([]any)
			obj[name] = append(arr[:i:i], arr[i+1:]...)
			return
		}
		delete(obj, k)
	}
}

const sd = Canonical + "/StructureDefinition/"

// mapResolver is the store as the validator sees it, over fixed resources.
type mapResolver map[string]map[string]any

func (r mapResolver) Resolve(_ context.Context, typ, id string) (map[string]any, error) {
	return r[typ+"/"+id], nil
}

// TestBrokenResources breaks the valid examples one way each, and checks
// the validator reports an error exactly where the break is, and nowhere
// else.
func TestBrokenResources(t *testing.T) {
	t.Parallel()
	defs := shipped(t)
	procedure := readExample(t, "Procedure-procedure-1.json")
	v := NewValidator(defs, mapResolver{"Procedure/procedure-1": procedure})
	type edit = func(*testing.T, map[string]any)
	cases := []struct {
		name, file string
		edits      []edit
		want       []string
	}{
		{"procedure without route", "Procedure-procedure-1.json", []edit{del("extension[0]")}, []string{"Procedure.extension('" + sd + "route')"}},
		{"procedure route not in value set", "Procedure-procedure-1.json", []edit{set("extension[0].valueCode", "teleport")}, []string{"Procedure.extension[0].value"}},
		{"procedure with two routes", "Procedure-procedure-1.json", []edit{set("extension[1]", `{"url":"`+sd+`route","valueCode":"enema"}`)}, []string{"Procedure.extension('" + sd + "product-lot')", "Procedure.extension('" + sd + "route')"}},
		{"product lot pointing at a Patient", "Procedure-procedure-1.json", []edit{set("extension[1].valueReference.reference", "Patient/x")}, []string{"Procedure.extension[1].value.reference"}},
		{"dose in mL", "Procedure-procedure-1.json", []edit{set("extension[2].valueQuantity.unit", "mL")}, []string{"Procedure.extension[2].value"}},
		{"course 0", "Procedure-procedure-1.json", []edit{set("extension[3].valuePositiveInt", json.Number("0"))}, []string{"Procedure.extension[3].value"}},
		{"session as a string", "Procedure-procedure-1.json", []edit{set("extension[4].valuePositiveInt", "1")}, []string{"Procedure.extension[4].value"}},
		{"procedure without status", "Procedure-procedure-1.json", []edit{del("status")}, []string{"Procedure.status"}},
		{"procedure status not an event status", "Procedure-procedure-1.json", []edit{set("status", "done")}, []string{"Procedure.status"}},
		{"procedure code from SNOMED CT", "Procedure-procedure-1.json", []edit{set("code", `{"coding":[{"system":"http://snomed.info/sct","code":"789778002"}]}`)}, []string{"Procedure.code"}},
		{"procedure without code", "Procedure-procedure-1.json", []edit{del("code")}, []string{"Procedure.code"}},
		{"procedure performed as a period", "Procedure-procedure-1.json", []edit{del("performedDateTime"), set("performedPeriod", `{"start":"2026-04-15"}`)}, []string{"Procedure.performed", "Procedure.performed"}},
		{"procedure performed on month 13", "Procedure-procedure-1.json", []edit{set("performedDateTime", "2026-13-01")}, []string{"Procedure.performed"}},
		{"procedure subject a Group", "Procedure-procedure-1.json", []edit{set("subject.reference", "Group/g1")}, []string{"Procedure.subject.reference"}},
		{"procedure without reason", "Procedure-procedure-1.json", []edit{del("reasonReference")}, []string{"Procedure.reasonReference"}},
		{"procedure reason an Observation", "Procedure-procedure-1.json", []edit{set("reasonReference[0].reference", "Observation/o1")}, []string{"Procedure.reasonReference[0].reference"}},
		{"procedure with an unknown element", "Procedure-procedure-1.json", []edit{set("colour", "brown")}, []string{"Procedure.colour"}},
		{"ctcae grade 6", "AdverseEvent-ae-1.json", []edit{set("extension[0].valueInteger", json.Number("6"))}, []string{"AdverseEvent.extension[0]"}},
		{"grade 5 not fatal, not serious", "AdverseEvent-ae-1.json", []edit{set("extension[0].valueInteger", json.Number("5")), set("severity.coding[0].code", "severe")}, []string{"AdverseEvent.outcome", "AdverseEvent.seriousness"}},
		{"grade 1 severe", "AdverseEvent-ae-1.json", []edit{set("severity.coding[0].code", "severe")}, []string{"AdverseEvent.severity"}},
		{"grade 3 mild", "AdverseEvent-ae-1.json", []edit{set("extension[0].valueInteger", json.Number("3"))}, []string{"AdverseEvent.severity"}},
		{"potential event", "AdverseEvent-ae-1.json", []edit{set("actuality", "potential")}, []string{"AdverseEvent.actuality"}},
		{"no event", "AdverseEvent-ae-1.json", []edit{del("event")}, []string{"AdverseEvent.event"}},
		{"event without an ae-term coding", "AdverseEvent-ae-1.json", []edit{set("event.coding[0].system", "http://snomed.info/sct")}, []string{"AdverseEvent.event.coding.where(system = '" + Canonical + "/CodeSystem/ae-term')"}},
		{"ae-term code unknown", "AdverseEvent-ae-1.json", []edit{set("event.coding[0].code", "headache")}, []string{"AdverseEvent.event.coding[0]"}},
		{"no suspect entity", "AdverseEvent-ae-1.json", []edit{del("suspectEntity")}, []string{"AdverseEvent.suspectEntity"}},
		{"suspect a Medication", "AdverseEvent-ae-1.json", []edit{set("suspectEntity[0].instance.reference", "Medication/m1")}, []string{"AdverseEvent.suspectEntity[0].instance.reference"}},
		{"causality in WHO-UMC terms", "AdverseEvent-ae-1.json", []edit{set("suspectEntity[0].causality[0].assessment.coding[0]", `{"system":"http://terminology.hl7.org/CodeSystem/adverse-event-causality-assess","code":"Certain"}`)}, []string{"AdverseEvent.suspectEntity[0].causality[0].assessment"}},
		{"no causality", "AdverseEvent-ae-1.json", []edit{del("suspectEntity[0].causality")}, []string{"AdverseEvent.suspectEntity[0].causality"}},
		{"severity critical", "AdverseEvent-ae-1.json", []edit{set("severity.coding[0].code", "critical")}, []string{"AdverseEvent.severity"}},
		{"no outcome", "AdverseEvent-ae-1.json", []edit{del("outcome")}, []string{"AdverseEvent.outcome"}},
		{"no onset date", "AdverseEvent-ae-1.json", []edit{del("date")}, []string{"AdverseEvent.date"}},
		{"ctcae grade as a string", "AdverseEvent-ae-1.json", []edit{del("extension[0].valueInteger"), set("extension[0].valueString", "1")}, []string{"AdverseEvent.extension[0].value", "AdverseEvent.extension[0].value"}},
		{"event before its procedure", "AdverseEvent-ae-1.json", []edit{set("date", "2026-04-14T20:00:00+08:00")}, []string{"AdverseEvent.date"}},
		{"donor without donor code", "Patient-donor-d000123.json", []edit{set("identifier[0].system", Canonical+"/sid/recipient-code")}, []string{"Patient.identifier.where(system = '" + Canonical + "/sid/donor-code')"}},
		{"donor status unknown", "Patient-donor-d000123.json", []edit{set("extension[0].valueCode", "retired")}, []string{"Patient.extension[0].value"}},
		{"donor without status", "Patient-donor-d000123.json", []edit{del("extension")}, []string{"Patient.extension('" + sd + "donor-status')"}},
		{"recipient without birth date", "Patient-recipient-r0001.json", []edit{del("birthDate")}, []string{"Patient.birthDate"}},
		{"recipient gender man", "Patient-recipient-r0001.json", []edit{set("gender", "man")}, []string{"Patient.gender"}},
		{"financial hardship as text", "Patient-recipient-r0001.json", []edit{del("extension[0].valueBoolean"), set("extension[0].valueString", "yes")}, []string{"Patient.extension[0].value", "Patient.extension[0].value"}},
		{"lot status approved", "Specimen-product-l1.json", []edit{set("extension[0].valueCode", "approved")}, []string{"Specimen.extension[0].value"}},
		{"lot without status date", "Specimen-product-l1.json", []edit{del("extension[1]")}, []string{"Specimen.extension('" + sd + "status-date')"}},
		{"lot without parent donation", "Specimen-product-l1.json", []edit{del("parent")}, []string{"Specimen.parent"}},
		{"lot parent a Patient", "Specimen-product-l1.json", []edit{set("parent[0].reference", "Patient/p")}, []string{"Specimen.parent[0].reference"}},
		{"lot boiled", "Specimen-product-l1.json", []edit{set("processing[1].procedure.coding[0].code", "boil")}, []string{"Specimen.processing[1].procedure"}},
		{"lot of pills", "Specimen-product-l1.json", []edit{set("type.coding[0].code", "wmt-pill")}, []string{"Specimen.type"}},
		{"donation id of another system", "Specimen-donation-1.json", []edit{set("accessionIdentifier.system", "urn:example")}, []string{"Specimen.accessionIdentifier"}},
		{"donation collected over a period", "Specimen-donation-1.json", []edit{del("collection.collectedDateTime"), set("collection.collectedPeriod", `{"start":"2026-04-12"}`)}, []string{"Specimen.collection.collected", "Specimen.collection.collected"}},
		{"follow-up week 3", "Observation-efficacy-1.json", []edit{set("extension[0].valueCode", "w3")}, []string{"Observation.extension[0].value"}},
		{"efficacy without focus", "Observation-efficacy-1.json", []edit{del("focus")}, []string{"Observation.focus"}},
		{"efficacy without value", "Observation-efficacy-1.json", []edit{del("valueInteger")}, []string{"Observation.value"}},
		{"qc without value or interpretation", "Observation-qc-1.json", []edit{del("valueQuantity")}, []string{"Observation"}},
		{"screening of a recipient's specimen subject Group", "Observation-screening-1.json", []edit{set("subject.reference", "Group/g")}, []string{"Observation.subject.reference"}},
		{"indication with an invented local code", "Condition-indication-1.json", []edit{set("code.coding[0]", `{"system":"`+Canonical+`/CodeSystem/other-indication","code":"gout"}`)}, []string{"Condition.code"}},
		{"consultation as a plan", "Task-consultation-1.json", []edit{set("intent", "plan")}, []string{"Task.intent"}},
		{"consultation owned by a Patient", "Task-consultation-1.json", []edit{set("owner.reference", "Patient/p")}, []string{"Task.owner.reference"}},
		{"risk over a period", "RiskAssessment-risk-1.json", []edit{del("occurrenceDateTime"), set("occurrencePeriod", `{"start":"2026-04-14"}`)}, []string{"RiskAssessment.occurrence", "RiskAssessment.occurrence"}},
	}
	if len(cases) < 40 {
		t.Fatalf("only %d cases", len(cases))
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			res := readExample(t, c.file)
			for _, e := range c.edits {
				e(t, res)
			}
			profile := res["meta"].(map[string]any)["profile"].([]any)[0].(string)
			issues, err := v.Validate(context.Background(), res, profile)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, is := range errorsOf(issues) {
				got = append(got, is.Expression[0])
				if is.Message.EN == "" || is.Message.ZH == "" {
					t.Errorf("%s: message not in both languages: %+v", is.Expression[0], is.Message)
				}
			}
			sort.Strings(got)
			if diff := cmp.Diff(c.want, got); diff != "" {
				t.Errorf("error locations (-want +got):\n%s\nissues: %+v", diff, issues)
			}
		})
	}
}

// TestExtensibleBinding: an ICD-10 code outside the indication value set is
// a warning (the binding is extensible), not an error.
func TestExtensibleBinding(t *testing.T) {
	t.Parallel()
	v := NewValidator(shipped(t), nil)
	res := readExample(t, "Condition-indication-1.json")
	res["code"] = map[string]any{"coding": []any{map[string]any{"system": "http://hl7.org/fhir/sid/icd-10", "code": "K52.9"}}}
	issues, err := v.Validate(context.Background(), res, sd+"cmts-indication")
	if err != nil {
		t.Fatal(err)
	}
	var warned bool
	for _, is := range issues {
		if is.Severity == "error" {
			t.Errorf("error %s: %s", is.Expression[0], is.Message.EN)
		}
		if is.Severity == "warning" && is.Expression[0] == "Condition.code" {
			warned = true
		}
	}
	if !warned {
		t.Errorf("no warning at Condition.code: %+v", issues)
	}
}
