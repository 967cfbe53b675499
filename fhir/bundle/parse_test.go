package bundle

import (
	"errors"
	"net/http"
	"strings"
	"testing"

	"github.com/fmtbank/cmts/fhir"
	"github.com/google/go-cmp/cmp"
)

func isType(s string) bool { return s == "Patient" || s == "Observation" }

func TestParseErrors(t *testing.T) {
	for _, tc := range []struct {
		name, body string
		status     int
		expr       string
	}{
		{"not a bundle", `{"resourceType":"Patient"}`, 400, "Bundle.type"},
		{"a collection", `{"resourceType":"Bundle","type":"collection"}`, 400, "Bundle.type"},
		{"no request", `{"resourceType":"Bundle","type":"batch","entry":[{"resource":{"resourceType":"Patient"}}]}`, 400, "Bundle.entry[0].request"},
		{"unknown method", `{"resourceType":"Bundle","type":"batch","entry":[{"request":{"method":"FROB","url":"Patient"}}]}`, 400, "Bundle.entry[0].request.method"},
		{"unknown type", `{"resourceType":"Bundle","type":"batch","entry":[{"request":{"method":"GET","url":"Frob/1"}}]}`, 400, "Bundle.entry[0].request.url"},
		{"POST without a resource", `{"resourceType":"Bundle","type":"transaction","entry":[{"request":{"method":"POST","url":"Patient"}}]}`, 400, "Bundle.entry[0].resource"},
		{"DELETE with a resource", `{"resourceType":"Bundle","type":"transaction","entry":[{"resource":{"resourceType":"Patient"},"request":{"method":"DELETE","url":"Patient/1"}}]}`, 400, "Bundle.entry[0].resource"},
		{"PUT without an id", `{"resourceType":"Bundle","type":"transaction","entry":[{"resource":{"resourceType":"Patient"},"request":{"method":"PUT","url":"Patient"}}]}`, 400, "Bundle.entry[0].request.url"},
		{"POST with a query", `{"resourceType":"Bundle","type":"transaction","entry":[{"resource":{"resourceType":"Patient"},"request":{"method":"POST","url":"Patient?x=1"}}]}`, 400, "Bundle.entry[0].request.url"},
		{"duplicate fullUrl", `{"resourceType":"Bundle","type":"transaction","entry":[
			{"fullUrl":"urn:uuid:1","resource":{"resourceType":"Patient"},"request":{"method":"POST","url":"Patient"}},
			{"fullUrl":"urn:uuid:1","resource":{"resourceType":"Patient"},"request":{"method":"POST","url":"Patient"}}]}`, 400, "Bundle.entry[1].fullUrl"},
		{"too many entries", `{"resourceType":"Bundle","type":"batch","entry":[` + strings.Repeat(`{"request":{"method":"GET","url":"Patient"}},`, 3) + `{"request":{"method":"GET","url":"Patient"}}]}`, 413, "Bundle.entry"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(tc.body), 3, isType)
			var fe *fhir.Error
			if !errors.As(err, &fe) {
				t.Fatalf("err = %v, want a *fhir.Error", err)
			}
			if fe.Status != tc.status || len(fe.Issues) == 0 || len(fe.Issues[0].Expression) == 0 || fe.Issues[0].Expression[0] != tc.expr {
				t.Errorf("got %d %+v, want %d at %s", fe.Status, fe.Issues, tc.status, tc.expr)
			}
		})
	}
}

