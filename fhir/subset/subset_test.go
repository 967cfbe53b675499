package subset

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/fmtbank/cmts/fhir"
	"github.com/fmtbank/cmts/fhir/fhirtest"
	"github.com/google/go-cmp/cmp"
)

// patient has every top-level element of Patient but language's extension,
// in definition order, with a decimal that must keep its trailing zero.
const patient = `{
  "resourceType": "Patient",
  "id": "p1",
  "meta": {"versionId": "3", "lastUpdated": "2024-01-02T03:04:05Z"},
  "implicitRules": "http://example.org/rules",
  "language": "en",
  "text": {"status": "generated", "div": "<div xmlns=\"http://www.w3.org/1999/xhtml\">Peter &amp; co</div>"},
  "contained": [{"resourceType": "Organization", "id": "o1", "name": "Org"}],
  "extension": [{"url": "http://example.org/weight", "valueDecimal": 1.50}],
  "modifierExtension": [{"url": "http://example.org/mod", "valueBoolean": true}],
  "identifier": [{"system": "urn:s", "value": "1"}],
  "active": true,
  "name": [{"family": "Chalmers", "given": ["Peter", "James"]}],
  "telecom": [{"system": "phone", "value": "(03) 5555 6473"}],
  "gender": "male",
  "birthDate": "1974-12-25",
  "_birthDate": {"extension": [{"url": "http://hl7.org/fhir/StructureDefinition/patient-birthTime", "valueDateTime": "1974-12-25T14:35:45-05:00"}]},
  "deceasedBoolean": false,
  "address": [{"city": "PleasantVille"}],
  "maritalStatus": {"text": "married"},
  "multipleBirthInteger": 2,
  "photo": [{"contentType": "image/gif"}],
  "contact": [{"name": {"family": "du Marché"}}],
  "communication": [{"language": {"text": "French"}}],
  "generalPractitioner": [{"reference": "Practitioner/1"}],
  "managingOrganization": {"reference": "#o1"},
  "link": [{"other": {"reference": "Patient/p2"}, "type": "seealso"}]
}`

// observation has no meta, so shaping it must create one after id.
const observation = `{
  "resourceType": "Observation",
  "id": "o1",
  "text": {"status": "generated", "div": "<div xmlns=\"http://www.w3.org/1999/xhtml\">6.3</div>"},
  "modifierExtension": [{"url": "http://example.org/mod", "valueBoolean": true}],
  "status": "final",
  "_status": {"id": "s1"},
  "category": [{"text": "laboratory"}],
  "code": {"coding": [{"system": "http://loinc.org", "code": "15074-8"}]},
  "subject": {"reference": "Patient/p1"},
  "effectiveDateTime": "2013-04-02T09:30:10+01:00",
  "valueQuantity": {"value": 6.30, "unit": "mmol/l", "system": "http://unitsofmeasure.org", "code": "mmol/L"},
  "interpretation": [{"text": "high"}],
  "referenceRange": [{"low": {"value": 3.1e0}, "high": {"value": 6.2000}}]
}`

const tag = `{"system": "http://terminology.hl7.org/CodeSystem/v3-ObservationValue", "code": "SUBSETTED", "display": "Resource encoded in summary mode"}`

