package main

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestServeExport: serve wires $export and starts its worker; the files
// go under --export-dir.
func TestServeExport(t *testing.T) {
	t.Parallel()
	exportDir := t.TempDir()
	base, _ := startMain(t, "--data", t.TempDir(), "--insecure-no-auth", "--export-dir", exportDir)
	for _, id := range []string{"a", "b"} {
		if code, body, _ := do(t, "PUT", base+"/fhir/Patient/"+id, `{"resourceType":"Patient","id":"`+id+`"}`); code != 201 {
			t.Fatalf("PUT: %d %s", code, body)
		}
	}
	req, _ := http.NewRequest("GET", base+"/fhir/$export?_type=Patient", nil)
	req.Header.Set("Prefer", "respond-async")
	req.Header.Set("Accept", "application/fhir+json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	status := resp.Header.Get("Content-Location")
	if resp.StatusCode != http.StatusAccepted || status == "" {
		t.Fatalf("kick-off: %d, Content-Location %q", resp.StatusCode, status)
	}
	var m struct {
		Output []struct {
			Type, URL string
			Count     int
		}
	}
	for deadline := time.Now().Add(30 * time.Second); ; {
		code, body, _ := do(t, "GET", status, "")
		if code == http.StatusOK {
			if err := json.Unmarshal([]byte(body), &m); err != nil {
				t.Fatal(err)
			}
			break
		}
		if code != http.StatusAccepted || time.Now().After(deadline) {
			t.Fatalf("status: %d %s", code, body)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if len(m.Output) != 1 || m.Output[0].Type != "Patient" || m.Output[0].Count != 2 ||
		!strings.HasPrefix(m.Output[0].URL, base+"/fhir/$export-file/") {
		t.Fatalf("manifest output: %+v", m.Output)
	}
	code, body, h := do(t, "GET", m.Output[0].URL, "")
	if code != 200 || h.Get("Content-Type") != "application/fhir+ndjson" || strings.Count(body, "\n") != 2 {
		t.Errorf("file: %d %q %q", code, h.Get("Content-Type"), body)
	}
}
