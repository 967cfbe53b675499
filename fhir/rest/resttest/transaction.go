package resttest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/fmtbank/cmts/fhir"
	"github.com/fmtbank/cmts/fhir/fhirtest"
	"github.com/fmtbank/cmts/fhir/rest"
)

// Transaction and batch Bundles (R4 http.html#transaction), on every store.
func testTransaction(t *testing.T, newStore NewStore) {
	for _, tc := range []struct {
		name string
		fn   func(t *testing.T, h *Client)
		// maxEntries is the server's entry limit (default 50).
		maxEntries int
	}{
		{"urn:uuid rewritten in extensions and nested elements", txRewrite, 0},
		{"conditional references", txConditionalReferences, 0},
		{"ifNoneExist", txIfNoneExist, 0},
		{"duplicate fullUrl", txDuplicateFullURL, 0},
		{"the same resource twice", txSameResourceTwice, 0},
		{"a stale ifMatch fails the whole transaction", txStaleIfMatch, 0},
		{"GET entries see the transaction's writes", txReadsOwnWrites, 0},
		{"batch entries fail alone", txBatch, 0},
		{"Prefer return per entry", txPrefer, 0},
		{"official transaction example", txOfficialExample, 0},
		{"too many entries", txTooManyEntries, 0},
		{"a large transaction, built while it is stored", txLarge, 0},
		{"a large transaction failing at its last entry", txLargeFailsLast, 0},
		{"references to entries further away than the writer builds ahead", txBeyondWindow, beyondWindow},
		{"a large transaction failing near its end stores nothing", txBeyondWindowFails, beyondWindow},
		// The same rules in transactions large enough to be built while
		// they are stored (bundle.SeqStore), conditions and all.
		{"large: urn:uuid rewritten", padded(txRewrite), 0},
		{"large: conditional references", padded(txConditionalReferences), 0},
		{"large: ifNoneExist", padded(txIfNoneExist), 0},
		{"large: the same resource twice", padded(txSameResourceTwice), 0},
		{"large: a stale ifMatch fails the whole transaction", padded(txStaleIfMatch), 0},
		{"large: conditional update and delete", padded(txConditionalUpdateDelete), 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h, _ := open(t, newStore, func(o *rest.Options) { o.MaxBundleEntries = max(50, tc.maxEntries) })
			tc.fn(t, h)
		})
	}
}

// padEntries is how many entries padded adds: bundle's minStream, the
// fewest a transaction streams with.
const padEntries = 32

// padded runs fn with every transaction it posts grown by padEntries
// entries (Basic resources, which no test counts) after its own.
func padded(fn func(t *testing.T, h *Client)) func(t *testing.T, h *Client) {
	return func(t *testing.T, h *Client) {
		h.pad = padEntries
		defer func() { h.pad = 0 }()
		fn(t, h)
	}
}

// padded appends c.pad entries to body when it is a transaction as
// txBundle writes it.
func (c *Client) padded(body []byte) []byte {
	const head = `{"resourceType":"Bundle","type":"transaction","entry":[`
	if c.pad <= 0 || !bytes.HasPrefix(body, []byte(head)) || !bytes.HasSuffix(body, []byte(`]}`)) {
		return body
	}
	out := bytes.Clone(body[:len(body)-2])
	for i := range c.pad {
		if i > 0 || len(body) > len(head)+2 {
			out = append(out, ',')
		}
		out = append(out, `{"resource":{"resourceType":"Basic","code":{"text":"pad"}},"request":{"method":"POST","url":"Basic"}}`...)
	}
	return append(out, `]}`...)
}

