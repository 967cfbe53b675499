package resttest

import (
	"bytes"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/fmtbank/cmts/fhir"
	"github.com/fmtbank/cmts/fhir/rest"
	"github.com/fmtbank/cmts/store"
)

const patient = `{"resourceType":"Patient","identifier":[{"system":"urn:oid:2.16.840.1.113883.2.4.6.3","value":"R-001"}],"name":[{"text":"张三","family":"张","given":["三"]}],"gender":"male","birthDate":"1970-01-01"}`

func testCRUD(t *testing.T, newStore NewStore) {
	c, _ := open(t, newStore, func(o *rest.Options) { o.Now = fixedClock() })

	// create: server-assigned id (a client id in the body is ignored)
	r := c.Do("POST", "/Patient", []byte(strings.Replace(patient, `{"resourceType":"Patient",`, `{"resourceType":"Patient","id":"ignored",`, 1)))
	if r.Status != http.StatusCreated {
		t.Fatalf("create: %d %s", r.Status, r.Body)
	}
	m := r.JSON(t)
	id, _ := m["id"].(string)
	if id == "" || id == "ignored" {
		t.Fatalf("create: id %q, want a server-assigned id", id)
	}
	meta := m["meta"].(map[string]any)
	if meta["versionId"] != "1" || meta["lastUpdated"] != "2026-03-04T05:06:08.000000Z" {
		t.Errorf("create: meta %v", meta)
	}
	if loc := r.Header.Get("Location"); loc != c.Base+"/Patient/"+id+"/_history/1" {
		t.Errorf("Location %q", loc)
	}
	if r.Header.Get("ETag") != `W/"1"` || r.Header.Get("Last-Modified") != "Wed, 04 Mar 2026 05:06:08 GMT" {
		t.Errorf("ETag %q Last-Modified %q", r.Header.Get("ETag"), r.Header.Get("Last-Modified"))
	}
	if name := m["name"].([]any)[0].(map[string]any)["text"]; name != "张三" {
		t.Errorf("name %v, want 张三", name)
	}

	// read
	r = c.Do("GET", "/Patient/"+id, nil)
	if r.Status != 200 || r.Header.Get("ETag") != `W/"1"` || r.JSON(t)["id"] != id {
		t.Fatalf("read: %d %s", r.Status, r.Body)
	}
	if r2 := c.Do("GET", "/Patient/"+id, nil, "If-None-Match", `W/"1"`); r2.Status != http.StatusNotModified {
		t.Errorf("read If-None-Match current: %d, want 304", r2.Status)
	}

	// update
	upd := strings.Replace(patient, `{"resourceType":"Patient",`, `{"resourceType":"Patient","id":"`+id+`","active":true,`, 1)
	r = c.Do("PUT", "/Patient/"+id, []byte(upd))
	if r.Status != 200 || r.JSON(t)["meta"].(map[string]any)["versionId"] != "2" || r.Header.Get("ETag") != `W/"2"` {
		t.Fatalf("update: %d %s", r.Status, r.Body)
	}

	// vread of both versions
	if r = c.Do("GET", "/Patient/"+id+"/_history/1", nil); r.Status != 200 || r.JSON(t)["active"] != nil {
		t.Errorf("vread 1: %d %s", r.Status, r.Body)
	}
	if r = c.Do("GET", "/Patient/"+id+"/_history/2", nil); r.Status != 200 || r.JSON(t)["active"] != true {
		t.Errorf("vread 2: %d %s", r.Status, r.Body)
	}
	outcome(t, c.Do("GET", "/Patient/"+id+"/_history/9", nil), 404, fhir.IssueNotFound)
	outcome(t, c.Do("GET", "/Patient/"+id+"/_history/x", nil), 404, fhir.IssueNotFound)

	// create-on-update with a client id
	r = c.Do("PUT", "/Specimen/donation-001", []byte(`{"resourceType":"Specimen","id":"donation-001","status":"available"}`))
	if r.Status != http.StatusCreated || r.Header.Get("Location") != c.Base+"/Specimen/donation-001/_history/1" {
		t.Fatalf("create-on-update: %d %s", r.Status, r.Body)
	}

	// delete: tombstone, then 410; delete again is a no-op 204
	if r = c.Do("DELETE", "/Patient/"+id, nil); r.Status != http.StatusNoContent || r.Header.Get("ETag") != `W/"3"` {
		t.Fatalf("delete: %d %s %v", r.Status, r.Body, r.Header)
	}
	outcome(t, c.Do("GET", "/Patient/"+id, nil), http.StatusGone, fhir.IssueDeleted)
	if r = c.Do("DELETE", "/Patient/"+id, nil); r.Status != http.StatusNoContent {
		t.Errorf("second delete: %d", r.Status)
	}
	// older versions stay readable
	if r = c.Do("GET", "/Patient/"+id+"/_history/2", nil); r.Status != 200 {
		t.Errorf("vread after delete: %d", r.Status)
	}
	outcome(t, c.Do("GET", "/Patient/"+id+"/_history/3", nil), http.StatusGone, fhir.IssueDeleted)
	outcome(t, c.Do("DELETE", "/Patient/never-was", nil), 404, fhir.IssueNotFound)

	// re-create after delete: version 4, 201
	r = c.Do("PUT", "/Patient/"+id, []byte(upd))
	if r.Status != http.StatusCreated || r.JSON(t)["meta"].(map[string]any)["versionId"] != "4" {
		t.Errorf("re-create: %d %s", r.Status, r.Body)
	}

	// Chinese text survives untouched, including in _pretty output
	r = c.Do("GET", "/Patient/"+id+"?_pretty=true", nil)
	if !strings.Contains(string(r.Body), "\n  \"name\": [") || !strings.Contains(string(r.Body), "张三") {
		t.Errorf("_pretty: %s", r.Body)
	}
}

