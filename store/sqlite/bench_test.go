package sqlite

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fmtbank/cmts/store"
)

// The search benchmarks run over a synthetic registry of CMTS_BENCH_N
// resources (default 100000): 10% patients, 5% product lots, 10%
// transplantations, 65% observations, 10% adverse events, about eight index
// entries each, references between them. Loading 1M takes a few minutes, so
// with CMTS_BENCH_DIR set the database is kept there and reused by later runs:
//
//	CMTS_BENCH_N=1000000 CMTS_BENCH_DIR=/tmp/cmts-bench go test ./store/sqlite -run '^$' -bench Search -benchtime 2000x
//
// Each benchmark reports its latency percentiles (p50-ms, p95-ms) and the
// mean number of matches per query; queries ask for a page of 20 and the
// total, as the REST layer does by default.

const benchTenant = "h1"

// benchDataVersion names the generator's output: a database kept in
// CMTS_BENCH_DIR by an older generator is rebuilt.
const benchDataVersion = "3: string entries with Value the folded Code"

// benchSet describes the generated data so that queries can pick values that
// exist.
type benchSet struct {
	n                                          int
	patients, lots, procedures, obs, incidents int
}

func newBenchSet(n int) benchSet {
	b := benchSet{n: n, patients: n / 10, lots: n / 20, procedures: n / 10, incidents: n / 10}
	b.obs = n - b.patients - b.lots - b.procedures - b.incidents
	return b
}

// benchID is the id of the k-th resource of a type: random-looking, so that
// id order is not insertion order.
func benchID(typ string, k int) string {
	h := uint64(k+1) * 0x9E3779B97F4A7C15
	for _, c := range []byte(typ) {
		h = (h ^ uint64(c)) * 0x100000001B3
	}
	h ^= h >> 31
	return strconv.FormatUint(h, 36) + "-" + strconv.Itoa(k)
}

var (
	surnames = []string{"王", "李", "张", "刘", "陈", "杨", "黄", "赵", "吴", "周", "徐", "孙", "马", "朱", "胡", "郭", "何", "高", "林", "罗"}
	pinyin   = []string{"wang", "li", "zhang", "liu", "chen", "yang", "huang", "zhao", "wu", "zhou", "xu", "sun", "ma", "zhu", "hu", "guo", "he", "gao", "lin", "luo"}
	given    = []string{"伟", "芳", "娜", "敏", "静", "丽", "强", "磊", "军", "洋", "勇", "艳", "杰", "娟", "涛", "明", "超", "秀", "霞", "平", "刚", "桂", "英", "华", "玉", "兰", "文", "辉", "建", "国"}
	routes   = []string{"colonic-tet", "mid-gut-tet", "colonoscopy", "gastroscopy", "nasojejunal", "capsule", "enema"}
	events   = []string{"fever", "diarrhoea", "abdominal-pain", "bloating", "nausea", "vomiting", "flatulence", "haematochezia"}
	causes   = []string{"definitely", "probably", "possibly", "unlikely", "unrelated"}
	releases = []string{"quarantined", "released", "recalled"}
)

// refElements say where a reference index entry's target appears in the
// generated body (R4 elements of the R4 parameters; Procedure's product is a
// CMTS parameter without an R4 element, so it is in the index only).
var refElements = map[string]string{
	"Specimen.subject":       `"subject":{"reference":%q}`,
	"Procedure.subject":      `"subject":{"reference":%q}`,
	"Observation.subject":    `"subject":{"reference":%q}`,
	"AdverseEvent.subject":   `"subject":{"reference":%q}`,
	"AdverseEvent.substance": `"suspectEntity":[{"instance":{"reference":%q}}]`,
}

// benchObsCodes is how many laboratory observation codes there are
// (uniform); one observation in ten is a blood pressure instead.
const benchObsCodes = 500

func obsCode(i int) string { return fmt.Sprintf("%05d-%d", 10000+i, i%10) }

var benchEpoch = time.Date(2015, 1, 1, 0, 0, 0, 0, time.UTC)

// benchDays is the span of generated clinical dates.
const benchDays = 3650