func TestSummary(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name, resourceType, body, mode, want string
	}{
		{
			name: "Patient true keeps the summary elements", resourceType: "Patient", body: patient, mode: "true",
			want: `{
  "resourceType": "Patient",
  "id": "p1",
  "meta": {"versionId": "3", "lastUpdated": "2024-01-02T03:04:05Z", "tag": [` + tag + `]},
  "implicitRules": "http://example.org/rules",
  "identifier": [{"system": "urn:s", "value": "1"}],
  "active": true,
  "name": [{"family": "Chalmers", "given": ["Peter", "James"]}],
  "telecom": [{"system": "phone", "value": "(03) 5555 6473"}],
  "gender": "male",
  "birthDate": "1974-12-25",
  "_birthDate": {"extension": [{"url": "http://hl7.org/fhir/StructureDefinition/patient-birthTime", "valueDateTime": "1974-12-25T14:35:45-05:00"}]},
  "deceasedBoolean": false,
  "address": [{"city": "PleasantVille"}],
  "managingOrganization": {"reference": "#o1"},
  "link": [{"other": {"reference": "Patient/p2"}, "type": "seealso"}]
}`,
		},
		{
			name: "Patient text keeps text id meta", resourceType: "Patient", body: patient, mode: "text",
			want: `{
  "resourceType": "Patient",
  "id": "p1",
  "meta": {"versionId": "3", "lastUpdated": "2024-01-02T03:04:05Z", "tag": [` + tag + `]},
  "text": {"status": "generated", "div": "<div xmlns=\"http://www.w3.org/1999/xhtml\">Peter &amp; co</div>"}
}`,
		},
		{
			name: "Patient data removes text only", resourceType: "Patient", body: patient, mode: "data",
			want: strings.Replace(
				strings.Replace(patient, `  "text": {"status": "generated", "div": "<div xmlns=\"http://www.w3.org/1999/xhtml\">Peter &amp; co</div>"},`+"\n", "", 1),
				`"lastUpdated": "2024-01-02T03:04:05Z"}`, `"lastUpdated": "2024-01-02T03:04:05Z", "tag": [`+tag+`]}`, 1),
		},
		{
			name: "Observation true keeps mandatory and summary, creates meta after id", resourceType: "Observation", body: observation, mode: "true",
			want: `{
  "resourceType": "Observation",
  "id": "o1",
  "meta": {"tag": [` + tag + `]},
  "status": "final",
  "_status": {"id": "s1"},
  "code": {"coding": [{"system": "http://loinc.org", "code": "15074-8"}]},
  "subject": {"reference": "Patient/p1"},
  "effectiveDateTime": "2013-04-02T09:30:10+01:00",
  "valueQuantity": {"value": 6.30, "unit": "mmol/l", "system": "http://unitsofmeasure.org", "code": "mmol/L"}
}`,
		},
		{
			name: "Observation text keeps the mandatory elements", resourceType: "Observation", body: observation, mode: "text",
			want: `{
  "resourceType": "Observation",
  "id": "o1",
  "meta": {"tag": [` + tag + `]},
  "text": {"status": "generated", "div": "<div xmlns=\"http://www.w3.org/1999/xhtml\">6.3</div>"},
  "status": "final",
  "_status": {"id": "s1"},
  "code": {"coding": [{"system": "http://loinc.org", "code": "15074-8"}]}
}`,
		},
		{
			name: "nothing removed adds no tag", resourceType: "Patient", mode: "true",
			body: `{"resourceType": "Patient", "id": "p1", "active": true, "name": [{"text": "Peter"}]}`,
			want: `{"resourceType": "Patient", "id": "p1", "active": true, "name": [{"text": "Peter"}]}`,
		},
		{
			name: "data without text adds no tag", resourceType: "Patient", mode: "data",
			body: `{"resourceType": "Patient", "photo": [{"size": 10}]}`,
			want: `{"resourceType": "Patient", "photo": [{"size": 10}]}`,
		},
		{
			name: "SUBSETTED is not added twice", resourceType: "Patient", mode: "true",
			body: `{"resourceType": "Patient", "meta": {"tag": [{"system": "urn:t", "code": "x"}, {"system": "http://terminology.hl7.org/CodeSystem/v3-ObservationValue", "code": "SUBSETTED"}]}, "photo": [{}], "gender": "other"}`,
			want: `{"resourceType": "Patient", "meta": {"tag": [{"system": "urn:t", "code": "x"}, {"system": "http://terminology.hl7.org/CodeSystem/v3-ObservationValue", "code": "SUBSETTED"}]}, "gender": "other"}`,
		},
		{
			name: "SUBSETTED is appended to other tags", resourceType: "Patient", mode: "true",
			body: `{"resourceType": "Patient", "meta": {"tag": [{"system": "urn:t", "code": "x"}], "source": "#a"}, "photo": [{}]}`,
			want: `{"resourceType": "Patient", "meta": {"tag": [{"system": "urn:t", "code": "x"}, ` + tag + `], "source": "#a"}}`,
		},
		{
			name: "meta is created first when there is no id", resourceType: "Patient", mode: "text",
			body: `{"gender": "other", "resourceType": "Patient"}`,
			want: `{"resourceType": "Patient", "meta": {"tag": [` + tag + `]}}`,
		},
		{
			name: "unknown members are not summary", resourceType: "Patient", mode: "true",
			body: `{"resourceType": "Patient", "id": "p1", "fhir_comments": ["x"], "_active": {"id": "a"}}`,
			want: `{"resourceType": "Patient", "id": "p1", "meta": {"tag": [` + tag + `]}, "_active": {"id": "a"}}`,
		},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := Summary(tt.resourceType, []byte(tt.body), tt.mode)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(compact(t, tt.want), string(got)); diff != "" {
				t.Errorf("Summary(%s, %s) (-want +got):\n%s", tt.resourceType, tt.mode, diff)
			}
			again, err := Summary(tt.resourceType, got, tt.mode)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(string(got), string(again)); diff != "" {
				t.Errorf("Summary is not idempotent (-once +twice):\n%s", diff)
			}
		})
	}
}

