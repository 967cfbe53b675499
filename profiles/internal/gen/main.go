// Command gen writes the WMT implementation guide's conformance resources
// (profiles/ig/*.json) and the part of the R4 specification the validator
// needs at run time (profiles/r4/*.json) from the guide's tables in ig.go
// and the npm package hl7.fhir.r4.examples.
//
// Usage (from profiles, as go generate runs it):
//
//	go run ./internal/gen                  # package from the test cache (runs npm ci once)
//	go run ./internal/gen -examples DIR    # package already unpacked in DIR
//
// StructureDefinition snapshots are made here from the R4 base definitions
// rather than by SUSHI: SUSHI loads hl7.fhir.r4.core from the FHIR package
// registry (packages.fhir.org), which this build cannot reach, and the npm
// examples package is not a drop-in replacement for it. The output depends
// only on ig.go and the package, and a test checks the committed files are
// current.
package main

import (
	"flag"
	"log"
	"os"
	"path/filepath"
	"testing"

	"github.com/fmtbank/cmts/fhir/fhirtest"
)

func main() {
	examples := flag.String("examples", "", "directory of the hl7.fhir.r4.examples package (default: install it into the test cache with npm ci)")
	out := flag.String("out", ".", "the profiles directory to write ig/ and r4/ into")
	flag.Parse()
	log.SetFlags(0)
	log.SetPrefix("gen: ")
	dir := *examples
	if dir == "" {
		dir = fhirtest.ExamplesDir(programTB{})
	}
	files, err := generate(dir)
	if err != nil {
		log.Fatal(err)
	}
	for _, sub := range []string{"ig", "r4"} {
		old, _ := filepath.Glob(filepath.Join(*out, sub, "*.json"))
		for _, f := range old {
			if err := os.Remove(f); err != nil {
				log.Fatal(err)
			}
		}
		if err := os.MkdirAll(filepath.Join(*out, sub), 0o755); err != nil {
			log.Fatal(err)
		}
	}
	for name, b := range files {
		if err := os.WriteFile(filepath.Join(*out, name), b, 0o644); err != nil {
			log.Fatal(err)
		}
	}
}

// programTB lets the generator use the npm cache outside a test: every way
// fhirtest gives up ends the program with its message.
type programTB struct{ testing.TB }

func (programTB) Helper()                           {}
func (programTB) Fatal(args ...any)                 { log.Fatal(args...) }
func (programTB) Fatalf(format string, args ...any) { log.Fatalf(format, args...) }
func (programTB) Skip(args ...any)                  { log.Fatal(args...) }
func (programTB) Skipf(format string, args ...any)  { log.Fatalf(format, args...) }
