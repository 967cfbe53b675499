package fhirpath

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func decode(t *testing.T, s string) any {
	t.Helper()
	d := json.NewDecoder(strings.NewReader(s))
	d.UseNumber()
	var v any
	if err := d.Decode(&v); err != nil {
		t.Fatal(err)
	}
	return v
}

const observation = `{
  "resourceType": "Observation", "id": "o1",
  "meta": {"lastUpdated": "2020-01-01T00:00:00Z", "tag": [{"system": "s", "code": "t"}]},
  "status": "final",
  "code": {"coding": [{"system": "http://loinc.org", "code": "85354-9"}]},
  "subject": {"reference": "Patient/p1"},
  "performer": [{"reference": "Practitioner/pr1"}, {"reference": "#org"}, {"reference": "urn:uuid:1", "type": "RelatedPerson"}, {"display": "nobody"}],
  "contained": [{"resourceType": "Organization", "id": "org"}],
  "effectiveDateTime": "2020-02-03",
  "valueQuantity": {"value": 1.50, "unit": "mg"},
  "extension": [{"url": "http://e/a", "valueString": "A"}, {"url": "http://e/b", "valueBoolean": true}],
  "component": [
    {"code": {"text": "sys"}, "valueQuantity": {"value": 120}},
    {"code": {"text": "dia"}, "valueQuantity": {"value": 80}},
    {"code": {"text": "note"}, "valueString": "x"},
    {"code": {"text": "cc"}, "valueCodeableConcept": {"text": "cc"}}
  ],
  "note": [{"text": "n1"}, {"text": "n2"}],
  "issued": "2020-02-03T10:00:00Z",
  "_issued": {"extension": [{"url": "http://e/issued", "valueCode": "late"}]}
}`

const patient = `{
  "resourceType": "Patient", "id": "p1",
  "active": true,
  "deceasedBoolean": false,
  "name": [{"given": ["Ann", null, "Bee"], "_given": [null, {"extension": [{"url": "http://e/g", "valueString": "hidden"}]}, null], "family": "Doe"}],
  "telecom": [{"system": "phone", "value": "1"}, {"system": "email", "value": "a@b"}, {"system": "phone", "value": "2"}],
  "birthDate": "1970-01-01"
}`

