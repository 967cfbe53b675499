package main

import (
	"strings"
	"testing"

	"github.com/fmtbank/cmts/fhir/fhirtest"
	"github.com/google/go-cmp/cmp"
)

// TestGeneratedFileIsCurrent regenerates the registry from the pinned
// examples package and compares it with the committed params_gen.go, so the
// two cannot drift apart.
func TestGeneratedFileIsCurrent(t *testing.T) {
	src := fhirtest.CheckGenerated(t, "../../params_gen.go", "go generate ./fhir/search", generate)

	count := func(prefix string) int {
		n := 0
		for _, line := range strings.Split(string(src), "\n") {
			if strings.HasPrefix(line, prefix) {
				n++
			}
		}
		return n
	}
	// 1,400 SearchParameters in the package, less 3 examples and 10
	// extension definitions without a base; 6 of those left have no
	// expression (_text, _content, _query, _filter, Patient age and
	// birthOrderBoolean).
	for _, c := range []struct {
		what   string
		prefix string
		want   int
	}{
		{"parameters", "\t\tID:", 1387},
		{"parameters with an expression", "\t\tExpression:", 1381},
		{"composite parameters", "\t\tComponents:", 46},
		{"resource types", "\t{\"", 146},
	} {
		if got := count(c.prefix); got != c.want {
			t.Errorf("%s: %d, want %d", c.what, got, c.want)
		}
	}
}

func TestSplitUnion(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want []string
	}{
		{"Patient.name", []string{"Patient.name"}},
		{"A.b | B.c", []string{"A.b", "B.c"}},
		{"(A.value as Quantity) | (A.value as Range)", []string{"(A.value as Quantity)", "(A.value as Range)"}},
		{"A.b.where(c = 'x|y') | B.c", []string{"A.b.where(c = 'x|y')", "B.c"}},
		{"A.b.where((c | d).exists())", []string{"A.b.where((c | d).exists())"}},
		{"", nil},
	} {
		got, err := splitUnion(tt.in)
		if err != nil {
			t.Fatalf("%q: %v", tt.in, err)
		}
		if diff := cmp.Diff(tt.want, got); diff != "" {
			t.Errorf("splitUnion(%q) (-want +got):\n%s", tt.in, diff)
		}
	}
	for _, bad := range []string{"A.b('x", "A.b(", "A.b)"} {
		if _, err := splitUnion(bad); err == nil {
			t.Errorf("splitUnion(%q) accepted", bad)
		}
	}
}

func TestLeadingNameAndTargets(t *testing.T) {
	for in, want := range map[string]string{
		"Patient.name": "Patient", "(ConceptMap.source as uri)": "ConceptMap", "name": "name", "%resource.x": "",
	} {
		if got := leadingName(in); got != want {
			t.Errorf("leadingName(%q) = %q, want %q", in, got, want)
		}
	}
	targets := []string{"Group", "Patient"}
	if got := resolvedTargets([]string{"Observation.subject.where(resolve() is Patient)"}, targets); !cmp.Equal(got, []string{"Patient"}) {
		t.Errorf("resolvedTargets = %v", got)
	}
	if got := resolvedTargets([]string{"Observation.subject.where(resolve() is Patient)", "Observation.focus"}, targets); got != nil {
		t.Errorf("resolvedTargets with an open part = %v", got)
	}
	docs := baseDocs("Multiple Resources: \r\n\r\n* [Patient](patient.html): A portion of the given name\r\n* [Practitioner](practitioner.html): Given\r\n")
	if diff := cmp.Diff(map[string]string{"Patient": "A portion of the given name", "Practitioner": "Given"}, docs); diff != "" {
		t.Errorf("baseDocs (-want +got):\n%s", diff)
	}
}