// txConditionalUpdateDelete: a conditional update that finds one resource
// updates it; one that finds none creates, with the body's id; a
// conditional delete removes what it finds and answers 204 for nothing.
func txConditionalUpdateDelete(t *testing.T, h *Client) {
	h.Do("PUT", "/Patient/cu", []byte(`{"resourceType":"Patient","id":"cu","identifier":[{"system":"http://hosp/cu","value":"U"}]}`))
	h.Do("PUT", "/Patient/cd", []byte(`{"resourceType":"Patient","id":"cd","identifier":[{"system":"http://hosp/cu","value":"D"}]}`))
	m := h.post(t, txBundle("transaction",
		`{"resource":{"resourceType":"Patient","identifier":[{"system":"http://hosp/cu","value":"U"}],"active":true},"request":{"method":"PUT","url":"Patient?identifier=http://hosp/cu|U"}}`,
		`{"resource":{"resourceType":"Patient","id":"cu-new","identifier":[{"system":"http://hosp/cu","value":"N"}]},"request":{"method":"PUT","url":"Patient?identifier=http://hosp/cu|N"}}`,
		`{"request":{"method":"DELETE","url":"Patient?identifier=http://hosp/cu|D"}}`,
		`{"request":{"method":"DELETE","url":"Patient?identifier=http://hosp/cu|NONE"}}`), 200)
	status, loc := responses(t, m)
	want := []string{"200 OK", "201 Created", "204 No Content", "204 No Content"}
	if !slices.Equal(status[:4], want) {
		t.Fatalf("statuses %v, want %v", status[:4], want)
	}
	if typeID(loc[0]) != "Patient/cu" || typeID(loc[1]) != "Patient/cu-new" {
		t.Errorf("locations %v", loc[:2])
	}
	if p := h.get(t, "Patient/cu"); p["active"] != true {
		t.Errorf("Patient/cu not updated: %v", p)
	}
	if r := h.Do("GET", "/Patient/cd", nil); r.Status != 410 {
		t.Errorf("Patient/cd: %d, want 410", r.Status)
	}
	// Two conditional updates finding one resource: 400, nothing stored.
	outcome(t, h.Do("POST", "", txBundle("transaction",
		`{"resource":{"resourceType":"Patient","active":false},"request":{"method":"PUT","url":"Patient?identifier=http://hosp/cu|U"}}`,
		`{"resource":{"resourceType":"Patient","gender":"male"},"request":{"method":"PUT","url":"Patient?_id=cu"}}`)), 400, fhir.IssueInvalid)
	if r := h.Do("GET", "/Patient/cu", nil); r.Header.Get("ETag") != `W/"2"` {
		t.Errorf("Patient/cu at %s, want version 2", r.Header.Get("ETag"))
	}
}

// txBundle is a transaction or batch of entries given as JSON.
func txBundle(typ string, entries ...string) []byte {
	return []byte(`{"resourceType":"Bundle","type":"` + typ + `","entry":[` + strings.Join(entries, ",") + `]}`)
}

// post sends a Bundle to the base and checks the status.
func (c *Client) post(t *testing.T, body []byte, status int, header ...string) map[string]any {
	t.Helper()
	r := c.Do("POST", "", body, header...)
	if r.Status != status {
		t.Fatalf("POST Bundle: %d, want %d: %.600s", r.Status, status, r.Body)
	}
	return r.JSON(t)
}

// responses lists each response entry's status and location.
func responses(t *testing.T, m map[string]any) (status, location []string) {
	t.Helper()
	for _, e := range asList(m["entry"]) {
		resp := e.(map[string]any)["response"].(map[string]any)
		status = append(status, fmt.Sprint(resp["status"]))
		loc, _ := resp["location"].(string)
		location = append(location, loc)
	}
	return status, location
}

// get reads a resource and decodes it.
func (c *Client) get(t *testing.T, path string) map[string]any {
	t.Helper()
	r := c.Do("GET", "/"+path, nil)
	if r.Status != 200 {
		t.Fatalf("GET %s: %d %.300s", path, r.Status, r.Body)
	}
	return r.JSON(t)
}

// typeID is the Type/id of a location Type/id/_history/n.
func typeID(loc string) string {
	parts := strings.Split(loc, "/")
	if len(parts) < 2 {
		return loc
	}
	return parts[0] + "/" + parts[1]
}