func TestEvaluate(t *testing.T) {
	obs := decode(t, observation)
	pat := decode(t, patient)
	tests := []struct {
		name     string
		resource any
		expr     string
		want     string // JSON array of the result values
		types    []string
	}{
		{"path", obs, "Observation.status", `["final"]`, nil},
		{"type filter other type", obs, "Patient.name", `[]`, nil},
		{"Resource type", obs, "Resource.id", `["o1"]`, nil},
		{"DomainResource type", obs, "DomainResource.meta.tag.code", `["t"]`, nil},
		{"no type prefix", obs, "status", `["final"]`, nil},
		{"nested arrays flatten", obs, "Observation.code.coding.code", `["85354-9"]`, nil},
		{"choice", obs, "Observation.value", `[{"unit":"mg","value":1.5}]`, []string{"Quantity"}},
		{"choice primitive type name", obs, "Observation.effective", `["2020-02-03"]`, []string{"dateTime"}},
		{"choice over array", obs, "Observation.component.value", `[{"value":120},{"value":80},"x",{"text":"cc"}]`,
			[]string{"Quantity", "Quantity", "string", "CodeableConcept"}},
		{"direct choice key", obs, "Observation.valueQuantity.unit", `["mg"]`, nil},
		{"as operator", obs, "(Observation.value as Quantity).unit", `["mg"]`, nil},
		{"as filters many", obs, "(Observation.component.value as Quantity)", `[{"value":120},{"value":80}]`, nil},
		{"as function", obs, "Observation.component.value.as(string)", `["x"]`, nil},
		{"as no match", obs, "Observation.value as Period", `[]`, nil},
		{"as subtype", decode(t, `{"resourceType":"Condition","onsetAge":{"value":3}}`), "Condition.onset as Quantity", `[{"value":3}]`, []string{"Age"}},
		{"as FHIR namespace", obs, "Observation.effective as FHIR.dateTime", `["2020-02-03"]`, nil},
		{"is", obs, "Observation.value is Quantity", `[true]`, nil},
		{"is false", obs, "Observation.value is Range", `[false]`, nil},
		{"is empty", obs, "Observation.missing is Range", `[]`, nil},
		{"string is uri subtype", decode(t, `{"resourceType":"ConceptMap","sourceCanonical":"http://vs"}`), "(ConceptMap.source as uri)", `["http://vs"]`, []string{"canonical"}},
		{"ofType", obs, "Observation.component.value.ofType(CodeableConcept).text", `["cc"]`, nil},
		{"where equals", pat, "Patient.telecom.where(system='email').value", `["a@b"]`, nil},
		{"where not equals", pat, "Patient.telecom.where(system!='email').value", `["1","2"]`, nil},
		{"where and", pat, "Patient.telecom.where(system='phone' and value='2').value", `["2"]`, nil},
		{"where or", pat, "Patient.telecom.where(system='email' or value='2').value", `["a@b","2"]`, nil},
		{"where $this", pat, "Patient.telecom.value.where($this = '1')", `["1"]`, nil},
		{"where exists", obs, "Observation.component.where(value.exists()).code.text", `["sys","dia","note","cc"]`, nil},
		{"exists with criteria", pat, "Patient.telecom.exists(system='email')", `[true]`, nil},
		{"exists false", pat, "Patient.photo.exists()", `[false]`, nil},
		{"empty", pat, "Patient.photo.empty()", `[true]`, nil},
		{"not", pat, "Patient.active.not()", `[false]`, nil},
		{"first", obs, "Observation.note.first().text", `["n1"]`, nil},
		{"last", obs, "Observation.note.last().text", `["n2"]`, nil},
		{"tail", obs, "Observation.note.tail().text", `["n2"]`, nil},
		{"count", obs, "Observation.note.count()", `[2]`, nil},
		{"indexer", obs, "Observation.component[1].value.value", `[80]`, nil},
		{"indexer out of range", obs, "Observation.component[9]", `[]`, nil},
		{"union", pat, "Patient.telecom.system | Patient.telecom.system", `["phone","email"]`, nil},
		{"union across types", pat, "Observation.code | Patient.birthDate", `["1970-01-01"]`, nil},
		{"combine keeps duplicates", pat, "Patient.telecom.system.combine(Patient.telecom.system).count()", `[6]`, nil},
		{"distinct", pat, "Patient.telecom.system.distinct()", `["phone","email"]`, nil},
		{"select", obs, "Observation.component.select(code.text)", `["sys","dia","note","cc"]`, nil},
		{"all", obs, "Observation.note.all(text.exists())", `[true]`, nil},
		{"deceased", pat, "Patient.deceased.exists() and Patient.deceased != false", `[false]`, nil},
		{"deceased dateTime", decode(t, `{"resourceType":"Patient","deceasedDateTime":"2020"}`), "Patient.deceased.exists() and Patient.deceased != false", `[true]`, nil},
		{"and with empty", pat, "Patient.photo.exists() and {}", `[false]`, nil},
		{"or with empty", pat, "{} or Patient.active", `[true]`, nil},
		{"or empty", pat, "{} or {}", `[]`, nil},
		{"xor", pat, "true xor false", `[true]`, nil},
		{"implies", pat, "false implies {}", `[true]`, nil},
		{"equality decimal", obs, "Observation.value.value = 1.5", `[true]`, nil},
		{"equality empty", obs, "Observation.missing = 1", `[]`, nil},
		{"equality objects", obs, "Observation.code = Observation.code", `[true]`, nil},
		{"comparison", obs, "Observation.component.value.value.where($this > 100)", `[120]`, nil},
		{"string comparison", pat, "Patient.birthDate < '1980'", `[true]`, nil},
		{"negative number", obs, "Observation.component.value.value.where($this > -1).count()", `[2]`, nil},
		{"extension()", obs, "Observation.extension('http://e/a').value", `["A"]`, []string{"string"}},
		{"extension() type", obs, "Observation.extension('http://e/b')", `[{"url":"http://e/b","valueBoolean":true}]`, []string{"Extension"}},
		{"extension.where", obs, "Observation.extension.where(url='http://e/b').value", `[true]`, nil},
		{"primitive extension", obs, "Observation.issued.extension('http://e/issued').value", `["late"]`, nil},
		{"primitive array extension", pat, "Patient.name.given.extension('http://e/g').value", `["hidden"]`, nil},
		{"null primitives dropped", pat, "Patient.name.given", `["Ann","Bee"]`, nil},
		{"hasExtension", obs, "Observation.where(hasExtension('http://e/a')).id", `["o1"]`, nil},
		{"hasExtension false", obs, "Observation.hasExtension('http://e/none')", `[false]`, nil},
		{"resolve is", obs, "Observation.subject.where(resolve() is Patient)", `[{"reference":"Patient/p1"}]`, nil},
		{"resolve is not", obs, "Observation.performer.where(resolve() is Patient)", `[]`, nil},
		{"resolve is Practitioner", obs, "Observation.performer.where(resolve() is Practitioner).reference", `["Practitioner/pr1"]`, nil},
		{"resolve contained", obs, "Observation.performer.resolve()", `[{"id":"pr1","resourceType":"Practitioner"},{"id":"org","resourceType":"Organization"},{"resourceType":"RelatedPerson"}]`,
			[]string{"Practitioner", "Organization", "RelatedPerson"}},
		{"resolve absolute url", decode(t, `{"resourceType":"Observation","subject":{"reference":"http://x/fhir/Group/g1/_history/2"}}`), "Observation.subject.resolve()", `[{"id":"g1","resourceType":"Group"}]`, nil},
		{"resolve conditional", decode(t, `{"resourceType":"Observation","subject":{"reference":"Patient?identifier=a|b"}}`), "Observation.subject.where(resolve() is Patient).exists()", `[true]`, nil},
		{"resolve is Resource", obs, "Observation.subject.resolve() is Resource", `[true]`, nil},
		{"resolve bundle entry", decode(t, `{"resourceType":"Bundle","entry":[{"fullUrl":"urn:uuid:9","resource":{"resourceType":"Patient","id":"x"}},{"resource":{"resourceType":"Observation","subject":{"reference":"urn:uuid:9"}}}]}`),
			"Bundle.entry.resource.subject.where(resolve() is Patient).reference", `["urn:uuid:9"]`, nil},
		{"bundle first entry", decode(t, `{"resourceType":"Bundle","entry":[{"resource":{"resourceType":"Composition","id":"c"}}]}`), "Bundle.entry[0].resource", `[{"id":"c","resourceType":"Composition"}]`, []string{"Composition"}},
		{"resource type member", obs, "Observation.contained.Organization.id", `["org"]`, nil},
		{"%resource", obs, "Observation.component.where(%resource.status = 'final').count()", `[4]`, nil},
		{"whole resource", obs, "Observation.id | %resource.id", `["o1"]`, nil},
		{"literals", obs, "'a\\'b' | true | 2 | 2.50 | @2020-01-01 | @2020-01-01T10:00:00Z | @T10:00", `["a'b",true,2,2.5,"2020-01-01","2020-01-01T10:00:00Z","10:00"]`,
			[]string{"System.String", "System.Boolean", "System.Integer", "System.Decimal", "System.Date", "System.DateTime", "System.Time"}},
		{"delimited identifier", obs, "Observation.`status`", `["final"]`, nil},
		{"comment", obs, "Observation.status // trailing\n", `["final"]`, nil},
		{"startsWith", obs, "Observation.subject.reference.startsWith('Patient/')", `[true]`, nil},
		{"contains function", obs, "Observation.subject.reference.contains('p1')", `[true]`, nil},
		{"hasValue", obs, "Observation.status.hasValue()", `[true]`, nil},
		{"missing element", obs, "Observation.nothing.here", `[]`, nil},
		{"absent id", decode(t, `{"resourceType":"Basic"}`), "Basic.id", `[]`, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e, err := Parse(tc.expr)
			if err != nil {
				t.Fatalf("Parse(%q): %v", tc.expr, err)
			}
			got, err := e.Evaluate(tc.resource)
			if err != nil {
				t.Fatalf("Evaluate(%q): %v", tc.expr, err)
			}
			var want []any
			if err := json.Unmarshal([]byte(tc.want), &want); err != nil {
				t.Fatal(err)
			}
			var gotC, wantC []string
			for _, n := range got {
				gotC = append(gotC, string(Canonical(n.Value)))
			}
			for _, w := range want {
				wantC = append(wantC, string(Canonical(w)))
			}
			if diff := cmp.Diff(wantC, gotC); diff != "" {
				t.Errorf("%s: values (-want +got):\n%s", tc.expr, diff)
			}
			if tc.types != nil {
				var types []string
				for _, n := range got {
					types = append(types, n.Type)
				}
				if diff := cmp.Diff(tc.types, types); diff != "" {
					t.Errorf("%s: types (-want +got):\n%s", tc.expr, diff)
				}
			}
		})
	}
}

