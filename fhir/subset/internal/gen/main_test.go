package main

import (
	"bytes"
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/fmtbank/cmts/fhir/fhirtest"
)

// TestGeneratedFileIsCurrent regenerates the table from the pinned examples
// package and compares it with the committed elements_gen.go, so the two
// cannot drift apart.
func TestGeneratedFileIsCurrent(t *testing.T) {
	src, err := generate(fhirtest.ExamplesDir(t))
	if err != nil {
		t.Fatal(err)
	}
	committed, err := os.ReadFile("../../elements_gen.go")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(src, committed) {
		got, want := strings.Split(string(committed), "\n"), strings.Split(string(src), "\n")
		for i := 0; i < len(got) && i < len(want); i++ {
			if got[i] != want[i] {
				t.Fatalf("elements_gen.go is stale (run go generate ./fhir/subset); first difference at line %d:\n have %s\n want %s", i+1, got[i], want[i])
			}
		}
		t.Fatalf("elements_gen.go is stale (run go generate ./fhir/subset): %d lines, want %d", len(got), len(want))
	}
	again, err := generate(fhirtest.ExamplesDir(t))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(src, again) {
		t.Error("the generator's output is not deterministic")
	}

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
