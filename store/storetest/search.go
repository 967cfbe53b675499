package storetest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/fmtbank/cmts/store"
	"github.com/google/go-cmp/cmp"
)

// The search suite stores a small WMT registry (donors, donations, product
// lots, procedures, observations, adverse events) with hand-made index
// entries, in two tenants, with updates and deletes, and runs every kind of
// AST node against it. Each case's expected result was worked out by hand from
// the entries below; the suite also evaluates store.Match over everything it
// stored and requires the same answer, so that backends, Match and the
// hand-written expectations all agree.

// Entry builders.

func tokE(param, system, code string) store.IndexEntry {
	return store.IndexEntry{Param: param, Kind: store.KindToken, System: system, Code: code}
}

// textTokE is a token whose display text (normalised) is searchable with :text.
func textTokE(param, system, code, text string) store.IndexEntry {
	return store.IndexEntry{Param: param, Kind: store.KindToken, System: system, Code: code, Value: text}
}

func strE(param, normalised, exact string) store.IndexEntry {
	return store.IndexEntry{Param: param, Kind: store.KindString, Value: normalised, Code: exact}
}

func uriE(param, uri string) store.IndexEntry {
	return store.IndexEntry{Param: param, Kind: store.KindURI, Value: uri}
}

func refE(param, typ, id string) store.IndexEntry {
	return store.IndexEntry{Param: param, Kind: store.KindReference, System: typ, Code: id}
}

func urlRefE(param, url string) store.IndexEntry {
	return store.IndexEntry{Param: param, Kind: store.KindReference, Value: url}
}

func mustTime(s string) time.Time {
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		panic(err)
	}
	return t
}

// at is an instant (RFC 3339).
func at(s string) string { return store.EncodeTime(mustTime(s)) }

// dayStart and dayEnd bound a calendar day ("2024-05-01") in UTC.
func dayStart(d string) string { return at(d + "T00:00:00Z") }
func dayEnd(d string) string {
	return store.EncodeTime(mustTime(d + "T00:00:00Z").Add(24*time.Hour - time.Microsecond))
}

func periodE(param, low, high string) store.IndexEntry {
	return store.IndexEntry{Param: param, Kind: store.KindDate, Low: low, High: high}
}

func dayE(param, d string) store.IndexEntry { return periodE(param, dayStart(d), dayEnd(d)) }

func instantE(param, s string) store.IndexEntry { return periodE(param, at(s), at(s)) }

func numE(param string, v float64) store.IndexEntry {
	n := store.EncodeNumber(v)
	return store.IndexEntry{Param: param, Kind: store.KindNumber, Low: n, High: n}
}

func qtyE(param string, v float64, system, code string) store.IndexEntry {
	n := store.EncodeNumber(v)
	return store.IndexEntry{Param: param, Kind: store.KindQuantity, Low: n, High: n, System: system, Code: code}
}

func inGroup(g int, e store.IndexEntry) store.IndexEntry { e.Group = g; return e }

const (
	snomed  = "http://snomed.info/sct"
	loinc   = "http://loinc.org"
	ucum    = "http://unitsofmeasure.org"
	gender  = "http://hl7.org/fhir/administrative-gender"
	spStat  = "http://hl7.org/fhir/specimen-status"
	sdBase  = "http://fmtbank.org/fhir/StructureDefinition/"
	donorSD = sdBase + "cmts-donor"
	recipSD = sdBase + "cmts-recipient"
)

// registry is what the suite stored: the current version of every resource
// (the model the oracle evaluates), and the store under test.
type registry struct {
	s     store.Store
	cur   map[string]*store.Version // "Type/id" -> current version
	clock time.Time
}

// put writes the next version of typ/id with these entries.
func (r *registry) put(t *testing.T, tenant, typ, id string, idx ...store.IndexEntry) {
	t.Helper()
	r.write(t, tenant, typ, id, false, idx)
}

// del writes a tombstone on typ/id.
func (r *registry) del(t *testing.T, typ, id string) {
	t.Helper()
	r.write(t, r.cur[typ+"/"+id].Tenant, typ, id, true, nil)
}

func (r *registry) write(t *testing.T, tenant, typ, id string, deleted bool, idx []store.IndexEntry) {
	t.Helper()
	var prev int64
	if old := r.cur[typ+"/"+id]; old != nil {
		prev = old.VersionID
	}
	r.clock = r.clock.Add(time.Second)
	v := version(tenant, typ, id, prev+1, r.clock, idx...)
	if deleted {
		v.Deleted, v.Resource, v.Index = true, nil, nil
	}
	mustPut(t, r.s, prev, v)
	r.cur[typ+"/"+id] = &v
}

// lookup serves store.Match from the registry, for one access.
type lookup struct {
	r      *registry
	access store.Access
}

func (l lookup) Current(typ, id string) (*store.Version, error) {
	v := l.r.cur[typ+"/"+id]
	if v == nil || !l.access.Sees(v.Tenant, v.Reach, v.Addressee) {
		return nil, nil
	}
	return v, nil
}

func (l lookup) Referrers(typ, param, targetType, targetID string) ([]*store.Version, error) {
	var out []*store.Version
	for _, v := range l.r.cur {
		if !l.access.Sees(v.Tenant, v.Reach, v.Addressee) || v.Type != typ || v.Deleted {
			continue
		}
		if store.RefersTo(v, param, targetType, targetID) {
			out = append(out, v)
		}
	}
	return out, nil
}

// position is the cursor a client would hold for v: its place in the order
// of sort, from the entries the registry wrote.
func (r *registry) position(v *store.Version, sort []store.SortKey) *store.SearchCursor {
	return store.PositionOf(r.cur[v.Type+"/"+v.ID], sort)
}

// oracle returns what a search should return, by store.Match and store.Less
// over every current version the registry holds.
func (r *registry) oracle(q store.Query) ([]string, error) {
	var vs []*store.Version
	for _, v := range r.cur {
		if !q.Access.Sees(v.Tenant, v.Reach, v.Addressee) || v.Deleted || (q.Type != "" && v.Type != q.Type) || (len(q.Types) > 0 && !slices.Contains(q.Types, v.Type)) {
			continue
		}
		ok, err := store.Match(q.Filter, v, lookup{r, q.Access})
		if err != nil {
			return nil, err
		}
		if ok {
			vs = append(vs, v)
		}
	}
	slices.SortFunc(vs, func(a, b *store.Version) int { return store.Compare(a, b, q.Sort) })
	return refs(vs), nil
}

// refs lists "Type/id" in the given order.
func refs(vs []*store.Version) []string {
	out := []string{}
	for _, v := range vs {
		out = append(out, v.Type+"/"+v.ID)
	}
	return out
}