func TestEvaluateFloat64Input(t *testing.T) {
	var v any
	if err := json.Unmarshal([]byte(`{"resourceType":"Observation","valueQuantity":{"value":2.5}}`), &v); err != nil {
		t.Fatal(err)
	}
	got, err := MustParse("Observation.value.value = 2.50").Evaluate(v)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].Value != true {
		t.Errorf("got %v, want [true]", got)
	}
}

func TestEvaluateNil(t *testing.T) {
	got, err := MustParse("Patient.id").Evaluate(nil)
	if err != nil || len(got) != 0 {
		t.Errorf("Evaluate(nil) = %v, %v", got, err)
	}
}

func TestEvaluateErrors(t *testing.T) {
	obs := decode(t, observation)
	for _, expr := range []string{
		"Observation.component.value is Quantity", // is on many items
		"Observation.note.text = 'n1' and true",   // fine: = compares collections; and gets one boolean
		"Observation.note.text and true",          // and on many items
		"Observation.note.text.startsWith('n')",   // startsWith on many items
		"Observation.extension(Observation.note.text)",
		"%unknown",
		"Observation.note.text < 'x'",
	} {
		e, err := Parse(expr)
		if err != nil {
			t.Errorf("Parse(%q): %v", expr, err)
			continue
		}
		_, err = e.Evaluate(obs)
		if expr == "Observation.note.text = 'n1' and true" {
			if err != nil {
				t.Errorf("Evaluate(%q): %v", expr, err)
			}
			continue
		}
		if err == nil {
			t.Errorf("Evaluate(%q): no error", expr)
		}
	}
}