func txRewrite(t *testing.T, h *Client) {
	m := h.post(t, txBundle("transaction",
		`{"fullUrl":"urn:uuid:5b0e3d1c-0001-4000-8000-000000000001","resource":{"resourceType":"Patient","name":[{"family":"王"}]},"request":{"method":"POST","url":"Patient"}}`,
		`{"fullUrl":"urn:uuid:5b0e3d1c-0001-4000-8000-000000000002","resource":{"resourceType":"Procedure","status":"completed",
			"subject":{"reference":"urn:uuid:5b0e3d1c-0001-4000-8000-000000000001"},
			"performer":[{"actor":{"reference":"urn:uuid:5b0e3d1c-0001-4000-8000-000000000001"}}],
			"extension":[{"url":"http://example.org/recipient","valueReference":{"reference":"urn:uuid:5b0e3d1c-0001-4000-8000-000000000001"}}]},
			"request":{"method":"POST","url":"Procedure"}}`,
		`{"resource":{"resourceType":"AdverseEvent","actuality":"actual","subject":{"reference":"urn:uuid:5b0e3d1c-0001-4000-8000-000000000001"},
			"suspectEntity":[{"instance":{"reference":"urn:uuid:5b0e3d1c-0001-4000-8000-000000000002"}}]},"request":{"method":"POST","url":"AdverseEvent"}}`,
	), 200)
	if m["type"] != "transaction-response" {
		t.Errorf("type %v", m["type"])
	}
	status, loc := responses(t, m)
	if len(status) < 3 || fmt.Sprint(status[:3]) != "[201 Created 201 Created 201 Created]" {
		t.Fatalf("statuses %v", status)
	}
	patient, proc := typeID(loc[0]), typeID(loc[1])
	p := h.get(t, proc)
	got := []any{p["subject"], p["performer"].([]any)[0].(map[string]any)["actor"], p["extension"].([]any)[0].(map[string]any)["valueReference"]}
	for i, ref := range got {
		if r := ref.(map[string]any)["reference"]; r != patient {
			t.Errorf("Procedure reference %d is %v, want %s", i, r, patient)
		}
	}
	ae := h.get(t, typeID(loc[2]))
	if r := ae["suspectEntity"].([]any)[0].(map[string]any)["instance"].(map[string]any)["reference"]; r != proc {
		t.Errorf("AdverseEvent suspect %v, want %s", r, proc)
	}
	// The references are searchable as rewritten.
	if m := h.get(t, "Procedure?subject="+patient); m["total"].(float64) != 1 {
		t.Errorf("Procedure?subject=%s: total %v", patient, m["total"])
	}
}

func txConditionalReferences(t *testing.T, h *Client) {
	for _, id := range []string{"one", "twin-a", "twin-b"} {
		ident := id
		if strings.HasPrefix(id, "twin") {
			ident = "twin"
		}
		h.Do("PUT", "/Patient/"+id, []byte(`{"resourceType":"Patient","id":"`+id+`","identifier":[{"system":"http://hosp/mrn","value":"`+ident+`"}]}`))
	}
	obs := func(ref string) string {
		return `{"resource":{"resourceType":"Observation","status":"final","code":{"text":"x"},"subject":{"reference":"` + ref + `"}},"request":{"method":"POST","url":"Observation"}}`
	}
	m := h.post(t, txBundle("transaction", obs("Patient?identifier=http://hosp/mrn|one")), 200)
	_, loc := responses(t, m)
	if got := h.get(t, typeID(loc[0]))["subject"].(map[string]any)["reference"]; got != "Patient/one" {
		t.Errorf("conditional reference resolved to %v, want Patient/one", got)
	}
	for _, ref := range []string{"Patient?identifier=http://hosp/mrn|none", "Patient?identifier=http://hosp/mrn|twin"} {
		r := h.Do("POST", "", txBundle("transaction",
			`{"resource":{"resourceType":"Patient","id":"x"},"request":{"method":"PUT","url":"Patient/x"}}`, obs(ref)))
		outcome(t, r, 412, fhir.IssueConflict)
		if r := h.Do("GET", "/Patient/x", nil); r.Status != 404 {
			t.Errorf("%s: the transaction's other entry was stored: %d", ref, r.Status)
		}
	}
}

