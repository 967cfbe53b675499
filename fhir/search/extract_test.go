package search

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/fmtbank/cmts/fhir/fhirtest"
	"github.com/fmtbank/cmts/fhir/jsonscan"
	"github.com/fmtbank/cmts/store"
	"github.com/google/go-cmp/cmp"
)

func newEngine(t testing.TB) *Engine {
	t.Helper()
	e, err := New()
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// Helpers that build expected entries.

func tok(param, system, code, text string) store.IndexEntry {
	return store.IndexEntry{Param: param, Kind: store.KindToken, System: system, Code: code, Value: text}
}

func strEntry(param, exact, normal string) store.IndexEntry {
	return store.IndexEntry{Param: param, Kind: store.KindString, Code: exact, Value: normal}
}

func dateEntry(param, low, high string) store.IndexEntry {
	return store.IndexEntry{Param: param, Kind: store.KindDate, Low: low, High: high}
}

func ref(param, typ, id string) store.IndexEntry {
	return store.IndexEntry{Param: param, Kind: store.KindReference, System: typ, Code: id}
}

func uriEntry(param, v string) store.IndexEntry {
	return store.IndexEntry{Param: param, Kind: store.KindURI, Value: v}
}

func qty(param string, v float64, system, code string) store.IndexEntry {
	n := store.EncodeNumber(v)
	return store.IndexEntry{Param: param, Kind: store.KindQuantity, Low: n, High: n, System: system, Code: code}
}

func grouped(g int, es ...store.IndexEntry) []store.IndexEntry {
	for i := range es {
		es[i].Group = g
	}
	return es
}

func join(parts ...any) []store.IndexEntry {
	var out []store.IndexEntry
	for _, p := range parts {
		switch p := p.(type) {
		case store.IndexEntry:
			out = append(out, p)
		case []store.IndexEntry:
			out = append(out, p...)
		default:
			panic(fmt.Sprintf("join: %T", p))
		}
	}
	return out
}

// canonical sorts entries and renumbers composite groups by their
// contents, so that tests do not depend on the order of extraction.
func canonical(es []store.IndexEntry) []string {
	groups := map[int][]string{}
	var out []string
	for _, e := range es {
		g := e.Group
		e.Group = 0
		s := fmt.Sprintf("%s %s sys=%q code=%q value=%q low=%s high=%s", e.Param, e.Kind, e.System, e.Code, e.Value, e.Low, e.High)
		if g == 0 {
			out = append(out, s)
		} else {
			groups[g] = append(groups[g], s)
		}
	}
	var gs []string
	for _, members := range groups {
		sort.Strings(members)
		gs = append(gs, strings.Join(members, "\n    "))
	}
	sort.Strings(gs)
	for i, g := range gs {
		out = append(out, fmt.Sprintf("group %d:\n    %s", i+1, g))
	}
	sort.Strings(out)
	return out
}

const (
	loinc    = "http://loinc.org"
	snomed   = "http://snomed.info/sct"
	ucum     = "http://unitsofmeasure.org"
	obsCat   = "http://terminology.hl7.org/CodeSystem/observation-category"
	day      = "T00:00:00.000000Z"
	dayEnd   = "T23:59:59.999999Z"
	v2_0203  = "http://terminology.hl7.org/CodeSystem/v2-0203"
	acmeCode = "http://acme.org/devices/clinical-codes"
)

// TestEntriesExamples checks the entries of official examples against
// expectations written from reading each example and the R4 parameter
// definitions of its type.
func TestEntriesExamples(t *testing.T) {
	t.Parallel()
	e := newEngine(t)
	dir := fhirtest.ExamplesDir(t)
	tests := []struct {
		file string
		want []store.IndexEntry
	}{
		{"Patient-example.json", join(
			tok("_id", "", "example", ""),
			tok("active", "", "true", ""),
			// address: every part, and the text.
			strEntry("address", "534 Erewhon St PeasantVille, Rainbow, Vic  3999", "534 erewhon st peasantville, rainbow, vic 3999"),
			strEntry("address", "534 Erewhon St", "534 erewhon st"),
			strEntry("address", "PleasantVille", "pleasantville"),
			strEntry("address", "Rainbow", "rainbow"),
			strEntry("address", "Vic", "vic"),
			strEntry("address", "3999", "3999"),
			strEntry("address-city", "PleasantVille", "pleasantville"),
			strEntry("address-postalcode", "3999", "3999"),
			strEntry("address-state", "Vic", "vic"),
			tok("address-use", "", "home", ""),
			dateEntry("birthdate", "1974-12-25"+day, "1974-12-25"+dayEnd),
			// deceased: Patient.deceased.exists() and Patient.deceased != false
			tok("deceased", "", "false", ""),
			strEntry("family", "Chalmers", "chalmers"),
			strEntry("family", "Windsor", "windsor"),
			tok("gender", "", "male", ""),
			strEntry("given", "Peter", "peter"),
			strEntry("given", "James", "james"),
			strEntry("given", "Jim", "jim"),
			tok("identifier", "urn:oid:1.2.36.146.595.217.0.1", "12345", ""),
			tok("identifier:of-type", v2_0203, "MR|12345", ""),
			strEntry("name", "Chalmers", "chalmers"),
			strEntry("name", "Peter", "peter"),
			strEntry("name", "James", "james"),
			strEntry("name", "Jim", "jim"),
			strEntry("name", "Windsor", "windsor"),
			ref("organization", "Organization", "1"),
			// phone: telecom.where(system='phone'); a ContactPoint has no system in its token.
			tok("phone", "", "(03) 5555 6473", ""),
			tok("phone", "", "(03) 3410 5613", ""),
			tok("phone", "", "(03) 5555 8834", ""),
			// phonetic (Patient.name, as name) writes none: it is
			// searched by name's entries (TestParseRepeatingParams)
			tok("telecom", "", "(03) 5555 6473", ""),
			tok("telecom", "", "(03) 3410 5613", ""),
			tok("telecom", "", "(03) 5555 8834", ""),
		)},
		{"Observation-example.json", join(
			tok("_id", "", "example", ""),
			tok("category", obsCat, "vital-signs", "vital signs"),
			tok("code", loinc, "29463-7", "body weight"),
			tok("code", loinc, "3141-9", "body weight measured"),
			tok("code", snomed, "27113001", "body weight"),
			tok("code", acmeCode, "body-weight", "body weight"),
			tok("combo-code", loinc, "29463-7", "body weight"),
			tok("combo-code", loinc, "3141-9", "body weight measured"),
			tok("combo-code", snomed, "27113001", "body weight"),
			tok("combo-code", acmeCode, "body-weight", "body weight"),
			qty("combo-value-quantity", 185, ucum, "[lb_av]"),
			qty("combo-value-quantity", 185, "", "lbs"), // the unit text, for value||unit
			// code-value-quantity and combo-code-value-quantity: the
			// Observation itself is the one composite value.
			grouped(1,
				tok("code-value-quantity$0", loinc, "29463-7", "body weight"),
				tok("code-value-quantity$0", loinc, "3141-9", "body weight measured"),
				tok("code-value-quantity$0", snomed, "27113001", "body weight"),
				tok("code-value-quantity$0", acmeCode, "body-weight", "body weight"),
				qty("code-value-quantity$1", 185, ucum, "[lb_av]"),
				qty("code-value-quantity$1", 185, "", "lbs"), // the unit text, for value||unit
			),
			grouped(2,
				tok("combo-code-value-quantity$0", loinc, "29463-7", "body weight"),
				tok("combo-code-value-quantity$0", loinc, "3141-9", "body weight measured"),
				tok("combo-code-value-quantity$0", snomed, "27113001", "body weight"),
				tok("combo-code-value-quantity$0", acmeCode, "body-weight", "body weight"),
				qty("combo-code-value-quantity$1", 185, ucum, "[lb_av]"),
				qty("combo-code-value-quantity$1", 185, "", "lbs"), // the unit text, for value||unit
			),
			dateEntry("date", "2016-03-28"+day, "2016-03-28"+dayEnd),
			ref("encounter", "Encounter", "example"),
			ref("patient", "Patient", "example"),
			tok("status", "", "final", ""),
			ref("subject", "Patient", "example"),
			qty("value-quantity", 185, ucum, "[lb_av]"),
			qty("value-quantity", 185, "", "lbs"), // the unit text, for value||unit
		)},
		{"Observation-blood-pressure.json", join(
			tok("_id", "", "blood-pressure", ""),
			uriEntry("_profile", "http://hl7.org/fhir/StructureDefinition/vitalsigns"),
			// basedOn has only an identifier: indexed for :identifier.
			tok("based-on:identifier", "https://acme.org/identifiers", "1234", ""),
			tok("category", obsCat, "vital-signs", "vital signs"),
			tok("code", loinc, "85354-9", "blood pressure panel with all children optional"),
			tok("code", "", "", "blood pressure systolic & diastolic"),
			tok("combo-code", loinc, "85354-9", "blood pressure panel with all children optional"),
			tok("combo-code", "", "", "blood pressure systolic & diastolic"),
			tok("combo-code", loinc, "8480-6", "systolic blood pressure"),
			tok("combo-code", snomed, "271649006", "systolic blood pressure"),
			tok("combo-code", acmeCode, "bp-s", "systolic blood pressure"),
			tok("combo-code", loinc, "8462-4", "diastolic blood pressure"),
			qty("combo-value-quantity", 107, ucum, "mm[Hg]"),
			qty("combo-value-quantity", 107, "", "mmHg"), // the unit text, for value||unit
			qty("combo-value-quantity", 60, ucum, "mm[Hg]"),
			qty("combo-value-quantity", 60, "", "mmHg"), // the unit text, for value||unit
			tok("component-code", loinc, "8480-6", "systolic blood pressure"),
			tok("component-code", snomed, "271649006", "systolic blood pressure"),
			tok("component-code", acmeCode, "bp-s", "systolic blood pressure"),
			tok("component-code", loinc, "8462-4", "diastolic blood pressure"),
			qty("component-value-quantity", 107, ucum, "mm[Hg]"),
			qty("component-value-quantity", 107, "", "mmHg"), // the unit text, for value||unit
			qty("component-value-quantity", 60, ucum, "mm[Hg]"),
			qty("component-value-quantity", 60, "", "mmHg"), // the unit text, for value||unit
			// One group per component: code and value together. The
			// Observation itself has no value, so code-value-quantity and
			// the Observation's own combo value have no group.
			grouped(1,
				tok("component-code-value-quantity$0", loinc, "8480-6", "systolic blood pressure"),
				tok("component-code-value-quantity$0", snomed, "271649006", "systolic blood pressure"),
				tok("component-code-value-quantity$0", acmeCode, "bp-s", "systolic blood pressure"),
				qty("component-code-value-quantity$1", 107, ucum, "mm[Hg]"),
				qty("component-code-value-quantity$1", 107, "", "mmHg"), // the unit text, for value||unit
			),
			grouped(2,
				tok("component-code-value-quantity$0", loinc, "8462-4", "diastolic blood pressure"),
				qty("component-code-value-quantity$1", 60, ucum, "mm[Hg]"),
				qty("component-code-value-quantity$1", 60, "", "mmHg"), // the unit text, for value||unit
			),
			grouped(3,
				tok("combo-code-value-quantity$0", loinc, "8480-6", "systolic blood pressure"),
				tok("combo-code-value-quantity$0", snomed, "271649006", "systolic blood pressure"),
				tok("combo-code-value-quantity$0", acmeCode, "bp-s", "systolic blood pressure"),
				qty("combo-code-value-quantity$1", 107, ucum, "mm[Hg]"),
				qty("combo-code-value-quantity$1", 107, "", "mmHg"), // the unit text, for value||unit
			),
			grouped(4,
				tok("combo-code-value-quantity$0", loinc, "8462-4", "diastolic blood pressure"),
				qty("combo-code-value-quantity$1", 60, ucum, "mm[Hg]"),
				qty("combo-code-value-quantity$1", 60, "", "mmHg"), // the unit text, for value||unit
			),
			dateEntry("date", "2012-09-17"+day, "2012-09-17"+dayEnd),
			tok("identifier", "urn:ietf:rfc:3986", "urn:uuid:187e0c12-8dd2-67e2-99b2-bf273c878281", ""),
			ref("patient", "Patient", "example"),
			ref("performer", "Practitioner", "example"),
			tok("status", "", "final", ""),
			ref("subject", "Patient", "example"),
		)},
		{"AdverseEvent-example.json", join(
			tok("_id", "", "example", ""),
			tok("actuality", "", "actual", ""),
			tok("category", "http://terminology.hl7.org/CodeSystem/adverse-event-category", "product-use-error", "product use error"),
			// 2017-01-29T12:34:56+00:00: a dateTime to the second.
			dateEntry("date", "2017-01-29T12:34:56.000000Z", "2017-01-29T12:34:56.999999Z"),
			tok("event", snomed, "304386008", "o/e - itchy rash"),
			tok("event", "", "", "this was a mild rash on the left forearm"),
			ref("recorder", "Practitioner", "example"),
			tok("seriousness", "http://terminology.hl7.org/CodeSystem/adverse-event-seriousness", "Non-serious", "non-serious"),
			tok("severity", "http://terminology.hl7.org/CodeSystem/adverse-event-severity", "mild", "mild"),
			ref("subject", "Patient", "example"),
			// substance: AdverseEvent.suspectEntity.instance
			ref("substance", "Medication", "example"),
		)},
		{"Procedure-example.json", join(
			tok("_id", "", "example", ""),
			tok("code", snomed, "80146002", "appendectomy (procedure)"),
			tok("code", "", "", "appendectomy"),
			dateEntry("date", "2013-04-05"+day, "2013-04-05"+dayEnd),
			ref("patient", "Patient", "example"),
			// performer: Procedure.performer.actor
			ref("performer", "Practitioner", "example"),
			tok("reason-code", "", "", "generalized abdominal pain 24 hours. localized in rif with rebound and guarding"),
			tok("status", "", "completed", ""),
			ref("subject", "Patient", "example"),
		)},
		{"Specimen-101.json", join(
			tok("_id", "", "101", ""),
			tok("accession", "http://lab.acme.org/specimens/2011", "X352356", ""),
			tok("bodysite", snomed, "49852007", "structure of median cubital vein (body structure)"),
			tok("bodysite", "", "", "right median cubital vein"),
			dateEntry("collected", "2011-05-30T06:15:00.000000Z", "2011-05-30T06:15:00.999999Z"),
			ref("collector", "Practitioner", "example"),
			// container: Specimen.container.type, text only.
			tok("container", "", "", "vacutainer"),
			tok("container-id", "", "48736-15394-75465", ""),
			tok("identifier", "http://ehr.acme.org/identifiers/collections", "23234352356", ""),
			ref("patient", "Patient", "example"),
			tok("status", "", "available", ""),
			ref("subject", "Patient", "example"),
			tok("type", snomed, "122555007", "venous blood specimen"),
			// The contained Substance is not indexed.
		)},
	}
	for _, tt := range tests {
		t.Run(strings.TrimSuffix(tt.file, ".json"), func(t *testing.T) {
			t.Parallel()
			body, err := os.ReadFile(filepath.Join(dir, tt.file))
			if err != nil {
				t.Fatal(err)
			}
			typ, _, _ := strings.Cut(tt.file, "-")
			got, err := e.Entries(typ, body)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(canonical(tt.want), canonical(got)); diff != "" {
				t.Errorf("Entries(%s) (-want +got):\n%s", tt.file, diff)
			}
		})
	}
}

// TestEntriesValues checks extraction of each kind of value from small
// resources.
func TestEntriesValues(t *testing.T) {
	t.Parallel()
	e := newEngine(t)
	tests := []struct {
		name  string
		typ   string
		body  string
		param string // only entries of this parameter (and its extras) are compared
		want  []store.IndexEntry
	}{
		// duplicates are dropped whether few or many (extractor.add
		// compares the first seenLen one by one, then hashes)
		{"repeated names", "Patient", `{"resourceType":"Patient","name":[` + strings.Repeat(`{"given":["A","B","a"]},`, 10) + `{"given":["C","B"]}]}`, "given",
			[]store.IndexEntry{strEntry("given", "A", "a"), strEntry("given", "B", "b"), strEntry("given", "a", "a"), strEntry("given", "C", "c")}},
		{"many names", "Patient", `{"resourceType":"Patient","name":[{"given":["n01","n02","n03","n04","n05","n06","n07","n08","n09","n10","n11","n12","n13","n14","n15","n16","n17","n18","n19","n20"]},{"given":["n02","n19","n21"]}]}`, "given",
			func() []store.IndexEntry {
				var out []store.IndexEntry
				for i := 1; i <= 21; i++ {
					n := fmt.Sprintf("n%02d", i)
					out = append(out, strEntry("given", n, n))
				}
				return out
			}()},
		{"date year", "Patient", `{"resourceType":"Patient","birthDate":"1974"}`, "birthdate",
			[]store.IndexEntry{dateEntry("birthdate", "1974-01-01"+day, "1974-12-31"+dayEnd)}},
		{"date month", "Patient", `{"resourceType":"Patient","birthDate":"2020-02"}`, "birthdate",
			[]store.IndexEntry{dateEntry("birthdate", "2020-02-01"+day, "2020-02-29"+dayEnd)}},
		{"dateTime with zone", "Observation", `{"resourceType":"Observation","effectiveDateTime":"2020-03-15T10:00:00+08:00"}`, "date",
			[]store.IndexEntry{dateEntry("date", "2020-03-15T02:00:00.000000Z", "2020-03-15T02:00:00.999999Z")}},
		{"dateTime without zone is UTC", "Observation", `{"resourceType":"Observation","effectiveDateTime":"2020-03-15T10:00:00"}`, "date",
			[]store.IndexEntry{dateEntry("date", "2020-03-15T10:00:00.000000Z", "2020-03-15T10:00:00.999999Z")}},
		{"instant with milliseconds", "Observation", `{"resourceType":"Observation","effectiveInstant":"2020-03-15T10:00:00.123Z"}`, "date",
			[]store.IndexEntry{dateEntry("date", "2020-03-15T10:00:00.123000Z", "2020-03-15T10:00:00.123999Z")}},
		{"period open end", "Observation", `{"resourceType":"Observation","effectivePeriod":{"start":"2020-03-15"}}`, "date",
			[]store.IndexEntry{dateEntry("date", "2020-03-15"+day, store.MaxTime)}},
		{"period open start", "Observation", `{"resourceType":"Observation","effectivePeriod":{"end":"2020"}}`, "date",
			[]store.IndexEntry{dateEntry("date", store.MinTime, "2020-12-31"+dayEnd)}},
		{"timing outer limits", "Observation", `{"resourceType":"Observation","effectiveTiming":{"event":["2020-03-15","2020-01-02T10:00:00Z"]}}`, "date",
			[]store.IndexEntry{dateEntry("date", "2020-01-02T10:00:00.000000Z", "2020-03-15"+dayEnd)}},
		{"lastUpdated", "Patient", `{"resourceType":"Patient","meta":{"lastUpdated":"2024-05-01T08:00:00.5+08:00"}}`, "_lastUpdated",
			[]store.IndexEntry{dateEntry("_lastUpdated", "2024-05-01T00:00:00.500000Z", "2024-05-01T00:00:00.599999Z")}},
		{"tag security profile source", "Patient", `{"resourceType":"Patient","meta":{"source":"http://src#1","profile":["http://p|2.0"],
			"tag":[{"system":"http://t","code":"a","display":"A Tag"}],"security":[{"system":"http://s","code":"R"}]}}`, "_",
			[]store.IndexEntry{
				uriEntry("_profile", "http://p|2.0"), uriEntry("_profile", "http://p"),
				uriEntry("_source", "http://src#1"),
				tok("_tag", "http://t", "a", "a tag"),
				tok("_security", "http://s", "R", ""),
			}},
		{"quantity comparator is not widened", "Observation", `{"resourceType":"Observation","valueQuantity":{"value":5,"comparator":"<","unit":"mg"}}`, "value-quantity",
			[]store.IndexEntry{{Param: "value-quantity", Kind: store.KindQuantity, Low: store.EncodeNumber(5), High: store.EncodeNumber(5), Code: "mg"}}},
		{"range", "ActivityDefinition", `{"resourceType":"ActivityDefinition","useContext":[{"code":{"code":"age"},"valueRange":{"low":{"value":18,"system":"http://unitsofmeasure.org","code":"a"}}}]}`, "context-quantity",
			[]store.IndexEntry{{Param: "context-quantity", Kind: store.KindQuantity, Low: store.EncodeNumber(18), High: store.EncodeNumber(math.Inf(1)), System: ucum, Code: "a"}}},
		{"number", "RiskAssessment", `{"resourceType":"RiskAssessment","prediction":[{"probabilityDecimal":0.25},{"probabilityRange":{"low":{"value":10},"high":{"value":20}}}]}`, "probability",
			[]store.IndexEntry{
				{Param: "probability", Kind: store.KindNumber, Low: store.EncodeNumber(0.25), High: store.EncodeNumber(0.25)},
				{Param: "probability", Kind: store.KindNumber, Low: store.EncodeNumber(10), High: store.EncodeNumber(20)},
			}},
		{"references", "Observation", `{"resourceType":"Observation","subject":{"reference":"Patient/p1/_history/3"},
			"performer":[{"reference":"http://other.org/fhir/Practitioner/9"},{"reference":"#c1"},{"identifier":{"system":"http://ids","value":"X"}}]}`, "",
			[]store.IndexEntry{
				ref("subject", "Patient", "p1"), ref("patient", "Patient", "p1"),
				{Param: "performer", Kind: store.KindReference, Value: "http://other.org/fhir/Practitioner/9"},
				tok("performer:identifier", "http://ids", "X", ""),
			}},
		{"canonical", "QuestionnaireResponse", `{"resourceType":"QuestionnaireResponse","questionnaire":"http://q.org/Questionnaire/a|1.0"}`, "questionnaire",
			[]store.IndexEntry{
				{Param: "questionnaire", Kind: store.KindReference, Value: "http://q.org/Questionnaire/a|1.0"},
				{Param: "questionnaire", Kind: store.KindReference, Value: "http://q.org/Questionnaire/a"},
			}},
		{"chinese name", "Patient", `{"resourceType":"Patient","name":[{"text":"王 小明","family":"王","given":["小明"]}]}`, "name",
			[]store.IndexEntry{
				strEntry("name", "王 小明", "王 小明"),
				strEntry("name", "王", "王"),
				strEntry("name", "小明", "小明"),
				strEntry("name", "王小明", "王小明"),
			}},
		{"accented and full-width name", "Patient", `{"resourceType":"Patient","name":[{"family":"Müller","given":["ＪＯＳＥ\u3000Ｍａｒｉａ"]}]}`, "name",
			[]store.IndexEntry{
				strEntry("name", "Müller", "muller"),
				strEntry("name", "ＪＯＳＥ\u3000Ｍａｒｉａ", "jose maria"),
			}},
		{"contact point and identifier", "Patient", `{"resourceType":"Patient","telecom":[{"system":"email","value":"a@b.cn"}],
			"identifier":[{"system":"http://id","value":"1","type":{"text":"Medical Record"}}]}`, "",
			[]store.IndexEntry{
				tok("telecom", "", "a@b.cn", ""), tok("email", "", "a@b.cn", ""),
				tok("identifier", "http://id", "1", "medical record"),
				// "deceased.exists() and deceased != false" is false, not
				// empty, when there is no deceased[x].
				tok("deceased", "", "false", ""),
			}},
		{"boolean and coding", "Patient", `{"resourceType":"Patient","active":false,"communication":[{"language":{"coding":[{"system":"urn:ietf:bcp:47","code":"zh-CN","display":"中文"}]}}]}`, "",
			[]store.IndexEntry{tok("active", "", "false", ""), tok("deceased", "", "false", ""),
				tok("language", "urn:ietf:bcp:47", "zh-CN", "中文")}},
		{"composite from resource", "MolecularSequence", `{"resourceType":"MolecularSequence","referenceSeq":{"chromosome":{"coding":[{"code":"1"}]}},
			"variant":[{"start":10,"end":20},{"start":30}]}`, "chromosome-variant-coordinate",
			// the second variant has no end, so it forms no composite value
			grouped(1,
				tok("chromosome-variant-coordinate$0", "", "1", ""),
				store.IndexEntry{Param: "chromosome-variant-coordinate$1", Kind: store.KindNumber, Low: store.EncodeNumber(10), High: store.EncodeNumber(10)},
				store.IndexEntry{Param: "chromosome-variant-coordinate$2", Kind: store.KindNumber, Low: store.EncodeNumber(20), High: store.EncodeNumber(20)},
			)},
		{"code and date (errata fix)", "Observation", `{"resourceType":"Observation","code":{"coding":[{"system":"http://loinc.org","code":"x"}]},"valueDateTime":"2020-01-01"}`, "code-value-date",
			grouped(1,
				tok("code-value-date$0", loinc, "x", ""),
				dateEntry("code-value-date$1", "2020-01-01"+day, "2020-01-01"+dayEnd),
			)},
		{"code and string", "Observation", `{"resourceType":"Observation","code":{"text":"Colour"},"valueString":"Brown"}`, "code-value-string",
			grouped(1,
				tok("code-value-string$0", "", "", "colour"),
				strEntry("code-value-string$1", "Brown", "brown"),
			)},
		{"document relationship (errata fix)", "DocumentReference", `{"resourceType":"DocumentReference","relatesTo":[{"code":"replaces","target":{"reference":"DocumentReference/d1"}}]}`, "relationship",
			grouped(1,
				tok("relationship$0", "", "replaces", ""),
				ref("relationship$1", "DocumentReference", "d1"),
			)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			all, err := e.Entries(tt.typ, []byte(tt.body))
			if err != nil {
				t.Fatal(err)
			}
			var got []store.IndexEntry
			for _, en := range all {
				if en.Param == "_id" {
					continue
				}
				if tt.param == "" || strings.HasPrefix(en.Param, tt.param) {
					got = append(got, en)
				}
			}
			if diff := cmp.Diff(canonical(tt.want), canonical(got)); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

func TestEntriesErrors(t *testing.T) {
	t.Parallel()
	e := newEngine(t)
	for _, tt := range []struct{ name, typ, body string }{
		{"not json", "Patient", `{`},
		{"not an object", "Patient", `[1]`},
		{"wrong type", "Patient", `{"resourceType":"Observation"}`},
		{"unknown type", "Nope", `{"resourceType":"Nope"}`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := e.Entries(tt.typ, []byte(tt.body)); err == nil {
				t.Error("no error")
			}
		})
	}
}

// TestEntriesAllExamples extracts the entries of every official example.
func TestEntriesAllExamples(t *testing.T) {
	t.Parallel()
	e := newEngine(t)
	files := fhirtest.ExampleFiles(t, "")
	if len(files) < 5000 {
		t.Fatalf("only %d examples", len(files))
	}
	entries := 0
	for _, f := range files {
		body, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var head struct {
			ResourceType string `json:"resourceType"`
		}
		if err := json.NewDecoder(bytes.NewReader(body)).Decode(&head); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		// Entries reads the body as encoding/json would.
		var want any
		d := json.NewDecoder(bytes.NewReader(body))
		d.UseNumber()
		if err := d.Decode(&want); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		if got, _, err := decode(body, jsonscan.SkipWS(body, 0)); err != nil || !cmp.Equal(want, got) {
			t.Errorf("%s: decode differs from encoding/json (%v)", filepath.Base(f), err)
		}
		es, err := e.Entries(head.ResourceType, body)
		if err != nil {
			t.Errorf("%s: %v", filepath.Base(f), err)
			continue
		}
		// References gives the same reference entries, for one parameter
		// or all (composites' reference components are not reference
		// parameters).
		refs := func(es []store.IndexEntry, param string) []store.IndexEntry {
			var out []store.IndexEntry
			for _, en := range es {
				if en.Kind == store.KindReference && !strings.Contains(en.Param, "$") && (param == "*" || en.Param == param) {
					out = append(out, en)
				}
			}
			return out
		}
		params := map[string]bool{"*": true}
		for _, en := range refs(es, "*") {
			params[en.Param] = true
		}
		for p := range params {
			got, err := e.References(head.ResourceType, body, p)
			if err != nil {
				t.Errorf("%s: References %s: %v", filepath.Base(f), p, err)
			}
			if d := cmp.Diff(refs(es, p), refs(got, "*")); d != "" {
				t.Errorf("%s: References %s (-Entries +References):\n%s", filepath.Base(f), p, d)
			}
		}
		for _, en := range es {
			if en.Param == "" || en.Kind == "" {
				t.Errorf("%s: malformed entry %+v", filepath.Base(f), en)
			}
			if (en.Kind == store.KindDate || en.Kind == store.KindNumber || en.Kind == store.KindQuantity) && en.Low > en.High {
				t.Errorf("%s: inverted range %+v", filepath.Base(f), en)
			}
		}
		entries += len(es)
	}
	t.Logf("%d examples, %d entries", len(files), entries)
}

func benchmarkEntries(b *testing.B, file string) {
	e := newEngine(b)
	body, err := os.ReadFile(filepath.Join(fhirtest.ExamplesDir(b), file))
	if err != nil {
		b.Fatal(err)
	}
	typ, _, _ := strings.Cut(file, "-")
	b.ReportAllocs()
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		if _, err := e.Entries(typ, body); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkEntriesPatient(b *testing.B)     { benchmarkEntries(b, "Patient-example.json") }
func BenchmarkEntriesObservation(b *testing.B) { benchmarkEntries(b, "Observation-example.json") }

// TestDecode checks that decode reads JSON as encoding/json does with
// UseNumber, and refuses what it refuses.
func TestDecode(t *testing.T) {
	t.Parallel()
	for _, doc := range []string{
		`{"resourceType":"Patient","active":true,"deceasedBoolean":false,"x":null,"n":[0,-1.5e3,12,1E+2,0.25]}`,
		` { "a" : [ ] , "b" : { } , "c" : [ { "d" : "e" } ] } `,
		`{"esc":"a\"b\\c\/d\u00e9\u4e2d\ud83d\ude00\n\t","\u0061key":"v","dup":1,"dup":2}`,
		`{"bad utf8":"` + "\xff\xfe" + `","zh":"王小明","nbsp":"a` + "\u00a0" + `b"}`,
		`"just a string"`, `[1,"two",[3]]`, `-0`, `true`, `null`,
	} {
		var want any
		d := json.NewDecoder(strings.NewReader(doc))
		d.UseNumber()
		if err := d.Decode(&want); err != nil {
			t.Fatalf("encoding/json: %s: %v", doc, err)
		}
		got, _, err := decode([]byte(doc), jsonscan.SkipWS([]byte(doc), 0))
		if err != nil {
			t.Errorf("%s: %v", doc, err)
			continue
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("%s (-want +got):\n%s", doc, diff)
		}
	}
	for _, doc := range []string{`{`, `{"a"}`, `{"a":}`, `{"a":1,}`, `[1,]`, `[1 2]`, `01`, `1.`, `.5`, `-`, `1e`, `+1`,
		`tru`, `nul`, `{"a":tx}`, `"unterminated`, "\"control\x01\"", `"bad \x escape"`, `{1:2}`, ``} {
		if _, _, err := decode([]byte(doc), jsonscan.SkipWS([]byte(doc), 0)); err == nil {
			t.Errorf("%q: no error", doc)
		}
	}
}