func testErrors(t *testing.T, newStore NewStore) {
	c, _ := open(t, newStore, func(o *rest.Options) { o.MaxBody = 64 << 10 })
	if r := c.Do("PUT", "/Patient/p1", []byte(`{"resourceType":"Patient","id":"p1"}`)); r.Status != 201 {
		t.Fatalf("seed: %d %s", r.Status, r.Body)
	}
	big := `{"resourceType":"Patient","id":"p1","name":[{"text":"` + strings.Repeat("x", 70<<10) + `"}]}`
	// the default limits: 64 levels, 10,000 array entries, 100 patch operations
	deep := `{"resourceType":"Patient"` + strings.Repeat(`,"extension":[{"url":"http://x"`, 32) + strings.Repeat(`}]`, 32) + `}`
	longArray := `{"resourceType":"Patient","name":[{"given":["a"` + strings.Repeat(`,"a"`, 10000) + `]}]}`
	manyOps := `[` + strings.Repeat(`{"op":"test","path":"/id","value":"p1"},`, 100) + `{"op":"remove","path":"/active"}]`
	for _, tc := range []struct {
		name     string
		method   string
		path     string
		body     string
		header   []string
		status   int
		code     fhir.IssueType
		expr     string
		contains string // in details.text, for the language checks
	}{
		{name: "malformed JSON", method: "PUT", path: "/Patient/p1", body: `{"resourceType":"Patient",`, status: 400, code: fhir.IssueStructure},
		{name: "not an object", method: "POST", path: "/Patient", body: `[]`, status: 400, code: fhir.IssueStructure},
		{name: "empty body", method: "POST", path: "/Patient", body: ``, status: 400, code: fhir.IssueStructure},
		{name: "no resourceType", method: "POST", path: "/Patient", body: `{"id":"x"}`, status: 400, code: fhir.IssueRequired, expr: "resourceType"},
		{name: "unknown element", method: "PUT", path: "/Patient/p1", body: `{"resourceType":"Patient","id":"p1","favouriteColour":"blue"}`, status: 400, code: fhir.IssueStructure},
		{name: "wrong type of value", method: "PUT", path: "/Patient/p1", body: `{"resourceType":"Patient","id":"p1","active":"yes"}`, status: 400, code: fhir.IssueValue, expr: "Patient.active"},
		{name: "bad date", method: "PUT", path: "/Patient/p1", body: `{"resourceType":"Patient","id":"p1","birthDate":"1990-13-45"}`, status: 400, code: fhir.IssueValue, expr: "Patient.birthDate"},
		{name: "bad code", method: "PUT", path: "/Patient/p1", body: `{"resourceType":"Patient","id":"p1","gender":"robot"}`, status: 400, code: fhir.IssueInvalid, expr: "Patient.gender"},
		{name: "missing required element", method: "POST", path: "/Observation", body: `{"resourceType":"Observation","status":"final"}`, status: 400, code: fhir.IssueRequired},
		{name: "wrong resourceType for URL", method: "PUT", path: "/Patient/p1", body: `{"resourceType":"Specimen","id":"p1"}`, status: 400, code: fhir.IssueInvalid, expr: "resourceType"},
		{name: "wrong resourceType on create", method: "POST", path: "/Patient", body: `{"resourceType":"Specimen"}`, status: 400, code: fhir.IssueInvalid},
		{name: "unknown resourceType in body", method: "POST", path: "/Patient", body: `{"resourceType":"Donor"}`, status: 400, code: fhir.IssueNotSupported},
		{name: "body id differs from URL", method: "PUT", path: "/Patient/p1", body: `{"resourceType":"Patient","id":"p2"}`, status: 400, code: fhir.IssueInvalid, expr: "Patient.id"},
		{name: "body without id on update", method: "PUT", path: "/Patient/p1", body: `{"resourceType":"Patient"}`, status: 400, code: fhir.IssueInvalid},
		{name: "illegal id characters", method: "PUT", path: "/Patient/a_b!", body: `{"resourceType":"Patient","id":"a_b!"}`, status: 400, code: fhir.IssueValue},
		{name: "id too long", method: "GET", path: "/Patient/" + strings.Repeat("a", 65), status: 400, code: fhir.IssueValue},
		{name: "illegal id in body", method: "POST", path: "/Patient", body: `{"resourceType":"Patient","id":"a b"}`, status: 400, code: fhir.IssueValue},
		{name: "body over the limit", method: "PUT", path: "/Patient/p1", body: big, status: 413, code: fhir.IssueTooLong},
		{name: "unsupported media type", method: "PUT", path: "/Patient/p1", body: `<Patient/>`, header: []string{"Content-Type", "application/fhir+xml"}, status: 415, code: fhir.IssueNotSupported},
		{name: "no media type", method: "POST", path: "/Patient", body: `{}`, header: []string{"Content-Type", ""}, status: 415, code: fhir.IssueNotSupported},
		{name: "stale If-Match", method: "PUT", path: "/Patient/p1", body: `{"resourceType":"Patient","id":"p1"}`, header: []string{"If-Match", `W/"7"`}, status: 412, code: fhir.IssueConflict},
		{name: "If-Match on delete", method: "DELETE", path: "/Patient/p1", header: []string{"If-Match", `W/"2"`}, status: 412, code: fhir.IssueConflict},
		{name: "If-Match on missing", method: "PUT", path: "/Patient/p9", body: `{"resourceType":"Patient","id":"p9"}`, header: []string{"If-Match", `W/"1"`}, status: 412, code: fhir.IssueConflict},
		{name: "malformed If-Match", method: "PUT", path: "/Patient/p1", body: `{"resourceType":"Patient","id":"p1"}`, header: []string{"If-Match", `soon`}, status: 400, code: fhir.IssueValue},
		{name: "unknown resource type", method: "GET", path: "/Donor/1", status: 404, code: fhir.IssueNotSupported},
		{name: "unknown resource type search", method: "GET", path: "/Donor", status: 404, code: fhir.IssueNotSupported},
		{name: "unknown resource", method: "GET", path: "/Patient/nope", status: 404, code: fhir.IssueNotFound},
		{name: "method not allowed", method: "POST", path: "/Patient/p1", body: `{}`, status: 405, code: fhir.IssueNotSupported},
		{name: "PUT on a type without criteria", method: "PUT", path: "/Patient", body: `{"resourceType":"Patient"}`, status: 405, code: fhir.IssueNotSupported},
		{name: "no such endpoint", method: "GET", path: "/Patient/p1/_history/1/extra", status: 404, code: fhir.IssueNotFound},
		{name: "XML requested by _format", method: "GET", path: "/Patient/p1?_format=xml", status: 406, code: fhir.IssueNotSupported},
		{name: "XML requested by Accept", method: "GET", path: "/Patient/p1", header: []string{"Accept", "application/fhir+xml"}, status: 406, code: fhir.IssueNotSupported},
		{name: "unknown search parameter, strict", method: "GET", path: "/Patient?favourite=blue", header: []string{"Prefer", "handling=strict"}, status: 400, code: fhir.IssueNotSupported, expr: "favourite"},
		{name: "bad _count", method: "GET", path: "/Patient?_count=many", status: 400, code: fhir.IssueInvalid},
		{name: "bad _since", method: "GET", path: "/Patient/_history?_since=yesterday", status: 400, code: fhir.IssueValue},
		{name: "bad page token", method: "GET", path: "/_history?_page=zzz", status: 400, code: fhir.IssueValue},
		{name: "bad search page token", method: "GET", path: "/Patient?_page=zzz", status: 400, code: fhir.IssueValue, expr: "_page"},
		// base64url of "n|Patient|nope|1": a well-formed token for a version that does not exist.
		{name: "page token of no version", method: "GET", path: "/Patient?_page=bnxQYXRpZW50fG5vcGV8MQ", status: 400, code: fhir.IssueValue, expr: "_page"},
		{name: "patch with wrong media type", method: "PATCH", path: "/Patient/p1", body: `[]`, status: 415, code: fhir.IssueNotSupported},
		{name: "duplicate keys", method: "POST", path: "/Patient", body: `{"resourceType":"Observation","resourceType":"Patient"}`, status: 400, code: fhir.IssueStructure, expr: "Observation.resourceType"},
		{name: "duplicate nested keys", method: "PUT", path: "/Patient/p1", body: `{"resourceType":"Patient","id":"p1","name":[{"family":"a","family":"b"}]}`, status: 400, code: fhir.IssueStructure, expr: "Patient.name[0].family"},
		{name: "contained in contained (dom-2)", method: "POST", path: "/Patient", body: `{"resourceType":"Patient","contained":[{"resourceType":"Patient","contained":[{"resourceType":"Patient"}]}]}`, status: 400, code: fhir.IssueInvariant, expr: "Patient.contained[0].contained"},
		{name: "nested deeper than the limit", method: "POST", path: "/Patient", body: deep, status: 413, code: fhir.IssueTooLong, expr: "Patient" + strings.Repeat(".extension[0]", 32)},
		{name: "array longer than the limit", method: "POST", path: "/Patient", body: longArray, status: 413, code: fhir.IssueTooLong, expr: "Patient.name[0].given"},
		{name: "limit named in Chinese", method: "POST", path: "/Patient", body: longArray, header: []string{"Accept-Language", "zh-CN"}, status: 413, code: fhir.IssueTooLong, contains: "数组的条目数超过上限（限制 max-array = 10000）"},
		{name: "limit named in English", method: "POST", path: "/Patient", body: longArray, status: 413, code: fhir.IssueTooLong, contains: "(limit max-array = 10000)"},
		{name: "patch body null", method: "PATCH", path: "/Patient/p1", body: `null`, header: []string{"Content-Type", "application/json-patch+json"}, status: 400, code: fhir.IssueStructure},
		{name: "patch body empty array", method: "PATCH", path: "/Patient/p1", body: `[]`, header: []string{"Content-Type", "application/json-patch+json"}, status: 400, code: fhir.IssueInvalid},
		{name: "patch body an object", method: "PATCH", path: "/Patient/p1", body: `{"op":"remove","path":"/active"}`, header: []string{"Content-Type", "application/json-patch+json"}, status: 400, code: fhir.IssueStructure},
		{name: "patch body a string", method: "PATCH", path: "/Patient/p1", body: `"[]"`, header: []string{"Content-Type", "application/json-patch+json"}, status: 400, code: fhir.IssueStructure},
		{name: "patch body empty", method: "PATCH", path: "/Patient/p1", body: ` `, header: []string{"Content-Type", "application/json-patch+json"}, status: 400, code: fhir.IssueStructure},
		{name: "patch with more operations than the limit", method: "PATCH", path: "/Patient/p1", body: manyOps, header: []string{"Content-Type", "application/json-patch+json"}, status: 413, code: fhir.IssueTooLong, contains: "max-patch-ops = 100"},
		{name: "Chinese messages", method: "GET", path: "/Patient/nope", header: []string{"Accept-Language", "zh-CN,zh;q=0.9,en;q=0.5"}, status: 404, code: fhir.IssueNotFound, contains: "不存在"},
		{name: "English by default", method: "GET", path: "/Patient/nope", status: 404, code: fhir.IssueNotFound, contains: "is not known"},
		{name: "English preferred", method: "GET", path: "/Patient/nope", header: []string{"Accept-Language", "en-GB,zh;q=0.5"}, status: 404, code: fhir.IssueNotFound, contains: "is not known"},
		{name: "Chinese validation message", method: "PUT", path: "/Patient/p1", body: `{"resourceType":"Patient","id":"p1","active":"yes"}`, header: []string{"Accept-Language", "zh"}, status: 400, code: fhir.IssueValue, contains: "元素的值类型或格式错误"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var body []byte
			if tc.body != "" || tc.method == "POST" || tc.method == "PUT" {
				body = []byte(tc.body)
			}
			hdr := tc.header
			if tc.method == "PATCH" && hdr == nil {
				hdr = []string{"Content-Type", "application/fhir+json"}
			}
			issue := outcome(t, c.Do(tc.method, tc.path, body, hdr...), tc.status, tc.code)
			if tc.expr != "" {
				exprs, _ := issue["expression"].([]any)
				if len(exprs) == 0 || exprs[0] != tc.expr {
					t.Errorf("expression %v, want %q", issue["expression"], tc.expr)
				}
			}
			if tc.contains != "" {
				text, _ := issue["details"].(map[string]any)["text"].(string)
				if !strings.Contains(text, tc.contains) {
					t.Errorf("details.text %q, want it to contain %q", text, tc.contains)
				}
			}
		})
	}
	// Under lenient handling (the default) an unknown parameter is ignored,
	// and the self link shows the search without it.
	r := c.Do("GET", "/Patient?favourite=blue&_id=p1", nil)
	if r.Status != 200 {
		t.Fatalf("lenient unknown parameter: %d %s", r.Status, r.Body)
	}
	m := r.JSON(t)
	if self := asList(m["link"])[0].(map[string]any)["url"].(string); strings.Contains(self, "favourite") || !strings.Contains(self, "_id=p1") {
		t.Errorf("self link %q should drop the ignored parameter and keep _id", self)
	}
	// The default limit is 16 MiB.
	c2, _ := open(t, newStore)
	huge := `{"resourceType":"Patient","id":"h","name":[{"text":"` + strings.Repeat("x", 17<<20) + `"}]}`
	outcome(t, c2.Do("PUT", "/Patient/h", []byte(huge)), 413, fhir.IssueTooLong)
}

