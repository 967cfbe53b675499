package resttest

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/fmtbank/cmts/fhir"
	"github.com/fmtbank/cmts/fhir/fhirtest"
)

// RunSearchCases loads the official R4 examples through the REST API and runs
// every SearchCase, comparing the answer with the hand-worked one. types, when
// not nil, loads only examples of those resource types and runs only the cases
// whose every named type is among them (for backends too slow for all 5,306
// examples; see the callers).
func RunSearchCases(t *testing.T, newStore NewStore, types map[string]bool) {
	c, _ := open(t, newStore)
	loadExamples(t, c, types)
	codec, _ := fhir.NewCodec()
	ran := 0
	for _, tc := range SearchCases {
		if types != nil && !caseWithin(tc, types, codec) {
			continue
		}
		ran++
		t.Run(tc.Name, func(t *testing.T) {
			r := c.Do("GET", "/"+tc.Query, nil)
			want := tc.Status
			if want == 0 {
				want = 200
			}
			if r.Status != want {
				t.Fatalf("%s: status %d, want %d; %.300s\nwhy: %s", tc.Query, r.Status, want, r.Body, tc.Why)
			}
			if want != 200 {
				return
			}
			m := r.JSON(t)
			var match, incl []string
			for _, e := range asList(m["entry"]) {
				e := e.(map[string]any)
				res := e["resource"].(map[string]any)
				id := fmt.Sprintf("%s/%s", res["resourceType"], res["id"])
				if s, _ := e["search"].(map[string]any); s != nil && s["mode"] == "include" {
					incl = append(incl, id)
				} else {
					match = append(match, id)
				}
			}
			got, wantIDs := match, append([]string(nil), tc.Want...)
			if !tc.Ordered {
				sort.Strings(got)
				sort.Strings(wantIDs)
			}
			if fmt.Sprint(got) != fmt.Sprint(wantIDs) {
				t.Errorf("%s\n got %v\nwant %v\nwhy: %s", tc.Query, got, wantIDs, tc.Why)
			}
			sort.Strings(incl)
			wantIncl := append([]string(nil), tc.Include...)
			sort.Strings(wantIncl)
			if fmt.Sprint(incl) != fmt.Sprint(wantIncl) {
				t.Errorf("%s: included\n got %v\nwant %v\nwhy: %s", tc.Query, incl, wantIncl, tc.Why)
			}
			if tc.Total != -1 {
				total, ok := m["total"].(float64)
				if !ok || int(total) != tc.Total {
					t.Errorf("%s: total %v, want %d", tc.Query, m["total"], tc.Total)
				}
			}
		})
	}
	t.Logf("%d of %d search cases ran", ran, len(SearchCases))
	if ran < 20 {
		t.Errorf("only %d search cases ran", ran)
	}
}

var typeWord = regexp.MustCompile(`[A-Z][A-Za-z]+`)

// caseWithin reports whether every resource type a case names is loaded.
func caseWithin(tc SearchCase, types map[string]bool, codec *fhir.Codec) bool {
	names := append(append([]string{tc.Query}, tc.Want...), tc.Include...)
	for _, s := range names {
		for _, w := range typeWord.FindAllString(s, -1) {
			if codec.IsResourceType(w) && !types[w] {
				return false
			}
		}
	}
	return true
}

// loadExamples PUTs the official examples (all but excludedExamples, which
// the server must reject), four at a time.
func loadExamples(t *testing.T, c *Client, types map[string]bool) {
	t.Helper()
	files := fhirtest.ExampleFiles(t, "")
	work := make(chan string)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var problems []string
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for f := range work {
				body, err := os.ReadFile(f)
				if err != nil {
					mu.Lock()
					problems = append(problems, err.Error())
					mu.Unlock()
					continue
				}
				var head struct{ ResourceType, ID string }
				_ = json.Unmarshal(body, &head)
				r := c.Do("PUT", "/"+head.ResourceType+"/"+head.ID, body)
				_, excluded := excludedExamples[filepath.Base(f)]
				if ok := r.Status == 200 || r.Status == 201; ok == excluded {
					mu.Lock()
					problems = append(problems, fmt.Sprintf("%s: %d (excluded: %v) %.200s", filepath.Base(f), r.Status, excluded, r.Body))
					mu.Unlock()
				}
			}
		}()
	}
	n := 0
	for _, f := range files {
		typ, _, _ := strings.Cut(filepath.Base(f), "-")
		if types != nil && !types[typ] {
			continue
		}
		n++
		work <- f
	}
	close(work)
	wg.Wait()
	if len(problems) > 0 {
		t.Fatalf("loading the examples (the data the cases assume):\n%s", strings.Join(problems, "\n"))
	}
	t.Logf("loaded %d example files", n)
}
