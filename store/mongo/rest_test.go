package mongo_test

import (
	"net/http"
	"testing"
	"time"

	"github.com/fmtbank/cmts/fhir/rest/resttest"
	"github.com/fmtbank/cmts/store"
	"github.com/fmtbank/cmts/store/mongo/mongotest"
)

// TestREST runs the REST suite, the same code path as the embedded store's.
func TestREST(t *testing.T) {
	t.Parallel()
	srv := mongotest.Start(t)
	resttest.Run(t, func(t testing.TB) store.Store { return open(t, srv) })
}

// TestOfficialExamplesRoundTrip PUTs and reads back the official examples:
// all of them on a real MongoDB; on FerretDB, which answers every query but
// an _id lookup by scanning the collection in Go, and even that lookup by
// scanning in SQLite, a sample that reaches every part of the store the
// whole set does (resttest.RunExampleSample: every resource type's
// smallest example, the registry's types' every example, the largest
// example, 12 MB, and index entries of every kind; 179 of the 5,306
// files). The embedded store round-trips all of them through the same
// code.
func TestOfficialExamplesRoundTrip(t *testing.T) {
	t.Parallel()
	srv := mongotest.Start(t)
	newStore := func(t testing.TB) store.Store { return open(t, srv) }
	if srv.External() {
		resttest.RunExamples(t, newStore, 1)
		return
	}
	resttest.RunExampleSample(t, newStore)
}

// TestDatabaseOutage stops the database under a running server: requests
// fail fast with 503 and an OperationOutcome, /readyz says not ready, and
// everything works again, data intact, once the database is back, with no
// restart of the server.
func TestDatabaseOutage(t *testing.T) {
	t.Parallel()
	srv := mongotest.Start(t)
	c := resttest.Serve(t, open(t, srv))
	if r := c.Do("PUT", "/Patient/p1", []byte(`{"resourceType":"Patient","id":"p1"}`)); r.Status != 201 {
		t.Fatalf("seed: %d %s", r.Status, r.Body)
	}
	root := c.Base[:len(c.Base)-len("/fhir")]
	srv.Stop()
	for _, tc := range []struct{ method, path, body string }{
		{"GET", "/Patient/p1", ""},
		{"PUT", "/Patient/p1", `{"resourceType":"Patient","id":"p1","active":true}`},
		{"POST", "/Patient", `{"resourceType":"Patient"}`},
		{"GET", "/Patient?identifier=x", ""},
		{"GET", "/_history", ""},
	} {
		start := time.Now()
		var body []byte
		if tc.body != "" {
			body = []byte(tc.body)
		}
		r := c.Do(tc.method, tc.path, body)
		if took := time.Since(start); took > 10*time.Second {
			t.Errorf("%s %s took %v; want a fast failure", tc.method, tc.path, took)
		}
		if r.Status != http.StatusServiceUnavailable {
			t.Errorf("%s %s during outage: %d %s, want 503", tc.method, tc.path, r.Status, r.Body)
			continue
		}
		if m := r.JSON(t); m["resourceType"] != "OperationOutcome" {
			t.Errorf("%s %s: body %s, want an OperationOutcome", tc.method, tc.path, r.Body)
		}
	}
	if r := c.Do("GET", root+"/readyz", nil); r.Status != http.StatusServiceUnavailable {
		t.Errorf("/readyz during outage: %d, want 503", r.Status)
	}
	if r := c.Do("GET", root+"/healthz", nil); r.Status != http.StatusOK {
		t.Errorf("/healthz during outage: %d, want 200 (the process is alive)", r.Status)
	}
	srv.Restart()
	deadline := time.Now().Add(30 * time.Second)
	for {
		r := c.Do("GET", root+"/readyz", nil)
		if r.Status == 200 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("/readyz still %d 30 s after the database came back", r.Status)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if r := c.Do("GET", "/Patient/p1", nil); r.Status != 200 || r.Header.Get("ETag") != `W/"1"` {
		t.Fatalf("after recovery: %d %s %s", r.Status, r.Header.Get("ETag"), r.Body)
	}
	if r := c.Do("PUT", "/Patient/p1", []byte(`{"resourceType":"Patient","id":"p1","active":true}`)); r.Status != 200 {
		t.Fatalf("write after recovery: %d %s", r.Status, r.Body)
	}
}