// generate calls put for every resource of the set, in a fixed order.
func (b benchSet) generate(put func(v *store.Version) error) error {
	rng := rand.New(rand.NewPCG(1, 2))
	day := func() time.Time { return benchEpoch.AddDate(0, 0, rng.IntN(benchDays)) }
	instant := func() string {
		return store.EncodeTime(day().Add(time.Duration(rng.IntN(86400)) * time.Second))
	}
	dayEntry := func(param string, d time.Time) store.IndexEntry {
		return store.IndexEntry{Param: param, Kind: store.KindDate, Low: store.EncodeTime(d), High: store.EncodeTime(d.Add(24*time.Hour - time.Microsecond))}
	}
	tok := func(param, sys, code string) store.IndexEntry {
		return store.IndexEntry{Param: param, Kind: store.KindToken, System: sys, Code: code}
	}
	ref := func(param, typ string, k int) store.IndexEntry {
		return store.IndexEntry{Param: param, Kind: store.KindReference, System: typ, Code: benchID(typ, k)}
	}
	lu := benchEpoch.AddDate(10, 0, 0)
	emit := func(typ string, k int, idx ...store.IndexEntry) error {
		lu = lu.Add(time.Millisecond)
		id := benchID(typ, k)
		idx = append(idx, store.IndexEntry{Param: "_lastUpdated", Kind: store.KindDate, Low: store.EncodeTime(lu), High: store.EncodeTime(lu)})
		// The body carries the references of the index entries, where FHIR
		// puts them: _include reads them out of the body.
		var refs []byte
		for _, e := range idx {
			if el, ok := refElements[typ+"."+e.Param]; ok && e.Kind == store.KindReference {
				refs = fmt.Appendf(refs, el+",", e.System+"/"+e.Code)
			}
		}
		body := fmt.Appendf(nil, `{"resourceType":%q,"id":%q,"meta":{"versionId":"1","lastUpdated":%q,"profile":["http://fmtbank.org/fhir/StructureDefinition/cmts"]},`+
			`"text":{"status":"generated","div":"<div xmlns=\"http://www.w3.org/1999/xhtml\">%s %d</div>"},%s"extension":[{"url":"http://fmtbank.org/fhir/StructureDefinition/bench","valueString":"%0200d"}]}`,
			typ, id, lu.Format(time.RFC3339Nano), typ, k, refs, k)
		return put(&store.Version{Tenant: benchTenant, Type: typ, ID: id, VersionID: 1, LastUpdated: lu, Resource: body, Index: idx})
	}
	for k := range b.patients {
		s, g1, g2 := rng.IntN(len(surnames)), rng.IntN(len(given)), rng.IntN(len(given))
		gender := "female"
		if rng.IntN(2) == 0 {
			gender = "male"
		}
		zh := surnames[s] + given[g1] + given[g2]
		if err := emit("Patient", k,
			tok("identifier", "urn:mrn", fmt.Sprintf("MRN-%07d", k)),
			tok("gender", "http://hl7.org/fhir/administrative-gender", gender),
			store.IndexEntry{Param: "name", Kind: store.KindString, Value: zh, Code: zh},
			store.IndexEntry{Param: "name", Kind: store.KindString, Value: pinyin[s] + " " + strconv.Itoa(g1), Code: pinyin[s] + " " + strconv.Itoa(g1)},
			dayEntry("birthdate", time.Date(1940+rng.IntN(70), 1, 1, 0, 0, 0, 0, time.UTC).AddDate(0, 0, rng.IntN(365))),
			tok("active", "", "true"),
		); err != nil {
			return err
		}
	}
	for k := range b.lots {
		if err := emit("Specimen", k,
			tok("identifier", "urn:cmts:lot", fmt.Sprintf("LOT-%07d", k)),
			ref("subject", "Patient", rng.IntN(b.patients)),
			tok("type", "urn:cmts:product-type", "washed-suspension"),
			tok("release", "urn:cmts:release", releases[rng.IntN(len(releases))]),
			dayEntry("expiry", day()),
		); err != nil {
			return err
		}
	}
	for k := range b.procedures {
		n := float64(1 + rng.IntN(6))
		t := instant()
		if err := emit("Procedure", k,
			ref("subject", "Patient", rng.IntN(b.patients)),
			ref("product", "Specimen", rng.IntN(b.lots)),
			tok("code", "http://snomed.info/sct", "789778002"),
			tok("route", "urn:cmts:route", routes[rng.IntN(len(routes))]),
			store.IndexEntry{Param: "date", Kind: store.KindDate, Low: t, High: t},
			store.IndexEntry{Param: "course", Kind: store.KindNumber, Low: store.EncodeNumber(n), High: store.EncodeNumber(n)},
		); err != nil {
			return err
		}
	}
	qty := func(param string, v float64, group int) store.IndexEntry {
		n := store.EncodeNumber(v)
		return store.IndexEntry{Param: param, Kind: store.KindQuantity, Low: n, High: n, System: "http://unitsofmeasure.org", Code: "mm[Hg]", Group: group}
	}
	for k := range b.obs {
		t := instant()
		idx := []store.IndexEntry{
			tok("status", "http://hl7.org/fhir/observation-status", "final"),
			ref("subject", "Patient", rng.IntN(b.patients)),
			store.IndexEntry{Param: "date", Kind: store.KindDate, Low: t, High: t},
		}
		if k%10 == 0 {
			// A blood pressure: two composite values.
			sys, dia := 90+rng.Float64()*80, 50+rng.Float64()*50
			c0, c1 := tok("code-value-quantity$0", "http://loinc.org", "8480-6"), tok("code-value-quantity$0", "http://loinc.org", "8462-4")
			c0.Group, c1.Group = 1, 2
			idx = append(idx, tok("code", "http://loinc.org", "85354-9"), tok("category", "http://terminology.hl7.org/CodeSystem/observation-category", "vital-signs"),
				c0, qty("code-value-quantity$1", sys, 1), c1, qty("code-value-quantity$1", dia, 2))
		} else {
			idx = append(idx, tok("code", "http://loinc.org", obsCode(rng.IntN(benchObsCodes))),
				tok("category", "http://terminology.hl7.org/CodeSystem/observation-category", "laboratory"),
				qty("value-quantity", 50+rng.Float64()*100, 0))
		}
		if err := emit("Observation", k, idx...); err != nil {
			return err
		}
	}
	for k := range b.incidents {
		t := instant()
		if err := emit("AdverseEvent", k,
			ref("subject", "Patient", rng.IntN(b.patients)),
			ref("substance", "Procedure", rng.IntN(b.procedures)),
			tok("event", "urn:cmts:ae", events[rng.IntN(len(events))]),
			tok("causality", "urn:cmts:relatedness", causes[rng.IntN(len(causes))]),
			tok("seriousness", "urn:cmts:seriousness", []string{"serious", "non-serious"}[rng.IntN(2)]),
			store.IndexEntry{Param: "date", Kind: store.KindDate, Low: t, High: t},
		); err != nil {
			return err
		}
	}
	return nil
}