func txIfNoneExist(t *testing.T, h *Client) {
	h.Do("PUT", "/Patient/known", []byte(`{"resourceType":"Patient","id":"known","identifier":[{"system":"http://hosp/mrn","value":"K"}]}`))
	entries := func(ident string) []byte {
		return txBundle("transaction",
			`{"fullUrl":"urn:uuid:5b0e3d1c-0002-4000-8000-000000000001","resource":{"resourceType":"Patient","identifier":[{"system":"http://hosp/mrn","value":"`+ident+`"}]},
			"request":{"method":"POST","url":"Patient","ifNoneExist":"identifier=http://hosp/mrn|`+ident+`"}}`,
			`{"resource":{"resourceType":"Observation","status":"final","code":{"text":"x"},"subject":{"reference":"urn:uuid:5b0e3d1c-0002-4000-8000-000000000001"}},"request":{"method":"POST","url":"Observation"}}`)
	}
	status, loc := responses(t, h.post(t, entries("K"), 200))
	if status[0] != "200 OK" || typeID(loc[0]) != "Patient/known" {
		t.Errorf("ifNoneExist with a match: %v %v", status, loc)
	}
	if got := h.get(t, typeID(loc[1]))["subject"].(map[string]any)["reference"]; got != "Patient/known" {
		t.Errorf("reference to the matched entry: %v", got)
	}
	status, _ = responses(t, h.post(t, entries("NEW"), 200))
	if status[0] != "201 Created" {
		t.Errorf("ifNoneExist without a match: %v", status)
	}
	h.Do("PUT", "/Patient/k2", []byte(`{"resourceType":"Patient","id":"k2","identifier":[{"system":"http://hosp/mrn","value":"K"}]}`))
	outcome(t, h.Do("POST", "", entries("K")), 412, fhir.IssueConflict)
}

func txDuplicateFullURL(t *testing.T, h *Client) {
	e := `{"fullUrl":"urn:uuid:5b0e3d1c-0003-4000-8000-000000000001","resource":{"resourceType":"Patient"},"request":{"method":"POST","url":"Patient"}}`
	first := outcome(t, h.Do("POST", "", txBundle("transaction", e, e)), 400, fhir.IssueInvalid)
	if fmt.Sprint(first["expression"]) != "[Bundle.entry[1].fullUrl]" {
		t.Errorf("expression %v", first["expression"])
	}
}

func txSameResourceTwice(t *testing.T, h *Client) {
	h.Do("PUT", "/Patient/a", []byte(`{"resourceType":"Patient","id":"a","identifier":[{"system":"s","value":"A"}]}`))
	put := `{"resource":{"resourceType":"Patient","id":"a","active":true},"request":{"method":"PUT","url":"Patient/a"}}`
	outcome(t, h.Do("POST", "", txBundle("transaction", put, put)), 400, fhir.IssueInvalid)
	// Through a conditional update that finds the same resource.
	cond := `{"resource":{"resourceType":"Patient","active":false},"request":{"method":"PUT","url":"Patient?identifier=s|A"}}`
	first := outcome(t, h.Do("POST", "", txBundle("transaction", put, cond)), 400, fhir.IssueInvalid)
	if !strings.Contains(fmt.Sprint(first["expression"]), "Bundle.entry[") {
		t.Errorf("the answer does not name the entry: %v", first)
	}
	if r := h.Do("GET", "/Patient/a", nil); r.Header.Get("ETag") != `W/"1"` {
		t.Errorf("Patient/a changed: %s", r.Header.Get("ETag"))
	}
}

