package store_test

import (
	"errors"
	"slices"
	"testing"

	"github.com/fmtbank/cmts/store"
	"github.com/google/go-cmp/cmp"
)

func ptr(s string) *string { return &s }

// memLookup serves Chain and Has from a fixed set of current versions.
type memLookup struct {
	versions []*store.Version
	err      error
}

func (l *memLookup) Current(typ, id string) (*store.Version, error) {
	if l.err != nil {
		return nil, l.err
	}
	for _, v := range l.versions {
		if v.Type == typ && v.ID == id {
			return v, nil
		}
	}
	return nil, nil
}

func (l *memLookup) Referrers(typ, param, targetType, targetID string) ([]*store.Version, error) {
	if l.err != nil {
		return nil, l.err
	}
	var out []*store.Version
	for _, v := range l.versions {
		if v.Type != typ || v.Deleted {
			continue
		}
		if store.RefersTo(v, param, targetType, targetID) {
			out = append(out, v)
		}
	}
	return out, nil
}

func tok(param, sys, code string) store.IndexEntry {
	return store.IndexEntry{Param: param, Kind: store.KindToken, System: sys, Code: code}
}

func str(param, value, exact string) store.IndexEntry {
	return store.IndexEntry{Param: param, Kind: store.KindString, Value: value, Code: exact}
}

func ref(param, typ, id string) store.IndexEntry {
	return store.IndexEntry{Param: param, Kind: store.KindReference, System: typ, Code: id}
}

func date(param, low, high string) store.IndexEntry {
	return store.IndexEntry{Param: param, Kind: store.KindDate, Low: low, High: high}
}

func num(param string, low, high float64) store.IndexEntry {
	return store.IndexEntry{Param: param, Kind: store.KindNumber, Low: store.EncodeNumber(low), High: store.EncodeNumber(high)}
}

func qty(param string, v float64, sys, code string, group int) store.IndexEntry {
	return store.IndexEntry{Param: param, Kind: store.KindQuantity, Low: store.EncodeNumber(v), High: store.EncodeNumber(v), System: sys, Code: code, Group: group}
}

func grouped(e store.IndexEntry, g int) store.IndexEntry { e.Group = g; return e }

const (
	d2019 = "2019-06-01T00:00:00.000000Z"
	d2020 = "2020-01-01T00:00:00.000000Z"
	e2020 = "2020-12-31T23:59:59.999999Z"
	d2021 = "2021-01-01T00:00:00.000000Z"
	d2022 = "2022-01-01T00:00:00.000000Z"
)

