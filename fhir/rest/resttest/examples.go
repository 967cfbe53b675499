package resttest

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/fmtbank/cmts/fhir/fhirtest"
	"github.com/fmtbank/cmts/store"
	"github.com/google/go-cmp/cmp"
)

// mustAccept are the types whose every official example must be accepted and
// round-trip: the ones the registry is built on.
var mustAccept = map[string]bool{"Patient": true, "Procedure": true, "Specimen": true, "AdverseEvent": true}

// roundTripSkips are examples the codec accepts whose JSON it does not give
// back unchanged, each with the reason. Keep it empty unless a reason is real.
var roundTripSkips = map[string]string{}

// RunExamples PUTs the official R4 examples (npm hl7.fhir.r4.examples) and
// reads them back. What the server accepts must come back as sent, apart from
// meta.versionId and meta.lastUpdated; what it rejects must be exactly the
// files of excludedExamples, each with its status and reason, so that an
// example newly rejected, or newly accepted, fails the test. every > 1 takes
// every Patient, Procedure, Specimen and AdverseEvent example but only each
// every-th of the rest, for backends too slow for all 5,306 (FerretDB scans
// in Go); the pinned rejections among the files taken are checked.
func RunExamples(t *testing.T, newStore NewStore, every int) {
	all := fhirtest.ExampleFiles(t, "")
	var files []string
	for i, f := range all {
		typ, _, _ := strings.Cut(filepath.Base(f), "-")
		if every <= 1 || mustAccept[typ] || i%every == 0 {
			files = append(files, f)
		}
	}
	if every <= 1 {
		// The pinned list names official examples only.
		names := map[string]bool{}
		for _, f := range all {
			names[filepath.Base(f)] = true
		}
		for name := range excludedExamples {
			if !names[name] {
				t.Errorf("excludedExamples names %s, which is not an official example", name)
			}
		}
	}
	runExamples(t, newStore, files)
}

// RunExampleSample is RunExamples over a sample of the official examples
// that reaches every part of a store backend that the whole set does, for
// a backend too slow for all 5,306 (FerretDB scans in Go) whose code path
// above the store (the server, the codec, the rejections pinned in
// excludedExamples) a faster backend proves with the same code over all of
// them: of every resource type the smallest example the server accepts,
// every example of the registry's own types, and the largest example it
// accepts (Bundle-valueset-expansions.json, 12 MB: a body near MongoDB's
// 16 MB document limit). A store keeps a body as bytes and its index
// entries by kind, not by resource type, so the sample must give index
// entries of every kind, or the test fails.
func RunExampleSample(t *testing.T, newStore NewStore) {
	_, engine := codecAndEngine(t)
	smallest := map[string]string{} // type -> file
	size := map[string]int64{}
	var files []string
	largest := ""
	for _, f := range fhirtest.ExampleFiles(t, "") {
		if _, excluded := excludedExamples[filepath.Base(f)]; excluded {
			continue
		}
		fi, err := os.Stat(f)
		if err != nil {
			t.Fatal(err)
		}
		size[f] = fi.Size()
		typ, _, _ := strings.Cut(filepath.Base(f), "-")
		if mustAccept[typ] {
			files = append(files, f)
		} else if s, ok := smallest[typ]; !ok || size[f] < size[s] {
			smallest[typ] = f
		}
		if largest == "" || size[f] > size[largest] {
			largest = f
		}
	}
	for _, f := range smallest {
		if f != largest {
			files = append(files, f)
		}
	}
	if typ, _, _ := strings.Cut(filepath.Base(largest), "-"); !mustAccept[typ] {
		files = append(files, largest)
	}
	kinds := map[store.IndexKind]bool{}
	for _, f := range files {
		body, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		typ, _, _ := strings.Cut(filepath.Base(f), "-")
		entries, _ := engine.Entries(typ, body)
		for _, e := range entries {
			kinds[e.Kind] = true
		}
	}
	for _, k := range []store.IndexKind{store.KindToken, store.KindString, store.KindReference, store.KindDate,
		store.KindNumber, store.KindQuantity, store.KindURI} {
		if !kinds[k] {
			t.Errorf("the sample of examples gives no %s index entry", k)
		}
	}
	runExamples(t, newStore, files)
}

// runExamples is RunExamples over files.
func runExamples(t *testing.T, newStore NewStore, files []string) {
	// On FerretDB reading a version back scans the documents stored before
	// it, so the small ones go first (see loadExamples).
	sortBySize(t, files)
	st := newLoading(newStore(t))
	t.Cleanup(func() { st.Close() })
	c := Serve(t, st)
	type result struct {
		file, typ, problem string
		accepted           bool
		rejected           bool
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
				if err := json.Unmarshal(body, &head); err != nil || head.ID == "" {
					r.problem = fmt.Sprintf("no resourceType and id (%v)", err)
					continue
				}
				r.typ = head.ResourceType
				st.announce(head.ResourceType, head.ID)
				put := c.Do("PUT", "/"+head.ResourceType+"/"+head.ID, body)
				if want, excluded := excludedExamples[r.file]; excluded {
					r.rejected = true
					if text := outcomeText(put.Body); put.Status != want.status || !strings.Contains(text, want.says) {
						r.problem = fmt.Sprintf("PUT answered %d %q; want %d saying %q, because: %s",
							put.Status, text, want.status, want.says, want.why)
					}
					continue
				}
				if put.Status != 200 && put.Status != 201 {
					r.problem = fmt.Sprintf("PUT answered %d: %.300s (a newly rejected example: fix it, or pin it in excludedExamples with the reason)", put.Status, put.Body)
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

	accepted, rejected, byType := 0, 0, map[string]int{}
	for _, r := range results {
		if r.problem != "" {
			t.Errorf("%s: %s", r.file, r.problem)
		}
		if r.accepted {
			accepted++
			byType[r.typ]++
		}
		if r.rejected {
			rejected++
		}
	}
	for typ := range mustAccept {
		if byType[typ] == 0 {
			t.Errorf("no %s example was accepted", typ)
		}
	}
	t.Logf("%d of %d examples accepted and round-tripped; %d rejected as pinned in excludedExamples", accepted, len(files), rejected)
}

// outcomeText is the details.text and diagnostics of the first issue of an
// OperationOutcome.
func outcomeText(body []byte) string {
	var oo struct {
		Issue []struct {
			Details struct {
				Text string `json:"text"`
			} `json:"details"`
			Diagnostics string `json:"diagnostics"`
		} `json:"issue"`
	}
	if json.Unmarshal(body, &oo) != nil || len(oo.Issue) == 0 {
		return fmt.Sprintf("%.200s", body)
	}
	return strings.TrimSpace(oo.Issue[0].Details.Text + " " + oo.Issue[0].Diagnostics)
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