func txStaleIfMatch(t *testing.T, h *Client) {
	h.Do("PUT", "/Patient/s", []byte(`{"resourceType":"Patient","id":"s"}`))
	h.Do("PUT", "/Patient/s", []byte(`{"resourceType":"Patient","id":"s","active":true}`))
	r := h.Do("POST", "", txBundle("transaction",
		`{"resource":{"resourceType":"Patient","id":"new-one"},"request":{"method":"PUT","url":"Patient/new-one"}}`,
		`{"resource":{"resourceType":"Observation","status":"final","code":{"text":"x"}},"request":{"method":"POST","url":"Observation"}}`,
		`{"resource":{"resourceType":"Patient","id":"s","active":false},"request":{"method":"PUT","url":"Patient/s","ifMatch":"W/\"1\""}}`))
	first := outcome(t, r, 412, fhir.IssueConflict)
	if !strings.Contains(fmt.Sprint(first["expression"]), "Bundle.entry[2]") {
		t.Errorf("the answer does not name entry 2: %v", first)
	}
	if r := h.Do("GET", "/Patient/new-one", nil); r.Status != 404 {
		t.Errorf("a failed transaction stored Patient/new-one: %d", r.Status)
	}
	if m := h.get(t, "Observation?_summary=count"); m["total"].(float64) != 0 {
		t.Errorf("a failed transaction stored an Observation")
	}
	if r := h.Do("GET", "/Patient/s", nil); r.Header.Get("ETag") != `W/"2"` {
		t.Errorf("Patient/s at %s", r.Header.Get("ETag"))
	}
}

func txReadsOwnWrites(t *testing.T, h *Client) {
	// The GET comes first in the Bundle but runs after the writes.
	m := h.post(t, txBundle("transaction",
		`{"request":{"method":"GET","url":"Patient?identifier=http://hosp/mrn|OWN"}}`,
		`{"request":{"method":"GET","url":"Patient/own"}}`,
		`{"resource":{"resourceType":"Patient","id":"own","identifier":[{"system":"http://hosp/mrn","value":"OWN"}]},"request":{"method":"PUT","url":"Patient/own"}}`), 200)
	status, _ := responses(t, m)
	if fmt.Sprint(status) != "[200 OK 200 OK 201 Created]" {
		t.Fatalf("statuses %v", status)
	}
	entries := asList(m["entry"])
	search := entries[0].(map[string]any)["resource"].(map[string]any)
	if search["resourceType"] != "Bundle" || search["total"].(float64) != 1 {
		t.Errorf("the search entry does not see the transaction's write: %v", search["total"])
	}
	if id := entries[1].(map[string]any)["resource"].(map[string]any)["id"]; id != "own" {
		t.Errorf("read entry: %v", id)
	}
}

func txBatch(t *testing.T, h *Client) {
	h.Do("PUT", "/Patient/b", []byte(`{"resourceType":"Patient","id":"b"}`))
	m := h.post(t, txBundle("batch",
		`{"resource":{"resourceType":"Patient","id":"ok"},"request":{"method":"PUT","url":"Patient/ok"}}`,
		`{"resource":{"resourceType":"Patient","id":"b","active":true},"request":{"method":"PUT","url":"Patient/b","ifMatch":"W/\"7\""}}`,
		`{"resource":{"resourceType":"Patient","birthDate":"not a date"},"request":{"method":"POST","url":"Patient"}}`,
		`{"request":{"method":"DELETE","url":"Patient/missing"}}`,
		`{"request":{"method":"GET","url":"Patient/ok"}}`), 200)
	if m["type"] != "batch-response" {
		t.Errorf("type %v", m["type"])
	}
	status, _ := responses(t, m)
	want := "[201 Created 412 Precondition Failed 400 Bad Request 404 Not Found 200 OK]"
	if fmt.Sprint(status) != want {
		t.Errorf("statuses %v, want %s", status, want)
	}
	for i, e := range asList(m["entry"])[1:4] {
		oc, _ := e.(map[string]any)["response"].(map[string]any)["outcome"].(map[string]any)
		if oc["resourceType"] != "OperationOutcome" {
			t.Errorf("failed entry %d has no outcome", i+1)
		}
	}
}