func TestMatch(t *testing.T) {
	ucum := "http://unitsofmeasure.org"
	donor := &store.Version{Type: "Patient", ID: "donor1", Index: []store.IndexEntry{
		tok("identifier", "urn:donor", "D-1"),
		tok("identifier", "", "bare"),
		tok("gender", "http://hl7.org/fhir/administrative-gender", "female"),
		str("name", "张三", "张三"),
		str("name", "zhang san", "Zhang San"),
		{Param: "url", Kind: store.KindURI, Value: "http://fmtbank.org/fhir/StructureDefinition/cmts-donor"},
		{Param: "_text", Kind: store.KindToken, System: "s", Code: "c", Value: "洗涤菌群"},
		date("birthdate", "1990-05-01T00:00:00.000000Z", "1990-05-01T23:59:59.999999Z"),
	}}
	gone := &store.Version{Type: "Patient", ID: "gone", Deleted: true}
	lot := &store.Version{Type: "Specimen", ID: "lot1", Index: []store.IndexEntry{
		tok("status", "", "available"),
		ref("subject", "Patient", "donor1"),
		ref("parent", "Specimen", "donation1"),
	}}
	donation := &store.Version{Type: "Specimen", ID: "donation1", Index: []store.IndexEntry{
		ref("subject", "Patient", "donor1"),
		date("collected", d2020, e2020),
	}}
	proc := &store.Version{Type: "Procedure", ID: "proc1", Index: []store.IndexEntry{
		ref("subject", "Patient", "rec1"),
		ref("product", "Specimen", "lot1"),
		ref("performer", "Practitioner", "gone"),
		ref("report", "", ""), // a reference with neither type nor id
		{Param: "basedOn", Kind: store.KindReference, Value: "http://other.org/fhir/ServiceRequest/9"},
		tok("subject", "urn:mrn", "rec1"), // subject:identifier entry
		date("date", d2020, d2021),
		date("date", d2022, d2022),
	}}
	proc2 := &store.Version{Type: "Procedure", ID: "proc2", Index: []store.IndexEntry{
		ref("subject", "Patient", "rec1"),
		ref("product", "Specimen", "lot1"),
		ref("performer", "Patient", "gone"),
	}}
	deletedAE := &store.Version{Type: "AdverseEvent", ID: "ae-deleted", Deleted: true, Index: []store.IndexEntry{ref("subject", "Patient", "rec1")}}
	rec := &store.Version{Type: "Patient", ID: "rec1", Index: []store.IndexEntry{
		tok("identifier", "urn:mrn", "rec1"),
		num("age", 34, 34),
		num("weight-range", 60, 70),
	}}
	obs := &store.Version{Type: "Observation", ID: "o1", Index: []store.IndexEntry{
		tok("code", "http://loinc.org", "8480-6"),
		qty("value-quantity", 120, ucum, "mm[Hg]", 0),
		qty("value-quantity", 80, ucum, "mm[Hg]", 0),
		// Two composite values: (8480-6, 120 mm[Hg]) and (8462-4, 80 mm[Hg]).
		grouped(tok("code-value-quantity$0", "http://loinc.org", "8480-6"), 1),
		qty("code-value-quantity$1", 120, ucum, "mm[Hg]", 1),
		grouped(tok("code-value-quantity$0", "http://loinc.org", "8462-4"), 2),
		qty("code-value-quantity$1", 80, ucum, "mm[Hg]", 2),
		// A component without a group is not part of any composite value.
		tok("code-value-quantity$0", "http://loinc.org", "9999-9"),
		qty("code-value-quantity$1", 1, ucum, "g", 0),
	}}
	lookup := &memLookup{versions: []*store.Version{donor, gone, lot, donation, proc, proc2, deletedAE, rec, obs}}

	bp := func(code string, op store.CompareOp, v float64) store.Composite {
		return store.Composite{Param: "code-value-quantity", Components: []store.Expr{
			store.Token{Param: "code-value-quantity$0", Code: code},
			store.Range{Param: "code-value-quantity$1", Bounds: []store.Bound{{Op: op, Value: store.EncodeNumber(v)}}},
		}}
	}
	dateRange := func(param string, bounds ...store.Bound) store.Range {
		return store.Range{Param: param, Bounds: bounds}
	}
	for _, tc := range []struct {
		name string
		e    store.Expr
		v    *store.Version
		want bool
	}{
		{"nil matches", nil, donor, true},
		{"empty and matches", store.And{}, donor, true},
		{"empty or fails", store.Or{}, donor, false},
		{"token code", store.Token{Param: "identifier", Code: "D-1"}, donor, true},
		{"token system and code", store.Token{Param: "identifier", System: ptr("urn:donor"), Code: "D-1"}, donor, true},
		{"token wrong system", store.Token{Param: "identifier", System: ptr("urn:mrn"), Code: "D-1"}, donor, false},
		{"token empty system only bare", store.Token{Param: "identifier", System: ptr(""), Code: "bare"}, donor, true},
		{"token empty system excludes systems", store.Token{Param: "identifier", System: ptr(""), Code: "D-1"}, donor, false},
		{"token system any code", store.Token{Param: "identifier", System: ptr("urn:donor")}, donor, true},
		{"token system any code miss", store.Token{Param: "identifier", System: ptr("urn:mrn")}, donor, false},
		{"token no system any code", store.Token{Param: "identifier", System: ptr("")}, donor, true},
		{"token empty code without system", store.Token{Param: "identifier"}, donor, false},
		{"token other param", store.Token{Param: "gender", Code: "D-1"}, donor, false},
		{"token code is case sensitive", store.Token{Param: "identifier", Code: "d-1"}, donor, false},
		{"token ignores reference entries", store.Token{Param: "subject", Code: "donor1"}, lot, false},
		{"token on identifier entry of a reference param", store.Token{Param: "subject", System: ptr("urn:mrn"), Code: "rec1"}, proc, true},
		{"id", store.ID{IDs: []string{"x", "donor1"}}, donor, true},
		{"id miss", store.ID{IDs: []string{"x"}}, donor, false},
		{"id none", store.ID{}, donor, false},
		{"prefix", store.String{Param: "name", Mode: store.Prefix, Text: "zhang"}, donor, true},
		{"prefix chinese", store.String{Param: "name", Mode: store.Prefix, Text: "张"}, donor, true},
		{"prefix chinese whole", store.String{Param: "name", Mode: store.Prefix, Text: "张三"}, donor, true},
		{"prefix not infix", store.String{Param: "name", Mode: store.Prefix, Text: "san"}, donor, false},
		{"prefix longer than value", store.String{Param: "name", Mode: store.Prefix, Text: "张三丰"}, donor, false},
		{"prefix empty text matches any entry", store.String{Param: "name", Mode: store.Prefix, Text: ""}, donor, true},
		{"prefix empty text needs an entry", store.String{Param: "name", Mode: store.Prefix, Text: ""}, lot, false},
		{"exact compares code", store.String{Param: "name", Mode: store.Exact, Text: "Zhang San"}, donor, true},
		{"exact is case sensitive", store.String{Param: "name", Mode: store.Exact, Text: "zhang san"}, donor, false},
		{"exact chinese", store.String{Param: "name", Mode: store.Exact, Text: "张三"}, donor, true},
		{"contains", store.String{Param: "name", Mode: store.Contains, Text: "ng sa"}, donor, true},
		{"contains chinese", store.String{Param: "name", Mode: store.Contains, Text: "三"}, donor, true},
		{"contains miss", store.String{Param: "name", Mode: store.Contains, Text: "李"}, donor, false},
		{"equal", store.String{Param: "url", Mode: store.Equal, Text: "http://fmtbank.org/fhir/StructureDefinition/cmts-donor"}, donor, true},
		{"equal not prefix", store.String{Param: "url", Mode: store.Equal, Text: "http://fmtbank.org/fhir"}, donor, false},
		{"below", store.String{Param: "url", Mode: store.Below, Text: "http://fmtbank.org/fhir/"}, donor, true},
		{"below miss", store.String{Param: "url", Mode: store.Below, Text: "http://hl7.org/"}, donor, false},
		{"above", store.String{Param: "url", Mode: store.Above, Text: "http://fmtbank.org/fhir/StructureDefinition/cmts-donor/v2"}, donor, true},
		{"above equal", store.String{Param: "url", Mode: store.Above, Text: "http://fmtbank.org/fhir/StructureDefinition/cmts-donor"}, donor, true},
		{"above shorter text", store.String{Param: "url", Mode: store.Above, Text: "http://fmtbank.org/fhir"}, donor, false},
		{"string on token text", store.String{Param: "_text", Mode: store.Contains, Text: "菌群"}, donor, true},
		{"string on absolute reference", store.String{Param: "basedOn", Mode: store.Equal, Text: "http://other.org/fhir/ServiceRequest/9"}, proc, true},
		{"missing true", store.Missing{Param: "deceased", Missing: true}, donor, true},
		{"missing true has entry", store.Missing{Param: "name", Missing: true}, donor, false},
		{"missing false", store.Missing{Param: "name"}, donor, true},
		{"missing false no entry", store.Missing{Param: "deceased"}, donor, false},
		{"not", store.Not{Expr: store.Token{Param: "gender", Code: "male"}}, donor, true},
		{"not matching", store.Not{Expr: store.Token{Param: "gender", Code: "female"}}, donor, false},
		{"not of missing param", store.Not{Expr: store.Token{Param: "gender", Code: "male"}}, lot, true},
		{"and", store.And{store.Token{Param: "gender", Code: "female"}, store.String{Param: "name", Mode: store.Prefix, Text: "张"}}, donor, true},
		{"and one fails", store.And{store.Token{Param: "gender", Code: "female"}, store.String{Param: "name", Mode: store.Prefix, Text: "李"}}, donor, false},
		{"or", store.Or{store.Token{Param: "gender", Code: "male"}, store.String{Param: "name", Mode: store.Prefix, Text: "张"}}, donor, true},
		{"nested", store.And{store.Or{store.ID{IDs: []string{"zz"}}, store.Not{Expr: store.Missing{Param: "name", Missing: true}}}, store.Not{Expr: store.Or{}}}, donor, true},

		// Ranges: every bound on one entry.
		{"date inside year", dateRange("date", store.Bound{Op: store.GE, Value: d2020}, store.Bound{High: true, Op: store.LE, Value: d2021}), proc, true},
		{"date bounds on different entries", dateRange("date", store.Bound{Op: store.GE, Value: d2021}, store.Bound{High: true, Op: store.LT, Value: d2021}), proc, false},
		{"date high gt", dateRange("date", store.Bound{High: true, Op: store.GT, Value: d2021}), proc, true},
		{"date high gt on the edge", dateRange("date", store.Bound{High: true, Op: store.GT, Value: d2022}), proc, false},
		{"date high ge on the edge", dateRange("date", store.Bound{High: true, Op: store.GE, Value: d2022}), proc, true},
		{"date low lt", dateRange("date", store.Bound{Op: store.LT, Value: d2020}), proc, false},
		{"date low le", dateRange("date", store.Bound{Op: store.LE, Value: d2020}), proc, true},
		{"date no bounds any entry", dateRange("date"), proc, true},
		{"date no bounds no entry", dateRange("date"), donor, false},
		{"range ignores non-range kinds", dateRange("name", store.Bound{Op: store.LT, Value: "~"}), donor, false},
		{"number eq", dateRange("age", store.Bound{Op: store.GE, Value: store.EncodeNumber(34)}, store.Bound{High: true, Op: store.LE, Value: store.EncodeNumber(34)}), rec, true},
		{"number negative order", dateRange("age", store.Bound{Op: store.GT, Value: store.EncodeNumber(-100)}), rec, true},
		{"number range overlaps", dateRange("weight-range", store.Bound{Op: store.LE, Value: store.EncodeNumber(65)}, store.Bound{High: true, Op: store.GE, Value: store.EncodeNumber(65)}), rec, true},
		{"number range outside", dateRange("weight-range", store.Bound{Op: store.GT, Value: store.EncodeNumber(65)}), rec, false},
		{"quantity with unit", store.Range{Param: "value-quantity", Bounds: []store.Bound{{Op: store.GT, Value: store.EncodeNumber(100)}}, System: &ucum, Code: ptr("mm[Hg]")}, obs, true},
		{"quantity wrong unit", store.Range{Param: "value-quantity", Bounds: []store.Bound{{Op: store.GT, Value: store.EncodeNumber(100)}}, Code: ptr("kPa")}, obs, false},
		{"quantity code only", store.Range{Param: "value-quantity", Bounds: []store.Bound{{Op: store.LT, Value: store.EncodeNumber(100)}}, Code: ptr("mm[Hg]")}, obs, true},
		{"quantity no unit system", store.Range{Param: "value-quantity", System: ptr("")}, obs, false},

		// References.
		{"reference type and id", store.Reference{Param: "subject", Type: "Patient", ID: "donor1"}, lot, true},
		{"reference any type", store.Reference{Param: "subject", ID: "donor1"}, lot, true},
		{"reference wrong type", store.Reference{Param: "subject", Type: "Group", ID: "donor1"}, lot, false},
		{"reference ignores token entries", store.Reference{Param: "subject", ID: "rec1"}, &store.Version{Type: "Procedure", ID: "x", Index: []store.IndexEntry{tok("subject", "Patient", "rec1")}}, false},
		{"reference url", store.Reference{Param: "basedOn", URL: "http://other.org/fhir/ServiceRequest/9"}, proc, true},
		{"reference url miss", store.Reference{Param: "basedOn", URL: "http://other.org/fhir/ServiceRequest/8"}, proc, false},

		// Chains.
		{"chain", store.Chain{Param: "subject", TargetType: "Patient", Filter: store.String{Param: "name", Mode: store.Prefix, Text: "张"}}, lot, true},
		{"chain target does not match", store.Chain{Param: "subject", TargetType: "Patient", Filter: store.String{Param: "name", Mode: store.Prefix, Text: "李"}}, lot, false},
		{"chain wrong target type", store.Chain{Param: "subject", TargetType: "Group", Filter: nil}, lot, false},
		{"chain any type", store.Chain{Param: "subject", Filter: store.Token{Param: "gender", Code: "female"}}, lot, true},
		{"chain nil filter", store.Chain{Param: "subject", TargetType: "Patient"}, lot, true},
		{"chain to deleted target", store.Chain{Param: "performer", TargetType: "Patient"}, proc2, false},
		{"chain to unknown target", store.Chain{Param: "performer", TargetType: "Practitioner"}, proc, false},
		{"chain never follows empty references", store.Chain{Param: "report"}, proc, false},
		{"chain of chain", store.Chain{Param: "product", TargetType: "Specimen", Filter: store.Chain{Param: "parent", TargetType: "Specimen", Filter: store.Range{Param: "collected", Bounds: []store.Bound{{Op: store.GE, Value: d2020}}}}}, proc, true},
		{"chain of chain miss", store.Chain{Param: "product", TargetType: "Specimen", Filter: store.Chain{Param: "parent", TargetType: "Specimen", Filter: store.Range{Param: "collected", Bounds: []store.Bound{{Op: store.GE, Value: d2021}}}}}, proc, false},
		{"chain with not", store.Chain{Param: "subject", TargetType: "Patient", Filter: store.Not{Expr: store.Token{Param: "gender", Code: "female"}}}, lot, false},

		// Reverse chains.
		{"has", store.Has{Type: "Specimen", Param: "subject", Filter: store.Token{Param: "status", Code: "available"}}, donor, true},
		{"has nil filter", store.Has{Type: "Specimen", Param: "subject"}, donor, true},
		{"has filter fails", store.Has{Type: "Specimen", Param: "subject", Filter: store.Token{Param: "status", Code: "unavailable"}}, donor, false},
		{"has wrong param", store.Has{Type: "Specimen", Param: "parent"}, donor, false},
		{"has no referrer", store.Has{Type: "Procedure", Param: "subject"}, donor, false},
		{"has ignores deleted referrers", store.Has{Type: "AdverseEvent", Param: "subject"}, rec, false},
		{"has of has", store.Has{Type: "Specimen", Param: "parent", Filter: store.Has{Type: "Procedure", Param: "product", Filter: store.Reference{Param: "subject", ID: "rec1"}}}, donation, true},
		{"has with chain", store.Has{Type: "Procedure", Param: "subject", Filter: store.Chain{Param: "product", TargetType: "Specimen", Filter: store.Reference{Param: "parent", ID: "donation1"}}}, rec, true},

		// Composites: all components in one group.
		{"composite same group", bp("8480-6", store.GT, 100), obs, true},
		{"composite second group", bp("8462-4", store.LT, 100), obs, true},
		{"composite across groups", bp("8480-6", store.LT, 100), obs, false},
		{"composite across groups other way", bp("8462-4", store.GT, 100), obs, false},
		{"composite ignores group 0", bp("9999-9", store.LT, 10), obs, false},
		{"composite component names its parameter", store.Composite{Param: "code-value-quantity", Components: []store.Expr{store.Token{Param: "code", Code: "8480-6"}}}, obs, false},
		{"composite wrong component index", store.Composite{Param: "code-value-quantity", Components: []store.Expr{store.Range{Param: "code-value-quantity$1"}}}, obs, false},
		{"composite with not", store.Composite{Param: "code-value-quantity", Components: []store.Expr{
			store.Token{Param: "code-value-quantity$0", Code: "8480-6"},
			store.Not{Expr: store.Range{Param: "code-value-quantity$1", Bounds: []store.Bound{{Op: store.LT, Value: store.EncodeNumber(100)}}}},
		}}, obs, true},
		{"composite with or", store.Composite{Param: "code-value-quantity", Components: []store.Expr{
			store.Or{store.Token{Param: "code-value-quantity$0", Code: "x"}, store.Token{Param: "code-value-quantity$0", Code: "8462-4"}},
			store.Range{Param: "code-value-quantity$1", Bounds: []store.Bound{{Op: store.LE, Value: store.EncodeNumber(80)}}},
		}}, obs, true},
		{"composite no components any group", store.Composite{Param: "code-value-quantity"}, obs, true},
		{"composite no groups", store.Composite{Param: "code-value-quantity"}, donor, false},
		{"composite id component sees resource", store.Composite{Param: "code-value-quantity", Components: []store.Expr{store.ID{IDs: []string{"o1"}}}}, obs, true},
		{"composite missing component", store.Composite{Param: "code-value-quantity", Components: []store.Expr{
			store.Token{Param: "code-value-quantity$0", Code: "8480-6"}, store.Missing{Param: "code-value-quantity$1", Missing: true},
		}}, obs, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := store.Match(tc.e, tc.v, lookup)
			if err != nil {
				t.Fatalf("Match: %v", err)
			}
			if got != tc.want {
				t.Errorf("Match = %v, want %v", got, tc.want)
			}
		})
	}
}