func TestSummaryFalseReturnsBodyUnchanged(t *testing.T) {
	t.Parallel()
	// Not parsed, so not even checked.
	for _, body := range []string{patient, `not json`} {
		got, err := Summary("Patient", []byte(body), "false")
		if err != nil {
			t.Fatal(err)
		}
		if string(got) != body {
			t.Errorf("Summary(false) = %s, want the body", got)
		}
	}
}

func TestElements(t *testing.T) {
	t.Parallel()
	// Always kept for the observation: resourceType, id, the new meta,
	// modifierExtension (modifier), status (mandatory, modifier) and its
	// _status, code (mandatory).
	const head = `{
  "resourceType": "Observation",
  "id": "o1",
  "meta": {"tag": [` + tag + `]},
  "modifierExtension": [{"url": "http://example.org/mod", "valueBoolean": true}],
  "status": "final",
  "_status": {"id": "s1"},
  "code": {"coding": [{"system": "http://loinc.org", "code": "15074-8"}]}`
	const value = `,
  "valueQuantity": {"value": 6.30, "unit": "mmol/l", "system": "http://unitsofmeasure.org", "code": "mmol/L"}`
	for _, tt := range []struct {
		name         string
		resourceType string
		body         string
		elements     []string
		want         string
	}{
		{"code keeps status", "Observation", observation, []string{"code"}, head + "}"},
		{"no names", "Observation", observation, nil, head + "}"},
		{"choice name", "Observation", observation, []string{"value"}, head + value + "}"},
		{"JSON name", "Observation", observation, []string{"valueQuantity"}, head + value + "}"},
		{"choice name with [x] and type", "Observation", observation, []string{"Observation.value[x]"}, head + value + "}"},
		{"another type of the choice", "Observation", observation, []string{"valueString"}, head + "}"},
		{"unknown names are ignored", "Observation", observation, []string{"bogus", "", " value ", "Patient.subject"}, head + value + "}"},
		{"a path selects its top-level element", "Observation", observation, []string{"subject.reference", "referenceRange"},
			head + `,
  "subject": {"reference": "Patient/p1"},
  "referenceRange": [{"low": {"value": 3.1e0}, "high": {"value": 6.2000}}]}`},
		{"text only when named", "Observation", observation, []string{"text", "effective"},
			strings.Replace(head, `  "modifierExtension"`, `  "text": {"status": "generated", "div": "<div xmlns=\"http://www.w3.org/1999/xhtml\">6.3</div>"},
  "modifierExtension"`, 1) + `,
  "effectiveDateTime": "2013-04-02T09:30:10+01:00"}`},
		{"everything named removes nothing", "Observation", observation,
			[]string{"text", "category", "subject", "effective", "value", "interpretation", "referenceRange"}, observation},
		{"Patient keeps its modifiers", "Patient", patient, []string{"name", "deceased"}, `{
  "resourceType": "Patient",
  "id": "p1",
  "meta": {"versionId": "3", "lastUpdated": "2024-01-02T03:04:05Z", "tag": [` + tag + `]},
  "implicitRules": "http://example.org/rules",
  "modifierExtension": [{"url": "http://example.org/mod", "valueBoolean": true}],
  "active": true,
  "name": [{"family": "Chalmers", "given": ["Peter", "James"]}],
  "deceasedBoolean": false,
  "link": [{"other": {"reference": "Patient/p2"}, "type": "seealso"}]
}`},
		{"Patient extension keeps its decimal", "Patient", patient, []string{"extension"}, `{
  "resourceType": "Patient",
  "id": "p1",
  "meta": {"versionId": "3", "lastUpdated": "2024-01-02T03:04:05Z", "tag": [` + tag + `]},
  "implicitRules": "http://example.org/rules",
  "extension": [{"url": "http://example.org/weight", "valueDecimal": 1.50}],
  "modifierExtension": [{"url": "http://example.org/mod", "valueBoolean": true}],
  "active": true,
  "deceasedBoolean": false,
  "link": [{"other": {"reference": "Patient/p2"}, "type": "seealso"}]
}`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := Elements(tt.resourceType, []byte(tt.body), tt.elements)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(compact(t, tt.want), string(got)); diff != "" {
				t.Errorf("Elements(%s, %q) (-want +got):\n%s", tt.resourceType, tt.elements, diff)
			}
		})
	}
}

