package main

import (
	"bytes"
	"os"
	"path/filepath"
	"sort"
	"testing"

	"github.com/fmtbank/cmts/fhir/fhirtest"
)

// TestGeneratedFilesAreCurrent regenerates the guide and the R4 subset from
// the pinned examples package and compares them with the committed files,
// so the tables in ig.go and the JSON cannot drift apart.
func TestGeneratedFilesAreCurrent(t *testing.T) {
	dir := fhirtest.ExamplesDir(t)
	want, err := generate(dir)
	if err != nil {
		t.Fatal(err)
	}
	have := map[string][]byte{}
	for _, sub := range []string{"ig", "r4"} {
		files, err := filepath.Glob(filepath.Join("../..", sub, "*.json"))
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range files {
			b, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			have[sub+"/"+filepath.Base(f)] = b
		}
	}
	var names []string
	for name := range want {
		names = append(names, name)
	}
	for name := range have {
		if _, ok := want[name]; !ok {
			names = append(names, name)
		}
	}
	sort.Strings(names)
	for _, name := range names {
		if !bytes.Equal(want[name], have[name]) {
			t.Errorf("profiles/%s is stale (run go generate ./profiles)", name)
		}
	}
	again, err := generate(dir)
	if err != nil {
		t.Fatal(err)
	}
	for name := range want {
		if !bytes.Equal(want[name], again[name]) {
			t.Errorf("%s: the generator's output is not deterministic", name)
		}
	}
}
