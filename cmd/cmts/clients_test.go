package main

import (
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/fmtbank/cmts/fhir/fhirtest"
)

// TestFHIRKitClient drives the server with a real FHIR client library (npm
// fhir-kit-client): create, read, update, vread, patch, search, history with
// paging, delete and errors.
func TestFHIRKitClient(t *testing.T) {
	t.Parallel()
	modules := fhirtest.NodeModules(t)
	base, _ := startMain(t, "--data", t.TempDir(), "--insecure-no-auth")
	cmd := exec.Command("node", "testdata/fhirkit.mjs", base+"/fhir", modules)
	cmd.Env = os.Environ()
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), `"ok":true`) {
		t.Fatalf("fhir-kit-client: %v\n%s", err, out)
	}
	if testing.Verbose() {
		t.Logf("%s", out)
	}
}
