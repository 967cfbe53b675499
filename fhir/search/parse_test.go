package search

import (
	"errors"
	"math"
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/fmtbank/cmts/fhir"
	"github.com/fmtbank/cmts/store"
	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

func sp(s string) *string { return &s }

func num(f float64) string { return store.EncodeNumber(f) }

func ge(v string) store.Bound  { return store.Bound{Op: store.GE, Value: v} }
func gt(v string) store.Bound  { return store.Bound{Op: store.GT, Value: v} }
func lt(v string) store.Bound  { return store.Bound{Op: store.LT, Value: v} }
func le(v string) store.Bound  { return store.Bound{Op: store.LE, Value: v} }
func hge(v string) store.Bound { return store.Bound{High: true, Op: store.GE, Value: v} }
func hgt(v string) store.Bound { return store.Bound{High: true, Op: store.GT, Value: v} }
func hlt(v string) store.Bound { return store.Bound{High: true, Op: store.LT, Value: v} }
func hle(v string) store.Bound { return store.Bound{High: true, Op: store.LE, Value: v} }

func rng(param string, b ...store.Bound) store.Range { return store.Range{Param: param, Bounds: b} }

// Dates of the search value 2020-03-15 (one day).
const (
	d0315  = "2020-03-15T00:00:00.000000Z"
	d0315e = "2020-03-15T23:59:59.999999Z"
)

// fixedNow is the clock of the parsing tests (for "ap" on dates).
var fixedNow = time.Date(2025, 1, 11, 0, 0, 0, 0, time.UTC)

func TestParse(t *testing.T) {
	t.Parallel()
	e := newEngine(t)
	e.Now = func() time.Time { return fixedNow }
	tests := []struct {
		name   string
		typ    string
		query  string
		strict bool
		want   Search
	}{
		// token
		{name: "token code", typ: "Observation", query: "code=1234-5",
			want: Search{Filter: store.Token{Param: "code", Code: "1234-5"}}},
		{name: "token system|code", typ: "Observation", query: "code=http://loinc.org|1234-5",
			want: Search{Filter: store.Token{Param: "code", System: sp("http://loinc.org"), Code: "1234-5"}}},
		{name: "token |code has no system", typ: "Observation", query: "code=|1234-5",
			want: Search{Filter: store.Token{Param: "code", System: sp(""), Code: "1234-5"}}},
		{name: "token comma is or", typ: "Observation", query: "code=a,b",
			want: Search{Filter: store.Or{store.Token{Param: "code", Code: "a"}, store.Token{Param: "code", Code: "b"}}}},
		{name: "token repeated is and", typ: "Observation", query: "code=a&code=b",
			want: Search{Filter: store.And{store.Token{Param: "code", Code: "a"}, store.Token{Param: "code", Code: "b"}}}},
		{name: "token not", typ: "Observation", query: "status:not=final",
			want: Search{Filter: store.Not{Expr: store.Token{Param: "status", Code: "final"}}}},
		{name: "token not of several", typ: "Observation", query: "status:not=final,amended",
			want: Search{Filter: store.Not{Expr: store.Or{store.Token{Param: "status", Code: "final"}, store.Token{Param: "status", Code: "amended"}}}}},
		{name: "token text", typ: "Observation", query: "code:text=Body++Wéight",
			want: Search{Filter: store.String{Param: "code", Mode: store.Prefix, Text: "body weight"}}},
		{name: "token of-type", typ: "Patient", query: "identifier:of-type=http://terminology.hl7.org/CodeSystem/v2-0203|MR|12345",
			want: Search{Filter: store.Token{Param: "identifier:of-type", System: sp("http://terminology.hl7.org/CodeSystem/v2-0203"), Code: "MR|12345"}}},
		{name: "token prefix-like value is a code", typ: "Observation", query: "code=gt5",
			want: Search{Filter: store.Token{Param: "code", Code: "gt5"}}},
		{name: "token boolean", typ: "Patient", query: "active=true",
			want: Search{Filter: store.Token{Param: "active", Code: "true"}}},
		{name: "token missing", typ: "Patient", query: "gender:missing=true",
			want: Search{Filter: store.Missing{Param: "gender", Missing: true}}},
		{name: "token missing false", typ: "Patient", query: "gender:missing=false",
			want: Search{Filter: store.Missing{Param: "gender", Missing: false}}},
		// A parameter whose entries would repeat another's (same type and
		// expression) is searched by the other's: Patient's phonetic is
		// Patient.name, CodeSystem's url is its system.
		{name: "repeating string", typ: "Patient", query: "phonetic=Wang",
			want: Search{Filter: store.String{Param: "name", Mode: store.Prefix, Text: "wang"}}},
		{name: "repeating string exact", typ: "Patient", query: "phonetic:exact=王",
			want: Search{Filter: store.String{Param: "name", Mode: store.Exact, Text: "王", Folded: "王"}}},
		{name: "repeating missing", typ: "Practitioner", query: "phonetic:missing=true",
			want: Search{Filter: store.Missing{Param: "name", Missing: true}}},
		{name: "repeating sort", typ: "Patient", query: "_sort=-phonetic",
			want: Search{Sort: []store.SortKey{{Param: "name", Desc: true}}}},
		{name: "repeating uri", typ: "CodeSystem", query: "url=http://a",
			want: Search{Filter: store.String{Param: "system", Mode: store.Equal, Text: "http://a"}}},
		{name: "repeating reference left alone", typ: "Coverage", query: "patient=Patient/1",
			want: Search{Filter: store.Reference{Param: "patient", Type: "Patient", ID: "1"}}},
		{name: "escaped pipe and comma", typ: "Patient", query: `identifier=http://a\|b|c\,d`,
			want: Search{Filter: store.Token{Param: "identifier", System: sp("http://a|b"), Code: "c,d"}}},
		{name: "escaped backslash before comma", typ: "Patient", query: `identifier=a\\,b`,
			want: Search{Filter: store.Or{store.Token{Param: "identifier", Code: `a\`}, store.Token{Param: "identifier", Code: "b"}}}},
		{name: "empty value ignored", typ: "Patient", query: "identifier=&gender=",
			want: Search{}},
		{name: "empty alternatives ignored", typ: "Patient", query: "gender=male,",
			want: Search{Filter: store.Token{Param: "gender", Code: "male"}}},

		// string
		{name: "string prefix normalised", typ: "Patient", query: "name=Müller",
			want: Search{Filter: store.String{Param: "name", Mode: store.Prefix, Text: "muller"}}},
		{name: "string exact", typ: "Patient", query: "name:exact=Müller",
			want: Search{Filter: store.String{Param: "name", Mode: store.Exact, Text: "Müller", Folded: "muller"}}},
		{name: "string contains", typ: "Patient", query: "name:contains=ÜLL",
			want: Search{Filter: store.String{Param: "name", Mode: store.Contains, Text: "ull"}}},
		{name: "string full-width", typ: "Patient", query: "family=ＣＤ",
			want: Search{Filter: store.String{Param: "family", Mode: store.Prefix, Text: "cd"}}},
		{name: "string chinese", typ: "Patient", query: "name=王小",
			want: Search{Filter: store.String{Param: "name", Mode: store.Prefix, Text: "王小"}}},
		{name: "string or", typ: "Patient", query: "given=peter,paul",
			want: Search{Filter: store.Or{store.String{Param: "given", Mode: store.Prefix, Text: "peter"}, store.String{Param: "given", Mode: store.Prefix, Text: "paul"}}}},
		{name: "string escaped comma", typ: "Patient", query: `address=Rainbow\, Vic`,
			want: Search{Filter: store.String{Param: "address", Mode: store.Prefix, Text: "rainbow, vic"}}},
		{name: "string escaped dollar", typ: "Patient", query: `name=a\$b`,
			want: Search{Filter: store.String{Param: "name", Mode: store.Prefix, Text: "a$b"}}},
		{name: "string missing", typ: "Patient", query: "family:missing=true",
			want: Search{Filter: store.Missing{Param: "family", Missing: true}}},

		// uri
		{name: "uri equal", typ: "ValueSet", query: "url=http://hl7.org/fhir/ValueSet/x",
			want: Search{Filter: store.String{Param: "url", Mode: store.Equal, Text: "http://hl7.org/fhir/ValueSet/x"}}},
		{name: "uri below", typ: "ValueSet", query: "url:below=http://hl7.org/fhir/",
			want: Search{Filter: store.String{Param: "url", Mode: store.Below, Text: "http://hl7.org/fhir/"}}},
		{name: "uri above", typ: "ValueSet", query: "url:above=http://hl7.org/fhir/ValueSet/x/y",
			want: Search{Filter: store.String{Param: "url", Mode: store.Above, Text: "http://hl7.org/fhir/ValueSet/x/y"}}},

		// date: the value's precision is its range
		{name: "date year", typ: "Patient", query: "birthdate=2020",
			want: Search{Filter: rng("birthdate", ge("2020-01-01T00:00:00.000000Z"), hle("2020-12-31T23:59:59.999999Z"))}},
		{name: "date month eq", typ: "Patient", query: "birthdate=eq2020-02",
			want: Search{Filter: rng("birthdate", ge("2020-02-01T00:00:00.000000Z"), hle("2020-02-29T23:59:59.999999Z"))}},
		{name: "date minute", typ: "Observation", query: "date=2020-03-15T10:30",
			want: Search{Filter: rng("date", ge("2020-03-15T10:30:00.000000Z"), hle("2020-03-15T10:30:59.999999Z"))}},
		{name: "date zone (plus decoded as space)", typ: "Observation", query: "date=2020-03-15T10:30:00+08:00",
			want: Search{Filter: rng("date", ge("2020-03-15T02:30:00.000000Z"), hle("2020-03-15T02:30:00.999999Z"))}},
		{name: "date zone escaped plus", typ: "Observation", query: "date=2020-03-15T10:30:00%2B08:00",
			want: Search{Filter: rng("date", ge("2020-03-15T02:30:00.000000Z"), hle("2020-03-15T02:30:00.999999Z"))}},
		{name: "date ne", typ: "Patient", query: "birthdate=ne2020-03-15",
			want: Search{Filter: store.Or{rng("birthdate", lt(d0315)), rng("birthdate", hgt(d0315e))}}},
		{name: "date gt", typ: "Patient", query: "birthdate=gt2020-03-15",
			want: Search{Filter: rng("birthdate", hgt(d0315e))}},
		{name: "date lt", typ: "Patient", query: "birthdate=lt2020-03-15",
			want: Search{Filter: rng("birthdate", lt(d0315))}},
		{name: "date ge", typ: "Patient", query: "birthdate=ge2020-03-15",
			want: Search{Filter: store.Or{rng("birthdate", hgt(d0315e)), rng("birthdate", ge(d0315), hle(d0315e))}}},
		{name: "date le", typ: "Patient", query: "birthdate=le2020-03-15",
			want: Search{Filter: store.Or{rng("birthdate", lt(d0315)), rng("birthdate", ge(d0315), hle(d0315e))}}},
		{name: "date sa", typ: "Patient", query: "birthdate=sa2020-03-15",
			want: Search{Filter: rng("birthdate", gt(d0315e))}},
		{name: "date eb", typ: "Patient", query: "birthdate=eb2020-03-15",
			want: Search{Filter: rng("birthdate", hlt(d0315))}},
		{name: "date ap is 10% of the gap to now", typ: "Patient", query: "birthdate=ap2025-01-01",
			// now is 2025-01-11: the gap is 10 days, so one day either side.
			want: Search{Filter: rng("birthdate", le("2025-01-02T23:59:59.999999Z"), hge("2024-12-31T00:00:00.000000Z"))}},
		{name: "date range by and", typ: "Patient", query: "birthdate=ge2020-01-01&birthdate=lt2021",
			want: Search{Filter: store.And{
				store.Or{rng("birthdate", hgt("2020-01-01T23:59:59.999999Z")), rng("birthdate", ge("2020-01-01T00:00:00.000000Z"), hle("2020-01-01T23:59:59.999999Z"))},
				rng("birthdate", lt("2021-01-01T00:00:00.000000Z")),
			}}},
		{name: "lastUpdated", typ: "Patient", query: "_lastUpdated=gt2024-01-01",
			want: Search{Filter: rng("_lastUpdated", hgt("2024-01-01T23:59:59.999999Z"))}},

		// number: the value's significant figures are its range
		{name: "number integer", typ: "RiskAssessment", query: "probability=100",
			want: Search{Filter: rng("probability", ge(num(99.5)), hlt(num(100.5)))}},
		{name: "number decimals", typ: "RiskAssessment", query: "probability=100.00",
			want: Search{Filter: rng("probability", ge(num(99.995)), hlt(num(100.005)))}},
		{name: "number exponent", typ: "RiskAssessment", query: "probability=1e2",
			want: Search{Filter: rng("probability", ge(num(50)), hlt(num(150)))}},
		{name: "number fraction", typ: "RiskAssessment", query: "probability=0.8",
			want: Search{Filter: rng("probability", ge(num(0.75)), hlt(num(0.85)))}},
		{name: "number negative", typ: "RiskAssessment", query: "probability=-2",
			want: Search{Filter: rng("probability", ge(num(-2.5)), hlt(num(-1.5)))}},
		{name: "number ne", typ: "RiskAssessment", query: "probability=ne100",
			want: Search{Filter: store.Or{rng("probability", lt(num(99.5))), rng("probability", hge(num(100.5)))}}},
		{name: "number gt", typ: "RiskAssessment", query: "probability=gt0.8",
			want: Search{Filter: rng("probability", hgt(num(0.8)))}},
		{name: "number lt", typ: "RiskAssessment", query: "probability=lt0.8",
			want: Search{Filter: rng("probability", lt(num(0.8)))}},
		{name: "number ge", typ: "RiskAssessment", query: "probability=ge0.8",
			want: Search{Filter: rng("probability", hge(num(0.8)))}},
		{name: "number le", typ: "RiskAssessment", query: "probability=le0.8",
			want: Search{Filter: rng("probability", le(num(0.8)))}},
		{name: "number sa", typ: "RiskAssessment", query: "probability=sa0.8",
			want: Search{Filter: rng("probability", gt(num(0.8)))}},
		{name: "number eb", typ: "RiskAssessment", query: "probability=eb0.8",
			want: Search{Filter: rng("probability", hlt(num(0.8)))}},
		{name: "number ap is 10%", typ: "RiskAssessment", query: "probability=ap100",
			want: Search{Filter: rng("probability", le(num(110)), hge(num(90)))}},
		{name: "number ap never narrower than precision", typ: "RiskAssessment", query: "probability=ap0",
			want: Search{Filter: rng("probability", le(num(0.5)), hge(num(-0.5)))}},

		// quantity
		{name: "quantity with system and code", typ: "Observation", query: "value-quantity=5.4|http://unitsofmeasure.org|mg",
			want: Search{Filter: store.Range{Param: "value-quantity", Bounds: []store.Bound{ge(num(5.35)), hlt(num(5.45))}, System: sp("http://unitsofmeasure.org"), Code: sp("mg")}}},
		{name: "quantity code only", typ: "Observation", query: "value-quantity=le5.4||mg",
			want: Search{Filter: store.Range{Param: "value-quantity", Bounds: []store.Bound{le(num(5.4))}, Code: sp("mg")}}},
		{name: "quantity without unit", typ: "Observation", query: "value-quantity=ap100",
			want: Search{Filter: rng("value-quantity", le(num(110)), hge(num(90)))}},

		// reference
		{name: "reference type/id", typ: "Observation", query: "subject=Patient/123",
			want: Search{Filter: store.Reference{Param: "subject", Type: "Patient", ID: "123"}}},
		{name: "reference versioned", typ: "Observation", query: "subject=Patient/123/_history/2",
			want: Search{Filter: store.Reference{Param: "subject", Type: "Patient", ID: "123"}}},
		{name: "reference id of any target", typ: "Observation", query: "subject=123",
			want: Search{Filter: store.Reference{Param: "subject", ID: "123"}}},
		{name: "reference id of the one target", typ: "Observation", query: "patient=123",
			want: Search{Filter: store.Reference{Param: "patient", Type: "Patient", ID: "123"}}},
		{name: "reference type modifier", typ: "Observation", query: "subject:Patient=123",
			want: Search{Filter: store.Reference{Param: "subject", Type: "Patient", ID: "123"}}},
		{name: "reference absolute", typ: "Observation", query: "subject=http://other.org/fhir/Patient/1",
			want: Search{Filter: store.Reference{Param: "subject", URL: "http://other.org/fhir/Patient/1"}}},
		{name: "reference canonical", typ: "QuestionnaireResponse", query: "questionnaire=http://q.org/Questionnaire/a|1.0",
			want: Search{Filter: store.Reference{Param: "questionnaire", URL: "http://q.org/Questionnaire/a|1.0"}}},
		{name: "reference identifier", typ: "Observation", query: "subject:identifier=http://ids|X",
			want: Search{Filter: store.Token{Param: "subject:identifier", System: sp("http://ids"), Code: "X"}}},
		{name: "reference missing", typ: "Observation", query: "subject:missing=false",
			want: Search{Filter: store.Missing{Param: "subject"}}},

		// chains
		{name: "chain with type", typ: "Observation", query: "subject:Patient.name=peter",
			want: Search{Filter: store.Chain{Param: "subject", TargetType: "Patient", Filter: store.String{Param: "name", Mode: store.Prefix, Text: "peter"}}}},
		{name: "chain one target", typ: "Observation", query: "patient.name=peter",
			want: Search{Filter: store.Chain{Param: "patient", TargetType: "Patient", Filter: store.String{Param: "name", Mode: store.Prefix, Text: "peter"}}}},
		{name: "chain target found by parameter", typ: "Observation", query: "subject.birthdate=2020",
			want: Search{Filter: store.Chain{Param: "subject", TargetType: "Patient", Filter: rng("birthdate", ge("2020-01-01T00:00:00.000000Z"), hle("2020-12-31T23:59:59.999999Z"))}}},
		{name: "chain with modifier at the end", typ: "Observation", query: "patient.name:exact=Peter",
			want: Search{Filter: store.Chain{Param: "patient", TargetType: "Patient", Filter: store.String{Param: "name", Mode: store.Exact, Text: "Peter", Folded: "peter"}}}},
		{name: "chain two levels", typ: "Observation", query: "patient.organization.name=acme",
			want: Search{Filter: store.Chain{Param: "patient", TargetType: "Patient", Filter: store.Chain{Param: "organization", TargetType: "Organization",
				Filter: store.String{Param: "name", Mode: store.Prefix, Text: "acme"}}}}},
		{name: "chain or inside", typ: "Observation", query: "patient.gender=male,female",
			want: Search{Filter: store.Chain{Param: "patient", TargetType: "Patient", Filter: store.Or{store.Token{Param: "gender", Code: "male"}, store.Token{Param: "gender", Code: "female"}}}}},
		{name: "chain repeated is independent", typ: "Observation", query: "patient.name=a&patient.name=b",
			want: Search{Filter: store.And{
				store.Chain{Param: "patient", TargetType: "Patient", Filter: store.String{Param: "name", Mode: store.Prefix, Text: "a"}},
				store.Chain{Param: "patient", TargetType: "Patient", Filter: store.String{Param: "name", Mode: store.Prefix, Text: "b"}},
			}}},
		{name: "chain to _id", typ: "Observation", query: "patient._id=p1",
			want: Search{Filter: store.Chain{Param: "patient", TargetType: "Patient", Filter: store.ID{IDs: []string{"p1"}}}}},

		// reverse chains
		{name: "has", typ: "Patient", query: "_has:Observation:patient:code=1234",
			want: Search{Filter: store.Has{Type: "Observation", Param: "patient", Filter: store.Token{Param: "code", Code: "1234"}}}},
		{name: "has with modifier", typ: "Patient", query: "_has:Observation:subject:code:text=weight",
			want: Search{Filter: store.Has{Type: "Observation", Param: "subject", Filter: store.String{Param: "code", Mode: store.Prefix, Text: "weight"}}}},
		{name: "has nested", typ: "Patient", query: "_has:Observation:patient:_has:AuditEvent:entity:agent=MyUserId",
			want: Search{Filter: store.Has{Type: "Observation", Param: "patient", Filter: store.Has{Type: "AuditEvent", Param: "entity",
				Filter: store.Reference{Param: "agent", ID: "MyUserId"}}}}},
		{name: "has with chain", typ: "Patient", query: "_has:Observation:patient:performer:Practitioner.name=smith",
			want: Search{Filter: store.Has{Type: "Observation", Param: "patient", Filter: store.Chain{Param: "performer", TargetType: "Practitioner",
				Filter: store.String{Param: "name", Mode: store.Prefix, Text: "smith"}}}}},

		// composite
		{name: "composite token and quantity", typ: "Observation", query: "component-code-value-quantity=http://loinc.org|8480-6$lt60",
			want: Search{Filter: store.Composite{Param: "component-code-value-quantity", Components: []store.Expr{
				store.Token{Param: "component-code-value-quantity$0", System: sp("http://loinc.org"), Code: "8480-6"},
				rng("component-code-value-quantity$1", lt(num(60))),
			}}}},
		{name: "composite ne tests one entry", typ: "Observation", query: "code-value-quantity=8480-6$ne60||mm[Hg]",
			want: Search{Filter: store.Composite{Param: "code-value-quantity", Components: []store.Expr{
				store.Token{Param: "code-value-quantity$0", Code: "8480-6"},
				store.Or{
					store.Range{Param: "code-value-quantity$1", Bounds: []store.Bound{lt(num(59.5))}, Code: sp("mm[Hg]")},
					store.Range{Param: "code-value-quantity$1", Bounds: []store.Bound{hge(num(60.5))}, Code: sp("mm[Hg]")},
				},
			}}}},
		{name: "composite escaped dollar", typ: "Observation", query: `code-value-string=a\$b$x`,
			want: Search{Filter: store.Composite{Param: "code-value-string", Components: []store.Expr{
				store.Token{Param: "code-value-string$0", Code: "a$b"},
				store.String{Param: "code-value-string$1", Mode: store.Prefix, Text: "x"},
			}}}},
		{name: "composite or", typ: "Group", query: "characteristic-value=gender$male,age$adult",
			want: Search{Filter: store.Or{
				store.Composite{Param: "characteristic-value", Components: []store.Expr{store.Token{Param: "characteristic-value$0", Code: "gender"}, store.Token{Param: "characteristic-value$1", Code: "male"}}},
				store.Composite{Param: "characteristic-value", Components: []store.Expr{store.Token{Param: "characteristic-value$0", Code: "age"}, store.Token{Param: "characteristic-value$1", Code: "adult"}}},
			}}},
		{name: "composite missing", typ: "Observation", query: "component-code-value-quantity:missing=true",
			want: Search{Filter: store.Missing{Param: "component-code-value-quantity$0", Missing: true}}},

		// _id and meta
		{name: "_id", typ: "Patient", query: "_id=a,b",
			want: Search{Filter: store.ID{IDs: []string{"a", "b"}}}},
		{name: "_id not", typ: "Patient", query: "_id:not=a",
			want: Search{Filter: store.Not{Expr: store.ID{IDs: []string{"a"}}}}},
		{name: "_id repeated", typ: "Patient", query: "_id=a&_id=b",
			want: Search{Filter: store.And{store.ID{IDs: []string{"a"}}, store.ID{IDs: []string{"b"}}}}},
		{name: "_tag", typ: "Patient", query: "_tag=http://t|a",
			want: Search{Filter: store.Token{Param: "_tag", System: sp("http://t"), Code: "a"}}},
		{name: "_security", typ: "Patient", query: "_security=R",
			want: Search{Filter: store.Token{Param: "_security", Code: "R"}}},
		{name: "_profile", typ: "Patient", query: "_profile=http://fmtbank.org/fhir/StructureDefinition/cmts-donor",
			want: Search{Filter: store.String{Param: "_profile", Mode: store.Equal, Text: "http://fmtbank.org/fhir/StructureDefinition/cmts-donor"}}},
		{name: "_source", typ: "Patient", query: "_source=http://a",
			want: Search{Filter: store.String{Param: "_source", Mode: store.Equal, Text: "http://a"}}},

		// result parameters
		{name: "sort", typ: "Observation", query: "_sort=-date,status",
			want: Search{Sort: []store.SortKey{{Param: "date", Desc: true}, {Param: "status"}}}},
		{name: "sort meta", typ: "Observation", query: "_sort=_lastUpdated,-_id",
			want: Search{Sort: []store.SortKey{{Param: "_lastUpdated"}, {Param: "_id", Desc: true}}}},
		{name: "sort reference", typ: "Observation", query: "_sort=subject&_sort=-value-quantity",
			want: Search{Sort: []store.SortKey{{Param: "subject"}, {Param: "value-quantity", Desc: true}}}},
		{name: "include", typ: "Observation", query: "_include=Observation:subject",
			want: Search{Include: []Include{{SourceType: "Observation", Param: "subject"}}}},
		{name: "include with target", typ: "Observation", query: "_include=Observation:subject:Patient",
			want: Search{Include: []Include{{SourceType: "Observation", Param: "subject", TargetType: "Patient"}}}},
		{name: "include iterate", typ: "Observation", query: "_include=Observation:patient&_include:iterate=Patient:organization",
			want: Search{Include: []Include{{SourceType: "Observation", Param: "patient"}, {SourceType: "Patient", Param: "organization", Iterate: true}}}},
		{name: "include recurse is iterate", typ: "Observation", query: "_include:recurse=Patient:link",
			want: Search{Include: []Include{{SourceType: "Patient", Param: "link", Iterate: true}}}},
		{name: "include wildcard", typ: "Observation", query: "_include=*",
			want: Search{Include: []Include{{SourceType: "Observation", Param: "*"}}}},
		{name: "include all of a type", typ: "Observation", query: "_include=Observation:*",
			want: Search{Include: []Include{{SourceType: "Observation", Param: "*"}}}},
		{name: "revinclude", typ: "Patient", query: "_revinclude=Observation:subject",
			want: Search{RevInclude: []Include{{SourceType: "Observation", Param: "subject"}}}},
		{name: "revinclude iterate", typ: "Patient", query: "_revinclude:iterate=Provenance:target",
			want: Search{RevInclude: []Include{{SourceType: "Provenance", Param: "target", Iterate: true}}}},
		{name: "count", typ: "Patient", query: "_count=10&_offset=20",
			want: Search{Count: 10, Offset: 20}},
		{name: "count zero is a count summary", typ: "Patient", query: "_count=0",
			want: Search{Summary: SummaryCount}},
		{name: "count zero wins over summary", typ: "Patient", query: "_count=0&_summary=data",
			want: Search{Summary: SummaryCount}},
		{name: "page token passed through", typ: "Patient", query: "_page=abc.123",
			want: Search{Page: "abc.123"}},
		{name: "total", typ: "Patient", query: "_total=accurate",
			want: Search{Total: TotalAccurate}},
		{name: "summary", typ: "Patient", query: "_summary=text",
			want: Search{Summary: SummaryText}},
		{name: "elements", typ: "Patient", query: "_elements=name,birthDate,Patient.gender",
			want: Search{Elements: []string{"name", "birthDate", "gender"}}},
		{name: "format ignored", typ: "Patient", query: "_format=json&_pretty=true",
			want: Search{}},

		// lenient handling ignores what it does not know
		{name: "lenient unknown parameter", typ: "Patient", query: "foo=bar&name=x",
			want: Search{Filter: store.String{Param: "name", Mode: store.Prefix, Text: "x"}, Unknown: []string{"foo"}}},
		{name: "lenient unsupported parameter", typ: "Patient", query: "_text=x&_content=y",
			want: Search{Unknown: []string{"_content", "_text"}}},
		{name: "lenient parameter without expression", typ: "Patient", query: "age=5",
			want: Search{Unknown: []string{"age"}}},
		{name: "lenient special parameter", typ: "Location", query: "near=1|2",
			want: Search{Unknown: []string{"near"}}},
		{name: "lenient unknown in chain", typ: "Observation", query: "patient.foo=x",
			want: Search{Unknown: []string{"patient.foo"}}},
		{name: "lenient unknown in _has", typ: "Patient", query: "_has:Observation:patient:foo=x",
			want: Search{Unknown: []string{"_has:Observation:patient:foo"}}},
		{name: "lenient unknown include modifier", typ: "Patient", query: "_include:foo=Patient:organization",
			want: Search{Unknown: []string{"_include:foo"}}},

		// whole-system search
		{name: "system _type", typ: "", query: "_type=Patient,Observation&_lastUpdated=gt2024-01-01",
			want: Search{Types: []string{"Patient", "Observation"}, Filter: rng("_lastUpdated", hgt("2024-01-01T23:59:59.999999Z"))}},
		{name: "system unknown parameter", typ: "", query: "name=x",
			want: Search{Unknown: []string{"name"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			q, err := url.ParseQuery(tt.query)
			if err != nil {
				t.Fatal(err)
			}
			got, err := e.Parse(tt.typ, q, tt.strict)
			if err != nil {
				t.Fatalf("Parse(%s?%s): %v", tt.typ, tt.query, err)
			}
			tt.want.Type = tt.typ
			if diff := cmp.Diff(&tt.want, got, cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("Parse(%s?%s) (-want +got):\n%s", tt.typ, tt.query, diff)
			}
		})
	}
}

func TestParseErrors(t *testing.T) {
	t.Parallel()
	e := newEngine(t)
	tests := []struct {
		name  string
		typ   string
		query string
		// strictOnly errors are ignored (and listed in Unknown) under
		// lenient handling; the others fail either way.
		strictOnly bool
		status     int
		code       fhir.IssueType
		expression string
	}{
		{"unknown parameter", "Patient", "foo=bar", true, 400, fhir.IssueNotSupported, "foo"},
		{"unknown modifier", "Patient", "name:text=x", false, 400, fhir.IssueNotSupported, "name:text"},
		{"modifier not allowed for the type", "Patient", "birthdate:exact=2020", false, 400, fhir.IssueNotSupported, "birthdate:exact"},
		{"not on a string", "Patient", "name:not=x", false, 400, fhir.IssueNotSupported, "name:not"},
		{"unsupported parameter", "Patient", "_text=x", true, 400, fhir.IssueNotSupported, "_text"},
		{"unknown in chain", "Observation", "patient.foo=x", true, 400, fhir.IssueNotSupported, "patient.foo"},
		{"type modifier not a target", "Observation", "subject:Medication=1", false, 400, fhir.IssueNotSupported, "subject:Medication"},
		{"_type on a type search", "Patient", "_type=Patient", true, 400, fhir.IssueNotSupported, "_type"},
		{"token above", "Observation", "code:above=x", false, 400, fhir.IssueNotSupported, "code:above"},
		{"token below", "Observation", "code:below=http://snomed.info/sct|123", false, 400, fhir.IssueNotSupported, "code:below"},
		{"token in", "Observation", "code:in=http://vs", false, 400, fhir.IssueNotSupported, "code:in"},
		{"reference below", "Observation", "subject:below=x", false, 400, fhir.IssueNotSupported, "subject:below"},
		{"of-type needs three parts", "Patient", "identifier:of-type=MR|1", false, 400, fhir.IssueValue, "identifier:of-type"},
		{"bad date", "Patient", "birthdate=2020-13", false, 400, fhir.IssueValue, "birthdate"},
		{"bad date text", "Patient", "birthdate=yesterday", false, 400, fhir.IssueValue, "birthdate"},
		{"bad day", "Patient", "birthdate=2021-02-29", false, 400, fhir.IssueValue, "birthdate"},
		{"bad date prefix", "Patient", "birthdate=xx2020", false, 400, fhir.IssueValue, "birthdate"},
		{"bad number prefix", "RiskAssessment", "probability=zz5", false, 400, fhir.IssueValue, "probability"},
		{"bad number", "RiskAssessment", "probability=5x", false, 400, fhir.IssueValue, "probability"},
		{"bad quantity", "Observation", "value-quantity=5|mg", false, 400, fhir.IssueValue, "value-quantity"},
		{"bad missing", "Patient", "gender:missing=maybe", false, 400, fhir.IssueValue, "gender:missing"},
		{"bad reference", "Observation", "subject=a/b/c", false, 400, fhir.IssueValue, "subject"},
		{"reference type mismatch", "Observation", "subject:Patient=Group/1", false, 400, fhir.IssueValue, "subject:Patient"},
		{"ambiguous chain", "AdverseEvent", "substance.lot-number=x", false, 400, fhir.IssueInvalid, "substance.lot-number"},
		{"chain on a token", "Observation", "code.name=x", false, 400, fhir.IssueInvalid, "code.name"},
		{"chain to a type that is no target", "Observation", "subject:Medication.code=x", false, 400, fhir.IssueInvalid, "subject:Medication.code"},
		{"chain too deep", "Observation", "patient.link.link.link.link.link.name=x", false, 400, fhir.IssueInvalid, "patient.link.link.link.link.link.name"},
		{"chain bad value", "Observation", "patient.birthdate=soon", false, 400, fhir.IssueValue, "patient.birthdate"},
		{"has malformed", "Patient", "_has:Observation:patient=x", false, 400, fhir.IssueInvalid, "_has:Observation:patient"},
		{"has unknown type", "Patient", "_has:Foo:patient:code=x", false, 400, fhir.IssueInvalid, "_has:Foo:patient:code"},
		{"has not a reference", "Patient", "_has:Observation:code:status=x", false, 400, fhir.IssueInvalid, "_has:Observation:code:status"},
		{"has cannot refer", "Patient", "_has:Observation:encounter:code=x", false, 400, fhir.IssueInvalid, "_has:Observation:encounter:code"},
		{"composite parts", "Observation", "component-code-value-quantity=8480-6", false, 400, fhir.IssueValue, "component-code-value-quantity"},
		{"composite bad part", "Observation", "component-code-value-quantity=8480-6$big", false, 400, fhir.IssueValue, "component-code-value-quantity"},
		{"sort unknown", "Observation", "_sort=foo", false, 400, fhir.IssueInvalid, "_sort"},
		{"sort composite", "Observation", "_sort=code-value-quantity", false, 400, fhir.IssueNotSupported, "_sort"},
		{"include malformed", "Observation", "_include=subject", false, 400, fhir.IssueInvalid, "_include"},
		{"include not a reference", "Observation", "_include=Observation:code", false, 400, fhir.IssueInvalid, "_include"},
		{"include bad target", "Observation", "_include=Observation:subject:Medication", false, 400, fhir.IssueInvalid, "_include"},
		{"revinclude cannot refer", "Patient", "_revinclude=Observation:encounter", false, 400, fhir.IssueInvalid, "_revinclude"},
		{"count negative", "Patient", "_count=-1", false, 400, fhir.IssueInvalid, "_count"},
		{"count text", "Patient", "_count=ten", false, 400, fhir.IssueInvalid, "_count"},
		{"count twice", "Patient", "_count=1&_count=2", false, 400, fhir.IssueInvalid, "_count"},
		{"total", "Patient", "_total=some", false, 400, fhir.IssueInvalid, "_total"},
		{"summary", "Patient", "_summary=brief", false, 400, fhir.IssueInvalid, "_summary"},
		{"elements", "Patient", "_elements=name.family", false, 400, fhir.IssueInvalid, "_elements"},
		{"system _type", "", "_type=Nope", false, 400, fhir.IssueInvalid, "_type"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			q, err := url.ParseQuery(tt.query)
			if err != nil {
				t.Fatal(err)
			}
			for _, strict := range []bool{true, false} {
				s, err := e.Parse(tt.typ, q, strict)
				if !strict && tt.strictOnly {
					if err != nil {
						t.Errorf("lenient: %v", err)
					} else if len(s.Unknown) != 1 {
						t.Errorf("lenient: Unknown = %v, want the parameter", s.Unknown)
					}
					continue
				}
				var fe *fhir.Error
				if !errors.As(err, &fe) {
					t.Fatalf("strict=%v: error %v (%T), want a *fhir.Error", strict, err, err)
				}
				is := fe.Issues[0]
				if fe.Status != tt.status || is.Code != tt.code || len(is.Expression) != 1 || is.Expression[0] != tt.expression {
					t.Errorf("strict=%v: got %d %s %v, want %d %s [%s]: %s", strict, fe.Status, is.Code, is.Expression,
						tt.status, tt.code, tt.expression, is.Message.EN)
				}
				if is.Message.EN == "" || is.Message.ZH == "" {
					t.Errorf("strict=%v: message not in both languages: %+v", strict, is.Message)
				}
			}
		})
	}
}

func TestParseUnknownType(t *testing.T) {
	t.Parallel()
	_, err := newEngine(t).Parse("Nope", url.Values{}, true)
	var fe *fhir.Error
	if !errors.As(err, &fe) || fe.Status != http.StatusNotFound {
		t.Errorf("Parse(Nope) = %v, want 404", err)
	}
}

// TestCompile checks the filter the conditional interactions use: strict.
func TestCompile(t *testing.T) {
	t.Parallel()
	e := newEngine(t)
	x, err := e.Compile("Patient", url.Values{"identifier": {"http://id|1"}, "_count": {"5"}})
	if err != nil {
		t.Fatal(err)
	}
	want := store.Token{Param: "identifier", System: sp("http://id"), Code: "1"}
	if diff := cmp.Diff(store.Expr(want), x); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	if _, err := e.Compile("Patient", url.Values{"foo": {"1"}}); err == nil {
		t.Error("Compile accepted an unknown parameter")
	}
	if x, err := e.Compile("Patient", url.Values{"_format": {"json"}}); err != nil || x != nil {
		t.Errorf("Compile without criteria = %v, %v; want nil, nil", x, err)
	}
}

// TestZeroEngine checks that the zero Engine (as the REST wiring used it
// before New) works.
func TestZeroEngine(t *testing.T) {
	t.Parallel()
	var e Engine
	if len(e.Params("Patient")) == 0 {
		t.Fatal("no Patient parameters")
	}
	if _, err := e.Entries("Patient", []byte(`{"resourceType":"Patient","id":"x"}`)); err != nil {
		t.Fatal(err)
	}
}

func TestParamsList(t *testing.T) {
	t.Parallel()
	e := newEngine(t)
	byCode := func(typ string) map[string]Param {
		m := map[string]Param{}
		for _, p := range e.Params(typ) {
			m[p.Code] = p
		}
		return m
	}
	tests := []struct {
		typ     string
		present map[string]store.IndexKind
		absent  []string
	}{
		{"Patient", map[string]store.IndexKind{
			"_id": store.KindToken, "_lastUpdated": store.KindDate, "_tag": store.KindToken, "_profile": store.KindURI,
			"_security": store.KindToken, "_source": store.KindURI, "name": store.KindString, "birthdate": store.KindDate,
			"identifier": store.KindToken, "organization": store.KindReference, "gender": store.KindToken,
		}, []string{"_text", "_content", "age", "birthOrderBoolean", "code"}},
		{"Observation", map[string]store.IndexKind{
			"code": store.KindToken, "value-quantity": store.KindQuantity, "component-code-value-quantity": KindComposite,
			"subject": store.KindReference, "date": store.KindDate,
		}, nil},
		{"Bundle", map[string]store.IndexKind{"_id": store.KindToken, "composition": store.KindReference},
			[]string{"_text"}}, // not a DomainResource
		{"Location", map[string]store.IndexKind{"address": store.KindString}, []string{"near"}},
		{"Binary", map[string]store.IndexKind{"_id": store.KindToken, "_lastUpdated": store.KindDate}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.typ, func(t *testing.T) {
			t.Parallel()
			got := byCode(tt.typ)
			for code, kind := range tt.present {
				if p, ok := got[code]; !ok || p.Type != kind || p.Doc == "" {
					t.Errorf("%s: %+v (present %v), want type %s with a doc", code, p, ok, kind)
				}
			}
			for _, code := range tt.absent {
				if _, ok := got[code]; ok {
					t.Errorf("%s listed", code)
				}
			}
			params := e.Params(tt.typ)
			for i := 1; i < len(params); i++ {
				if params[i-1].Code >= params[i].Code {
					t.Errorf("not sorted: %s before %s", params[i-1].Code, params[i].Code)
				}
			}
		})
	}
	if e.Params("Nope") != nil {
		t.Error("parameters for an unknown type")
	}
}

func TestParseDecimal(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		in            string
		value, lo, hi float64
	}{
		{"100", 100, 99.5, 100.5},
		{"100.0", 100, 99.95, 100.05},
		{"1e2", 100, 50, 150},
		{"1.0e2", 100, 95, 105},
		{"1.5E-3", 0.0015, 0.00145, 0.00155},
		{".5", 0.5, 0.45, 0.55},
		{"-0", 0, -0.5, 0.5},
	} {
		d, ok := parseDecimal(tt.in)
		if !ok || d.value != tt.value || d.lo != tt.lo || d.hi != tt.hi {
			t.Errorf("parseDecimal(%q) = %v, %v, %v, %v; want %v, %v, %v", tt.in, d.value, d.lo, d.hi, ok, tt.value, tt.lo, tt.hi)
		}
	}
	for _, bad := range []string{"", "1.2.3", "e5", "1e", "0x10", "NaN", "Inf", "1e999"} {
		if _, ok := parseDecimal(bad); ok {
			t.Errorf("parseDecimal(%q) accepted", bad)
		}
	}
	if _, ok := parseDecimal("1e300"); !ok {
		t.Error("1e300 rejected")
	}
	_ = math.Inf
}

// TestLimits: each search limit holds at its value and refuses one more, with
// a 400 too-costly naming the parameter.
func TestLimits(t *testing.T) {
	e := Engine{reg: mustRegistry(t), Limits: Limits{MaxValues: 3, MaxTerms: 5, MaxParams: 3, MaxSortKeys: 2, MaxIncludes: 2}}
	rep := func(pair string, n int) string {
		out := ""
		for i := range n {
			if i > 0 {
				out += "&"
			}
			out += pair
		}
		return out
	}
	for _, tc := range []struct {
		query, expr string // expr: "" when within the limits
	}{
		{"name=a,b,c", ""},
		{"name=a,b,c,d", "name"},
		{"name=a,b&family=c,d&given=e", ""},
		{"name=a,b&family=c,d&given=e,f", "name"}, // keys are read in sorted order
		{rep("name=a", 3), ""},
		{rep("name=a", 4), "name"},
		{"_id=a,b,c,d", "_id"},
		{"name:missing=true&name:missing=true&name:missing=true&name:missing=true", "name:missing"},
		{"organization:Organization.name=a,b,c,d", "organization:Organization.name"},
		{"_sort=name,birthdate", ""},
		{"_sort=name,birthdate,_id", "_sort"},
		{"_sort=name&_sort=birthdate,gender", "_sort"},
		{"_include=Patient:organization&_revinclude=Observation:subject", ""},
		{"_include=Patient:organization&_revinclude=Observation:subject&_revinclude=Observation:patient", "_revinclude"},
	} {
		t.Run(tc.query, func(t *testing.T) {
			params, err := url.ParseQuery(tc.query)
			if err != nil {
				t.Fatal(err)
			}
			_, err = e.Parse("Patient", params, true)
			if tc.expr == "" {
				if err != nil {
					t.Fatalf("within the limits: %v", err)
				}
				return
			}
			var fe *fhir.Error
			if !errors.As(err, &fe) || fe.Status != http.StatusBadRequest || fe.Issues[0].Code != fhir.IssueTooCostly ||
				len(fe.Issues[0].Expression) != 1 || fe.Issues[0].Expression[0] != tc.expr {
				t.Fatalf("over a limit: %#v, want 400 too-costly at %s", err, tc.expr)
			}
		})
	}
}

func mustRegistry(t *testing.T) *registry {
	t.Helper()
	r, err := newRegistry()
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// TestUnionChain: a chain whose parameter has one type on every target is
// their union; with different types it is ambiguous (TestParseErrors).
func TestUnionChain(t *testing.T) {
	e := Engine{reg: mustRegistry(t)}
	s, err := e.Parse("Specimen", url.Values{"subject.identifier": {"http://fmtbank.org/fhir/sid/donor-code|D-000123"}}, true)
	if err != nil {
		t.Fatal(err)
	}
	or, ok := s.Filter.(store.Or)
	if !ok {
		t.Fatalf("filter %#v, want an Or of chains", s.Filter)
	}
	var types []string
	for _, x := range or {
		c := x.(store.Chain)
		if c.Param != "subject" {
			t.Errorf("chain through %s", c.Param)
		}
		types = append(types, c.TargetType)
	}
	if diff := cmp.Diff([]string{"Device", "Group", "Location", "Patient", "Substance"}, types); diff != "" {
		t.Errorf("target types (-want +got):\n%s", diff)
	}
}