// testBadInputsChangeNothing checks that failed writes leave no trace.
func testBadInputsChangeNothing(t *testing.T, newStore NewStore) {
	c, st := open(t, newStore)
	c.Do("PUT", "/Patient/p1", []byte(`{"resourceType":"Patient","id":"p1","active":true}`))
	for _, body := range []string{
		`{"resourceType":"Patient","id":"p1","active":"no"}`,
		`{"resourceType":"Patient","id":"p1","unknown":1}`,
		`{"resourceType":"Patient","id":"p1"`,
		`{"resourceType":"Observation","id":"p1"}`,
	} {
		c.Do("PUT", "/Patient/p1", []byte(body))
	}
	c.Do("PUT", "/Patient/p1", []byte(`{"resourceType":"Patient","id":"p1"}`), "If-Match", `W/"5"`)
	c.Do("PATCH", "/Patient/p1", []byte(`[{"op":"replace","path":"/active","value":"no"}]`), "Content-Type", "application/json-patch+json")
	c.Do("PATCH", "/Patient/p1", []byte(`[{"op":"remove","path":"/nothing"}]`), "Content-Type", "application/json-patch+json")
	c.Do("PUT", "/Patient/p2", []byte(`{"resourceType":"Patient","id":"p2","bad":1}`))
	r := c.Do("GET", "/Patient/p1", nil)
	if r.Status != 200 || r.Header.Get("ETag") != `W/"1"` || r.JSON(t)["active"] != true {
		t.Fatalf("after bad writes: %d %s %s", r.Status, r.Header.Get("ETag"), r.Body)
	}
	h := c.Do("GET", "/_history", nil).JSON(t)
	if n := len(h["entry"].([]any)); n != 1 {
		t.Errorf("history has %d entries after bad writes, want 1", n)
	}
	_ = st
}

