package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/fmtbank/cmts/store/mongo/mongotest"
)

// exportPatients kicks off a Patient export on kick, polls it and
// downloads its file on serve (another instance on the same store, or the
// same), and answers the job id; the file must hold the two Patients a, b.
func exportPatients(t *testing.T, kick, serve string) string {
	t.Helper()
	req, _ := http.NewRequest("GET", kick+"/fhir/$export?_type=Patient", nil)
	req.Header.Set("Prefer", "respond-async")
	req.Header.Set("Accept", "application/fhir+json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	status, err := url.Parse(resp.Header.Get("Content-Location"))
	if resp.StatusCode != http.StatusAccepted || err != nil || status.Path == "" {
		t.Fatalf("kick-off: %d, Content-Location %q", resp.StatusCode, resp.Header.Get("Content-Location"))
	}
	var m struct {
		Output []struct {
			Type, URL string
			Count     int
		}
	}
	for deadline := time.Now().Add(30 * time.Second); ; {
		code, body, _ := do(t, "GET", serve+status.Path, "")
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
		!strings.HasPrefix(m.Output[0].URL, serve+"/fhir/$export-file/") {
		t.Fatalf("manifest output: %+v", m.Output)
	}
	code, body, h := do(t, "GET", m.Output[0].URL, "")
	if code != 200 || h.Get("Content-Type") != "application/fhir+ndjson" || strings.Count(body, "\n") != 2 {
		t.Errorf("file: %d %q %q", code, h.Get("Content-Type"), body)
	}
	return path.Base(status.Path)
}

func putPatients(t *testing.T, base string) {
	t.Helper()
	for _, id := range []string{"a", "b"} {
		if code, body, _ := do(t, "PUT", base+"/fhir/Patient/"+id, `{"resourceType":"Patient","id":"`+id+`"}`); code != 201 {
			t.Fatalf("PUT: %d %s", code, body)
		}
	}
}

// TestServeExport: serve wires $export and starts its worker; the files
// go under <data>/export on the embedded store, under --export-dir when
// it is given.
func TestServeExport(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name      string
		exportDir bool
	}{{"data", false}, {"export-dir", true}} {
		t.Run(tc.name, func(t *testing.T) {
			data := t.TempDir()
			args := []string{"--data", data, "--insecure-no-auth"}
			dir := filepath.Join(data, "export")
			if tc.exportDir {
				dir = t.TempDir()
				args = append(args, "--export-dir", dir)
			}
			base, _ := startMain(t, args...)
			putPatients(t, base)
			job := exportPatients(t, base, base)
			if _, err := os.Stat(filepath.Join(dir, job, "Patient.ndjson")); err != nil {
				t.Errorf("the file is not under %s: %v", dir, err)
			}
		})
	}
}

// TestServeExportMongo: two instances on one MongoDB share the jobs and
// their files (GridFS): a job kicked off on one is polled and downloaded
// on the other, and no file is written on the local disk.
func TestServeExportMongo(t *testing.T) {
	t.Parallel()
	srv := mongotest.Start(t)
	db := srv.Database(t)
	data := t.TempDir()
	args := []string{"--data", data, "--insecure-no-auth", "--mongo-uri", srv.URI(), "--mongo-db", db}
	one, _ := startMain(t, args...)
	two, _ := startMain(t, args...)
	putPatients(t, one)
	exportPatients(t, one, two)
	if _, err := os.Stat(filepath.Join(data, "export")); !os.IsNotExist(err) {
		t.Errorf("files on the local disk with MongoDB: %v", err)
	}
}

// exportLoad writes patients Patients and observations Observations (one
// transaction of PUTs per 500 entries), ids p<n> and o<n>.
func exportLoad(t *testing.T, base string, patients, observations int) {
	t.Helper()
	var entries []string
	for i := range patients {
		entries = append(entries, fmt.Sprintf(`{"resource":{"resourceType":"Patient","id":"p%d","gender":"female"},"request":{"method":"PUT","url":"Patient/p%d"}}`, i, i))
	}
	for i := range observations {
		entries = append(entries, fmt.Sprintf(`{"resource":{"resourceType":"Observation","id":"o%d","status":"final","code":{"text":"load"},`+
			`"subject":{"reference":"Patient/p%d"}},"request":{"method":"PUT","url":"Observation/o%d"}}`, i, i%patients, i))
	}
	for len(entries) > 0 {
		n := min(500, len(entries))
		body := `{"resourceType":"Bundle","type":"transaction","entry":[` + strings.Join(entries[:n], ",") + `]}`
		entries = entries[n:]
		if code, res, _ := do(t, "POST", base+"/fhir", body); code != 200 {
			t.Fatalf("transaction: %d %.300s", code, res)
		}
	}
}

// TestKill9MidExport kills the server with SIGKILL in the middle of an
// export job, starts it again on the same data, and checks that the job
// completes by itself and its files hold every resource exactly once. The
// job is accepted by the first server (Patients first, then many
// Observations) and killed once its progress shows it running.
func TestKill9MidExport(t *testing.T) {
	t.Parallel()
	const patients, observations = 2000, 12000
	dir := t.TempDir()
	args := []string{"--data", dir, "--export-lease", "2s"}
	c := startChildArgs(t, args...)
	exportLoad(t, c.base, patients, observations)
	req, _ := http.NewRequest("GET", c.base+"/fhir/$export?_type=Patient,Observation", nil)
	req.Header.Set("Prefer", "respond-async")
	req.Header.Set("Accept", "application/fhir+json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	status, err := url.Parse(resp.Header.Get("Content-Location"))
	if resp.StatusCode != http.StatusAccepted || err != nil {
		t.Fatalf("kick-off: %d, Content-Location %q", resp.StatusCode, resp.Header.Get("Content-Location"))
	}
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(5 * time.Millisecond) {
		code, body, h := do(t, "GET", c.base+status.Path, "")
		if code != http.StatusAccepted {
			t.Fatalf("status before the kill: %d %.300s (the job finished before it could be killed)", code, body)
		}
		if p := h.Get("X-Progress"); strings.HasPrefix(p, "Patient") || strings.HasPrefix(p, "Observation") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the job did not start in a minute")
		}
	}
	if err := c.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	c.cmd.Wait()

	c = startChildArgs(t, args...)
	// The dead server's lease still holds the job: it is unfinished.
	if code, body, _ := do(t, "GET", c.base+status.Path, ""); code != http.StatusAccepted {
		t.Fatalf("status after the restart: want 202 (the job was killed unfinished), got %d %.300s", code, body)
	}
	var m struct {
		Output []struct {
			Type, URL string
			Count     int
		}
		Error []any
	}
	for deadline := time.Now().Add(2 * time.Minute); ; time.Sleep(100 * time.Millisecond) {
		code, body, _ := do(t, "GET", c.base+status.Path, "")
		if code == http.StatusOK {
			if err := json.Unmarshal([]byte(body), &m); err != nil {
				t.Fatal(err)
			}
			break
		}
		if code != http.StatusAccepted || time.Now().After(deadline) {
			t.Fatalf("status after the restart: %d %.300s\n%s", code, body, c.log())
		}
	}
	want := map[string]int{"Patient": patients, "Observation": observations}
	for _, o := range m.Output {
		u, err := url.Parse(o.URL)
		if err != nil {
			t.Fatal(err)
		}
		code, body, _ := do(t, "GET", c.base+u.Path, "")
		if code != 200 {
			t.Fatalf("GET %s: %d", o.URL, code)
		}
		seen := map[string]bool{}
		for line := range strings.Lines(body) {
			var r struct{ ResourceType, ID string }
			if err := json.Unmarshal([]byte(line), &r); err != nil || r.ResourceType != o.Type {
				t.Fatalf("%s: bad line %.200q: %v", o.Type, line, err)
			}
			if seen[r.ID] {
				t.Errorf("%s/%s twice in the file", o.Type, r.ID)
			}
			seen[r.ID] = true
		}
		if len(seen) != want[o.Type] || o.Count != want[o.Type] {
			t.Errorf("%s: %d resources (count %d), want %d", o.Type, len(seen), o.Count, want[o.Type])
		}
		delete(want, o.Type)
	}
	if len(want) > 0 || len(m.Error) > 0 {
		t.Errorf("files missing for %v; errors %v", want, m.Error)
	}
}
