package main

import (
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// TestGofmt keeps the tree gofmt-clean, so `go test ./...` is the one check.
func TestGofmt(t *testing.T) {
	t.Parallel()
	gofmt, err := exec.LookPath("gofmt")
	if err != nil {
		gofmt = filepath.Join(runtime.GOROOT(), "bin", "gofmt")
	}
	root, _ := filepath.Abs("../..")
	out, err := exec.Command(gofmt, "-l", root).CombinedOutput()
	if err != nil {
		t.Fatalf("gofmt: %v\n%s", err, out)
	}
	var bad []string
	for _, f := range strings.Fields(string(out)) {
		if !strings.Contains(f, "/testdata/") {
			bad = append(bad, f)
		}
	}
	if len(bad) > 0 {
		t.Errorf("not gofmt-clean (run gofmt -w):\n%s", strings.Join(bad, "\n"))
	}
}