func testConcurrency(t *testing.T, newStore NewStore) {
	c, _ := open(t, newStore)
	c.Do("PUT", "/Patient/p1", []byte(`{"resourceType":"Patient","id":"p1"}`))
	// Writers that all read version 1 and send If-Match W/"1": exactly one wins;
	// the others get 412 (If-Match no longer holds) or 409 (lost the race
	// between the check and the write).
	const writers = 8
	var wg sync.WaitGroup
	statuses := make([]int, writers)
	for w := 0; w < writers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			body := fmt.Sprintf(`{"resourceType":"Patient","id":"p1","name":[{"text":"writer %d"}]}`, w)
			statuses[w] = c.Do("PUT", "/Patient/p1", []byte(body), "If-Match", `W/"1"`).Status
		}()
	}
	wg.Wait()
	ok := 0
	for _, s := range statuses {
		switch s {
		case 200:
			ok++
		case 409, 412:
		default:
			t.Errorf("writer got %d, want 200, 409 or 412", s)
		}
	}
	if ok != 1 {
		t.Fatalf("%d writers won (%v), want exactly 1", ok, statuses)
	}
	if r := c.Do("GET", "/Patient/p1", nil); r.Header.Get("ETag") != `W/"2"` {
		t.Errorf("after the race: ETag %s, want version 2", r.Header.Get("ETag"))
	}
	// Without If-Match every writer gets its turn or a clean 409; none is lost silently.
	statuses = make([]int, writers)
	for w := 0; w < writers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			statuses[w] = c.Do("PUT", "/Patient/p1", []byte(`{"resourceType":"Patient","id":"p1","active":true}`)).Status
		}()
	}
	wg.Wait()
	won := 0
	for _, s := range statuses {
		if s == 200 {
			won++
		} else if s != 409 {
			t.Errorf("writer without If-Match got %d, want 200 or 409", s)
		}
	}
	r := c.Do("GET", "/Patient/p1/_history?_count=100", nil).JSON(t)
	if n := len(r["entry"].([]any)); n != 2+won {
		t.Errorf("history has %d versions, want %d (one per success)", n, 2+won)
	}
}