// bulkLoad writes the set with big transactions and the index table's
// secondary indexes dropped during the load (rebuilding them sorted is much
// faster than updating them row by row); the rows are exactly what Put
// writes.
func bulkLoad(ctx context.Context, s *Store, b benchSet) error {
	for _, ix := range []string{"idx_code", "idx_text", "idx_range_low", "idx_range_high"} {
		if _, err := s.w.ExecContext(ctx, "DROP INDEX IF EXISTS "+ix); err != nil {
			return err
		}
	}
	conn, err := s.w.Conn(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	begin := func() error { _, err := conn.ExecContext(ctx, "BEGIN"); return err }
	commit := func() error { _, err := conn.ExecContext(ctx, "COMMIT"); return err }
	if err := begin(); err != nil {
		return err
	}
	insCur, err := conn.PrepareContext(ctx, `INSERT INTO current (type, id, tenant, vid, lu, deleted) VALUES (?, ?, ?, ?, ?, 0)`)
	if err != nil {
		return err
	}
	defer insCur.Close()
	insVer, err := conn.PrepareContext(ctx, `INSERT INTO versions (type, id, vid, tenant, lu, deleted, body) VALUES (?, ?, ?, ?, ?, 0, ?)`)
	if err != nil {
		return err
	}
	defer insVer.Close()
	insEnt, err := conn.PrepareContext(ctx, insertEntry)
	if err != nil {
		return err
	}
	defer insEnt.Close()
	n := 0
	err = b.generate(func(v *store.Version) error {
		res, err := insCur.ExecContext(ctx, v.Type, v.ID, v.Tenant, v.VersionID, v.LastUpdated.UnixMicro())
		if err != nil {
			return err
		}
		pk, err := res.LastInsertId()
		if err != nil {
			return err
		}
		if _, err := insVer.ExecContext(ctx, v.Type, v.ID, v.VersionID, v.Tenant, v.LastUpdated.UnixMicro(), v.Resource); err != nil {
			return err
		}
		for i, e := range v.Index {
			if _, err := insEnt.ExecContext(ctx, pk, e.Param, i, string(e.Kind), e.System, e.Code, e.Value, e.Low, e.High, e.Group); err != nil {
				return err
			}
		}
		if n++; n%50000 == 0 {
			if err := commit(); err != nil {
				return err
			}
			return begin()
		}
		return nil
	})
	if err != nil {
		return err
	}
	if err := commit(); err != nil {
		return err
	}
	// Recreate the indexes, and leave the database as a running server's
	// would be: the WAL checkpointed.
	if _, err = conn.ExecContext(ctx, schema); err != nil {
		return err
	}
	_, err = conn.ExecContext(ctx, "PRAGMA wal_checkpoint(TRUNCATE)")
	return err
}

var benchStores sync.Map // N -> *benchStore

type benchStore struct {
	once sync.Once
	s    *Store
	set  benchSet
	err  error
}

// openBench returns the benchmark store, loading it on first use.
func openBench(b testing.TB) (*Store, benchSet) {
	n := 100000
	if v := os.Getenv("CMTS_BENCH_N"); v != "" {
		var err error
		if n, err = strconv.Atoi(v); err != nil || n < 1000 {
			b.Fatalf("CMTS_BENCH_N=%q: want a number >= 1000", v)
		}
	}
	e, _ := benchStores.LoadOrStore(n, &benchStore{})
	bs := e.(*benchStore)
	bs.once.Do(func() {
		ctx := context.Background()
		bs.set = newBenchSet(n)
		dir := os.Getenv("CMTS_BENCH_DIR")
		if dir == "" {
			dir, bs.err = os.MkdirTemp("", "cmts-bench-")
			if bs.err != nil {
				return
			}
		} else {
			dir = filepath.Join(dir, fmt.Sprintf("n%d", n))
		}
		done := filepath.Join(dir, "loaded")
		if v, err := os.ReadFile(done); err == nil && string(v) == benchDataVersion {
			bs.s, bs.err = Open(ctx, dir)
			return
		}
		os.RemoveAll(dir)
		if bs.s, bs.err = Open(ctx, dir); bs.err != nil {
			return
		}
		start := time.Now()
		if bs.err = bulkLoad(ctx, bs.s, bs.set); bs.err != nil {
			return
		}
		fmt.Fprintf(os.Stderr, "loaded %d resources in %v\n", n, time.Since(start).Round(time.Second))
		bs.err = os.WriteFile(done, []byte(benchDataVersion), 0o600)
	})
	if bs.err != nil {
		b.Fatal(bs.err)
	}
	return bs.s, bs.set
}

// runSearch times one query per iteration, made by next, and reports the
// latency percentiles and the mean number of matches.
func runSearch(b *testing.B, next func(rng *rand.Rand) store.Query) {
	s, _ := openBench(b)
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(3, 4))
	// A few queries first, so that the page cache is warm as in a running server.
	for range 20 {
		if _, err := s.Search(ctx, next(rng)); err != nil {
			b.Fatal(err)
		}
	}
	lat := make([]time.Duration, 0, b.N)
	total := 0
	b.ResetTimer()
	for range b.N {
		q := next(rng)
		start := time.Now()
		p, err := s.Search(ctx, q)
		lat = append(lat, time.Since(start))
		if err != nil {
			b.Fatal(err)
		}
		total += p.Total
	}
	b.StopTimer()
	slices.Sort(lat)
	pct := func(p float64) float64 {
		return float64(lat[min(len(lat)-1, int(p*float64(len(lat))))].Microseconds()) / 1000
	}
	b.ReportMetric(pct(0.50), "p50-ms")
	b.ReportMetric(pct(0.95), "p95-ms")
	b.ReportMetric(float64(total)/float64(b.N), "matches")
}