func txPrefer(t *testing.T, h *Client) {
	e := `{"resource":{"resourceType":"Patient","id":"pm"},"request":{"method":"PUT","url":"Patient/pm"}}`
	m := h.post(t, txBundle("transaction", e), 200, "Prefer", "return=minimal")
	entry := asList(m["entry"])[0].(map[string]any)
	if entry["resource"] != nil || entry["response"].(map[string]any)["etag"] != `W/"1"` {
		t.Errorf("return=minimal: %v", entry)
	}
	m = h.post(t, txBundle("transaction", e), 200, "Prefer", "return=OperationOutcome")
	if oc := asList(m["entry"])[0].(map[string]any)["response"].(map[string]any)["outcome"]; oc == nil {
		t.Errorf("return=OperationOutcome: no outcome")
	}
	m = h.post(t, txBundle("transaction", e), 200)
	if r := asList(m["entry"])[0].(map[string]any)["resource"]; r == nil {
		t.Errorf("return=representation (the default): no resource")
	}
}

// txOfficialExample runs the spec's own transaction example: as it is, its
// operation entry ($lookup) cannot be part of a transaction; without it,
// on a server holding what its ifMatch and DELETE expect, every entry
// succeeds; as a batch, each entry gets its own answer.
func txOfficialExample(t *testing.T, h *Client) {
	raw, err := os.ReadFile(filepath.Join(fhirtest.ExamplesDir(t), "Bundle-bundle-transaction.json"))
	if err != nil {
		t.Fatal(err)
	}
	r := h.Do("POST", "", raw)
	first := outcome(t, r, 400, fhir.IssueNotSupported)
	if !strings.Contains(fmt.Sprint(first["expression"]), "Bundle.entry[7]") {
		t.Errorf("the $lookup entry is not named: %v", first)
	}
	if m := h.get(t, "Patient?_summary=count"); m["total"].(float64) != 0 {
		t.Fatalf("a refused transaction stored Patients")
	}
	h.Do("PUT", "/Patient/234", []byte(`{"resourceType":"Patient","id":"234"}`))
	h.Do("PUT", "/Patient/123a", []byte(`{"resourceType":"Patient","id":"123a"}`))
	h.Do("PUT", "/Patient/123a", []byte(`{"resourceType":"Patient","id":"123a","active":true}`))
	var b map[string]any
	if err := json.Unmarshal(raw, &b); err != nil {
		t.Fatal(err)
	}
	entries := asList(b["entry"])
	b["entry"] = append(append([]any{}, entries[:7]...), entries[8:]...)
	body, _ := json.Marshal(b)
	m := h.post(t, body, 200)
	status, loc := responses(t, m)
	want := "[201 Created 201 Created 201 Created 201 Created 200 OK 204 No Content 204 No Content 200 OK 404 Not Found]"
	if fmt.Sprint(status) != want {
		t.Errorf("statuses %v\nwant %s", status, want)
	}
	if loc[2] != "Patient/123/_history/1" {
		t.Errorf("PUT Patient/123 location %s", loc[2])
	}
	for _, l := range loc[:5] {
		if res := h.Do("GET", "/"+typeID(l), nil); res.Status != 200 || strings.Contains(string(res.Body), "urn:uuid:") {
			t.Errorf("%s: %d %.200s", l, res.Status, res.Body)
		}
	}
	if r := h.Do("GET", "/Patient/234", nil); r.Status != 410 {
		t.Errorf("Patient/234 after DELETE: %d", r.Status)
	}
	// As a batch, with the $lookup entry: it fails alone.
	b["type"], b["entry"] = "batch", entries
	body, _ = json.Marshal(b)
	status, _ = responses(t, h.post(t, body, 200))
	if !strings.HasPrefix(status[7], "4") || status[2] != "200 OK" {
		t.Errorf("batch statuses %v", status)
	}
}