func testConditional(t *testing.T, newStore NewStore) {
	c, _ := open(t, newStore)
	donor := `{"resourceType":"Patient","identifier":[{"system":"http://fmtbank.org/donor-code","value":"D-0042"}],"active":true}`
	// conditional create: first creates, second finds it
	r := c.Do("POST", "/Patient", []byte(donor), "If-None-Exist", "identifier=http://fmtbank.org/donor-code|D-0042")
	if r.Status != 201 {
		t.Fatalf("conditional create: %d %s", r.Status, r.Body)
	}
	id := r.JSON(t)["id"].(string)
	r = c.Do("POST", "/Patient", []byte(donor), "If-None-Exist", "identifier=http://fmtbank.org/donor-code|D-0042")
	if r.Status != 200 || r.JSON(t)["id"] != id {
		t.Fatalf("conditional create, existing: %d %s", r.Status, r.Body)
	}
	if r = c.Do("POST", "/Patient", []byte(donor), "If-None-Exist", "_id="+id); r.Status != 200 {
		t.Errorf("conditional create on _id: %d", r.Status)
	}
	// a second donor with the same code makes the condition ambiguous
	c.Do("PUT", "/Patient/dup", []byte(`{"resourceType":"Patient","id":"dup","identifier":[{"system":"http://fmtbank.org/donor-code","value":"D-0042"}]}`))
	outcome(t, c.Do("POST", "/Patient", []byte(donor), "If-None-Exist", "identifier=D-0042"), 412, fhir.IssueConflict)
	outcome(t, c.Do("POST", "/Patient", []byte(donor), "If-None-Exist", "colour=blue"), 400, fhir.IssueNotSupported)

	// conditional update: one match updates it, none creates, many is 412
	r = c.Do("PUT", "/Patient?_id="+id, []byte(strings.Replace(donor, `"active":true`, `"active":false`, 1)))
	if r.Status != 200 || r.JSON(t)["id"] != id || r.Header.Get("ETag") != `W/"2"` {
		t.Fatalf("conditional update: %d %s", r.Status, r.Body)
	}
	r = c.Do("PUT", "/Patient?identifier=urn:x|new", []byte(`{"resourceType":"Patient","identifier":[{"system":"urn:x","value":"new"}]}`))
	if r.Status != 201 {
		t.Fatalf("conditional update, no match: %d %s", r.Status, r.Body)
	}
	outcome(t, c.Do("PUT", "/Patient?identifier=D-0042", []byte(`{"resourceType":"Patient"}`)), 412, fhir.IssueConflict)
	outcome(t, c.Do("PUT", "/Patient?_id="+id, []byte(`{"resourceType":"Patient","id":"other"}`)), 400, fhir.IssueInvalid)

	// conditional delete
	outcome(t, c.Do("DELETE", "/Patient?identifier=D-0042", nil), 412, fhir.IssueConflict)
	if r = c.Do("DELETE", "/Patient?identifier=urn:x|new", nil); r.Status != 204 {
		t.Errorf("conditional delete: %d %s", r.Status, r.Body)
	}
	if r = c.Do("DELETE", "/Patient?identifier=urn:x|gone-already", nil); r.Status != 204 {
		t.Errorf("conditional delete, no match: %d %s", r.Status, r.Body)
	}
	if m := c.Do("GET", "/Patient?identifier=urn:x|new", nil).JSON(t); m["total"].(float64) != 0 {
		t.Errorf("deleted resource still found: %v", m)
	}
	_ = store.ErrConflict
}

