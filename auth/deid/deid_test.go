package deid

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/fmtbank/cmts/fhir/fhirtest"
	"github.com/google/go-cmp/cmp"
)

var update = flag.Bool("update", false, "rewrite the golden files")

// TestJSONGolden de-identifies each testdata/*.json and compares with its
// .golden file (go test ./auth/deid -update rewrites them).
func TestJSONGolden(t *testing.T) {
	t.Parallel()
	inputs, err := filepath.Glob(filepath.Join("testdata", "*.json"))
	if err != nil || len(inputs) == 0 {
		t.Fatalf("no inputs: %v", err)
	}
	for _, in := range inputs {
		if strings.HasSuffix(in, ".golden.json") {
			continue
		}
		t.Run(filepath.Base(in), func(t *testing.T) {
			t.Parallel()
			b, err := os.ReadFile(in)
			if err != nil {
				t.Fatal(err)
			}
			got, err := JSON(b)
			if err != nil {
				t.Fatal(err)
			}
			var pretty bytes.Buffer
			if err := json.Indent(&pretty, got, "", "  "); err != nil {
				t.Fatal(err)
			}
			pretty.WriteByte('\n')
			golden := strings.TrimSuffix(in, ".json") + ".golden.json"
			if *update {
				if err := os.WriteFile(golden, pretty.Bytes(), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(string(want), pretty.String()); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

func TestResource(t *testing.T) {
	t.Parallel()
	security := func(codes ...string) map[string]any {
		var sec []any
		for _, c := range codes {
			sec = append(sec, map[string]any{"system": SecuritySystem, "code": c, "display": labelDisplay[c]})
		}
		return map[string]any{"security": sec}
	}
	tests := []struct {
		name        string
		in, want    string
		wantChanged bool
	}{
		{"nothing personal", `{"resourceType":"Observation","status":"final","effectiveDateTime":"2026-01-02"}`,
			`{"resourceType":"Observation","status":"final","effectiveDateTime":"2026-01-02"}`, false},
		{"birthDate to the year", `{"resourceType":"Patient","birthDate":"1980-05-12"}`,
			`{"resourceType":"Patient","birthDate":"1980","meta":` + js(security(LabelAbstracted)) + `}`, true},
		{"birthDate already a year", `{"resourceType":"Patient","birthDate":"1980"}`,
			`{"resourceType":"Patient","birthDate":"1980"}`, false},
		{"deceased date kept", `{"resourceType":"Patient","deceasedDateTime":"2020-01-02T03:04:05Z"}`,
			`{"resourceType":"Patient","deceasedDateTime":"2020-01-02T03:04:05Z"}`, false},
		{"human name removed", `{"resourceType":"Practitioner","name":[{"family":"Wang"}]}`,
			`{"resourceType":"Practitioner","meta":` + js(security(LabelRedacted)) + `}`, true},
		{"organization name kept", `{"resourceType":"Organization","name":"Hospital A","address":[{"city":"Beijing"}]}`,
			`{"resourceType":"Organization","name":"Hospital A","meta":` + js(security(LabelRedacted)) + `}`, true},
		{"endpoint address (a URL) kept", `{"resourceType":"Endpoint","address":"https://h.example/fhir"}`,
			`{"resourceType":"Endpoint","address":"https://h.example/fhir"}`, false},
		{"registry identifiers kept", `{"resourceType":"Patient","identifier":[{"system":"http://fmtbank.org/fhir/sid/recipient-code","value":"R-1"}]}`,
			`{"resourceType":"Patient","identifier":[{"system":"http://fmtbank.org/fhir/sid/recipient-code","value":"R-1"}]}`, false},
		{"other identifiers removed", `{"resourceType":"Patient","identifier":[{"system":"urn:oid:1.2","value":"X"},{"value":"no system"}]}`,
			`{"resourceType":"Patient","meta":` + js(security(LabelRedacted)) + `}`, true},
		{"reference identifier and display", `{"resourceType":"Observation","subject":{"reference":"Patient/1","display":"Li Si","identifier":{"system":"urn:mrn","value":"9"}}}`,
			`{"resourceType":"Observation","subject":{"reference":"Patient/1"},"meta":` + js(security(LabelRedacted)) + `}`, true},
		{"coding display kept", `{"resourceType":"Condition","code":{"coding":[{"system":"http://hl7.org/fhir/sid/icd-10","code":"K51","display":"Ulcerative colitis"}],"text":"UC"}}`,
			`{"resourceType":"Condition","code":{"coding":[{"system":"http://hl7.org/fhir/sid/icd-10","code":"K51","display":"Ulcerative colitis"}],"text":"UC"}}`, false},
		{"narrative and notes", `{"resourceType":"AdverseEvent","text":{"status":"generated","div":"<div/>"},"note":[{"text":"x"}]}`,
			`{"resourceType":"AdverseEvent","meta":` + js(security(LabelRedacted)) + `}`, true},
		{"existing label not repeated", `{"resourceType":"Patient","telecom":[{"value":"1"}],"meta":{"security":[{"system":"` + SecuritySystem + `","code":"REDACTED"}]}}`,
			`{"resourceType":"Patient","meta":{"security":[{"system":"` + SecuritySystem + `","code":"REDACTED"}]}}`, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := JSON([]byte(tt.in))
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(decoded(t, []byte(tt.want)), decoded(t, got)); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
			if changed := !bytes.Equal(got, []byte(tt.in)); changed != tt.wantChanged {
				t.Errorf("changed = %v, want %v", changed, tt.wantChanged)
			}
		})
	}
}

// decoded is b as generic JSON, numbers kept as their text.
func decoded(t testing.TB, b []byte) any {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		t.Fatalf("%v in %s", err, b)
	}
	return v
}

// TestOracle de-identifies every official example (Bundles with their
// entries, contained resources, every type) with the byte rewriter and
// with the map-based oracle, and wants the same JSON.
func TestOracle(t *testing.T) {
	t.Parallel()
	files := fhirtest.ExampleFiles(t, "")
	if len(files) < 1000 {
		t.Fatalf("%d examples, want the whole package", len(files))
	}
	changed := 0
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if len(b) > 64<<10 {
			continue // the big conformance resources cost the oracle seconds and hold nothing personal
		}
		want, err := mapJSON(b)
		if err != nil {
			continue // not a JSON object resource: the oracle refuses it too
		}
		got, err := JSON(b)
		if err != nil {
			t.Errorf("%s: %v", filepath.Base(f), err)
			continue
		}
		if diff := cmp.Diff(decoded(t, want), decoded(t, got)); diff != "" {
			t.Errorf("%s (-oracle +rewriter):\n%s", filepath.Base(f), diff)
		}
		if !bytes.Equal(bytes.TrimSpace(b), got) {
			changed++
		}
	}
	if changed == 0 {
		t.Error("no example was changed: the comparison proves nothing")
	}
}

// BenchmarkJSON de-identifies a recipient as the trace does.
func BenchmarkJSON(b *testing.B) {
	in, err := os.ReadFile(filepath.Join("testdata", "recipient.json"))
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(in)))
	for b.Loop() {
		if _, err := JSON(in); err != nil {
			b.Fatal(err)
		}
	}
}

func TestJSONRefusesNonResources(t *testing.T) {
	t.Parallel()
	for _, in := range []string{`[]`, `{"id":"x"}`, `not json`} {
		if _, err := JSON([]byte(in)); err == nil {
			t.Errorf("JSON(%s): no error", in)
		}
	}
}

// TestOfficialExamples de-identifies the FHIR R4 specification's own
// examples of the resources that name people, and checks nothing personal
// survives anywhere in them.
func TestOfficialExamples(t *testing.T) {
	t.Parallel()
	for _, typ := range []string{"Patient", "Practitioner", "RelatedPerson", "Person"} {
		files := fhirtest.ExampleFiles(t, typ)
		if len(files) == 0 {
			t.Fatalf("no %s examples", typ)
		}
		for _, f := range files {
			b, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			out, err := JSON(b)
			if err != nil {
				t.Fatalf("%s: %v", f, err)
			}
			var res any
			if err := json.Unmarshal(out, &res); err != nil {
				t.Fatal(err)
			}
			checkClean(t, filepath.Base(f), res, "")
		}
	}
}

// checkClean fails on any personal element left in v.
func checkClean(t *testing.T, file string, v any, path string) {
	t.Helper()
	switch v := v.(type) {
	case map[string]any:
		for k, e := range v {
			p := path + "." + k
			switch k {
			case "telecom", "photo", "note", "address":
				t.Errorf("%s: %s left", file, p)
			case "name":
				if mapIsHumanName(e) {
					t.Errorf("%s: %s left", file, p)
				}
			case "birthDate":
				if s, _ := e.(string); len(s) != 4 {
					t.Errorf("%s: %s = %v, want a year", file, p, e)
				}
			case "identifier":
				if kept, changed := mapRegistryIdentifiers(e); changed || kept == nil {
					t.Errorf("%s: %s = %v left", file, p, e)
				}
			}
			checkClean(t, file, e, p)
		}
	case []any:
		for _, e := range v {
			checkClean(t, file, e, path)
		}
	}
}

func js(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return string(b)
}
