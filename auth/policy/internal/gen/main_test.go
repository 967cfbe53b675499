package main

import (
	"bytes"
	"testing"

	"github.com/fmtbank/cmts/fhir/fhirtest"
)

func TestGenerated(t *testing.T) {
	src := fhirtest.CheckGenerated(t, "../../compartment_gen.go", "go generate ./auth/policy", Generate)
	// The rows the policy's tests rely on.
	flat := bytes.Join(bytes.Fields(src), []byte(" "))
	for _, row := range []string{`"Observation": {"subject", "performer"}`, `"Patient": {"link"}`, `"Procedure": {"patient", "performer"}`} {
		if !bytes.Contains(flat, []byte(row)) {
			t.Errorf("compartment_gen.go lacks %s", row)
		}
	}
}