func page(typ string, f store.Expr) store.Query {
	return store.Query{Access: store.Tenant(benchTenant), Type: typ, Filter: f, Count: 20, WantTotal: true}
}

func strptr(s string) *string { return &s }

// benchmark is one benchmarked search form: next makes a query.
type benchmark struct {
	name string
	next func(rng *rand.Rand) store.Query
}

func benchmarks(set benchSet) []benchmark {
	dayBounds := func(d time.Time) []store.Bound {
		return []store.Bound{{Op: store.GE, Value: store.EncodeTime(d)}, {High: true, Op: store.LE, Value: store.EncodeTime(d.Add(24*time.Hour - time.Microsecond))}}
	}
	return []benchmark{
		// Patient?identifier=urn:mrn|MRN-...: one match.
		{"Token/identifier", func(rng *rand.Rand) store.Query {
			return page("Patient", store.Token{Param: "identifier", System: strptr("urn:mrn"), Code: fmt.Sprintf("MRN-%07d", rng.IntN(set.patients))})
		}},
		// Observation?code=http://loinc.org|X: 0.9 obs/500 matches (1170 at 1M).
		{"Token/code", func(rng *rand.Rand) store.Query {
			return page("Observation", store.Token{Param: "code", System: strptr("http://loinc.org"), Code: obsCode(rng.IntN(benchObsCodes))})
		}},
		// AdverseEvent?event=X&seriousness=serious: 1/16 of the events.
		{"Token/two-tokens", func(rng *rand.Rand) store.Query {
			return page("AdverseEvent", store.And{store.Token{Param: "event", Code: events[rng.IntN(len(events))]}, store.Token{Param: "seriousness", Code: "serious"}})
		}},
		// Patient?name=王伟: surname and first given name, 1/600 of patients.
		{"String/prefix", func(rng *rand.Rand) store.Query {
			return page("Patient", store.String{Param: "name", Mode: store.Prefix, Text: surnames[rng.IntN(len(surnames))] + given[rng.IntN(len(given))]})
		}},
		// Patient?name=zh: a short latin prefix (zhang, zhao, zhou, zhu: 1/5).
		{"String/short-prefix", func(rng *rand.Rand) store.Query {
			return page("Patient", store.String{Param: "name", Mode: store.Prefix, Text: []string{"zh", "wa", "li", "ch"}[rng.IntN(4)]})
		}},
		// Observation?date=2019-03-07: one day of ten years.
		{"Date/day", func(rng *rand.Rand) store.Query {
			return page("Observation", store.Range{Param: "date", Bounds: dayBounds(benchEpoch.AddDate(0, 0, rng.IntN(benchDays)))})
		}},
		// AdverseEvent?date=ge2024-07-01&date=lt2024-08-01&event=X: a month
		// (two range leaves) and a token.
		{"Date/month-and-token", func(rng *rand.Rand) store.Query {
			m := benchEpoch.AddDate(0, rng.IntN(119), 0)
			return page("AdverseEvent", store.And{
				store.Range{Param: "date", Bounds: []store.Bound{{High: true, Op: store.GE, Value: store.EncodeTime(m)}}},
				store.Range{Param: "date", Bounds: []store.Bound{{Op: store.LT, Value: store.EncodeTime(m.AddDate(0, 1, 0))}}},
				store.Token{Param: "event", Code: events[rng.IntN(len(events))]},
			})
		}},
		// Observation?subject:Patient.identifier=urn:mrn|MRN-...: a patient's
		// observations (6.5 on average).
		{"Chain/identifier", func(rng *rand.Rand) store.Query {
			return page("Observation", store.Chain{Param: "subject", TargetType: "Patient",
				Filter: store.Token{Param: "identifier", System: strptr("urn:mrn"), Code: fmt.Sprintf("MRN-%07d", rng.IntN(set.patients))}})
		}},
		// Procedure?subject:Patient.name=王伟: procedures of 1/600 of patients.
		{"Chain/name", func(rng *rand.Rand) store.Query {
			return page("Procedure", store.Chain{Param: "subject", TargetType: "Patient",
				Filter: store.String{Param: "name", Mode: store.Prefix, Text: surnames[rng.IntN(len(surnames))] + given[rng.IntN(len(given))]}})
		}},
		// AdverseEvent?substance:Procedure.product:Specimen.identifier=LOT-...:
		// events after transplants of one lot (two hops).
		{"Chain/two-hops", func(rng *rand.Rand) store.Query {
			return page("AdverseEvent", store.Chain{Param: "substance", TargetType: "Procedure",
				Filter: store.Chain{Param: "product", TargetType: "Specimen",
					Filter: store.Token{Param: "identifier", System: strptr("urn:cmts:lot"), Code: fmt.Sprintf("LOT-%07d", rng.IntN(set.lots))}}})
		}},
		// Patient?_has:AdverseEvent:subject:event=X&..causality=definitely
		// &gender=female&_sort=-birthdate: a reverse chain, sorted.
		{"Chain/has-sorted", func(rng *rand.Rand) store.Query {
			q := page("Patient", store.And{
				store.Has{Type: "AdverseEvent", Param: "subject", Filter: store.And{
					store.Token{Param: "event", Code: events[rng.IntN(len(events))]}, store.Token{Param: "causality", Code: "definitely"}}},
				store.Token{Param: "gender", Code: "female"}})
			q.Sort = []store.SortKey{{Param: "birthdate", Desc: true}}
			return q
		}},
	}
}