func TestParseErrors(t *testing.T) {
	for _, expr := range []string{
		"",
		"Patient.",
		"Patient.name.where(",
		"Patient.name.memberOf('http://vs')",
		"Patient.name.foo()",
		"Patient.name[0",
		"(Patient.name",
		"Patient.name as",
		"Patient.text.div",
		"1 * 2",
		"Patient.name ~ Patient.name",
		"5 'mg'",
		"'unterminated",
		"Patient.first(1)",
		"Patient.where()",
		"Patient # x",
		"$foo",
		"Patient.name )",
	} {
		_, err := Parse(expr)
		if err == nil {
			t.Errorf("Parse(%q): no error", expr)
			continue
		}
		var se *SyntaxError
		if !errors.As(err, &se) {
			t.Errorf("Parse(%q): error %v is not a *SyntaxError", expr, err)
		}
	}
}

func TestMustParsePanics(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Error("MustParse did not panic")
		}
	}()
	MustParse("Patient.")
}

func TestExprString(t *testing.T) {
	const src = "Patient.name.where(use = 'official')"
	if got := MustParse(src).String(); got != src {
		t.Errorf("String() = %q", got)
	}
}

func TestCanonical(t *testing.T) {
	tests := []struct {
		in   any
		want string
	}{
		{json.Number("1.50"), "1.5"},
		{json.Number("66.899999999999991"), "66.89999999999999"},
		{json.Number("1e400"), "1e+400"},
		{json.Number("-0.0"), "-0"},
		{1.5, "1.5"},
		{map[string]any{"b": []any{true, "x"}, "a": nil}, `{"a":null,"b":[true,"x"]}`},
	}
	for _, tc := range tests {
		if got := string(Canonical(tc.in)); got != tc.want {
			t.Errorf("Canonical(%v) = %s, want %s", tc.in, got, tc.want)
		}
	}
}