type badExpr struct{ store.Expr }

func TestMatchErrors(t *testing.T) {
	v := &store.Version{Type: "Specimen", ID: "s", Index: []store.IndexEntry{ref("subject", "Patient", "p")}}
	boom := errors.New("boom")
	for _, tc := range []struct {
		name   string
		e      store.Expr
		lookup store.Lookup
		want   error
	}{
		{"chain without lookup", store.Chain{Param: "subject"}, nil, store.ErrInvalidQuery},
		{"has without lookup", store.Has{Type: "Procedure", Param: "specimen"}, nil, store.ErrInvalidQuery},
		{"chain lookup error", store.Chain{Param: "subject"}, &memLookup{err: boom}, boom},
		{"has lookup error", store.Has{Type: "Procedure", Param: "specimen"}, &memLookup{err: boom}, boom},
		{"lookup error under not", store.Not{Expr: store.Chain{Param: "subject"}}, &memLookup{err: boom}, boom},
		{"unknown expression", badExpr{}, nil, store.ErrInvalidQuery},
		{"unknown string mode", store.String{Param: "name", Mode: 99}, nil, store.ErrInvalidQuery},
		{"unknown compare op", store.Range{Param: "date", Bounds: []store.Bound{{Op: 9}}}, nil, store.ErrInvalidQuery},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ok, err := store.Match(tc.e, v, tc.lookup)
			if !errors.Is(err, tc.want) || ok {
				t.Errorf("Match = %v, %v; want false, %v", ok, err, tc.want)
			}
		})
	}
}