// loadRegistry stores the suite's data set. Comments give what the entries
// stand for; only the entries matter.
func loadRegistry(t *testing.T, s store.Store) *registry {
	r := &registry{s: s, cur: map[string]*store.Version{}, clock: base}
	h1, h2 := "h1", "h2"

	// Donors.
	r.put(t, h1, "Patient", "d1",
		tokE("identifier", "urn:cmts:donor", "D-001"),
		tokE("gender", gender, "female"),
		strE("name", "张三", "张三"), strE("name", "zhang san", "Zhang San"),
		dayE("birthdate", "1990-05-01"),
		uriE("_profile", donorSD),
		tokE("active", "", "true"))
	r.put(t, h1, "Patient", "d2",
		tokE("identifier", "urn:cmts:donor", "D-002"),
		tokE("gender", gender, "male"),
		strE("name", "李四", "李四"), strE("name", "li si", "Li Si"),
		dayE("birthdate", "1985-11-20"),
		uriE("_profile", donorSD),
		tokE("active", "", "false"))
	// Recipients.
	r.put(t, h1, "Patient", "r1",
		tokE("identifier", "urn:mrn", "R-001"), tokE("identifier", "", "001"),
		tokE("gender", gender, "female"),
		strE("name", "王小明", "王小明"), strE("name", "wang xiaoming", "Wang Xiaoming"),
		periodE("birthdate", dayStart("1970-01-01"), dayEnd("1970-12-31")), // born 1970
		uriE("_profile", recipSD),
		refE("general-practitioner", "Practitioner", "doc1"))
	r.put(t, h1, "Patient", "r2",
		tokE("identifier", "urn:mrn", "R-002"),
		tokE("gender", gender, "male"),
		strE("name", "赵六", "赵六"), strE("name", "zhao liu", "Zhao Liu"),
		uriE("_profile", recipSD))
	r.put(t, h1, "Patient", "r3",
		tokE("identifier", "urn:mrn", "R-003"),
		tokE("gender", gender, "female"),
		strE("name", "孙七", "孙七"), strE("name", "sun qi", "Sun Qi"))
	r.del(t, "Patient", "r3")
	r.put(t, h1, "Patient", "r4",
		tokE("identifier", "urn:mrn", "R-004"),
		tokE("gender", gender, "male"),
		strE("name", "muller", "Müller"),
		dayE("birthdate", "2001-02-03"))
	// The update corrects the gender and adds the profile.
	r.put(t, h1, "Patient", "r4",
		tokE("identifier", "urn:mrn", "R-004"),
		tokE("gender", gender, "female"),
		strE("name", "muller", "Müller"),
		dayE("birthdate", "2001-02-03"),
		uriE("_profile", recipSD))
	r.put(t, h1, "Practitioner", "doc1",
		tokE("identifier", "urn:npi", "N-1"),
		strE("name", "刘医生", "刘医生"), strE("name", "liu yisheng", "Liu Yisheng"))

	// Donations and product lots.
	r.put(t, h1, "Specimen", "don1",
		tokE("type", snomed, "119339001"), refE("subject", "Patient", "d1"),
		dayE("collected", "2024-03-01"), tokE("status", spStat, "available"))
	r.put(t, h1, "Specimen", "don2",
		tokE("type", snomed, "119339001"), refE("subject", "Patient", "d2"),
		dayE("collected", "2024-06-15"), tokE("status", spStat, "available"))
	r.put(t, h1, "Specimen", "lot1",
		tokE("type", "urn:cmts:product-type", "washed-suspension"),
		refE("subject", "Patient", "d1"), refE("parent", "Specimen", "don1"),
		tokE("identifier", "urn:cmts:lot", "LOT-2024-001"),
		tokE("status", spStat, "available"), dayE("expiry", "2024-09-01"),
		tokE("release", "urn:cmts:release", "released"))
	r.put(t, h1, "Specimen", "lot2",
		tokE("type", "urn:cmts:product-type", "washed-suspension"),
		refE("subject", "Patient", "d2"), refE("parent", "Specimen", "don2"),
		tokE("identifier", "urn:cmts:lot", "LOT-2024-002"),
		tokE("status", spStat, "unavailable"), dayE("expiry", "2024-12-01"),
		tokE("release", "urn:cmts:release", "recalled"))
	r.put(t, h1, "Specimen", "lot3",
		tokE("type", "urn:cmts:product-type", "capsule"),
		refE("subject", "Patient", "d1"), refE("parent", "Specimen", "don1"),
		tokE("identifier", "urn:cmts:lot", "LOT-2024-003"))
	r.del(t, "Specimen", "lot3")

	// Transplantations.
	r.put(t, h1, "Procedure", "p1",
		tokE("code", snomed, "789778002"), refE("subject", "Patient", "r1"), refE("product", "Specimen", "lot1"),
		tokE("route", "urn:cmts:route", "colonic-tet"), instantE("date", "2024-04-10T09:00:00Z"), numE("course", 1))
	r.put(t, h1, "Procedure", "p2",
		tokE("code", snomed, "789778002"), refE("subject", "Patient", "r1"), refE("product", "Specimen", "lot2"),
		tokE("route", "urn:cmts:route", "mid-gut-tet"), instantE("date", "2024-07-01T10:30:00Z"), numE("course", 2))
	r.put(t, h1, "Procedure", "p3",
		tokE("code", snomed, "789778002"), refE("subject", "Patient", "r2"), refE("product", "Specimen", "lot1"),
		tokE("route", "urn:cmts:route", "capsule"), periodE("date", dayStart("2024-05-01"), dayEnd("2024-05-03")), numE("course", 1))
	r.put(t, h1, "Procedure", "p4", // on the deleted recipient r3
		tokE("code", snomed, "789778002"), refE("subject", "Patient", "r3"), refE("product", "Specimen", "lot1"),
		tokE("route", "urn:cmts:route", "colonic-tet"), instantE("date", "2024-08-01T08:00:00Z"), numE("course", 1))
	r.put(t, h1, "Procedure", "p5", // on a patient of another server, no date
		tokE("code", snomed, "789778002"), urlRefE("subject", "http://other.org/fhir/Patient/9"))

	// Observations: two blood pressures (composite code-value-quantity), a
	// urine test, a donor screening, a Mayo score.
	bp := func(sys, dia float64) []store.IndexEntry {
		return []store.IndexEntry{
			inGroup(1, tokE("code-value-quantity$0", loinc, "8480-6")), inGroup(1, qtyE("code-value-quantity$1", sys, ucum, "mm[Hg]")),
			inGroup(2, tokE("code-value-quantity$0", loinc, "8462-4")), inGroup(2, qtyE("code-value-quantity$1", dia, ucum, "mm[Hg]")),
		}
	}
	r.put(t, h1, "Observation", "o1", append([]store.IndexEntry{
		tokE("code", loinc, "85354-9"), refE("subject", "Patient", "r1"), instantE("date", "2024-04-17T08:00:00Z"),
		// Components outside any group belong to no composite value.
		tokE("code-value-quantity$0", loinc, "9999-9"), qtyE("code-value-quantity$1", 1, ucum, "g")},
		bp(120, 80)...)...)
	r.put(t, h1, "Observation", "o2", append([]store.IndexEntry{
		tokE("code", loinc, "85354-9"), refE("subject", "Patient", "r2"), instantE("date", "2024-05-10T08:00:00Z")},
		bp(90, 130)...)...)
	r.put(t, h1, "Observation", "o3",
		textTokE("code", "urn:cmts:lab", "UR", "尿常规"), refE("subject", "Patient", "r2"),
		dayE("date", "2024-05-20"), qtyE("value-quantity", 5.5, ucum, "mmol/L"))
	r.put(t, h1, "Observation", "o4",
		textTokE("code", "urn:cmts:lab", "CDT", "艰难梭菌毒素"), refE("subject", "Patient", "d1"),
		dayE("date", "2024-02-20"), textTokE("value-concept", snomed, "260385009", "阴性"))
	r.put(t, h1, "Observation", "o5",
		textTokE("code", "urn:cmts:score", "mayo", "mayo评分"), refE("subject", "Patient", "r1"),
		instantE("date", "2024-07-15T09:00:00Z"), qtyE("value-quantity", 2, "", ""), refE("focus", "Procedure", "p2"))

	// Adverse events.
	r.put(t, h1, "AdverseEvent", "ae1",
		refE("subject", "Patient", "r1"), textTokE("event", "urn:cmts:ae", "fever", "发热"),
		tokE("seriousness", "urn:cmts:seriousness", "non-serious"), instantE("date", "2024-04-11T20:00:00Z"),
		refE("suspect", "Procedure", "p1"), tokE("causality", "urn:cmts:relatedness", "possibly"))
	r.put(t, h1, "AdverseEvent", "ae2", // two dates: onset and a later record
		refE("subject", "Patient", "r2"), textTokE("event", "urn:cmts:ae", "diarrhoea", "腹泻"),
		tokE("seriousness", "urn:cmts:seriousness", "serious"),
		instantE("date", "2024-05-02T06:00:00Z"), instantE("date", "2024-06-30T00:00:00Z"),
		refE("suspect", "Procedure", "p3"), tokE("causality", "urn:cmts:relatedness", "probably"))
	r.put(t, h1, "AdverseEvent", "ae3",
		refE("subject", "Patient", "r1"), textTokE("event", "urn:cmts:ae", "bloating", "腹胀"),
		tokE("seriousness", "urn:cmts:seriousness", "non-serious"), instantE("date", "2024-07-02T12:00:00Z"),
		refE("suspect", "Procedure", "p2"), tokE("causality", "urn:cmts:relatedness", "unlikely"))
	r.del(t, "AdverseEvent", "ae3")

	// Conformance resources.
	r.put(t, h1, "StructureDefinition", "sd1", uriE("url", donorSD))
	r.put(t, h1, "StructureDefinition", "sd2", uriE("url", recipSD))
	r.put(t, h1, "StructureDefinition", "sd3", uriE("url", "http://hl7.org/fhir/StructureDefinition/Patient"))

	// Another unit: the same identifiers and names, and a lot that (wrongly)
	// points at h1's donor.
	r.put(t, h2, "Patient", "x1",
		tokE("identifier", "urn:mrn", "R-001"), tokE("gender", gender, "female"),
		strE("name", "张三", "张三"), uriE("_profile", recipSD))
	r.put(t, h2, "Specimen", "xlot",
		tokE("type", "urn:cmts:product-type", "washed-suspension"),
		refE("subject", "Patient", "d1"),
		tokE("identifier", "urn:cmts:lot", "LOT-2024-001"),
		tokE("release", "urn:cmts:release", "quarantined"))
	return r
}

