package fhirtest

import (
	"os"
	"path/filepath"
	"testing"
)

func TestNodeModules(t *testing.T) {
	nm := NodeModules(t)
	if !filepath.IsAbs(nm) {
		t.Errorf("NodeModules = %q, want an absolute path", nm)
	}
	for _, p := range []string{"hl7.fhir.r4.examples", "fhir-kit-client", "fhirclient", "fhirpath"} {
		if _, err := os.Stat(filepath.Join(nm, p, "package.json")); err != nil {
			t.Errorf("package %s missing: %v", p, err)
		}
	}
	if again := NodeModules(t); again != nm {
		t.Errorf("second NodeModules = %q, want %q", again, nm)
	}
}

func TestExampleFiles(t *testing.T) {
	all := ExampleFiles(t, "")
	if len(all) <= 5000 {
		t.Errorf("got %d example resources, want more than 5000", len(all))
	}
	for _, tc := range []struct {
		resourceType string
		min, max     int
	}{
		{"SearchParameter", 1350, 1450},
		{"StructureDefinition", 630, 680},
		{"Patient", 5, 100},
	} {
		files := ExampleFiles(t, tc.resourceType)
		if n := len(files); n < tc.min || n > tc.max {
			t.Errorf("%s: got %d files, want %d..%d", tc.resourceType, n, tc.min, tc.max)
		}
		for _, f := range files {
			if _, err := os.Stat(f); err != nil {
				t.Errorf("%s: %v", tc.resourceType, err)
				break
			}
		}
	}
	t.Logf("%d example resources in %s: %d SearchParameter, %d StructureDefinition",
		len(all), ExamplesDir(t), len(ExampleFiles(t, "SearchParameter")), len(ExampleFiles(t, "StructureDefinition")))
	if got := ExampleFiles(t, "NoSuchResource"); len(got) != 0 {
		t.Errorf("NoSuchResource: got %d files", len(got))
	}
}