func TestLess(t *testing.T) {
	res := func(typ, id string, idx ...store.IndexEntry) *store.Version {
		return &store.Version{Type: typ, ID: id, Index: idx}
	}
	all := []*store.Version{
		res("Patient", "a", str("name", "wang", ""), date("birthdate", "1980-01-01T00:00:00.000000Z", "1980-12-31T23:59:59.999999Z"), tok("gender", "", "male")),
		res("Patient", "b", str("name", "li", ""), str("name", "zhao", ""), date("birthdate", "1985-06-01T00:00:00.000000Z", "1985-06-01T23:59:59.999999Z"), tok("gender", "", "female")),
		res("Patient", "c", date("birthdate", "1980-01-01T00:00:00.000000Z", "1980-01-01T23:59:59.999999Z"), tok("gender", "", "female")),
		res("Patient", "d", str("name", "张", ""), tok("gender", "", "male")),
		res("Observation", "z", str("name", "wang", "")),
		res("Patient", "e", str("name", "wang", ""), num("age", -3, -3), ref("subject", "Patient", "x")),
		res("Patient", "f", num("age", 10, 10), num("age", -20, 50), ref("subject", "Group", "y")),
	}
	for _, tc := range []struct {
		name string
		keys []store.SortKey
		want []string
	}{
		{"no keys: type then id", nil, []string{"Observation/z", "Patient/a", "Patient/b", "Patient/c", "Patient/d", "Patient/e", "Patient/f"}},
		// b's smallest name is "li"; ties (wang) by type then id; "张" sorts after
		// latin letters in byte order; no name last.
		{"string asc", []store.SortKey{{Param: "name"}}, []string{"Patient/b", "Observation/z", "Patient/a", "Patient/e", "Patient/d", "Patient/c", "Patient/f"}},
		// Descending by the largest: b's "zhao"; ties still by type, id ascending;
		// missing still last.
		{"string desc", []store.SortKey{{Param: "name", Desc: true}}, []string{"Patient/d", "Patient/b", "Observation/z", "Patient/a", "Patient/e", "Patient/c", "Patient/f"}},
		// Ascending by Low: a and c tie on 1980-01-01.
		{"date asc", []store.SortKey{{Param: "birthdate"}}, []string{"Patient/a", "Patient/c", "Patient/b", "Observation/z", "Patient/d", "Patient/e", "Patient/f"}},
		// Descending by High: b 1985, a 1980-12-31, c 1980-01-01.
		{"date desc", []store.SortKey{{Param: "birthdate", Desc: true}}, []string{"Patient/b", "Patient/a", "Patient/c", "Observation/z", "Patient/d", "Patient/e", "Patient/f"}},
		{"multiple keys", []store.SortKey{{Param: "gender"}, {Param: "birthdate", Desc: true}}, []string{"Patient/b", "Patient/c", "Patient/a", "Patient/d", "Observation/z", "Patient/e", "Patient/f"}},
		{"multiple keys desc first", []store.SortKey{{Param: "gender", Desc: true}, {Param: "name"}}, []string{"Patient/a", "Patient/d", "Patient/b", "Patient/c", "Observation/z", "Patient/e", "Patient/f"}},
		// Numbers in numeric order (negative below positive): f's smallest low
		// -20, e's -3; descending by the largest high: f 50, e -3.
		{"number asc", []store.SortKey{{Param: "age"}}, []string{"Patient/f", "Patient/e", "Observation/z", "Patient/a", "Patient/b", "Patient/c", "Patient/d"}},
		{"number desc", []store.SortKey{{Param: "age", Desc: true}}, []string{"Patient/f", "Patient/e", "Observation/z", "Patient/a", "Patient/b", "Patient/c", "Patient/d"}},
		// References sort by "type/id": Group/y before Patient/x.
		{"reference", []store.SortKey{{Param: "subject"}}, []string{"Patient/f", "Patient/e", "Observation/z", "Patient/a", "Patient/b", "Patient/c", "Patient/d"}},
		{"unknown param is a no-op", []store.SortKey{{Param: "nothing", Desc: true}}, []string{"Observation/z", "Patient/a", "Patient/b", "Patient/c", "Patient/d", "Patient/e", "Patient/f"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			vs := slices.Clone(all)
			// Reverse first, so a sort that does nothing cannot pass.
			slices.Reverse(vs)
			slices.SortStableFunc(vs, func(a, b *store.Version) int { return store.Compare(a, b, tc.keys) })
			var got []string
			for _, v := range vs {
				got = append(got, v.Type+"/"+v.ID)
			}
			if d := cmp.Diff(tc.want, got); d != "" {
				t.Errorf("order (-want +got):\n%s", d)
			}
		})
	}
	t.Run("irreflexive", func(t *testing.T) {
		for _, v := range all {
			if store.Less(v, v, []store.SortKey{{Param: "name"}}) {
				t.Errorf("Less(%s, %s) = true", v.ID, v.ID)
			}
		}
	})
}