// searchCase is one query and its expected page order ("Type/id").
type searchCase struct {
	name   string
	tenant string // default h1
	typ    string
	types  []string
	filter store.Expr
	sort   []store.SortKey
	want   []string
}

// Shorthands for the cases.

func tokQ(param, code string) store.Token { return store.Token{Param: param, Code: code} }
func sysTokQ(param, system, code string) store.Token {
	return store.Token{Param: param, System: &system, Code: code}
}
func strQ(param string, mode store.StringMode, text string) store.String {
	return store.String{Param: param, Mode: mode, Text: text}
}

// exactQ is an Exact String whose entries have Value folded.
func exactQ(param, text, folded string) store.String {
	return store.String{Param: param, Mode: store.Exact, Text: text, Folded: folded}
}
func rangeQ(param string, bounds ...store.Bound) store.Range {
	return store.Range{Param: param, Bounds: bounds}
}
func lowQ(op store.CompareOp, v string) store.Bound { return store.Bound{Op: op, Value: v} }
func highQ(op store.CompareOp, v string) store.Bound {
	return store.Bound{High: true, Op: op, Value: v}
}
func num(v float64) string { return store.EncodeNumber(v) }

func pre(typ string, ids ...string) []string {
	out := []string{}
	for _, id := range ids {
		out = append(out, typ+"/"+id)
	}
	return out
}

func bpQ(code string, op store.CompareOp, v float64) store.Composite {
	return store.Composite{Param: "code-value-quantity", Components: []store.Expr{
		tokQ("code-value-quantity$0", code),
		rangeQ("code-value-quantity$1", highQ(op, num(v))),
	}}
}