func txTooManyEntries(t *testing.T, h *Client) {
	var es []string
	for range 51 {
		es = append(es, `{"request":{"method":"GET","url":"Patient"}}`)
	}
	outcome(t, h.Do("POST", "", txBundle("batch", es...)), 413, fhir.IssueTooCostly)
	if r := h.Do("POST", "/", txBundle("batch", es[:50]...)); r.Status != 200 {
		t.Errorf("50 entries to [base]/: %d %.300s", r.Status, r.Body)
	}
}

// largeEntries is a transaction's worth of entries large enough for a
// store that takes writes as they are built (bundle.SeqStore) to get them
// that way: Patients, each followed by an Observation about it through
// its urn:uuid.
func largeEntries(pairs int) []string {
	var out []string
	for i := range pairs {
		uuid := fmt.Sprintf("urn:uuid:6c1f0000-0000-4000-8000-%012d", i)
		out = append(out,
			`{"fullUrl":"`+uuid+`","resource":{"resourceType":"Patient","identifier":[{"system":"http://hosp/large","value":"L`+fmt.Sprint(i)+`"}]},"request":{"method":"POST","url":"Patient"}}`,
			`{"resource":{"resourceType":"Observation","status":"final","code":{"text":"x"},"subject":{"reference":"`+uuid+`"}},"request":{"method":"POST","url":"Observation"}}`)
	}
	return out
}

func txLarge(t *testing.T, h *Client) {
	const pairs = 24
	m := h.post(t, txBundle("transaction", largeEntries(pairs)...), 200)
	status, loc := responses(t, m)
	if len(status) != 2*pairs {
		t.Fatalf("%d response entries, want %d", len(status), 2*pairs)
	}
	for i := 0; i < 2*pairs; i += 2 {
		if status[i] != "201 Created" || status[i+1] != "201 Created" {
			t.Fatalf("entries %d, %d: %s, %s", i, i+1, status[i], status[i+1])
		}
		obs := h.get(t, typeID(loc[i+1]))
		if r := obs["subject"].(map[string]any)["reference"]; r != typeID(loc[i]) {
			t.Errorf("entry %d: subject %v, want %s", i+1, r, typeID(loc[i]))
		}
	}
	// Indexed as rewritten.
	if m := h.get(t, "Observation?_summary=count&subject="+typeID(loc[14])); m["total"].(float64) != 1 {
		t.Errorf("Observation?subject=%s: total %v, want 1", typeID(loc[14]), m["total"])
	}
}

func txLargeFailsLast(t *testing.T, h *Client) {
	h.Do("PUT", "/Patient/last", []byte(`{"resourceType":"Patient","id":"last"}`))
	h.Do("PUT", "/Patient/last", []byte(`{"resourceType":"Patient","id":"last","active":true}`))
	entries := append(largeEntries(24),
		`{"resource":{"resourceType":"Patient","id":"last","active":false},"request":{"method":"PUT","url":"Patient/last","ifMatch":"W/\"1\""}}`)
	first := outcome(t, h.Do("POST", "", txBundle("transaction", entries...)), 412, fhir.IssueConflict)
	if !strings.Contains(fmt.Sprint(first["expression"]), "Bundle.entry[48]") {
		t.Errorf("the answer does not name entry 48: %v", first)
	}
	for _, typ := range []string{"Patient", "Observation"} {
		want := 0.0
		if typ == "Patient" {
			want = 1 // Patient/last
		}
		if m := h.get(t, typ+"?_summary=count"); m["total"].(float64) != want {
			t.Errorf("a failed transaction stored %v of %s (want %v)", m["total"], typ, want)
		}
	}
	if r := h.Do("GET", "/Patient/last", nil); r.Header.Get("ETag") != `W/"2"` {
		t.Errorf("Patient/last at %s", r.Header.Get("ETag"))
	}
}

