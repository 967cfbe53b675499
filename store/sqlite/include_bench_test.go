package sqlite

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/fmtbank/cmts/auth"
	"github.com/fmtbank/cmts/fhir/rest"
	"github.com/fmtbank/cmts/fhir/rest/resttest"
	"github.com/fmtbank/cmts/fhir/search"
	"github.com/fmtbank/cmts/store"
)

// _include and _revinclude are resolved by the REST layer (it reads the
// references out of the page's bodies, then asks the store by id or by
// reference), so they are measured through it: the real handler, in
// process, without a network in between.
//
//	CMTS_BENCH_N=1000000 CMTS_BENCH_DIR=/tmp/cmts-bench go test ./store/sqlite -run '^$' -bench SearchInclude -benchtime 500x
//
// Each reports the latency percentiles with the includes (p50-ms, p95-ms),
// the median of the same search without them (base-p50-ms), and the mean
// numbers of matches and included resources per page.

// restQuery is one benchmarked REST search: next makes its query string.
type restQuery struct {
	name string
	next func(rng *rand.Rand) string
}

func includeBenchmarks(set benchSet) []restQuery {
	mrn := func(rng *rand.Rand) string { return fmt.Sprintf("urn:mrn|MRN-%07d", rng.IntN(set.patients)) }
	return []restQuery{
		// A page of 20 observations of one code, with their patients.
		{"forward", func(rng *rand.Rand) string {
			return "Observation?code=http://loinc.org|" + obsCode(rng.IntN(benchObsCodes)) + "&_include=Observation:subject&_count=20"
		}},
		// Adverse events judged definitely related, the transplants suspected
		// and (iterating) those transplants' recipients.
		{"forward-iterate", func(rng *rand.Rand) string {
			return "AdverseEvent?event=" + events[rng.IntN(len(events))] + "&causality=definitely" +
				"&_include=AdverseEvent:substance&_include:iterate=Procedure:subject&_count=20"
		}},
		// Patients named 王伟 with all their observations.
		{"reverse", func(rng *rand.Rand) string {
			return "Patient?name=" + url.QueryEscape(surnames[rng.IntN(len(surnames))]+given[rng.IntN(len(given))]) +
				"&_revinclude=Observation:subject&_count=20"
		}},
		// Twenty patients by MRN with their observations and adverse events.
		{"reverse-twenty", func(rng *rand.Rand) string {
			ids := make([]string, 20)
			for i := range ids {
				ids[i] = mrn(rng)
			}
			return "Patient?identifier=" + url.QueryEscape(strings.Join(ids, ",")) +
				"&_revinclude=Observation:subject&_revinclude=AdverseEvent:subject&_count=20"
		}},
	}
}

// withoutIncludes drops the _include and _revinclude parameters of a query.
func withoutIncludes(query string) string {
	path, raw, _ := strings.Cut(query, "?")
	var keep []string
	for _, kv := range strings.Split(raw, "&") {
		if !strings.HasPrefix(kv, "_include") && !strings.HasPrefix(kv, "_revinclude") {
			keep = append(keep, kv)
		}
	}
	return path + "?" + strings.Join(keep, "&")
}

// benchAPI is the REST handler over the benchmark store, as the benchmark
// tenant.
func benchAPI(tb testing.TB, s *Store) http.Handler {
	return resttest.Handler(tb, s, func(o *rest.Options) { o.Auth = auth.Insecure{Tenant: benchTenant} })
}

// searchset is what the benchmark reads of an answer.
type searchset struct {
	Entry []struct {
		Search struct{ Mode string }
	}
}

func BenchmarkSearchInclude(b *testing.B) {
	s, set := openBench(b)
	api := benchAPI(b, s)
	get := func(b *testing.B, query string) *httptest.ResponseRecorder {
		w := httptest.NewRecorder()
		api.ServeHTTP(w, httptest.NewRequest("GET", "/fhir/"+query, nil))
		if w.Code != 200 {
			b.Fatalf("%s: %d %.300s", query, w.Code, w.Body)
		}
		return w
	}
	for _, bm := range includeBenchmarks(set) {
		b.Run(bm.name, func(b *testing.B) {
			rng := rand.New(rand.NewPCG(3, 4))
			for range 20 {
				get(b, bm.next(rng))
			}
			lat := make([]time.Duration, 0, b.N)
			baseLat := make([]time.Duration, 0, b.N)
			matches, included := 0, 0
			b.ResetTimer()
			for range b.N {
				q := bm.next(rng)
				// The same search without its includes, for the cost of
				// the includes alone.
				start := time.Now()
				get(b, withoutIncludes(q))
				baseLat = append(baseLat, time.Since(start))
				start = time.Now()
				w := get(b, q)
				lat = append(lat, time.Since(start))
				var ss searchset
				if err := json.Unmarshal(w.Body.Bytes(), &ss); err != nil {
					b.Fatal(err)
				}
				for _, e := range ss.Entry {
					if e.Search.Mode == "include" {
						included++
					} else {
						matches++
					}
				}
			}
			b.StopTimer()
			if included == 0 {
				b.Fatalf("%s: nothing included", bm.name)
			}
			slices.Sort(lat)
			slices.Sort(baseLat)
			pct := func(lat []time.Duration, p float64) float64 {
				return float64(lat[min(len(lat)-1, int(p*float64(len(lat))))].Microseconds()) / 1000
			}
			b.ReportMetric(pct(lat, 0.50), "p50-ms")
			b.ReportMetric(pct(lat, 0.95), "p95-ms")
			b.ReportMetric(pct(baseLat, 0.50), "base-p50-ms")
			b.ReportMetric(float64(matches)/float64(b.N), "matches")
			b.ReportMetric(float64(included)/float64(b.N), "included")
		})
	}
}

// TestBenchBodiesAgreeWithIndex checks that the benchmark's generated
// bodies and hand-made index entries agree on references, as written by the
// server they would: _include reads the bodies, _revinclude the index.
func TestBenchBodiesAgreeWithIndex(t *testing.T) {
	engine, err := search.New()
	if err != nil {
		t.Fatal(err)
	}
	type ref struct{ param, target string }
	checked := 0
	err = newBenchSet(2000).generate(func(v *store.Version) error {
		var want, got []ref
		for _, e := range v.Index {
			if _, ok := refElements[v.Type+"."+e.Param]; ok {
				want = append(want, ref{e.Param, e.System + "/" + e.Code})
			}
		}
		entries, err := engine.Entries(v.Type, v.Resource)
		if err != nil {
			return fmt.Errorf("%s/%s: %w", v.Type, v.ID, err)
		}
		for _, e := range entries {
			if _, ok := refElements[v.Type+"."+e.Param]; ok && e.Kind == store.KindReference {
				got = append(got, ref{e.Param, e.System + "/" + e.Code})
			}
		}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("%s/%s: references in the body %v, in the index %v", v.Type, v.ID, got, want)
		}
		checked += len(want)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if checked < 2000 {
		t.Fatalf("only %d references checked", checked)
	}
}
