package fhirpath

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/fmtbank/cmts/fhir/fhirtest"
)

// searchParam is the part of an R4 SearchParameter the tests need.
type searchParam struct {
	File       string
	URL        string   `json:"url"`
	Code       string   `json:"code"`
	Type       string   `json:"type"`
	Base       []string `json:"base"`
	Expression string   `json:"expression"`
}

func loadSearchParams(t *testing.T) []searchParam {
	t.Helper()
	var out []searchParam
	for _, f := range fhirtest.ExampleFiles(t, "SearchParameter") {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var sp searchParam
		if err := json.Unmarshal(b, &sp); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		sp.File = filepath.Base(f)
		out = append(out, sp)
	}
	return out
}

func decodeFile(t testing.TB, path string) any {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	var v any
	if err := d.Decode(&v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return v
}

// TestParseSearchParameterExpressions parses the expression of every
// SearchParameter in the R4 examples package.
func TestParseSearchParameterExpressions(t *testing.T) {
	sps := loadSearchParams(t)
	if len(sps) < 1000 {
		t.Fatalf("only %d SearchParameters found", len(sps))
	}
	parsed, without := 0, 0
	for _, sp := range sps {
		if sp.Expression == "" {
			// e.g. the special parameters _text, _content, _query, _list,
			// _has and the location "near" parameter carry no expression.
			without++
			continue
		}
		if _, err := Parse(sp.Expression); err != nil {
			t.Errorf("%s (%s): %v", sp.File, sp.Code, err)
			continue
		}
		parsed++
	}
	t.Logf("parsed %d SearchParameter expressions; %d SearchParameters have none", parsed, without)
}

// referenceSkips lists the known differences from the reference
// implementation, each with the reason. An empty file or expression
// matches any.
var referenceSkips = []struct{ file, expression, reason string }{
	{"Observation-decimal.json", "", "fhirpath.js de-duplicates union (|) results with decimals rounded " +
		"to 8 places, so components with values 1e-22 and 1e-245 count as one; Go compares exactly"},
	{"Observation-f205.json", "", "fhirpath.js fails with \"Cannot convert a FHIR.Quantity that has a comparator\" " +
		"when de-duplicating a union of Quantity values one of which has a comparator"},
}

func skipReason(file, expression string) (string, bool) {
	for _, s := range referenceSkips {
		if (s.file == "" || s.file == file) && (s.expression == "" || s.expression == expression) {
			return s.reason, true
		}
	}
	return "", false
}

// TestDifferentialReference compares Evaluate with HL7's FHIRPath reference
// implementation (npm fhirpath, R4 model) on every SearchParameter
// expression that applies to a sample of the R4 example resources.
func TestDifferentialReference(t *testing.T) {
	if testing.Short() {
		t.Skip("differential test skipped in -short mode")
	}
	nodeModules := fhirtest.NodeModules(t)
	node, err := exec.LookPath("node")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("node not found")
		}
		t.Skip("node not found")
	}

	byBase := map[string][]string{} // resource type -> expressions
	for _, sp := range loadSearchParams(t) {
		if sp.Expression == "" {
			continue
		}
		for _, b := range sp.Base {
			byBase[b] = append(byBase[b], sp.Expression)
		}
	}

	// Up to perType resources of every type (572 resources), sorted by name
	// for a stable sample; FHIRPATH_DIFF_ALL=1 takes all 5306 (about 20 s).
	perType := 10
	if os.Getenv("FHIRPATH_DIFF_ALL") != "" {
		perType = 1 << 30
	}
	files := fhirtest.ExampleFiles(t, "")
	sort.Strings(files)
	seen := map[string]int{}
	type pair struct {
		File       string `json:"file"`
		Expression string `json:"expression"`
	}
	var pairs []pair
	resources := map[string]any{}
	for _, f := range files {
		rt := strings.SplitN(filepath.Base(f), "-", 2)[0]
		if seen[rt] >= perType {
			continue
		}
		res := decodeFile(t, f)
		m, ok := res.(map[string]any)
		if !ok {
			continue
		}
		rt, _ = m["resourceType"].(string)
		if seen[rt] >= perType {
			continue
		}
		seen[rt]++
		resources[f] = res
		exprs := map[string]bool{}
		for _, base := range []string{rt, "Resource", "DomainResource"} {
			for _, e := range byBase[base] {
				if !exprs[e] {
					exprs[e] = true
					pairs = append(pairs, pair{f, e})
				}
			}
		}
	}

	in := filepath.Join(t.TempDir(), "pairs.json")
	b, err := json.Marshal(pairs)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(in, b, 0o644); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	cmd := exec.Command(node, filepath.Join("testdata", "reference.js"), nodeModules, in)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("node reference.js: %v\n%s", err, stderr.String())
	}
	t.Logf("reference implementation: %d evaluations over %d resources in %v", len(pairs), len(resources), time.Since(start).Round(time.Millisecond))
	var ref []struct {
		Result    []json.RawMessage `json:"result"`
		Types     []string          `json:"types"`
		Error     string            `json:"error"`
		Rewritten bool              `json:"rewritten"`
	}
	if err := json.Unmarshal(out, &ref); err != nil {
		t.Fatalf("decoding reference output: %v", err)
	}
	if len(ref) != len(pairs) {
		t.Fatalf("reference returned %d results for %d pairs", len(ref), len(pairs))
	}

	exprs := map[string]*Expr{}
	var agree, nonEmpty, rewritten, refErrors, skipped, disagree, typed, typeMismatch int
	for i, p := range pairs {
		r := ref[i]
		e, ok := exprs[p.Expression]
		if !ok {
			e, err = Parse(p.Expression)
			if err != nil {
				t.Fatalf("Parse(%q): %v", p.Expression, err)
			}
			exprs[p.Expression] = e
		}
		got, gerr := e.Evaluate(resources[p.File])
		if r.Error != "" {
			refErrors++
			if _, ok := skipReason(filepath.Base(p.File), p.Expression); ok {
				skipped++
				continue
			}
			t.Errorf("%s: %s: reference error %s (Go: %d results, err %v)", filepath.Base(p.File), p.Expression, r.Error, len(got), gerr)
			disagree++
			continue
		}
		if gerr != nil {
			t.Errorf("%s: %s: %v", filepath.Base(p.File), p.Expression, gerr)
			disagree++
			continue
		}
		var want []string
		refTypes := map[string][]string{} // canonical value -> reference types
		for j, raw := range r.Result {
			d := json.NewDecoder(bytes.NewReader(raw))
			d.UseNumber()
			var v any
			if err := d.Decode(&v); err != nil {
				t.Fatal(err)
			}
			if v != nil {
				c := string(Canonical(v))
				want = append(want, c)
				if j < len(r.Types) {
					refTypes[c] = append(refTypes[c], strings.TrimPrefix(r.Types[j], "FHIR."))
				}
			}
		}
		var have []string
		for _, n := range got {
			c := string(Canonical(n.Value))
			have = append(have, c)
			// Where Go knows a type, the reference must agree.
			if n.Type != "" && len(refTypes[c]) > 0 && !slices.Contains(refTypes[c], n.Type) {
				typeMismatch++
				if typeMismatch <= 20 {
					t.Errorf("%s: %s: Go type %q for %.80s, reference %v", filepath.Base(p.File), p.Expression, n.Type, c, refTypes[c])
				}
			} else if n.Type != "" {
				typed++
			}
		}
		sort.Strings(want)
		sort.Strings(have)
		if strings.Join(want, "\n") == strings.Join(have, "\n") {
			agree++
			if len(want) > 0 {
				nonEmpty++
			}
			if r.Rewritten {
				rewritten++
			}
			continue
		}
		if _, ok := skipReason(filepath.Base(p.File), p.Expression); ok {
			skipped++
			continue
		}
		disagree++
		t.Errorf("%s: %s:\n  reference: %s\n  Go:        %s", filepath.Base(p.File), p.Expression, strings.Join(want, " "), strings.Join(have, " "))
	}
	t.Logf("differential: %d pairs, %d agree (%d with non-empty results, %d after the 'as' -> ofType rewrite), %d known differences skipped, %d disagree, %d reference errors; %d typed Go nodes agree on type, %d do not",
		len(pairs), agree, nonEmpty, rewritten, skipped, disagree, refErrors, typed, typeMismatch)
}