// beyondWindow is more entries than a writer that stores a transaction as
// it builds it (bundle.SeqStore) holds built at once, twice over.
const beyondWindow = 700

// farEntries is a transaction of n entries: Observations, then the
// Patients they are about, the first Observation's the last Patient, so
// that most references point further ahead than the writer builds; bad,
// if at least 0, makes that entry invalid.
func farEntries(n, bad int) []string {
	out := make([]string, n)
	half := n / 2
	for i := range half {
		uuid := fmt.Sprintf("urn:uuid:7d2e0000-0000-4000-8000-%012d", i)
		out[i] = `{"resource":{"resourceType":"Observation","status":"final","code":{"text":"far"},"subject":{"reference":"` + uuid +
			`"}},"request":{"method":"POST","url":"Observation"}}`
		out[n-1-i] = `{"fullUrl":"` + uuid + `","resource":{"resourceType":"Patient","identifier":[{"system":"http://hosp/far","value":"F` +
			fmt.Sprint(i) + `"}]},"request":{"method":"POST","url":"Patient"}}`
	}
	if bad >= 0 {
		out[bad] = `{"resource":{"resourceType":"Patient","birthDate":"not a date"},"request":{"method":"POST","url":"Patient"}}`
	}
	return out
}

func txBeyondWindow(t *testing.T, h *Client) {
	n := beyondWindow
	m := h.post(t, txBundle("transaction", farEntries(n, -1)...), 200)
	entries := asList(m["entry"])
	status, loc := responses(t, m)
	if len(status) != n {
		t.Fatalf("%d response entries, want %d", len(status), n)
	}
	for i := range n / 2 {
		p := n - 1 - i
		if status[i] != "201 Created" || status[p] != "201 Created" {
			t.Fatalf("entries %d, %d: %s, %s", i, p, status[i], status[p])
		}
		obs := entries[i].(map[string]any)["resource"].(map[string]any)
		if r := obs["subject"].(map[string]any)["reference"]; r != typeID(loc[p]) {
			t.Fatalf("entry %d: subject %v, want entry %d's %s", i, r, p, typeID(loc[p]))
		}
		pat := entries[p].(map[string]any)["resource"].(map[string]any)
		if "Patient/"+fmt.Sprint(pat["id"]) != typeID(loc[p]) {
			t.Fatalf("entry %d: resource id %v, location %s", p, pat["id"], loc[p])
		}
	}
	if m := h.get(t, "Observation?_summary=count&subject="+typeID(loc[n-1])); m["total"].(float64) != 1 {
		t.Errorf("Observation?subject=%s: total %v, want 1 (indexed as rewritten)", typeID(loc[n-1]), m["total"])
	}
	// Prefer: return=minimal answers without the resources.
	m = h.post(t, txBundle("transaction", farEntries(n, -1)...), 200, "Prefer", "return=minimal")
	for i, e := range asList(m["entry"]) {
		e := e.(map[string]any)
		if e["resource"] != nil || e["response"].(map[string]any)["etag"] != `W/"1"` {
			t.Fatalf("return=minimal, entry %d: %v", i, e)
		}
	}
}

func txBeyondWindowFails(t *testing.T, h *Client) {
	n := beyondWindow
	bad := n - 50
	first := outcome(t, h.Do("POST", "", txBundle("transaction", farEntries(n, bad)...)), 400, fhir.IssueValue)
	if want := fmt.Sprintf("Bundle.entry[%d]", bad); !strings.Contains(fmt.Sprint(first["expression"]), want) {
		t.Errorf("the answer does not name %s: %v", want, first)
	}
	for _, typ := range []string{"Patient", "Observation"} {
		if m := h.get(t, typ+"?_summary=count"); m["total"].(float64) != 0 {
			t.Errorf("a failed transaction stored %v of %s", m["total"], typ)
		}
	}
}