func TestParseAndOrder(t *testing.T) {
	body := `{"resourceType":"Bundle","type":"transaction","entry":[
		{"request":{"method":"GET","url":"Patient?name=x"}},
		{"resource":{"resourceType":"Patient","id":"a"},"request":{"method":"PUT","url":"Patient/a","ifMatch":"W/\"1\""}},
		{"fullUrl":"urn:uuid:p","resource":{"resourceType":"Patient"},"request":{"method":"post","url":"Patient","ifNoneExist":"identifier=s|v"}},
		{"request":{"method":"DELETE","url":"Observation?code=x"}},
		{"resource":{"resourceType":"Binary"},"request":{"method":"PATCH","url":"Patient/b"}},
		{"request":{"method":"DELETE","url":"Patient/c"}}]}`
	req, err := Parse([]byte(body), 100, isType)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range req.Ordered() {
		got = append(got, e.Method+" "+e.URL)
	}
	want := []string{"DELETE Observation?code=x", "DELETE Patient/c", "POST Patient", "PUT Patient/a", "PATCH Patient/b", "GET Patient?name=x"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("order (-want +got):\n%s", diff)
	}
	post := req.Entries[2]
	if post.Index != 2 || post.IfNoneExist != "identifier=s|v" || post.FullURL != "urn:uuid:p" || post.Type != "Patient" {
		t.Errorf("POST entry: %+v", post)
	}
	if del := req.Entries[3]; del.Query.Get("code") != "x" || del.ID != "" {
		t.Errorf("conditional DELETE: %+v", del)
	}
	if put := req.Entries[1]; put.ID != "a" || put.IfMatch != `W/"1"` || put.Method != http.MethodPut {
		t.Errorf("PUT entry: %+v", put)
	}
}

// TestParseUnreadable checks that a Bundle whose members have the wrong
// JSON types cannot be read, as encoding/json would refuse it.
func TestParseUnreadable(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ name, body string }{
		{"not an object", `[1]`},
		{"type a number", `{"resourceType":"Bundle","type":1}`},
		{"entry an object", `{"resourceType":"Bundle","type":"batch","entry":{}}`},
		{"an entry a string", `{"resourceType":"Bundle","type":"batch","entry":["x"]}`},
		{"fullUrl a number", `{"resourceType":"Bundle","type":"batch","entry":[{"fullUrl":1,"request":{"method":"GET","url":"Patient"}}]}`},
		{"request an array", `{"resourceType":"Bundle","type":"batch","entry":[{"request":[]}]}`},
		{"method a boolean", `{"resourceType":"Bundle","type":"batch","entry":[{"request":{"method":true,"url":"Patient"}}]}`},
		{"trailing text", `{"resourceType":"Bundle","type":"batch"} x`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(tc.body), 10, isType)
			var fe *fhir.Error
			if !errors.As(err, &fe) || fe.Status != http.StatusBadRequest || fe.Issues[0].Code != fhir.IssueStructure {
				t.Errorf("err = %v, want a 400 structure issue", err)
			}
		})
	}
}

// TestParseInPlace checks what Parse reads as encoding/json would (escapes,
// nulls, members it does not use) and that each resource is the request
// body's own bytes, not a copy.
func TestParseInPlace(t *testing.T) {
	t.Parallel()
	body := []byte(`{"resourceType":"Bundle","id":"b","type":"transaction","link":[{"relation":"self","url":"x"}],"entry":[
		{"fullUrl":"urn:uuid:\u0031","resource":{"resourceType":"Patient","name":[{"text":"a\"b"}]},"search":{"mode":"match"},
		 "request":{"url":"Patient","method":"POST","ifNoneExist":null,"extension":[]}},
		{"resource":null,"request":{"method":"DELETE","url":"Patient/x"},"response":{"status":"200"}},
		{"resource" : {"resourceType":"Observation"} , "request" : {"method":"PUT","url":"Observation/o","ifMatch":"W/\"2\""}}]}`)
	req, err := Parse(body, 10, isType)
	if err != nil {
		t.Fatal(err)
	}
	type got struct{ FullURL, Method, URL, IfMatch, Resource string }
	var gots []got
	for _, e := range req.Entries {
		gots = append(gots, got{e.FullURL, e.Method, e.URL, e.IfMatch, string(e.Resource)})
	}
	want := []got{
		{"urn:uuid:1", "POST", "Patient", "", `{"resourceType":"Patient","name":[{"text":"a\"b"}]}`},
		{"", "DELETE", "Patient/x", "", ""},
		{"", "PUT", "Observation/o", `W/"2"`, `{"resourceType":"Observation"}`},
	}
	if diff := cmp.Diff(want, gots); diff != "" {
		t.Errorf("entries (-want +got):\n%s", diff)
	}
	if r := req.Entries[0].Resource; &r[0] != &body[strings.Index(string(body), `{"resourceType":"Patient"`)] {
		t.Errorf("the resource is a copy, not the body's own bytes")
	}
	if req.Entries[1].Resource != nil {
		t.Errorf("a null resource is %q, want nil", req.Entries[1].Resource)
	}
}