func searchCases() []searchCase {
	female, male := tokQ("gender", "female"), tokQ("gender", "male")
	allPatients := pre("Patient", "d1", "d2", "r1", "r2", "r4")
	return []searchCase{
		// Tokens.
		{name: "token code any system", typ: "Patient", filter: female, want: pre("Patient", "d1", "r1", "r4")},
		{name: "token replaced by update", typ: "Patient", filter: male, want: pre("Patient", "d2", "r2")},
		{name: "token system and code", typ: "Patient", filter: sysTokQ("identifier", "urn:mrn", "R-001"), want: pre("Patient", "r1")},
		{name: "token without system", typ: "Patient", filter: sysTokQ("identifier", "", "001"), want: pre("Patient", "r1")},
		{name: "token without system excludes systems", typ: "Patient", filter: sysTokQ("identifier", "", "R-001"), want: []string{}},
		{name: "token system any code", typ: "Patient", filter: sysTokQ("identifier", "urn:cmts:donor", ""), want: pre("Patient", "d1", "d2")},
		{name: "token system any code other tenant", tenant: "h2", filter: sysTokQ("identifier", "urn:mrn", ""), want: pre("Patient", "x1")},
		{name: "token of deleted resource", typ: "Patient", filter: sysTokQ("identifier", "urn:mrn", "R-003"), want: []string{}},
		{name: "token case sensitive", typ: "Specimen", filter: tokQ("identifier", "lot-2024-001"), want: []string{}},
		{name: "token all types", filter: sysTokQ("code", snomed, "789778002"), want: pre("Procedure", "p1", "p2", "p3", "p4", "p5")},
		{name: "token other tenant", tenant: "h2", typ: "Patient", filter: sysTokQ("identifier", "urn:mrn", "R-001"), want: pre("Patient", "x1")},
		{name: "token boolean", typ: "Patient", filter: tokQ("active", "true"), want: pre("Patient", "d1")},
		{name: "token never matches reference entries", typ: "Procedure", filter: tokQ("subject", "r1"), want: []string{}},
		{name: "token across types of one tenant", filter: tokQ("identifier", "LOT-2024-001"), want: pre("Specimen", "lot1")},

		// Ids.
		{name: "id", typ: "Patient", filter: store.ID{IDs: []string{"r1", "r2", "r3", "zz"}}, want: pre("Patient", "r1", "r2")},
		{name: "id all types", filter: store.ID{IDs: []string{"p1", "lot1", "x1"}}, want: []string{"Procedure/p1", "Specimen/lot1"}},
		{name: "id none", typ: "Patient", filter: store.ID{}, want: []string{}},
		{name: "id other tenant", tenant: "h2", filter: store.ID{IDs: []string{"x1", "d1"}}, want: pre("Patient", "x1")},

		// Strings and uris.
		{name: "string prefix", typ: "Patient", filter: strQ("name", store.Prefix, "zhang"), want: pre("Patient", "d1")},
		{name: "string prefix chinese", typ: "Patient", filter: strQ("name", store.Prefix, "王"), want: pre("Patient", "r1")},
		{name: "string prefix chinese whole", typ: "Patient", filter: strQ("name", store.Prefix, "王小明"), want: pre("Patient", "r1")},
		{name: "string prefix longer than value", typ: "Patient", filter: strQ("name", store.Prefix, "王小明明"), want: []string{}},
		{name: "string prefix several", typ: "Patient", filter: strQ("name", store.Prefix, "z"), want: pre("Patient", "d1", "r2")},
		{name: "string prefix all types", filter: strQ("name", store.Prefix, "li"), want: []string{"Patient/d2", "Practitioner/doc1"}},
		{name: "string prefix empty text", typ: "Practitioner", filter: strQ("name", store.Prefix, ""), want: pre("Practitioner", "doc1")},
		// 尿 is E5 B0 BF in UTF-8: the prefix's upper end is not valid UTF-8.
		{name: "string prefix ending in byte BF", typ: "Observation", filter: strQ("code", store.Prefix, "尿"), want: pre("Observation", "o3")},
		{name: "string exact", typ: "Patient", filter: exactQ("name", "Zhang San", "zhang san"), want: pre("Patient", "d1")},
		{name: "string exact, value not given", typ: "Patient", filter: strQ("name", store.Exact, "Zhang San"), want: pre("Patient", "d1")},
		{name: "string exact is case sensitive", typ: "Patient", filter: exactQ("name", "zhang san", "zhang san"), want: []string{}},
		{name: "string exact accents", typ: "Patient", filter: exactQ("name", "Müller", "muller"), want: pre("Patient", "r4")},
		{name: "string exact chinese", typ: "Patient", filter: exactQ("name", "张三", "张三"), want: pre("Patient", "d1")},
		{name: "string exact chinese other tenant", tenant: "h2", typ: "Patient", filter: exactQ("name", "张三", "张三"), want: pre("Patient", "x1")},
		{name: "string contains", typ: "Patient", filter: strQ("name", store.Contains, "ng"), want: pre("Patient", "d1", "r1")},
		{name: "string contains chinese", typ: "Patient", filter: strQ("name", store.Contains, "小"), want: pre("Patient", "r1")},
		{name: "string contains is not a pattern", typ: "Patient", filter: strQ("name", store.Contains, "%"), want: []string{}},
		{name: "token text contains", typ: "Observation", filter: strQ("code", store.Contains, "菌"), want: pre("Observation", "o4")},
		{name: "uri equal", typ: "StructureDefinition", filter: strQ("url", store.Equal, "http://hl7.org/fhir/StructureDefinition/Patient"), want: pre("StructureDefinition", "sd3")},
		{name: "uri equal is not prefix", typ: "StructureDefinition", filter: strQ("url", store.Equal, sdBase), want: []string{}},
		{name: "uri below", typ: "StructureDefinition", filter: strQ("url", store.Below, sdBase), want: pre("StructureDefinition", "sd1", "sd2")},
		{name: "uri above", typ: "StructureDefinition", filter: strQ("url", store.Above, donorSD+"/v1.0"), want: pre("StructureDefinition", "sd1")},
		{name: "uri above equal", typ: "StructureDefinition", filter: strQ("url", store.Above, "http://hl7.org/fhir/StructureDefinition/Patient"), want: pre("StructureDefinition", "sd3")},
		{name: "uri above shorter", typ: "StructureDefinition", filter: strQ("url", store.Above, sdBase), want: []string{}},
		{name: "profile", typ: "Patient", filter: strQ("_profile", store.Equal, recipSD), want: pre("Patient", "r1", "r2", "r4")},

		// Missing.
		{name: "missing true", typ: "Patient", filter: store.Missing{Param: "birthdate", Missing: true}, want: pre("Patient", "r2")},
		{name: "missing false", typ: "Patient", filter: store.Missing{Param: "birthdate"}, want: pre("Patient", "d1", "d2", "r1", "r4")},
		{name: "missing date", typ: "Procedure", filter: store.Missing{Param: "date", Missing: true}, want: pre("Procedure", "p5")},
		{name: "missing reference false", typ: "Procedure", filter: store.Missing{Param: "product"}, want: pre("Procedure", "p1", "p2", "p3", "p4")},

		// Not.
		{name: "not token", typ: "Patient", filter: store.Not{Expr: female}, want: pre("Patient", "d2", "r2")},
		{name: "not string", typ: "Patient", filter: store.Not{Expr: strQ("name", store.Prefix, "z")}, want: pre("Patient", "d2", "r1", "r4")},
		{name: "not missing", typ: "Patient", filter: store.Not{Expr: store.Missing{Param: "birthdate", Missing: true}}, want: pre("Patient", "d1", "d2", "r1", "r4")},
		{name: "not of absent parameter", typ: "Practitioner", filter: store.Not{Expr: female}, want: pre("Practitioner", "doc1")},

		// Dates: Low and High of the same entry.
		{name: "date eq day", typ: "Procedure", filter: rangeQ("date", lowQ(store.GE, dayStart("2024-04-10")), highQ(store.LE, dayEnd("2024-04-10"))), want: pre("Procedure", "p1")},
		{name: "date eq day not containing the period", typ: "Procedure", filter: rangeQ("date", lowQ(store.GE, dayStart("2024-05-02")), highQ(store.LE, dayEnd("2024-05-02"))), want: []string{}},
		{name: "date ge", typ: "Procedure", filter: rangeQ("date", highQ(store.GE, dayStart("2024-07-01"))), want: pre("Procedure", "p2", "p4")},
		{name: "date lt", typ: "Procedure", filter: rangeQ("date", lowQ(store.LT, dayStart("2024-05-01"))), want: pre("Procedure", "p1")},
		{name: "date le", typ: "Procedure", filter: rangeQ("date", lowQ(store.LE, dayEnd("2024-05-01"))), want: pre("Procedure", "p1", "p3")},
		{name: "date sa", typ: "Procedure", filter: rangeQ("date", lowQ(store.GT, dayEnd("2024-04-30"))), want: pre("Procedure", "p2", "p3", "p4")},
		{name: "date eb", typ: "Procedure", filter: rangeQ("date", highQ(store.LT, dayStart("2024-05-02"))), want: pre("Procedure", "p1")},
		{name: "date overlap", typ: "Procedure", filter: rangeQ("date", lowQ(store.LE, dayEnd("2024-05-02")), highQ(store.GE, dayStart("2024-05-02"))), want: pre("Procedure", "p3")},
		{name: "date bounds on one entry", typ: "AdverseEvent", filter: rangeQ("date", lowQ(store.GE, dayStart("2024-06-01")), highQ(store.LE, dayEnd("2024-05-31"))), want: []string{}},
		{name: "date second entry", typ: "AdverseEvent", filter: rangeQ("date", lowQ(store.GE, dayStart("2024-06-01"))), want: pre("AdverseEvent", "ae2")},
		{name: "date birth year contains day", typ: "Patient", filter: rangeQ("birthdate", lowQ(store.LE, dayEnd("1970-06-01")), highQ(store.GE, dayStart("1970-06-01"))), want: pre("Patient", "r1")},
		{name: "date no bounds", typ: "Specimen", filter: rangeQ("expiry"), want: pre("Specimen", "lot1", "lot2")},
		{name: "range ignores string entries", typ: "Patient", filter: rangeQ("name", lowQ(store.LT, "~")), want: []string{}},
		{name: "number eq", typ: "Procedure", filter: rangeQ("course", lowQ(store.GE, num(1)), highQ(store.LE, num(1))), want: pre("Procedure", "p1", "p3", "p4")},
		{name: "number gt", typ: "Procedure", filter: rangeQ("course", highQ(store.GT, num(1))), want: pre("Procedure", "p2")},
		{name: "number gt negative", typ: "Procedure", filter: rangeQ("course", highQ(store.GT, num(-5))), want: pre("Procedure", "p1", "p2", "p3", "p4")},
		{name: "quantity with unit", typ: "Observation", filter: store.Range{Param: "value-quantity", Bounds: []store.Bound{highQ(store.GT, num(5))}, System: ptr(ucum), Code: ptr("mmol/L")}, want: pre("Observation", "o3")},
		{name: "quantity any unit", typ: "Observation", filter: rangeQ("value-quantity", lowQ(store.LT, num(3))), want: pre("Observation", "o5")},
		{name: "quantity unit system", typ: "Observation", filter: store.Range{Param: "value-quantity", Bounds: []store.Bound{lowQ(store.LT, num(10))}, System: ptr(ucum)}, want: pre("Observation", "o3")},
		{name: "quantity without unit system", typ: "Observation", filter: store.Range{Param: "value-quantity", Bounds: []store.Bound{lowQ(store.LT, num(10))}, System: ptr("")}, want: pre("Observation", "o5")},
		{name: "quantity wrong unit", typ: "Observation", filter: store.Range{Param: "value-quantity", Code: ptr("mg/dL")}, want: []string{}},

		// References.
		{name: "reference type and id", typ: "Procedure", filter: store.Reference{Param: "subject", Type: "Patient", ID: "r1"}, want: pre("Procedure", "p1", "p2")},
		{name: "reference any type", typ: "Procedure", filter: store.Reference{Param: "subject", ID: "r2"}, want: pre("Procedure", "p3")},
		{name: "reference wrong type", typ: "Procedure", filter: store.Reference{Param: "subject", Type: "Group", ID: "r1"}, want: []string{}},
		{name: "reference url", typ: "Procedure", filter: store.Reference{Param: "subject", URL: "http://other.org/fhir/Patient/9"}, want: pre("Procedure", "p5")},
		{name: "reference to deleted resource", typ: "Procedure", filter: store.Reference{Param: "subject", Type: "Patient", ID: "r3"}, want: pre("Procedure", "p4")},
		{name: "reference all types", filter: store.Reference{Param: "subject", Type: "Patient", ID: "r1"},
			want: []string{"AdverseEvent/ae1", "Observation/o1", "Observation/o5", "Procedure/p1", "Procedure/p2"}},
		{name: "reference other tenant", tenant: "h2", filter: store.Reference{Param: "subject", Type: "Patient", ID: "d1"}, want: pre("Specimen", "xlot")},

		// Chains.
		{name: "chain string", typ: "Procedure", filter: store.Chain{Param: "subject", TargetType: "Patient", Filter: strQ("name", store.Prefix, "wang")}, want: pre("Procedure", "p1", "p2")},
		{name: "chain skips deleted and absolute targets", typ: "Procedure", filter: store.Chain{Param: "subject", TargetType: "Patient", Filter: female}, want: pre("Procedure", "p1", "p2")},
		{name: "chain token", typ: "Procedure", filter: store.Chain{Param: "product", TargetType: "Specimen", Filter: tokQ("release", "recalled")}, want: pre("Procedure", "p2")},
		{name: "chain of chain", typ: "Procedure", filter: store.Chain{Param: "product", TargetType: "Specimen",
			Filter: store.Chain{Param: "parent", TargetType: "Specimen", Filter: rangeQ("collected", highQ(store.GE, dayStart("2024-06-01")))}}, want: pre("Procedure", "p2")},
		// From a donor to the adverse events after transplants of the donor's lots.
		{name: "chain of three", typ: "AdverseEvent", filter: store.Chain{Param: "suspect", TargetType: "Procedure",
			Filter: store.Chain{Param: "product", TargetType: "Specimen",
				Filter: store.Chain{Param: "subject", TargetType: "Patient", Filter: sysTokQ("identifier", "urn:cmts:donor", "D-001")}}},
			want: pre("AdverseEvent", "ae1", "ae2")},
		{name: "chain never crosses tenants", tenant: "h2", typ: "Specimen", filter: store.Chain{Param: "subject", TargetType: "Patient", Filter: female}, want: []string{}},
		{name: "chain any target type", typ: "Observation", filter: store.Chain{Param: "subject", Filter: strQ("name", store.Prefix, "张")}, want: pre("Observation", "o4")},
		{name: "chain wrong target type", typ: "Observation", filter: store.Chain{Param: "subject", TargetType: "Group"}, want: []string{}},
		{name: "chain without filter", typ: "Procedure", filter: store.Chain{Param: "subject", TargetType: "Patient"}, want: pre("Procedure", "p1", "p2", "p3")},
		{name: "chain with not", typ: "Procedure", filter: store.Chain{Param: "subject", TargetType: "Patient", Filter: store.Not{Expr: female}}, want: pre("Procedure", "p3")},
		{name: "not chain", typ: "Procedure", filter: store.Not{Expr: store.Chain{Param: "subject", TargetType: "Patient", Filter: female}}, want: pre("Procedure", "p3", "p4", "p5")},
		{name: "chain with or", typ: "Observation", filter: store.Chain{Param: "subject", TargetType: "Patient",
			Filter: store.Or{strQ("name", store.Prefix, "zhao"), tokQ("identifier", "D-001")}}, want: pre("Observation", "o2", "o3", "o4")},
		{name: "chain with id", typ: "Observation", filter: store.Chain{Param: "subject", TargetType: "Patient", Filter: store.ID{IDs: []string{"r2"}}}, want: pre("Observation", "o2", "o3")},

		// Reverse chains.
		{name: "has", typ: "Patient", filter: store.Has{Type: "Procedure", Param: "subject", Filter: tokQ("route", "capsule")}, want: pre("Patient", "r2")},
		{name: "has serious adverse event", typ: "Patient", filter: store.Has{Type: "AdverseEvent", Param: "subject", Filter: tokQ("seriousness", "serious")}, want: pre("Patient", "r2")},
		{name: "has without filter", typ: "Patient", filter: store.Has{Type: "AdverseEvent", Param: "subject"}, want: pre("Patient", "r1", "r2")},
		{name: "has of deleted referrer", typ: "Patient", filter: store.Has{Type: "AdverseEvent", Param: "subject", Filter: tokQ("event", "bloating")}, want: []string{}},
		{name: "has never crosses tenants", typ: "Patient", filter: store.Has{Type: "Specimen", Param: "subject", Filter: tokQ("release", "quarantined")}, want: []string{}},
		{name: "has of has of has", typ: "Patient", filter: store.Has{Type: "Specimen", Param: "subject",
			Filter: store.Has{Type: "Procedure", Param: "product", Filter: store.Has{Type: "AdverseEvent", Param: "suspect", Filter: tokQ("event", "fever")}}},
			want: pre("Patient", "d1")},
		{name: "has with chain", typ: "Patient", filter: store.Has{Type: "Procedure", Param: "subject",
			Filter: store.Chain{Param: "product", TargetType: "Specimen", Filter: tokQ("release", "recalled")}}, want: pre("Patient", "r1")},
		{name: "not has", typ: "Patient", filter: store.Not{Expr: store.Has{Type: "Procedure", Param: "subject"}}, want: pre("Patient", "d1", "d2", "r4")},
		// Traceability: every recipient of donor d1's material, and every donor
		// of recipient r1.
		{name: "recipients of a donor", typ: "Patient", filter: store.Has{Type: "Procedure", Param: "subject",
			Filter: store.Chain{Param: "product", TargetType: "Specimen", Filter: store.Reference{Param: "subject", Type: "Patient", ID: "d1"}}},
			want: pre("Patient", "r1", "r2")},
		{name: "donors of a recipient", typ: "Patient", filter: store.Has{Type: "Specimen", Param: "subject",
			Filter: store.Has{Type: "Procedure", Param: "product", Filter: store.Reference{Param: "subject", Type: "Patient", ID: "r1"}}},
			want: pre("Patient", "d1", "d2")},

		// Composites: components of one group.
		{name: "composite systolic high", typ: "Observation", filter: bpQ("8480-6", store.GT, 100), want: pre("Observation", "o1")},
		{name: "composite diastolic high", typ: "Observation", filter: bpQ("8462-4", store.GT, 100), want: pre("Observation", "o2")},
		{name: "composite systolic low", typ: "Observation", filter: bpQ("8480-6", store.LT, 100), want: pre("Observation", "o2")},
		{name: "composite without a leaf component", typ: "Observation", filter: store.Composite{Param: "code-value-quantity", Components: []store.Expr{
			store.Or{tokQ("code-value-quantity$0", "8480-6"), tokQ("code-value-quantity$0", "x")},
			store.Not{Expr: rangeQ("code-value-quantity$1", highQ(store.LE, num(100)))},
		}}, want: pre("Observation", "o1")},
		{name: "composite with unit", typ: "Observation", filter: store.Composite{Param: "code-value-quantity", Components: []store.Expr{
			tokQ("code-value-quantity$0", "8462-4"),
			store.Range{Param: "code-value-quantity$1", Bounds: []store.Bound{lowQ(store.GE, num(80))}, Code: ptr("mm[Hg]")},
		}}, want: pre("Observation", "o1", "o2")},
		{name: "composite ignores entries without a group", typ: "Observation", filter: bpQ("9999-9", store.LT, 10), want: []string{}},
		{name: "composite without a leaf component ignores entries without a group", typ: "Observation", filter: store.Composite{Param: "code-value-quantity", Components: []store.Expr{
			store.And{store.Not{Expr: tokQ("code-value-quantity$0", "8480-6")}, store.Not{Expr: tokQ("code-value-quantity$0", "8462-4")}},
		}}, want: []string{}},
		// Component 1 sees only entries of code-value-quantity$1, so a test of
		// $0 there never holds, and its negation always does.
		{name: "composite component sees only its own entries", typ: "Observation", filter: store.Composite{Param: "code-value-quantity", Components: []store.Expr{
			tokQ("code-value-quantity$0", "8462-4"), store.Not{Expr: tokQ("code-value-quantity$0", "8462-4")},
		}}, want: pre("Observation", "o1", "o2")},
		{name: "composite or", typ: "Observation", filter: store.Or{bpQ("8480-6", store.GT, 100), bpQ("8462-4", store.GT, 100)}, want: pre("Observation", "o1", "o2")},
		{name: "composite component of another parameter", typ: "Observation", filter: store.Composite{Param: "code-value-quantity", Components: []store.Expr{tokQ("code", "85354-9")}}, want: []string{}},

		// Combinations.
		{name: "and", typ: "Patient", filter: store.And{female, rangeQ("birthdate", lowQ(store.LT, dayStart("1980-01-01")))}, want: pre("Patient", "r1")},
		{name: "or", typ: "Patient", filter: store.Or{tokQ("identifier", "D-002"), strQ("name", store.Prefix, "王")}, want: pre("Patient", "d2", "r1")},
		{name: "and of or and not", typ: "Patient", filter: store.And{store.Or{female, male}, store.Not{Expr: strQ("_profile", store.Equal, donorSD)}}, want: pre("Patient", "r1", "r2", "r4")},
		{name: "or with a branch without candidates", typ: "Patient", filter: store.Or{store.Missing{Param: "birthdate", Missing: true}, tokQ("identifier", "D-001")}, want: pre("Patient", "d1", "r2")},
		{name: "nested and", typ: "Patient", filter: store.And{store.And{female}, store.And{store.And{strQ("name", store.Prefix, "w")}}}, want: pre("Patient", "r1")},
		{name: "id and chain", typ: "Procedure", filter: store.And{store.ID{IDs: []string{"p1", "p3"}}, store.Chain{Param: "subject", TargetType: "Patient", Filter: male}}, want: pre("Procedure", "p3")},
		// Costly candidate sets (chains, reverse chains, composites) next to
		// other conjuncts.
		{name: "has and token", typ: "Patient", filter: store.And{store.Has{Type: "Procedure", Param: "subject"}, female}, want: pre("Patient", "r1")},
		{name: "chain and token", typ: "Procedure", filter: store.And{store.Chain{Param: "subject", TargetType: "Patient", Filter: strQ("name", store.Prefix, "wang")},
			tokQ("route", "mid-gut-tet")}, want: pre("Procedure", "p2")},
		{name: "composite and reference", typ: "Observation", filter: store.And{bpQ("8462-4", store.GT, 100), store.Reference{Param: "subject", Type: "Patient", ID: "r2"}},
			want: pre("Observation", "o2")},
		{name: "chain with and", typ: "Procedure", filter: store.Chain{Param: "subject", TargetType: "Patient", Filter: store.And{female, strQ("name", store.Prefix, "w")}},
			want: pre("Procedure", "p1", "p2")},
		{name: "has with and, and token", typ: "Patient", filter: store.And{
			store.Has{Type: "AdverseEvent", Param: "subject", Filter: store.And{tokQ("seriousness", "serious"), sysTokQ("causality", "urn:cmts:relatedness", "probably")}},
			male}, want: pre("Patient", "r2")},
		{name: "or of chains and missing", typ: "Observation", filter: store.And{
			store.Or{store.Chain{Param: "subject", TargetType: "Patient", Filter: store.ID{IDs: []string{"r1"}}},
				store.Chain{Param: "subject", TargetType: "Patient", Filter: store.ID{IDs: []string{"d1"}}}},
			store.Missing{Param: "value-quantity", Missing: true}}, want: pre("Observation", "o1", "o4")},
		{name: "two chains", typ: "Procedure", filter: store.And{
			store.Chain{Param: "subject", TargetType: "Patient", Filter: store.Missing{Param: "birthdate"}},
			store.Chain{Param: "product", TargetType: "Specimen", Filter: tokQ("release", "released")}}, want: pre("Procedure", "p1")},
		{name: "empty or", typ: "Patient", filter: store.Or{}, want: []string{}},
		{name: "empty and", typ: "Patient", filter: store.And{}, want: allPatients},
		{name: "no filter", typ: "Patient", want: allPatients},
		{name: "no filter other tenant", tenant: "h2", want: []string{"Patient/x1", "Specimen/xlot"}},
		{name: "unknown tenant", tenant: "h3", want: []string{}},
		{name: "not of or", typ: "Patient", filter: store.Not{Expr: store.Or{female, male}}, want: []string{}},

		// Sorting.
		{name: "sort date asc missing last", typ: "Patient", sort: []store.SortKey{{Param: "birthdate"}}, want: pre("Patient", "r1", "d2", "d1", "r4", "r2")},
		{name: "sort date desc missing last", typ: "Patient", sort: []store.SortKey{{Param: "birthdate", Desc: true}}, want: pre("Patient", "r4", "d1", "d2", "r1", "r2")},
		// Smallest names: li si, muller, wang xiaoming, zhang san, zhao liu.
		{name: "sort string asc by smallest", typ: "Patient", sort: []store.SortKey{{Param: "name"}}, want: pre("Patient", "d2", "r4", "r1", "d1", "r2")},
		// Largest names in byte order: 赵 (E8) 王 (E7) 李 (E6) 张 (E5), then muller.
		{name: "sort string desc by largest", typ: "Patient", sort: []store.SortKey{{Param: "name", Desc: true}}, want: pre("Patient", "r2", "r1", "d2", "d1", "r4")},
		{name: "sort two keys", typ: "Patient", sort: []store.SortKey{{Param: "gender"}, {Param: "birthdate", Desc: true}}, want: pre("Patient", "r4", "d1", "r1", "d2", "r2")},
		{name: "sort period asc by start", typ: "Procedure", sort: []store.SortKey{{Param: "date"}}, want: pre("Procedure", "p1", "p3", "p2", "p4", "p5")},
		{name: "sort period desc by end", typ: "Procedure", sort: []store.SortKey{{Param: "date", Desc: true}}, want: pre("Procedure", "p4", "p2", "p3", "p1", "p5")},
		{name: "sort ties by next key", typ: "Procedure", sort: []store.SortKey{{Param: "course"}, {Param: "date", Desc: true}}, want: pre("Procedure", "p4", "p3", "p1", "p2", "p5")},
		{name: "sort ties by id", typ: "Procedure", sort: []store.SortKey{{Param: "course", Desc: true}}, want: pre("Procedure", "p2", "p1", "p3", "p4", "p5")},
		{name: "sort token", typ: "AdverseEvent", sort: []store.SortKey{{Param: "causality"}}, want: pre("AdverseEvent", "ae1", "ae2")},
		{name: "sort token desc", typ: "AdverseEvent", sort: []store.SortKey{{Param: "causality", Desc: true}}, want: pre("AdverseEvent", "ae2", "ae1")},
		{name: "sort reference", typ: "Observation", sort: []store.SortKey{{Param: "subject"}}, want: pre("Observation", "o4", "o1", "o5", "o2", "o3")},
		{name: "sort filtered", typ: "Procedure", filter: store.Chain{Param: "subject", TargetType: "Patient", Filter: female},
			sort: []store.SortKey{{Param: "date", Desc: true}}, want: pre("Procedure", "p2", "p1")},
		{name: "sort across types", filter: store.Reference{Param: "subject", Type: "Patient", ID: "r1"}, sort: []store.SortKey{{Param: "date"}},
			want: []string{"Procedure/p1", "AdverseEvent/ae1", "Observation/o1", "Procedure/p2", "Observation/o5"}},
		{name: "several types", types: []string{"Procedure", "Observation"}, filter: store.Reference{Param: "subject", Type: "Patient", ID: "r1"},
			sort: []store.SortKey{{Param: "date"}}, want: []string{"Procedure/p1", "Observation/o1", "Procedure/p2", "Observation/o5"}},
		{name: "several types, no filter", types: []string{"AdverseEvent", "Nope"}, want: pre("AdverseEvent", "ae1", "ae2")},
		{name: "sort by absent parameter", typ: "Patient", sort: []store.SortKey{{Param: "deceased", Desc: true}}, want: allPatients},
	}
}

