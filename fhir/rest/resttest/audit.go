package resttest

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/fmtbank/cmts/auth/audit"
	"github.com/fmtbank/cmts/fhir"
	"github.com/fmtbank/cmts/fhir/rest"
)

// testAudit: every request leaves an AuditEvent (writes in their own
// transaction, the rest within about a second), which holds no patient text
// and which only an admin of the same tenant reads.
func testAudit(t *testing.T, newStore NewStore) {
	st := newStore(t)
	t.Cleanup(func() { st.Close() })
	_, engine := codecAndEngine(t)
	maker := &audit.Maker{Server: audit.Server{BaseURL: "https://cmts.test/fhir"}, Indexer: engine}
	batcher, err := audit.NewBatcher(audit.BatcherOptions{Store: st, Maker: maker, Delay: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		// Before the store closes (cleanups run last first); t.Context is
		// done by now.
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		batcher.Close(ctx)
	})
	hook, err := audit.NewHook(maker, batcher)
	if err != nil {
		t.Fatal(err)
	}
	tokens := bearerPrincipals{
		"clin":    testPrincipal("hospital-a", fhir.TenantHospital, "", []fhir.Role{fhir.RoleClinician}, "user/*.cruds"),
		"admin":   testPrincipal("hospital-a", fhir.TenantHospital, "", []fhir.Role{fhir.RoleAdmin}, "user/*.rs"),
		"admin-b": testPrincipal("hospital-b", fhir.TenantHospital, "", []fhir.Role{fhir.RoleAdmin}, "user/*.rs"),
		"reg":     testPrincipal("nhc", fhir.TenantAuthority, "", []fhir.Role{fhir.RoleRegulator}, "user/*.rs"),
	}
	c := Serve(t, st, func(o *rest.Options) { o.Auth, o.Audit, o.Auditor = tokens, batcher, hook })
	as := func(tok string) []string {
		return []string{"Authorization", "Bearer " + tok, "X-Request-Id", "req-" + tok}
	}

	const secret = "SECRETNAME"
	steps := []struct {
		method, path, body string
		status             int
	}{
		{"PUT", "/Patient/a1", `{"resourceType":"Patient","id":"a1","name":[{"family":"` + secret + `"}]}`, 201},
		{"GET", "/Patient/a1", "", 200},
		{"GET", "/Patient?name=" + secret + "&_count=5", "", 200},
		{"POST", "", `{"resourceType":"Bundle","type":"transaction","entry":[` +
			`{"resource":{"resourceType":"Observation","id":"x","status":"final","code":{"text":"` + secret + `"},"subject":{"reference":"Patient/a1"}},"request":{"method":"PUT","url":"Observation/o1"}},` +
			`{"resource":{"resourceType":"Observation","id":"x","status":"final","code":{"text":"x"},"subject":{"reference":"Patient/a1"}},"request":{"method":"PUT","url":"Observation/o2"}}]}`, 400},
		{"POST", "", `{"resourceType":"Bundle","type":"transaction","entry":[` +
			`{"resource":{"resourceType":"Observation","id":"o1","status":"final","code":{"text":"` + secret + `"},"subject":{"reference":"Patient/a1"}},"request":{"method":"PUT","url":"Observation/o1"}},` +
			`{"resource":{"resourceType":"Observation","id":"o2","status":"final","code":{"text":"x"},"subject":{"reference":"Patient/a1"}},"request":{"method":"PUT","url":"Observation/o2"}}]}`, 200},
		{"POST", "/AuditEvent", `{"resourceType":"AuditEvent"}`, 403},
		{"GET", "/AuditEvent", "", 403},
	}
	for _, s := range steps {
		var body []byte
		if s.body != "" {
			body = []byte(s.body)
		}
		if r := c.Do(s.method, s.path, body, as("clin")...); r.Status != s.status {
			t.Fatalf("%s %s: %d, want %d: %.300s", s.method, s.path, r.Status, s.status, r.Body)
		}
	}
	// The regulator reads everything de-identified, but never the trail.
	if r := c.Do("GET", "/AuditEvent", nil, as("reg")...); r.Status != 403 {
		t.Errorf("regulator reads the audit trail: %d", r.Status)
	}

	// Wait (at most 20 s) for the batched events: the search, the refusals.
	var events []map[string]any
	deadline := time.Now().Add(20 * time.Second)
	for {
		r := c.Do("GET", "/AuditEvent?_count=100", nil, as("admin")...)
		if r.Status != 200 {
			t.Fatalf("admin reads the trail: %d %.300s", r.Status, r.Body)
		}
		events = nil
		for _, e := range asList(r.JSON(t)["entry"]) {
			events = append(events, e.(map[string]any)["resource"].(map[string]any))
		}
		if len(events) >= len(steps)+1 || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	type seen struct{ subtype, outcome string }
	got := map[seen]int{}
	for _, ev := range events {
		raw := toJSON(t, ev)
		if strings.Contains(raw, secret) {
			t.Errorf("an AuditEvent holds patient text: %s", raw)
		}
		for _, en := range asList(ev["entity"]) {
			if q, ok := en.(map[string]any)["query"].(string); ok {
				dec, _ := base64.StdEncoding.DecodeString(q)
				if strings.Contains(string(dec), secret) {
					t.Errorf("an AuditEvent's query holds a value: %s", dec)
				}
			}
		}
		sub := asList(ev["subtype"])[0].(map[string]any)["code"].(string)
		got[seen{sub, ev["outcome"].(string)}]++
	}
	for _, want := range []seen{{"update", "0"}, {"read", "0"}, {"search-type", "0"}, {"transaction", "0"},
		{"transaction", "4"}, {"create", "4"}, {"search-type", "4"}} {
		if got[want] == 0 {
			t.Errorf("no AuditEvent %v among %v", want, got)
		}
	}
	// Found by entity, agent and date; the transaction's event names both
	// versions it stored.
	for _, q := range []string{"entity=Patient/a1", "entity=Observation/o2", "date=ge2020-01-01",
		"agent:identifier=" + "http://fmtbank.org/fhir/sid/tenant|hospital-a"} {
		r := c.Do("GET", "/AuditEvent?"+q, nil, as("admin")...)
		if r.Status != 200 || len(asList(r.JSON(t)["entry"])) == 0 {
			t.Errorf("AuditEvent?%s: %d, %d events", q, r.Status, len(asList(r.JSON(t)["entry"])))
		}
	}
	// Another tenant's admin sees none of it.
	if r := c.Do("GET", "/AuditEvent?entity=Patient/a1", nil, as("admin-b")...); len(asList(r.JSON(t)["entry"])) != 0 {
		t.Errorf("another tenant's admin reads the trail: %.300s", r.Body)
	}
	if r := c.Do("GET", "/AuditEvent/"+events[0]["id"].(string), nil, as("admin-b")...); r.Status != http.StatusNotFound {
		t.Errorf("another tenant's admin reads an event: %d", r.Status)
	}
}

func toJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
