package profiles

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/fmtbank/cmts/fhir"
)

func shipped(t testing.TB) *Definitions {
	t.Helper()
	d, err := Embedded()
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func readExample(t testing.TB, name string) map[string]any {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("examples", name))
	if err != nil {
		t.Fatal(err)
	}
	m, err := Decode(b)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func errorsOf(issues []fhir.Issue) []fhir.Issue {
	var out []fhir.Issue
	for _, is := range issues {
		if is.Severity == "error" {
			out = append(out, is)
		}
	}
	return out
}

// TestExamplesValid validates every example in examples/ against the
// profile it claims, with the embedded definitions the server ships.
func TestExamplesValid(t *testing.T) {
	t.Parallel()
	v := NewValidator(shipped(t), nil)
	files, _ := filepath.Glob("examples/*.json")
	for _, f := range files {
		res := readExample(t, filepath.Base(f))
		meta := res["meta"].(map[string]any)
		profile := meta["profile"].([]any)[0].(string)
		issues, err := v.Validate(context.Background(), res, profile)
		if err != nil {
			t.Fatal(err)
		}
		for _, is := range errorsOf(issues) {
			t.Errorf("%s: %s at %s: %s", filepath.Base(f), is.Severity, strings.Join(is.Expression, ","), is.Message.EN)
		}
	}
}
