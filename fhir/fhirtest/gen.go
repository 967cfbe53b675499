package fhirtest

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"go/format"
	"log"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// GeneratorMain is the main function of a go:generate program that writes
// one Go file from the hl7.fhir.r4.examples package. It reads the flags
// -examples DIR (default: ExamplesDir, which installs the package into the
// test cache) and -out FILE (default defaultOut), calls generate with the
// package directory, formats the source it returns as gofmt does and writes
// it to FILE. Any error ends the program with a message prefixed "gen: ".
func GeneratorMain(defaultOut string, generate func(examplesDir string) ([]byte, error)) {
	examples := flag.String("examples", "", "directory of the hl7.fhir.r4.examples package (default: install it into the test cache with npm ci)")
	out := flag.String("out", defaultOut, "file to write")
	flag.Parse()
	log.SetFlags(0)
	log.SetPrefix("gen: ")
	dir := *examples
	if dir == "" {
		dir = ExamplesDir(programTB{})
	}
	src, err := formatted(generate, dir)
	if err != nil {
		log.Fatal(err)
	}
	if err := os.WriteFile(*out, src, 0o644); err != nil {
		log.Fatal(err)
	}
}

// CheckGenerated fails t unless the committed file (a path relative to the
// test's working directory) holds what GeneratorMain writes with generate
// from ExamplesDir, and generate gives the same output twice. regenerate is
// the command that brings the file up to date, for the failure message. It
// returns the generated file, for further checks of its contents.
func CheckGenerated(t testing.TB, committed, regenerate string, generate func(examplesDir string) ([]byte, error)) []byte {
	t.Helper()
	src, err := formatted(generate, ExamplesDir(t))
	if err != nil {
		t.Fatal(err)
	}
	have, err := os.ReadFile(committed)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(src, have) {
		name := filepath.Base(committed)
		got, want := strings.Split(string(have), "\n"), strings.Split(string(src), "\n")
		for i := 0; i < len(got) && i < len(want); i++ {
			if got[i] != want[i] {
				t.Fatalf("%s is stale (run %s); first difference at line %d:\n have %s\n want %s", name, regenerate, i+1, got[i], want[i])
			}
		}
		t.Fatalf("%s is stale (run %s): %d lines, want %d", name, regenerate, len(got), len(want))
	}
	again, err := formatted(generate, ExamplesDir(t))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(src, again) {
		t.Error("the generator's output is not deterministic")
	}
	return src
}

// formatted runs generate on dir and formats its output as gofmt does.
func formatted(generate func(string) ([]byte, error), dir string) ([]byte, error) {
	src, err := generate(dir)
	if err != nil {
		return nil, err
	}
	src, err = format.Source(src)
	if err != nil {
		return nil, fmt.Errorf("formatting the output: %w", err)
	}
	return src, nil
}

// ResourceDefinitions calls fn, in file name order, with each
// StructureDefinition of the examples package in dir that defines a concrete
// resource type (kind resource, derivation specialization, not abstract),
// decoded into a T: the caller's view of a StructureDefinition. It stops at
// the first error fn returns, and fails if there are fewer than 100 such
// definitions (R4 has 146), as when dir is not the package.
func ResourceDefinitions[T any](dir string, fn func(file string, sd T) error) error {
	files, err := filepath.Glob(filepath.Join(dir, "StructureDefinition-*.json"))
	if err != nil {
		return err
	}
	n := 0
	for _, f := range files {
		var head struct {
			Kind       string `json:"kind"`
			Abstract   bool   `json:"abstract"`
			Derivation string `json:"derivation"`
		}
		b, err := os.ReadFile(f)
		if err != nil {
			return err
		}
		if err := json.Unmarshal(b, &head); err != nil {
			return fmt.Errorf("%s: %w", f, err)
		}
		if head.Kind != "resource" || head.Derivation != "specialization" || head.Abstract {
			continue
		}
		var sd T
		if err := json.Unmarshal(b, &sd); err != nil {
			return fmt.Errorf("%s: %w", f, err)
		}
		if err := fn(f, sd); err != nil {
			return err
		}
		n++
	}
	if n < 100 {
		return fmt.Errorf("%s: only %d resource StructureDefinitions", dir, n)
	}
	return nil
}

// ReadJSON reads the JSON file path, such as a resource of an npm package,
// into v. A syntax error names the file.
func ReadJSON(path string, v any) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return nil
}

// programTB lets GeneratorMain use the npm cache outside a test: every way
// fhirtest gives up (skip or fail) ends the program with the message.
type programTB struct{ testing.TB }

func (programTB) Helper()                           {}
func (programTB) Fatal(args ...any)                 { log.Fatal(args...) }
func (programTB) Fatalf(format string, args ...any) { log.Fatalf(format, args...) }
func (programTB) Skip(args ...any)                  { log.Fatal(args...) }
func (programTB) Skipf(format string, args ...any)  { log.Fatalf(format, args...) }