func testPatch(t *testing.T, newStore NewStore) {
	c, _ := open(t, newStore)
	c.Do("PUT", "/AdverseEvent/ae1", []byte(`{"resourceType":"AdverseEvent","id":"ae1","actuality":"actual","subject":{"reference":"Patient/p1"}}`))
	jp := []string{"Content-Type", "application/json-patch+json"}
	r := c.Do("PATCH", "/AdverseEvent/ae1", []byte(`[{"op":"add","path":"/seriousness","value":{"text":"非严重"}}]`), jp...)
	if r.Status != 200 || r.Header.Get("ETag") != `W/"2"` {
		t.Fatalf("patch: %d %s", r.Status, r.Body)
	}
	if got := r.JSON(t)["seriousness"].(map[string]any)["text"]; got != "非严重" {
		t.Errorf("patched value %v", got)
	}
	// If-Match honoured
	outcome(t, c.Do("PATCH", "/AdverseEvent/ae1", []byte(`[{"op":"remove","path":"/seriousness"}]`), append(jp, "If-Match", `W/"1"`)...), 412, fhir.IssueConflict)
	// a patch that makes the resource invalid is 422, and changes nothing
	outcome(t, c.Do("PATCH", "/AdverseEvent/ae1", []byte(`[{"op":"remove","path":"/actuality"}]`), jp...), 422, fhir.IssueRequired)
	outcome(t, c.Do("PATCH", "/AdverseEvent/ae1", []byte(`[{"op":"replace","path":"/id","value":"other"}]`), jp...), 422, fhir.IssueInvalid)
	outcome(t, c.Do("PATCH", "/AdverseEvent/ae1", []byte(`[{"op":"test","path":"/actuality","value":"potential"}]`), jp...), 422, fhir.IssueProcessing)
	outcome(t, c.Do("PATCH", "/AdverseEvent/ae1", []byte(`{"op":"add"}`), jp...), 400, fhir.IssueStructure)
	outcome(t, c.Do("PATCH", "/AdverseEvent/none", []byte(`[{"op":"remove","path":"/seriousness"}]`), jp...), 404, fhir.IssueNotFound)
	if r = c.Do("GET", "/AdverseEvent/ae1", nil); r.Header.Get("ETag") != `W/"2"` {
		t.Errorf("failed patches changed the resource: %s", r.Header.Get("ETag"))
	}
	// A patch that changes nothing (or only what the server sets: meta)
	// makes no new version: 200 with the current one.
	for _, body := range []string{
		`[{"op":"replace","path":"/actuality","value":"actual"}]`,
		`[{"op":"test","path":"/actuality","value":"actual"}]`,
		`[{"op":"add","path":"/meta/versionId","value":"7"}]`,
		`[{"op":"remove","path":"/seriousness"},{"op":"add","path":"/seriousness","value":{"text":"非严重"}}]`,
	} {
		r = c.Do("PATCH", "/AdverseEvent/ae1", []byte(body), jp...)
		if r.Status != 200 || r.Header.Get("ETag") != `W/"2"` || r.JSON(t)["meta"].(map[string]any)["versionId"] != "2" {
			t.Errorf("no-op patch %s: %d %s %s, want 200 at version 2", body, r.Status, r.Header.Get("ETag"), r.Body)
		}
	}
	if n := len(c.Do("GET", "/AdverseEvent/ae1/_history", nil).JSON(t)["entry"].([]any)); n != 2 {
		t.Errorf("history has %d versions after no-op patches, want 2", n)
	}
	// at the operation limit (100) a patch applies
	ops := `[` + strings.Repeat(`{"op":"test","path":"/actuality","value":"actual"},`, 99) + `{"op":"remove","path":"/seriousness"}]`
	if r = c.Do("PATCH", "/AdverseEvent/ae1", []byte(ops), jp...); r.Status != 200 || r.Header.Get("ETag") != `W/"3"` {
		t.Errorf("patch of 100 operations: %d %s", r.Status, r.Body)
	}
}

func testPrefer(t *testing.T, newStore NewStore) {
	c, _ := open(t, newStore)
	body := []byte(`{"resourceType":"Procedure","status":"completed","subject":{"reference":"Patient/p1"}}`)
	r := c.Do("POST", "/Procedure", body, "Prefer", "return=minimal")
	if r.Status != 201 || len(r.Body) != 0 || r.Header.Get("Location") == "" || r.Header.Get("ETag") != `W/"1"` {
		t.Errorf("return=minimal: %d %q %v", r.Status, r.Body, r.Header)
	}
	r = c.Do("POST", "/Procedure", body, "Prefer", "return=OperationOutcome")
	if r.Status != 201 || r.JSON(t)["resourceType"] != "OperationOutcome" {
		t.Errorf("return=OperationOutcome: %d %s", r.Status, r.Body)
	}
	r = c.Do("POST", "/Procedure", body, "Prefer", "return=representation")
	if r.Status != 201 || r.JSON(t)["resourceType"] != "Procedure" {
		t.Errorf("return=representation: %d %s", r.Status, r.Body)
	}
}