func testSearch(t *testing.T, s store.Store) {
	r := loadRegistry(t, s)
	for _, tc := range searchCases() {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel() // they only read s and r
			tenant := tc.tenant
			if tenant == "" {
				tenant = "h1"
			}
			q := store.Query{Access: store.Tenant(tenant), Type: tc.typ, Types: tc.types, Filter: tc.filter, Sort: tc.sort}
			if want, err := r.oracle(q); err != nil {
				t.Fatalf("store.Match: %v", err)
			} else if d := cmp.Diff(tc.want, want); d != "" {
				t.Errorf("store.Match disagrees with the expected result (-want +oracle):\n%s", d)
			}
			// One page with everything.
			q.Count, q.WantTotal = 1000, true
			p, err := s.Search(context.Background(), q)
			if err != nil {
				t.Fatalf("Search: %v", err)
			}
			if d := cmp.Diff(tc.want, refs(p.Versions)); d != "" {
				t.Errorf("Search (-want +got):\n%s", d)
			}
			if p.Total != len(tc.want) || p.More {
				t.Errorf("Total, More = %d, %v; want %d, false", p.Total, p.More, len(tc.want))
			}
			for _, v := range p.Versions {
				if cur := r.cur[v.Type+"/"+v.ID]; v.VersionID != cur.VersionID || string(v.Resource) != string(cur.Resource) || v.Tenant != tenant {
					t.Errorf("%s/%s: got version %d of tenant %s, want the current version %d", v.Type, v.ID, v.VersionID, v.Tenant, cur.VersionID)
				}
			}
			// Small pages, by offset, add up to the same order.
			for _, size := range []int{1, 3} {
				q.Count = size
				got := []string{}
				for q.Offset = 0; ; q.Offset += size {
					if q.Offset > len(tc.want)+size {
						t.Fatalf("page size %d: paging does not end", size)
					}
					p, err := s.Search(context.Background(), q)
					if err != nil {
						t.Fatalf("Search: %v", err)
					}
					if len(p.Versions) > size || p.Total != len(tc.want) {
						t.Fatalf("page size %d offset %d: %d versions, Total %d", size, q.Offset, len(p.Versions), p.Total)
					}
					got = append(got, refs(p.Versions)...)
					if !p.More {
						break
					}
				}
				if d := cmp.Diff(tc.want, got); d != "" {
					t.Errorf("page size %d (-want +got):\n%s", size, d)
				}
			}
			// Keyset paging: forwards from the first page with After, then
			// backwards from the last match with Before.
			q.Offset, q.Count = 0, 2
			got := []string{}
			for pages := 0; ; pages++ {
				if pages > len(tc.want) {
					t.Fatal("keyset paging does not end")
				}
				p, err := s.Search(context.Background(), q)
				if err != nil {
					t.Fatalf("Search after %+v: %v", q.After, err)
				}
				if p.Total != len(tc.want) {
					t.Errorf("after %+v: Total = %d, want %d", q.After, p.Total, len(tc.want))
				}
				got = append(got, refs(p.Versions)...)
				if !p.More {
					break
				}
				q.After = r.position(p.Versions[len(p.Versions)-1], q.Sort)
			}
			if d := cmp.Diff(tc.want, got); d != "" {
				t.Errorf("keyset pages (-want +got):\n%s", d)
			}
			if len(tc.want) == 0 {
				return
			}
			q.After, q.Before = nil, r.position(r.cur[tc.want[len(tc.want)-1]], q.Sort)
			got = []string{}
			for pages := 0; ; pages++ {
				if pages > len(tc.want) {
					t.Fatal("keyset paging backwards does not end")
				}
				p, err := s.Search(context.Background(), q)
				if err != nil {
					t.Fatalf("Search before %+v: %v", q.Before, err)
				}
				got = append(refs(p.Versions), got...)
				if !p.More {
					break
				}
				q.Before = r.position(p.Versions[0], q.Sort)
			}
			if d := cmp.Diff(tc.want[:len(tc.want)-1], got); d != "" {
				t.Errorf("keyset pages backwards (-want +got):\n%s", d)
			}
		})
	}
	t.Run("offset past the end", func(t *testing.T) {
		p, err := s.Search(context.Background(), store.Query{Access: store.Tenant("h1"), Type: "Patient", Count: 2, Offset: 10, WantTotal: true})
		if err != nil || len(p.Versions) != 0 || p.More || p.Total != 5 {
			t.Errorf("Search = %+v, %v; want no versions, Total 5", p, err)
		}
	})
}