func TestIsType(t *testing.T) {
	tests := []struct {
		have, spec string
		want       bool
	}{
		{"Quantity", "Quantity", true},
		{"Age", "Quantity", true},
		{"Quantity", "Age", false},
		{"code", "string", true},
		{"canonical", "uri", true},
		{"positiveInt", "integer", true},
		{"Patient", "Patient", true},
		{"Patient", "FHIR.Patient", true},
		{"Patient", "DomainResource", true},
		{"Patient", "Resource", true},
		{"Bundle", "DomainResource", false},
		{"Bundle", "Resource", true},
		{"Extension", "Element", true},
		{"string", "System.String", false},
		{"System.String", "System.String", true},
		{"", "Resource", false},
	}
	for _, tc := range tests {
		if got := isType(tc.have, tc.spec); got != tc.want {
			t.Errorf("isType(%q, %q) = %v, want %v", tc.have, tc.spec, got, tc.want)
		}
	}
}

// TestInvariantFunctions covers what ElementDefinition.constraint
// expressions need beyond search.
func TestInvariantFunctions(t *testing.T) {
	res := map[string]any{"resourceType": "Patient", "id": "p1",
		"name":    []any{map[string]any{"family": "Chalmers", "given": []any{"Peter", "James"}}},
		"contact": []any{map[string]any{"gender": "male"}, map[string]any{"gender": "male"}},
	}
	for _, c := range []struct {
		expr string
		want any
	}{
		{"id.matches('[a-z][0-9]')", true},
		{"id.matches('^[0-9]+$')", false},
		{"id.replaceMatches('[0-9]', 'X')", "pX"},
		{"name.family.length()", json.Number("8")},
		{"'42'.toInteger() + 1", json.Number("43")},
		{"1.5 + 1", json.Number("2.5")},
		{"'a' + 'b'", "ab"},
		{"'a' & {} & 'c'", "ac"},
		{"name.given.count() - 1", json.Number("1")},
		{"'James' in name.given", true},
		{"name.given contains 'John'", false},
		{"name.family.substring(1, 3)", "hal"},
		{"name.family.substring(5)", "ers"},
		{"contact.gender.isDistinct()", false},
		{"name.given.isDistinct()", true},
		{"name.given.intersect('James' | 'John')", "James"},
		{"iif(id = 'p1', 'yes', 'no')", "yes"},
		{"name.iif(family.exists(), 'has', 'none')", "has"},
		{"id.trace('x')", "p1"},
		{"name.children().count()", json.Number("3")},
		{"descendants().where($this = 'male').count()", json.Number("2")},
		{"id.toString()", "p1"},
		{"htmlChecks()", true},
		{"'x' is String", true},
	} {
		x, err := Parse(c.expr)
		if err != nil {
			t.Errorf("Parse(%q): %v", c.expr, err)
			continue
		}
		got, err := x.Evaluate(res)
		if err != nil {
			t.Errorf("Evaluate(%q): %v", c.expr, err)
			continue
		}
		if len(got) != 1 || !equal(got[0].Value, c.want) {
			t.Errorf("%s = %v, want %v", c.expr, got, c.want)
		}
	}
}
