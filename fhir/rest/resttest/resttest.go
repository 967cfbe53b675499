// Package resttest is the REST conformance suite: the same HTTP-level tests run
// against every store backend, each backend's tests calling Run with a
// constructor for a fresh store.
package resttest

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/fmtbank/cmts/auth"
	"github.com/fmtbank/cmts/auth/policy"
	"github.com/fmtbank/cmts/fhir"
	"github.com/fmtbank/cmts/fhir/rest"
	"github.com/fmtbank/cmts/fhir/search"
	"github.com/fmtbank/cmts/store"
)

// NewStore returns a fresh, empty store; the suite closes it.
type NewStore func(t testing.TB) store.Store

// Client talks to a test server.
type Client struct {
	t    testing.TB
	Base string // FHIR base URL
	HTTP *http.Client
	// pad, when above zero, is how many entries Do appends to every
	// transaction it posts to the base (as txBundle writes them), so that
	// a test of a small transaction runs as a large one (see padded).
	pad int
}

// Options adjust the server under test.
type Options func(*rest.Options)

// Serve starts the REST API over st on a loopback port for the test's life,
// with authentication off (tenant "t1" unless opts say otherwise).
func Serve(t testing.TB, st store.Store, opts ...Options) *Client {
	t.Helper()
	srv := httptest.NewServer(Handler(t, st, opts...))
	t.Cleanup(srv.Close)
	return &Client{t: t, Base: srv.URL + "/fhir", HTTP: srv.Client()}
}

// Handler is the REST API over st, as Serve serves it, for in-process use
// (benchmarks without a network).
func Handler(t testing.TB, st store.Store, opts ...Options) http.Handler {
	t.Helper()
	codec, engine := codecAndEngine(t)
	o := rest.Options{Store: st, Codec: codec, Indexer: engine, Auth: auth.Insecure{Tenant: "t1"}, Policy: policy.New(engine)}
	for _, f := range opts {
		f(&o)
	}
	api, err := rest.New(o)
	if err != nil {
		t.Fatal(err)
	}
	return api
}

// Response is a finished exchange.
type Response struct {
	Status int
	Header http.Header
	Body   []byte
}

// JSON decodes the body into a generic value.
func (r *Response) JSON(t testing.TB) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(r.Body, &m); err != nil {
		t.Fatalf("response is not JSON (%v): %.300s", err, r.Body)
	}
	return m
}

// Do sends a request; path is relative to the FHIR base; header values in
// pairs ("Content-Type", "application/fhir+json", ...).
func (c *Client) Do(method, path string, body []byte, header ...string) *Response {
	c.t.Helper()
	var rd io.Reader
	if method == http.MethodPost && (path == "" || path == "/") {
		body = c.padded(body)
	}
	if body != nil {
		rd = bytes.NewReader(body)
	}
	url := c.Base + path
	if strings.HasPrefix(path, "http") {
		url = path
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		c.t.Fatal(err)
	}
	if body != nil && method != http.MethodGet {
		req.Header.Set("Content-Type", "application/fhir+json")
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := c.HTTP.Do(req)
	if err != nil {
		c.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		c.t.Fatalf("%s %s: reading body: %v", method, path, err)
	}
	return &Response{Status: resp.StatusCode, Header: resp.Header, Body: b}
}

// Run runs the whole REST suite against the backend.
func Run(t *testing.T, newStore NewStore) {
	for _, tc := range []struct {
		name string
		fn   func(t *testing.T, newStore NewStore)
	}{
		{"CRUD", testCRUD},
		{"Errors", testErrors},
		{"BadInputsChangeNothing", testBadInputsChangeNothing},
		{"Limits", testLimits},
		{"LargeWriteHoldsNoLock", testLargeWriteHoldsNoLock},
		{"Concurrency", testConcurrency},
		{"Conditional", testConditional},
		{"ConditionalRace", testConditionalRace},
		{"Patch", testPatch},
		{"Prefer", testPrefer},
		{"History", testHistory},
		{"Negotiation", testNegotiation},
		{"Metadata", testMetadata},
		{"Tenants", testTenants},
		{"Access", testAccess},
		{"Audit", testAudit},
		{"Consultation", testConsultation},
		{"Search", testSearchREST},
		{"Transaction", testTransaction},
	} {
		t.Run(tc.name, func(t *testing.T) { tc.fn(t, newStore) })
	}
}

// RunTransactions runs the suite's transaction and batch tests alone: for
// a store that takes a transaction's writes in more than one way, run once
// with each.
func RunTransactions(t *testing.T, newStore NewStore) { testTransaction(t, newStore) }

// open gives a test a fresh store behind a fresh server.
func open(t *testing.T, newStore NewStore, opts ...Options) (*Client, store.Store) {
	t.Helper()
	st := newStore(t)
	t.Cleanup(func() { st.Close() })
	return Serve(t, st, opts...), st
}

// fixedClock steps one second per call from a fixed instant.
func fixedClock() func() time.Time {
	t := time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)
	return func() time.Time {
		t = t.Add(time.Second)
		return t
	}
}

// outcome checks r is an OperationOutcome with the status and the issue
// code, valid R4 itself, and returns it.
func outcome(t *testing.T, r *Response, status int, code fhir.IssueType) map[string]any {
	t.Helper()
	if r.Status != status {
		t.Fatalf("status %d, want %d; body %.400s", r.Status, status, r.Body)
	}
	if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/fhir+json") {
		t.Errorf("Content-Type %q, want application/fhir+json", ct)
	}
	codec, _ := fhir.NewCodec()
	if res, err := codec.Parse(r.Body); err != nil || res.Type != "OperationOutcome" {
		t.Fatalf("body is not a valid OperationOutcome (%v): %.400s", err, r.Body)
	}
	m := r.JSON(t)
	issues := m["issue"].([]any)
	first := issues[0].(map[string]any)
	if code != "" && first["code"] != string(code) {
		t.Errorf("issue code %v, want %s; body %s", first["code"], code, r.Body)
	}
	return first
}

// codecAndEngine builds the codec and the search engine the server uses.
func codecAndEngine(t testing.TB) (*fhir.Codec, *search.Engine) {
	t.Helper()
	codec, err := fhir.NewCodec()
	if err != nil {
		t.Fatal(err)
	}
	engine, err := search.New()
	if err != nil {
		t.Fatal(err)
	}
	// Tests check every stored form written from received JSON against
	// the marshaller's; benchmarks measure what the server runs.
	if _, bench := t.(*testing.B); !bench {
		codec = codec.Verifying()
	}
	return codec, engine
}