func runBenchmarks(b *testing.B, prefix string) {
	_, set := openBench(b)
	for _, bm := range benchmarks(set) {
		if name, ok := strings.CutPrefix(bm.name, prefix+"/"); ok {
			b.Run(name, func(b *testing.B) { runSearch(b, bm.next) })
		}
	}
}

func BenchmarkSearchToken(b *testing.B)  { runBenchmarks(b, "Token") }
func BenchmarkSearchString(b *testing.B) { runBenchmarks(b, "String") }
func BenchmarkSearchDate(b *testing.B)   { runBenchmarks(b, "Date") }
func BenchmarkSearchChain(b *testing.B)  { runBenchmarks(b, "Chain") }

// explain returns SQLite's plan for a compiled statement, one line per step,
// indented by depth.
func explain(ctx context.Context, s *Store, f frag) (string, error) {
	rows, err := s.r.QueryContext(ctx, "EXPLAIN QUERY PLAN "+f.sql, f.args...)
	if err != nil {
		return "", err
	}
	defer rows.Close()
	depth := map[int]int{}
	var out strings.Builder
	for rows.Next() {
		var id, parent, unused int
		var detail string
		if err := rows.Scan(&id, &parent, &unused, &detail); err != nil {
			return "", err
		}
		depth[id] = depth[parent] + 1
		fmt.Fprintf(&out, "%s%s\n", strings.Repeat("  ", depth[id]), detail)
	}
	return out.String(), rows.Err()
}

