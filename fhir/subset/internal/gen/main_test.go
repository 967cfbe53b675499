package main

import (
	"regexp"
	"testing"

	"github.com/fmtbank/cmts/fhir/fhirtest"
)

// TestGeneratedFileIsCurrent regenerates the table from the pinned examples
// package and compares it with the committed elements_gen.go, so the two
// cannot drift apart.
func TestGeneratedFileIsCurrent(t *testing.T) {
	src := fhirtest.CheckGenerated(t, "../../elements_gen.go", "go generate ./fhir/subset", generate)

	count := func(pattern string) int {
		return len(regexp.MustCompile("(?m)"+pattern).FindAllIndex(src, -1))
	}
	// 655 StructureDefinitions in the package, of which 146 are concrete
	// base resource definitions; their top levels have 3,704 JSON names,
	// 162 of them from choice elements. Every resource but Binary, Bundle
	// and Parameters has modifierExtension, the one modifier that R4 does
	// not put in the summary.
	for _, c := range []struct {
		what    string
		pattern string
		want    int
	}{
		{"resource types", `^\t"[A-Za-z]+": \{$`, 146},
		{"elements", `^\t\t"[a-z][A-Za-z]*": +\{`, 3704},
		{"choice names", `^\t\t".*, "[a-z][A-Za-z]*"\},$`, 162},
		{"mandatory elements", `^\t\t".*\bmandatory\b`, 318},
		{"modifiers outside the summary", `^\t\t"[a-zA-Z]+": +\{modifier, ""\},$`, 143},
		{"Patient.deceasedDateTime", `^\t\t"deceasedDateTime": +\{summary \| modifier, "deceased"\},$`, 1},
	} {
		if got := count(c.pattern); got != c.want {
			t.Errorf("%s: %d, want %d", c.what, got, c.want)
		}
	}
}