// unknownExpr is a node no backend knows.
type unknownExpr struct{ store.Expr }

func testSearchInvalid(t *testing.T, s store.Store) {
	ctx := context.Background()
	mustPut(t, s, 0, version("h1", "Patient", "p1", 1, base, tokE("gender", gender, "female")))
	for _, tc := range []struct {
		name string
		f    store.Expr
	}{
		{"unknown node", unknownExpr{}},
		{"unknown node inside not", store.Not{Expr: unknownExpr{}}},
		{"unknown node inside chain", store.Chain{Param: "subject", Filter: unknownExpr{}}},
		{"unknown string mode", store.String{Param: "name", Mode: 42, Text: "x"}},
		{"unknown compare op", store.Range{Param: "date", Bounds: []store.Bound{{Op: 42, Value: "x"}}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := s.Search(ctx, store.Query{Access: store.Tenant("h1"), Type: "Patient", Filter: tc.f, Count: 10})
			if !errors.Is(err, store.ErrInvalidQuery) {
				t.Errorf("Search: %v, want ErrInvalidQuery", err)
			}
		})
	}
}

// testSearchLarge checks paging and sorting over more resources than one
// page holds, with many ties, against the oracle.
func testSearchLarge(t *testing.T, s store.Store) {
	r := &registry{s: s, cur: map[string]*store.Version{}, clock: base}
	statuses := []string{"released", "quarantined", "recalled"}
	for i := range 60 {
		idx := []store.IndexEntry{
			tokE("release", "urn:cmts:release", statuses[i%3]),
			numE("units", float64(i%7)),
			strE("lot", strings.ToLower(fmt.Sprintf("批号-%02d", i%11)), fmt.Sprintf("批号-%02d", i%11)),
		}
		if i%5 != 0 {
			idx = append(idx, dayE("expiry", fmt.Sprintf("2025-%02d-01", 1+i%12)))
		}
		r.put(t, "h1", "Specimen", fmt.Sprintf("lot%03d", (i*37)%60), idx...)
	}
	for i := 0; i < 60; i += 7 {
		r.del(t, "Specimen", fmt.Sprintf("lot%03d", i))
	}
	for _, tc := range []struct {
		name   string
		filter store.Expr
		sort   []store.SortKey
	}{
		{"default order", nil, nil},
		{"token", tokQ("release", "released"), nil},
		{"sort with ties and missing", store.Not{Expr: tokQ("release", "recalled")}, []store.SortKey{{Param: "expiry", Desc: true}, {Param: "units"}}},
		{"sort string", rangeQ("units", highQ(store.GE, num(3))), []store.SortKey{{Param: "lot"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			q := store.Query{Access: store.Tenant("h1"), Type: "Specimen", Filter: tc.filter, Sort: tc.sort, WantTotal: true}
			want, err := r.oracle(q)
			if err != nil {
				t.Fatal(err)
			}
			for _, size := range []int{7, 50} {
				q.Count = size
				var got []string
				for q.Offset = 0; ; q.Offset += size {
					p, err := s.Search(context.Background(), q)
					if err != nil {
						t.Fatalf("Search: %v", err)
					}
					if p.Total != len(want) {
						t.Fatalf("Total = %d, want %d", p.Total, len(want))
					}
					got = append(got, refs(p.Versions)...)
					if !p.More {
						break
					}
				}
				if d := cmp.Diff(want, got); d != "" {
					t.Errorf("page size %d (-oracle +got):\n%s", size, d)
				}
			}
		})
	}
}

// testSearchAfter checks keyset paging while resources are created and
// deleted between pages: the next page continues after the cursor, so nothing
// still stored is skipped or repeated.
func testSearchAfter(t *testing.T, s store.Store) {
	ctx := context.Background()
	r := &registry{s: s, cur: map[string]*store.Version{}, clock: base}
	for _, id := range []string{"b", "d", "f", "h", "j"} {
		r.put(t, "h1", "Specimen", id, tokE("release", "urn:cmts:release", "released"))
	}
	r.put(t, "h1", "Patient", "p", tokE("release", "urn:cmts:release", "released"))
	q := store.Query{Access: store.Tenant("h1"), Filter: tokQ("release", "released"), Count: 3, WantTotal: true}
	p1, err := s.Search(ctx, q)
	if err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff([]string{"Patient/p", "Specimen/b", "Specimen/d"}, refs(p1.Versions)); d != "" || !p1.More || p1.Total != 6 {
		t.Fatalf("first page (-want +got):\n%s more %v total %d", d, p1.More, p1.Total)
	}
	// Before the cursor: a new resource and a deleted one; after it: one of
	// each, and one that stops matching.
	r.put(t, "h1", "Specimen", "a", tokE("release", "urn:cmts:release", "released"))
	r.del(t, "Specimen", "b")
	r.put(t, "h1", "Specimen", "e", tokE("release", "urn:cmts:release", "released"))
	r.del(t, "Specimen", "f")
	r.put(t, "h1", "Specimen", "h", tokE("release", "urn:cmts:release", "recalled"))
	last := p1.Versions[len(p1.Versions)-1]
	q.After = &store.SearchCursor{Type: last.Type, ID: last.ID}
	p2, err := s.Search(ctx, q)
	if err != nil {
		t.Fatal(err)
	}
	// Total counts every match now: p, a, d, e, j.
	if d := cmp.Diff([]string{"Specimen/e", "Specimen/j"}, refs(p2.Versions)); d != "" || p2.More || p2.Total != 5 {
		t.Errorf("second page (-want +got):\n%s more %v total %d", d, p2.More, p2.Total)
	}
	// The cursor's own resource may be gone: the page still starts after it.
	r.del(t, "Specimen", "d")
	p3, err := s.Search(ctx, q)
	if err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff([]string{"Specimen/e", "Specimen/j"}, refs(p3.Versions)); d != "" {
		t.Errorf("after a deleted cursor (-want +got):\n%s", d)
	}
}

// testSearchCursorSorted checks keyset paging in a sorted order while
// resources are created, changed and deleted between pages, forwards and
// backwards: a cursor holds the sort values of the page's edge, so the next
// page continues from there even when that resource has changed or gone.
func testSearchCursorSorted(t *testing.T, s store.Store) {
	ctx := context.Background()
	r := &registry{s: s, cur: map[string]*store.Version{}, clock: base}
	for i, id := range []string{"a", "b", "c", "d", "e"} {
		r.put(t, "h1", "Specimen", id, dayE("expiry", fmt.Sprintf("2025-01-%02d", i+1)))
	}
	r.put(t, "h1", "Specimen", "f", tokE("release", "urn:cmts:release", "released"))
	// Latest expiry first; f has none, so it is last.
	q := store.Query{Access: store.Tenant("h1"), Type: "Specimen", Sort: []store.SortKey{{Param: "expiry", Desc: true}}, Count: 2, WantTotal: true}
	p1, err := s.Search(ctx, q)
	if err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff([]string{"Specimen/e", "Specimen/d"}, refs(p1.Versions)); d != "" || !p1.More || p1.Total != 6 {
		t.Fatalf("first page (-want +got):\n%s more %v total %d", d, p1.More, p1.Total)
	}
	after := r.position(p1.Versions[1], q.Sort)
	// c moves up past the cursor, the cursor's own d and the page's e are
	// deleted, and g arrives tied with b (ties go by id).
	r.put(t, "h1", "Specimen", "c", dayE("expiry", "2025-01-09"))
	r.del(t, "Specimen", "d")
	r.del(t, "Specimen", "e")
	r.put(t, "h1", "Specimen", "g", dayE("expiry", "2025-01-02"))
	q.After = after
	p2, err := s.Search(ctx, q)
	if err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff([]string{"Specimen/b", "Specimen/g"}, refs(p2.Versions)); d != "" || !p2.More || p2.Total != 5 {
		t.Fatalf("second page (-want +got):\n%s more %v total %d", d, p2.More, p2.Total)
	}
	q.After = r.position(p2.Versions[1], q.Sort)
	p3, err := s.Search(ctx, q)
	if err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff([]string{"Specimen/a", "Specimen/f"}, refs(p3.Versions)); d != "" || p3.More {
		t.Errorf("third page (-want +got):\n%s more %v", d, p3.More)
	}
	// From the missing end (f has no expiry), backwards.
	q.After, q.Before = nil, r.position(p3.Versions[1], q.Sort)
	back, err := s.Search(ctx, q)
	if err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff([]string{"Specimen/g", "Specimen/a"}, refs(back.Versions)); d != "" || !back.More {
		t.Errorf("page before f (-want +got):\n%s more %v", d, back.More)
	}
	// Back from the second page: only c, which moved up, precedes it now.
	q.Before = r.position(p2.Versions[0], q.Sort)
	back, err = s.Search(ctx, q)
	if err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff([]string{"Specimen/c"}, refs(back.Versions)); d != "" || back.More || back.Total != 5 {
		t.Errorf("page before b (-want +got):\n%s more %v total %d", d, back.More, back.Total)
	}
	// A cursor that does not fit the sort is refused.
	for name, bad := range map[string]store.Query{
		"both cursors":      {Access: store.Tenant("h1"), Type: "Specimen", Count: 2, After: &store.SearchCursor{Type: "Specimen"}, Before: &store.SearchCursor{Type: "Specimen"}},
		"keys without sort": {Access: store.Tenant("h1"), Type: "Specimen", Count: 2, After: after},
		"sort without keys": {Access: store.Tenant("h1"), Type: "Specimen", Count: 2, Sort: q.Sort, Before: &store.SearchCursor{Type: "Specimen", ID: "a"}},
	} {
		if _, err := s.Search(ctx, bad); !errors.Is(err, store.ErrInvalidQuery) {
			t.Errorf("%s: %v, want ErrInvalidQuery", name, err)
		}
	}
}