func testHistory(t *testing.T, newStore NewStore) {
	c, _ := open(t, newStore, func(o *rest.Options) { o.Now = fixedClock() })
	c.Do("PUT", "/Patient/a", []byte(`{"resourceType":"Patient","id":"a"}`))               // 05:06:08
	c.Do("PUT", "/Specimen/s", []byte(`{"resourceType":"Specimen","id":"s"}`))             // 05:06:09
	c.Do("PUT", "/Patient/a", []byte(`{"resourceType":"Patient","id":"a","active":true}`)) // 05:06:10
	c.Do("DELETE", "/Patient/a", nil)                                                      // 05:06:11
	entries := func(path string) ([]string, map[string]any) {
		t.Helper()
		r := c.Do("GET", path, nil)
		if r.Status != 200 {
			t.Fatalf("%s: %d %s", path, r.Status, r.Body)
		}
		m := r.JSON(t)
		if m["type"] != "history" {
			t.Fatalf("%s: bundle type %v", path, m["type"])
		}
		var out []string
		for _, e := range asList(m["entry"]) {
			e := e.(map[string]any)
			req := e["request"].(map[string]any)
			resp := e["response"].(map[string]any)
			out = append(out, fmt.Sprintf("%s %s %s", req["method"], req["url"], resp["etag"]))
		}
		return out, m
	}
	// Created by PUT, so PUT in the history too (the store records the method).
	want := []string{`DELETE Patient/a W/"3"`, `PUT Patient/a W/"2"`, `PUT Specimen/s W/"1"`, `PUT Patient/a W/"1"`}
	got, _ := entries("/_history")
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("system history %v, want %v", got, want)
	}
	got, _ = entries("/Patient/_history")
	if fmt.Sprint(got) != fmt.Sprint([]string{want[0], want[1], want[3]}) {
		t.Errorf("type history %v", got)
	}
	got, _ = entries("/Patient/a/_history?_since=2026-03-04T05:06:10Z")
	if fmt.Sprint(got) != fmt.Sprint(want[:2]) {
		t.Errorf("instance history _since %v", got)
	}
	// paging with next links until the end
	var all []string
	next := "/_history?_count=1"
	for i := 0; next != ""; i++ {
		if i > 10 {
			t.Fatal("paging does not end")
		}
		page, m := entries(next)
		all = append(all, page...)
		next = ""
		for _, l := range asList(m["link"]) {
			if l := l.(map[string]any); l["relation"] == "next" {
				next = l["url"].(string)
			}
		}
	}
	if fmt.Sprint(all) != fmt.Sprint(want) {
		t.Errorf("paged history %v, want %v", all, want)
	}
	outcome(t, c.Do("GET", "/Patient/zzz/_history", nil), 404, fhir.IssueNotFound)
	// the deleted entry carries no resource
	_, m := entries("/Patient/a/_history")
	if first := asList(m["entry"])[0].(map[string]any); first["resource"] != nil {
		t.Errorf("tombstone entry has a resource: %v", first)
	}
}

func asList(v any) []any {
	l, _ := v.([]any)
	return l
}

func testNegotiation(t *testing.T, newStore NewStore) {
	c, _ := open(t, newStore)
	c.Do("PUT", "/Patient/p1", []byte(`{"resourceType":"Patient","id":"p1"}`))
	for _, tc := range []struct {
		name   string
		path   string
		header []string
		status int
		ct     string
	}{
		{"default", "/Patient/p1", nil, 200, "application/fhir+json"},
		{"fhir+json", "/Patient/p1", []string{"Accept", "application/fhir+json"}, 200, "application/fhir+json"},
		{"json", "/Patient/p1", []string{"Accept", "application/json"}, 200, "application/json"},
		{"browser", "/Patient/p1", []string{"Accept", "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"}, 200, "application/fhir+json"},
		{"_format=json", "/Patient/p1?_format=json", nil, 200, "application/fhir+json"},
		{"_format=fhir+json", "/Patient/p1?_format=application/fhir%2Bjson", nil, 200, "application/fhir+json"},
		{"xml only", "/Patient/p1", []string{"Accept", "application/xml"}, 406, "application/fhir+json"},
		{"_format=xml", "/Patient/p1?_format=application/fhir%2Bxml", nil, 406, "application/fhir+json"},
		{"_format wins over Accept", "/Patient/p1?_format=json", []string{"Accept", "application/fhir+xml"}, 200, "application/fhir+json"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := c.Do("GET", tc.path, nil, tc.header...)
			if r.Status != tc.status || !strings.HasPrefix(r.Header.Get("Content-Type"), tc.ct) {
				t.Errorf("%d %q, want %d %q", r.Status, r.Header.Get("Content-Type"), tc.status, tc.ct)
			}
		})
	}
	// Create accepts application/json bodies too.
	if r := c.Do("POST", "/Patient", []byte(`{"resourceType":"Patient"}`), "Content-Type", "application/json; charset=utf-8"); r.Status != 201 {
		t.Errorf("create with application/json: %d", r.Status)
	}
}

