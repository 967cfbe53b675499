package resttest

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/fmtbank/cmts/fhir/fhirtest"
	"github.com/fmtbank/cmts/fhir/rest"
	"github.com/google/go-cmp/cmp"
)

// mustAccept are the types whose every official example must be accepted and
// round-trip: the ones the registry is built on.
var mustAccept = map[string]bool{"Patient": true, "Procedure": true, "Specimen": true, "AdverseEvent": true}

// roundTripSkips are examples the codec accepts whose JSON it does not give
// back unchanged, each with the reason. Keep it empty unless a reason is real.
var roundTripSkips = map[string]string{}

// RunExamples PUTs the official R4 examples (npm hl7.fhir.r4.examples) and
// reads them back: what the codec accepts must come back as sent, apart from
// meta.versionId and meta.lastUpdated. every > 1 takes every Patient,
// Procedure, Specimen and AdverseEvent example but only each every-th of the
// rest, for backends too slow for all 5,306 (FerretDB scans in Go).
// minAccepted guards against a codec that silently rejects everything.
func RunExamples(t *testing.T, newStore NewStore, minAccepted, every int) {
	var files []string
	for i, f := range fhirtest.ExampleFiles(t, "") {
		typ, _, _ := strings.Cut(filepath.Base(f), "-")
		if every <= 1 || mustAccept[typ] || i%every == 0 {
			files = append(files, f)
		}
	}
	c, _ := open(t, newStore)
	type result struct {
		file, typ, problem string
		accepted           bool
		rejected           string
	}
	results := make([]result, len(files))
	var wg sync.WaitGroup
	work := make(chan int)
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range work {
				results[i] = result{file: filepath.Base(files[i])}
				r := &results[i]
				body, err := os.ReadFile(files[i])
				if err != nil {
					r.problem = err.Error()
					continue
				}
				var head struct {
					ResourceType string `json:"resourceType"`
					ID           string `json:"id"`
				}
				if json.Unmarshal(body, &head) != nil || head.ID == "" {
					r.rejected = "no id"
					continue
				}
				r.typ = head.ResourceType
				put := c.Do("PUT", "/"+head.ResourceType+"/"+head.ID, body)
				switch put.Status {
				case 200, 201:
				case 413:
					// A few definition bundles are larger than the
					// default body limit; that answer is the right one.
					if int64(len(body)) > rest.DefaultMaxBody {
						r.rejected = "larger than the default body limit"
						continue
					}
					// The FHIR specification's own ImplementationGuide
					// lists 28,517 pages in one array, over the default
					// max-array (it is invalid R4 as well).
					if d := firstDiagnostic(put.Body); strings.HasPrefix(d, "limit max-") {
						r.rejected = "over a default limit: " + d
						continue
					}
					r.problem = "413 for a body under the limit"
					continue
				case 400:
					r.rejected = firstDiagnostic(put.Body)
					if mustAccept[head.ResourceType] {
						r.problem = "rejected: " + string(put.Body)
					}
					continue
				default:
					r.problem = fmt.Sprintf("PUT answered %d: %.300s", put.Status, put.Body)
					continue
				}
				r.accepted = true
				get := c.Do("GET", "/"+head.ResourceType+"/"+head.ID, nil)
				if get.Status != 200 {
					r.problem = fmt.Sprintf("GET answered %d", get.Status)
					continue
				}
				if d := cmp.Diff(normalise(body), normalise(get.Body)); d != "" {
					if _, skip := roundTripSkips[r.file]; !skip {
						r.problem = "round trip (-sent +read):\n" + d
					}
				}
			}
		}()
	}
	for i := range files {
		work <- i
	}
	close(work)
	wg.Wait()

	accepted, byType := 0, map[string]int{}
	reasons := map[string]int{}
	for _, r := range results {
		if r.problem != "" {
			t.Errorf("%s: %s", r.file, r.problem)
		}
		if r.accepted {
			accepted++
			byType[r.typ]++
		} else if r.rejected != "" {
			reasons[r.rejected]++
		}
	}
	for typ := range mustAccept {
		if byType[typ] == 0 {
			t.Errorf("no %s example was accepted", typ)
		}
	}
	t.Logf("%d of %d examples accepted and round-tripped; %d rejected by the codec", accepted, len(files), len(files)-accepted)
	var rs []string
	for k, n := range reasons {
		rs = append(rs, fmt.Sprintf("%5d  %s", n, k))
	}
	sort.Sort(sort.Reverse(sort.StringSlice(rs)))
	if len(rs) > 15 {
		rs = rs[:15]
	}
	t.Logf("commonest rejection reasons:\n%s", strings.Join(rs, "\n"))
	if accepted < minAccepted {
		t.Errorf("only %d examples accepted, want at least %d", accepted, minAccepted)
	}
}

func firstDiagnostic(body []byte) string {
	var oo struct {
		Issue []struct {
			Diagnostics string `json:"diagnostics"`
		} `json:"issue"`
	}
	_ = json.Unmarshal(body, &oo)
	if len(oo.Issue) == 0 {
		return "?"
	}
	d := oo.Issue[0].Diagnostics
	if len(d) > 120 {
		d = d[:120]
	}
	return d
}

// normalise decodes JSON and drops what the server sets itself.
func normalise(b []byte) any {
	var m map[string]any
	d := json.NewDecoder(strings.NewReader(string(b)))
	d.UseNumber()
	if err := d.Decode(&m); err != nil {
		return string(b)
	}
	if meta, ok := m["meta"].(map[string]any); ok {
		delete(meta, "versionId")
		delete(meta, "lastUpdated")
		if len(meta) == 0 {
			delete(m, "meta")
		}
	}
	return m
}
