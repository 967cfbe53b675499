package resttest

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/fmtbank/cmts/fhir"
	"github.com/fmtbank/cmts/fhir/rest"
	"github.com/fmtbank/cmts/store"
)

// testLimits sends the requests that once cost seconds and gigabytes each
// (issue 8: a JSON Patch of 21 copies, contained 3,000 levels deep, a
// million array entries), under the default limits and body size, and
// checks each is refused with the limit named and leaves no trace.
func testLimits(t *testing.T, newStore NewStore) {
	c, _ := open(t, newStore)
	if r := c.Do("PUT", "/Patient/p1", []byte(`{"resourceType":"Patient","id":"p1","active":true,"name":[{"text":"Zhang San"}]}`)); r.Status != 201 {
		t.Fatalf("seed: %d %s", r.Status, r.Body)
	}
	jp := []string{"Content-Type", "application/json-patch+json"}
	// each copy appends the whole name array to itself: the resource doubles
	copies := `[` + strings.TrimSuffix(strings.Repeat(`{"op":"copy","from":"/name","path":"/name/-"},`, 21), ",") + `]`
	contained := strings.Repeat(`{"resourceType":"Patient","contained":[`, 3000) + `{"resourceType":"Patient"}` + strings.Repeat(`]}`, 3000)
	million := `{"resourceType":"Patient","id":"p1","name":[{"given":["a"` + strings.Repeat(`,"a"`, 999999) + `]}]}`
	values := `{"resourceType":"Patient","id":"p1","name":[` + strings.TrimSuffix(strings.Repeat(`{"given":["a"`+strings.Repeat(`,"a"`, 9998)+`]},`, 11), ",") + `]}`
	for _, tc := range []struct {
		name   string
		method string
		path   string
		body   string
		header []string
		status int
		code   fhir.IssueType
		diag   string // in diagnostics: the limit
		expr   string
	}{
		{name: "patch of 21 copies", method: "PATCH", path: "/Patient/p1", body: copies, header: jp, status: 422, code: fhir.IssueTooLong, diag: "limit max-body = 16777216"},
		{name: "contained 3,000 levels deep", method: "POST", path: "/Patient", body: contained, status: 400, code: fhir.IssueInvariant, expr: "Patient.contained[0].contained"},
		{name: "a million array entries, create", method: "POST", path: "/Patient", body: million, status: 413, code: fhir.IssueTooLong, diag: "limit max-array = 10000", expr: "Patient.name[0].given"},
		{name: "a million array entries, update", method: "PUT", path: "/Patient/p1", body: million, status: 413, code: fhir.IssueTooLong, diag: "limit max-array = 10000", expr: "Patient.name[0].given"},
		{name: "a million array entries, conditional update", method: "PUT", path: "/Patient?_id=p1", body: million, status: 413, code: fhir.IssueTooLong, diag: "limit max-array = 10000"},
		{name: "more values than the limit", method: "PUT", path: "/Patient/p1", body: values, status: 413, code: fhir.IssueTooLong, diag: "limit max-elements = 100000", expr: "Patient"},
		{name: "duplicate resourceType", method: "POST", path: "/Observation", body: `{"resourceType":"Observation","resourceType":"Patient"}`, status: 400, code: fhir.IssueStructure, expr: "Observation.resourceType"},
		{name: "patch null", method: "PATCH", path: "/Patient/p1", body: `null`, header: jp, status: 400, code: fhir.IssueStructure},
		{name: "patch []", method: "PATCH", path: "/Patient/p1", body: `[]`, header: jp, status: 400, code: fhir.IssueInvalid},
		{name: "patch making a nested contained", method: "PATCH", path: "/Patient/p1", header: jp, status: 422, code: fhir.IssueInvariant,
			body: `[{"op":"add","path":"/contained","value":[{"resourceType":"Patient","contained":[{"resourceType":"Patient"}]}]}]`},
		// An entry's resource is checked as a resource by the scan of the
		// whole Bundle once its resourceType is known, and by the codec
		// when it comes last.
		{name: "transaction entry with a nested contained", method: "POST", path: "", status: 400, code: fhir.IssueInvariant, expr: "Bundle.entry[0].resource.contained[0].contained",
			body: `{"resourceType":"Bundle","type":"transaction","entry":[{"resource":{"resourceType":"Patient","contained":[{"resourceType":"Patient","contained":[{"resourceType":"Patient"}]}]},"request":{"method":"POST","url":"Patient"}}]}`},
		{name: "transaction entry with a nested contained, resourceType last", method: "POST", path: "", status: 400, code: fhir.IssueInvariant,
			body: `{"type":"transaction","entry":[{"resource":{"resourceType":"Patient","contained":[{"resourceType":"Patient","contained":[{"resourceType":"Patient"}]}]},"request":{"method":"POST","url":"Patient"}}],"resourceType":"Bundle"}`},
		{name: "batch entry with a nested contained, resourceType last", method: "POST", path: "", status: 200,
			body: `{"type":"batch","entry":[{"resource":{"resourceType":"Patient","contained":[{"resourceType":"Patient","contained":[{"resourceType":"Patient"}]}]},"request":{"method":"POST","url":"Patient"}}],"resourceType":"Bundle"}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := c.Do(tc.method, tc.path, []byte(tc.body), tc.header...)
			if tc.status == 200 {
				// a batch: the entry fails alone, as a create would
				entry := asList(r.JSON(t)["entry"])
				if r.Status != 200 || len(entry) != 1 {
					t.Fatalf("batch: %d %.300s", r.Status, r.Body)
				}
				resp, _ := entry[0].(map[string]any)["response"].(map[string]any)
				if st, _ := resp["status"].(string); !strings.HasPrefix(st, "400") {
					t.Errorf("batch entry status %q, want 400", st)
				}
				return
			}
			issue := outcome(t, r, tc.status, tc.code)
			if d, _ := issue["diagnostics"].(string); !strings.Contains(d, tc.diag) {
				t.Errorf("diagnostics %q, want %q", d, tc.diag)
			}
			if tc.expr != "" {
				if exprs, _ := issue["expression"].([]any); len(exprs) == 0 || exprs[0] != tc.expr {
					t.Errorf("expression %v, want %q", issue["expression"], tc.expr)
				}
			}
		})
	}
	// nothing stored: p1 is at version 1, and it is the only version
	if r := c.Do("GET", "/Patient/p1", nil); r.Status != 200 || r.Header.Get("ETag") != `W/"1"` {
		t.Errorf("after the refusals: %d %s", r.Status, r.Header.Get("ETag"))
	}
	if h := c.Do("GET", "/_history", nil).JSON(t); len(asList(h["entry"])) != 1 {
		t.Errorf("history has %d entries after the refusals, want 1", len(asList(h["entry"])))
	}
	// at the limits: 10,000 entries in one array and 63 levels of nesting
	// are stored
	atLimit := `{"resourceType":"Patient","name":[{"given":["a"` + strings.Repeat(`,"a"`, 9999) + `]}]` +
		strings.Repeat(`,"extension":[{"url":"http://x"`, 31) + `,"valueString":"deep"` + strings.Repeat(`}]`, 31) + `}`
	if r := c.Do("POST", "/Patient", []byte(atLimit)); r.Status != 201 {
		t.Errorf("a resource at the limits: %d %.300s", r.Status, r.Body)
	}
}

// gatedIndexer holds the index extraction of the resource whose body
// contains mark until gate closes, telling entered when it starts.
type gatedIndexer struct {
	rest.Indexer
	mark    []byte
	entered chan struct{}
	gate    chan struct{}
}

func (g *gatedIndexer) Entries(resourceType string, body []byte) ([]store.IndexEntry, error) {
	if bytes.Contains(body, g.mark) {
		close(g.entered)
		<-g.gate
	}
	return g.Indexer.Entries(resourceType, body)
}

// testLargeWriteHoldsNoLock checks that a large write holds no lock that
// other writes need while it is parsed, written out and indexed (the work
// that grows with its size): the large write is stopped inside its index
// extraction, after parsing and marshalling, and a small write must finish
// meanwhile. Were a lock held, the small write would wait for ever; the
// bound below only turns that deadlock into a failure.
func testLargeWriteHoldsNoLock(t *testing.T, newStore NewStore) {
	g := &gatedIndexer{mark: []byte(`"id":"big"`), entered: make(chan struct{}), gate: make(chan struct{})}
	c, _ := open(t, newStore, func(o *rest.Options) { g.Indexer = o.Indexer; o.Indexer = g })
	big := `{"resourceType":"Patient","id":"big","name":[{"given":["a"` + strings.Repeat(`,"a"`, 9999) + `]}]}`
	bigDone := make(chan int, 1)
	go func() { bigDone <- c.Do("PUT", "/Patient/big", []byte(big)).Status }()
	<-g.entered
	smallDone := make(chan int, 1)
	go func() {
		smallDone <- c.Do("PUT", "/Patient/small", []byte(`{"resourceType":"Patient","id":"small"}`)).Status
	}()
	select {
	case status := <-smallDone:
		if status != 201 {
			t.Errorf("small write: %d, want 201", status)
		}
	case <-time.After(2 * time.Minute):
		close(g.gate)
		t.Fatal("a small write waited for a large write's index extraction: a lock is held across it")
	}
	close(g.gate)
	if status := <-bigDone; status != 201 {
		t.Errorf("large write: %d, want 201", status)
	}
}