func testMetadata(t *testing.T, newStore NewStore) {
	c, _ := open(t, newStore)
	r := c.Do("GET", "/metadata", nil)
	codec, _ := fhir.NewCodec()
	res, err := codec.Parse(r.Body)
	if r.Status != 200 || err != nil || res.Type != "CapabilityStatement" {
		t.Fatalf("metadata: %d %v %.300s", r.Status, err, r.Body)
	}
	m := r.JSON(t)
	if m["fhirVersion"] != "4.0.1" {
		t.Errorf("fhirVersion %v", m["fhirVersion"])
	}
	rest0 := m["rest"].([]any)[0].(map[string]any)
	resources := rest0["resource"].([]any)
	if len(resources) != 146 {
		t.Errorf("%d resource types, want all 146 of R4", len(resources))
	}
	// Every interaction it claims for Patient answers (no 404/405).
	byType := map[string]map[string]any{}
	for _, x := range resources {
		x := x.(map[string]any)
		byType[x["type"].(string)] = x
	}
	var codes []string
	for _, i := range byType["Patient"]["interaction"].([]any) {
		codes = append(codes, i.(map[string]any)["code"].(string))
	}
	wantCodes := "[search-type create update delete history-type read patch history-instance vread]"
	if fmt.Sprint(codes) != wantCodes {
		t.Errorf("Patient interactions %v, want %s", codes, wantCodes)
	}
	var system []string
	for _, i := range rest0["interaction"].([]any) {
		system = append(system, i.(map[string]any)["code"].(string))
	}
	if fmt.Sprint(system) != "[history-system search-system transaction batch]" {
		t.Errorf("system interactions %v, want [history-system search-system transaction batch]", system)
	}
	for _, path := range []string{"/_history", "?_type=Patient"} {
		if r := c.Do("GET", path, nil); r.Status != 200 {
			t.Errorf("claimed system interaction GET %s answers %d", path, r.Status)
		}
	}
	for _, typ := range []string{"transaction", "batch"} {
		if r := c.Do("POST", "", []byte(`{"resourceType":"Bundle","type":"`+typ+`"}`)); r.Status != 200 {
			t.Errorf("claimed system interaction %s answers %d: %.300s", typ, r.Status, r.Body)
		}
	}
	c.Do("PUT", "/Patient/p", []byte(`{"resourceType":"Patient","id":"p"}`))
	probe := map[string][2]string{
		"read": {"GET", "/Patient/p"}, "vread": {"GET", "/Patient/p/_history/1"}, "search-type": {"GET", "/Patient"},
		"history-type": {"GET", "/Patient/_history"}, "history-instance": {"GET", "/Patient/p/_history"},
		"update": {"PUT", "/Patient/p"}, "create": {"POST", "/Patient"}, "patch": {"PATCH", "/Patient/p"}, "delete": {"DELETE", "/Patient/q"},
	}
	for _, code := range codes {
		p := probe[code]
		r := c.Do(p[0], p[1], []byte(`{}`))
		if r.Status == 404 && code != "delete" || r.Status == 405 {
			t.Errorf("claimed interaction %s answers %d", code, r.Status)
		}
	}
}

func testTenants(t *testing.T, newStore NewStore) {
	st := newStore(t)
	t.Cleanup(func() { st.Close() })
	h1 := Serve(t, st)
	h2 := Serve(t, st, func(o *rest.Options) { o.Auth = fixedTenant("t2") })
	h1.Do("PUT", "/Patient/mine", []byte(`{"resourceType":"Patient","id":"mine","identifier":[{"value":"X"}]}`))
	outcome(t, h2.Do("GET", "/Patient/mine", nil), 404, fhir.IssueNotFound)
	outcome(t, h2.Do("GET", "/Patient/mine/_history/1", nil), 404, fhir.IssueNotFound)
	outcome(t, h2.Do("GET", "/Patient/mine/_history", nil), 404, fhir.IssueNotFound)
	outcome(t, h2.Do("DELETE", "/Patient/mine", nil), 404, fhir.IssueNotFound)
	outcome(t, h2.Do("PATCH", "/Patient/mine", []byte(`[{"op":"remove","path":"/identifier"}]`), "Content-Type", "application/json-patch+json"), 404, fhir.IssueNotFound)
	// Taking another tenant's id is refused, without showing its data.
	r := h2.Do("PUT", "/Patient/mine", []byte(`{"resourceType":"Patient","id":"mine"}`))
	outcome(t, r, 409, fhir.IssueConflict)
	// Retrying cannot help, so the answer must not advise it.
	if bytes.Contains(bytes.ToLower(r.Body), []byte("retry")) || !bytes.Contains(r.Body, []byte("another id")) {
		t.Errorf("PUT to another tenant's id: %s", r.Body)
	}
	if m := h2.Do("GET", "/Patient?identifier=X", nil).JSON(t); m["total"].(float64) != 0 {
		t.Errorf("other tenant's search found %v", m["total"])
	}
	if m := h2.Do("GET", "/_history", nil).JSON(t); len(asList(m["entry"])) != 0 {
		t.Errorf("other tenant's history shows %v", m["entry"])
	}
	if r := h1.Do("GET", "/Patient/mine", nil); r.Status != 200 || r.Header.Get("ETag") != `W/"1"` {
		t.Errorf("owner read: %d %s", r.Status, r.Header.Get("ETag"))
	}
}