// planQueries are more forms for TestSearchPlans, beyond the benchmarks'.
func planQueries() []benchmark {
	q := func(typ string, f store.Expr, sort ...store.SortKey) func(*rand.Rand) store.Query {
		return func(*rand.Rand) store.Query { p := page(typ, f); p.Sort = sort; return p }
	}
	female := store.Token{Param: "gender", Code: "female"}
	return []benchmark{
		{"id", q("Patient", store.ID{IDs: []string{benchID("Patient", 1), benchID("Patient", 2)}})},
		{"id-any-type", q("", store.ID{IDs: []string{benchID("Patient", 1)}})},
		{"not", q("Patient", store.Not{Expr: female})},
		{"missing-true", q("Patient", store.Missing{Param: "birthdate", Missing: true})},
		{"missing-false-and-token", q("Patient", store.And{store.Missing{Param: "birthdate"}, store.Token{Param: "identifier", Code: "MRN-0000007"}})},
		{"or-tokens", q("Patient", store.Or{store.Token{Param: "identifier", Code: "MRN-0000007"}, store.Token{Param: "identifier", Code: "MRN-0000008"}})},
		{"or-with-not", q("Patient", store.Or{store.Token{Param: "identifier", Code: "MRN-0000007"}, store.Not{Expr: female}})},
		{"string-exact", q("Patient", store.String{Param: "name", Mode: store.Exact, Text: "王伟芳", Folded: "王伟芳"})},
		{"string-contains", q("Patient", store.String{Param: "name", Mode: store.Contains, Text: "伟芳"})},
		{"string-above", q("Patient", store.String{Param: "name", Mode: store.Above, Text: "wang 12 and more"})},
		{"reference", q("Observation", store.Reference{Param: "subject", Type: "Patient", ID: benchID("Patient", 7)})},
		{"reference-url", q("Observation", store.Reference{Param: "subject", URL: "http://other.org/fhir/Patient/1"})},
		{"range-ge", q("Procedure", store.Range{Param: "date", Bounds: []store.Bound{{High: true, Op: store.GE, Value: store.EncodeTime(benchEpoch.AddDate(9, 11, 0))}}})},
		{"composite", q("Observation", store.Composite{Param: "code-value-quantity", Components: []store.Expr{
			store.Token{Param: "code-value-quantity$0", Code: "8480-6"},
			store.Range{Param: "code-value-quantity$1", Bounds: []store.Bound{{High: true, Op: store.GT, Value: store.EncodeNumber(169.9)}}}}})},
		{"composite-no-lead", q("Observation", store.And{store.Reference{Param: "subject", Type: "Patient", ID: benchID("Patient", 7)},
			store.Composite{Param: "code-value-quantity", Components: []store.Expr{store.Not{Expr: store.Token{Param: "code-value-quantity$0", Code: "x"}}}}})},
		{"chain-as-check", q("Observation", store.And{store.Reference{Param: "subject", Type: "Patient", ID: benchID("Patient", 7)},
			store.Chain{Param: "subject", TargetType: "Patient", Filter: female}})},
		{"chain-undrivable", q("Specimen", store.Chain{Param: "subject", TargetType: "Patient", Filter: store.Not{Expr: female}})},
		{"has-as-check", q("Patient", store.And{store.Token{Param: "identifier", Code: "MRN-0000007"}, store.Has{Type: "Procedure", Param: "subject"}})},
		{"has-undrivable", q("Specimen", store.Has{Type: "Procedure", Param: "product", Filter: store.Not{Expr: store.Token{Param: "route", Code: "capsule"}}})},
		{"sort-unfiltered", q("Patient", nil, store.SortKey{Param: "name"})},
		{"default-order-unfiltered", q("Patient", nil)},
		{"missing-false", q("Patient", store.Missing{Param: "birthdate"})},
		{"string-exact-ascii", q("Patient", store.String{Param: "name", Mode: store.Exact, Text: "Wang 12", Folded: "wang 12"})},
		{"everyone-type", planEveryone("Patient", nil)},
		{"everyone-type-token", planEveryone("Patient", female)},
	}
}

// TestSearchPlans prints the query plan and one timing of each benchmark
// query over the benchmark store; it runs only with CMTS_BENCH_EXPLAIN=1.
func TestSearchPlans(t *testing.T) {
	if os.Getenv("CMTS_BENCH_EXPLAIN") == "" {
		t.Skip("set CMTS_BENCH_EXPLAIN=1 (and CMTS_BENCH_N, CMTS_BENCH_DIR) to print the plans")
	}
	s, set := openBench(t)
	ctx := context.Background()
	for _, bm := range append(benchmarks(set), planQueries()...) {
		q := bm.next(rand.New(rand.NewPCG(5, 6)))
		st := compileFor(t, s, q)
		count, err := explain(ctx, s, st.count)
		if err != nil {
			t.Fatal(err)
		}
		pg, err := explain(ctx, s, st.page)
		if err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		p, err := s.Search(ctx, q)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("%s: %d matches in %v\ncount:\n%spage:\n%s", bm.name, p.Total, time.Since(start), count, pg)
	}
}