func TestDecimalsKeepTheirText(t *testing.T) {
	t.Parallel()
	got, err := Elements("Observation", []byte(observation), []string{"value", "referenceRange"})
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"value":6.30,`, `"value":3.1e0}`, `"value":6.2000}`} {
		if !bytes.Contains(got, []byte(want)) {
			t.Errorf("Elements lost %s:\n%s", want, got)
		}
	}
	// The same holds for encoding/json with UseNumber, which a caller that
	// edits the result may use.
	dec := json.NewDecoder(strings.NewReader(`{"v":1.50,"w":[6.2000,1e2]}`))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		t.Fatal(err)
	}
	if b, err := json.Marshal(v); err != nil || string(b) != `{"v":1.50,"w":[6.2000,1e2]}` {
		t.Errorf("json.Number round trip = %s, %v", b, err)
	}
}

func TestErrors(t *testing.T) {
	t.Parallel()
	var fe *fhir.Error
	if _, err := Summary("Patient", []byte(patient), "count"); !errors.As(err, &fe) || fe.Status != http.StatusBadRequest {
		t.Errorf("Summary(count) = %v, want a 400 *fhir.Error", err)
	}
	for _, mode := range []string{"true", "text"} {
		if _, err := Summary("Nonsense", []byte(`{"resourceType":"Nonsense"}`), mode); !errors.As(err, &fe) || fe.Status != http.StatusNotFound {
			t.Errorf("Summary(Nonsense, %s) = %v, want fhir.UnknownType", mode, err)
		}
	}
	if _, err := Elements("Nonsense", []byte(`{}`), nil); !errors.As(err, &fe) || fe.Status != http.StatusNotFound {
		t.Errorf("Elements(Nonsense) = %v, want fhir.UnknownType", err)
	}
	// data needs no table.
	if got, err := Summary("Nonsense", []byte(`{"resourceType":"Nonsense","text":{}}`), "data"); err != nil || !bytes.Contains(got, []byte("SUBSETTED")) {
		t.Errorf("Summary(Nonsense, data) = %s, %v", got, err)
	}
	for _, body := range []string{
		`[]`, `"x"`, `{"id":}`, `{"id":"1"} {}`, `{"id":"1"`, ``,
		`{"resourceType":"Observation"}`, `{"resourceType":7}`,
		`{"resourceType":"Patient","meta":[],"photo":[]}`,
		`{"resourceType":"Patient","meta":{"tag":{}},"photo":[]}`,
	} {
		if got, err := Summary("Patient", []byte(body), "true"); err == nil {
			t.Errorf("Summary(%s) = %s, want an error", body, got)
		}
		if got, err := Elements("Patient", []byte(body), []string{"name"}); err == nil {
			t.Errorf("Elements(%s) = %s, want an error", body, got)
		}
	}
}

// TestOfficialExamples shapes every example of the R4 specification in
// every way and checks the result against the table: valid JSON, only
// members of the input (values unchanged) plus meta, the right members
// kept, the tag exactly when something was removed, and idempotence.
func TestOfficialExamples(t *testing.T) {
	t.Parallel()
	files := fhirtest.ExampleFiles(t, "")
	if len(files) < 2000 {
		t.Fatalf("only %d example files", len(files))
	}
	shapings := []shaping{
		{"_summary=true", func(rt string, b []byte) ([]byte, error) { return Summary(rt, b, "true") },
			func(_ string, el element) bool { return el.flags&(summary|mandatory) != 0 }},
		{"_summary=text", func(rt string, b []byte) ([]byte, error) { return Summary(rt, b, "text") },
			func(n string, el element) bool { return n == "text" || el.flags&mandatory != 0 }},
		{"_summary=data", func(rt string, b []byte) ([]byte, error) { return Summary(rt, b, "data") },
			func(n string, _ element) bool { return n != "text" }},
		{"_elements=", func(rt string, b []byte) ([]byte, error) { return Elements(rt, b, nil) },
			func(_ string, el element) bool { return el.flags&(mandatory|modifier) != 0 }},
		{"_elements=identifier,value,status", func(rt string, b []byte) ([]byte, error) {
			return Elements(rt, b, []string{"identifier", "value", "status"})
		}, func(n string, el element) bool {
			return el.flags&(mandatory|modifier) != 0 || n == "identifier" || n == "status" || el.choice == "value"
		}},
	}
	types := make([]string, 0, len(r4Elements))
	for rt := range r4Elements {
		types = append(types, rt)
	}
	sort.Strings(types)
	var checked, unknown, tagged atomic.Int64
	t.Run("type", func(t *testing.T) {
		for _, rt := range types {
			t.Run(rt, func(t *testing.T) {
				t.Parallel()
				for _, file := range fhirtest.ExampleFiles(t, rt) {
					checked.Add(1)
					u, n := checkExample(t, rt, file, shapings)
					unknown.Add(u)
					tagged.Add(n)
				}
			})
		}
	})
	if int(checked.Load()) != len(files) {
		t.Errorf("checked %d examples of the %d (some of a type not in the table)", checked.Load(), len(files))
	}
	t.Logf("%d examples × %d shapings, %d results tagged SUBSETTED; %d members outside the definitions",
		checked.Load(), len(shapings), tagged.Load(), unknown.Load())
}

// shaping is one way to call Summary or Elements, and which elements (by
// name without "_", with their table entry) it should keep besides
// resourceType, id and meta.
type shaping struct {
	name  string
	apply func(rt string, b []byte) ([]byte, error)
	keeps func(name string, el element) bool
}

// checkExample shapes one example file in every way and checks the results;
// it returns how many of its members the table does not know and how many
// results lost members.
func checkExample(t *testing.T, rt, file string, shapings []shaping) (unknown, tagged int64) {
	t.Helper()
	base := filepath.Base(file)
	body, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	in, err := parseObject(body)
	if err != nil {
		t.Fatalf("%s: %v", base, err)
	}
	table := r4Elements[rt]
	inValues := map[string][]byte{}
	for _, m := range in {
		inValues[string(m.name)] = m.value
		if _, ok := table[strings.TrimPrefix(string(m.name), "_")]; !ok && string(m.name) != "resourceType" {
			unknown++
		}
	}
	if got, err := Summary(rt, body, "false"); err != nil || !bytes.Equal(got, body) {
		t.Errorf("%s: _summary=false changed the body (%v)", base, err)
	}
	for _, s := range shapings {
		out, err := s.apply(rt, body)
		if err != nil {
			t.Errorf("%s %s: %v", base, s.name, err)
			continue
		}
		if !json.Valid(out) {
			t.Errorf("%s %s: invalid JSON:\n%s", base, s.name, out)
			continue
		}
		got, err := splitObject(out)
		if err != nil {
			t.Fatal(err)
		}
		gotNames := map[string]bool{}
		for _, m := range got {
			gotNames[string(m.name)] = true
			if string(m.name) == "meta" {
				continue
			}
			if want, ok := inValues[string(m.name)]; !ok || !bytes.Equal(want, m.value) {
				t.Errorf("%s %s: member %s is not as in the input", base, s.name, m.name)
			}
		}
		removed := false
		for _, m := range in {
			name := strings.TrimPrefix(string(m.name), "_")
			el, known := table[name]
			want := string(m.name) == "resourceType" || name == "id" || string(m.name) == "meta" || known && s.keeps(name, el)
			if gotNames[string(m.name)] != want {
				t.Errorf("%s %s: member %s kept = %v, want %v", base, s.name, m.name, gotNames[string(m.name)], want)
			}
			removed = removed || !want
		}
		had, n := subsettedTags(t, in), subsettedTags(t, got)
		switch {
		case n > 1:
			t.Errorf("%s %s: %d SUBSETTED tags", base, s.name, n)
		case removed && n != 1:
			t.Errorf("%s %s: removed members but has no SUBSETTED tag", base, s.name)
		case !removed && n != had:
			t.Errorf("%s %s: removed nothing but has %d SUBSETTED tags, input %d", base, s.name, n, had)
		}
		if removed {
			tagged++
		}
		again, err := s.apply(rt, out)
		if err != nil || !bytes.Equal(again, out) {
			t.Errorf("%s %s: not idempotent (%v)", base, s.name, err)
		}
	}
	return unknown, tagged
}

func BenchmarkSummaryPatient(b *testing.B) {
	body := []byte(compact(b, patient))
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Summary("Patient", body, "true"); err != nil {
			b.Fatal(err)
		}
	}
}

// subsettedTags counts the SUBSETTED codings in meta.tag.
func subsettedTags(t testing.TB, members []member) int {
	t.Helper()
	n := 0
	for _, m := range members {
		if string(m.name) != "meta" {
			continue
		}
		var meta struct {
			Tag []struct{ System, Code string }
		}
		if err := json.Unmarshal(m.value, &meta); err != nil {
			t.Fatalf("meta %s: %v", m.value, err)
		}
		for _, c := range meta.Tag {
			if c.System == subsettedSystem && c.Code == subsettedCode {
				n++
			}
		}
	}
	return n
}

// compact is s without insignificant whitespace.
func compact(t testing.TB, s string) string {
	t.Helper()
	var buf bytes.Buffer
	if err := json.Compact(&buf, []byte(s)); err != nil {
		t.Fatalf("compact %q: %v", s, err)
	}
	return buf.String()
}
