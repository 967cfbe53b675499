package resttest

import (
	"context"
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/fmtbank/cmts/auth/audit"
	"github.com/fmtbank/cmts/auth/policy"
	"github.com/fmtbank/cmts/fhir"
	"github.com/fmtbank/cmts/fhir/rest"
	"github.com/fmtbank/cmts/profiles"
)

// consultationTask is a cmts-consultation Task of hospital A for its
// recipient ra1, addressed to the tenant centre, with status and the
// elements in extra (JSON members, each followed by a comma).
func consultationTask(id, status, centre, extra string) string {
	return `{"resourceType":"Task","id":"` + id + `","meta":{"profile":["` + sd + `cmts-consultation"]},` +
		`"status":"` + status + `","intent":"order",` + extra +
		`"code":{"coding":[{"system":"http://fmtbank.org/fhir/CodeSystem/consultation","code":"expert-consultation"}]},` +
		`"for":{"reference":"Patient/ra1"},` +
		`"owner":{"reference":"Organization/` + centre + `","identifier":{"system":"` + policy.TenantSystem + `","value":"` + centre + `"}},` +
		`"input":[{"type":{"text":"clinical question"},"valueString":"QUESTION: refractory ulcerative colitis, is WMT indicated?"},` +
		`{"type":{"text":"social and economic situation"},"valueString":"SITUATION: rural household, low income"}]}`
}

// testConsultation is the consultation workflow of wmt-ig.md with the real
// policy, the guide's rules and the audit hook: hospital A asks expert
// centre C; C alone besides A reads and finds the request (in full; the
// recipient stays A's), accepts it, works on it and completes it with its
// advice, changing nothing A wrote; illegal steps are refused with a
// bilingual OperationOutcome; every change C makes is in C's audit trail,
// naming the Task version and C's user.
func testConsultation(t *testing.T, newStore NewStore) {
	st := newStore(t)
	t.Cleanup(func() { st.Close() })
	defs, err := profiles.Embedded()
	if err != nil {
		t.Fatal(err)
	}
	guide, err := profiles.NewService(defs, st, false)
	if err != nil {
		t.Fatal(err)
	}
	_, engine := codecAndEngine(t)
	maker := &audit.Maker{Server: audit.Server{BaseURL: "https://cmts.test/fhir"}, Indexer: engine}
	batcher, err := audit.NewBatcher(audit.BatcherOptions{Store: st, Maker: maker, Delay: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		batcher.Close(ctx)
	})
	hook, err := audit.NewHook(maker, batcher)
	if err != nil {
		t.Fatal(err)
	}
	centre := testPrincipal("centre-c", fhir.TenantHospital, "", []fhir.Role{fhir.RoleClinician}, "user/*.cruds")
	centre.Subject, centre.Issuer = "dr-wang", "https://idp.centre-c.example"
	tokens := bearerPrincipals{
		"ha":       testPrincipal("hospital-a", fhir.TenantHospital, "", []fhir.Role{fhir.RoleClinician}, "user/*.cruds"),
		"hb":       testPrincipal("hospital-b", fhir.TenantHospital, "", []fhir.Role{fhir.RoleClinician}, "user/*.cruds"),
		"cc":       centre,
		"cd":       testPrincipal("centre-d", fhir.TenantHospital, "", []fhir.Role{fhir.RoleClinician}, "user/*.cruds"),
		"cc-admin": testPrincipal("centre-c", fhir.TenantHospital, "", []fhir.Role{fhir.RoleAdmin}, "user/*.rs"),
		"reg":      testPrincipal("nhc", fhir.TenantAuthority, "", []fhir.Role{fhir.RoleRegulator}, "user/*.rs"),
	}
	c := Serve(t, st, func(o *rest.Options) {
		o.Auth, o.Validator, o.Audit, o.Auditor = tokens, guide, batcher, hook
	})
	as := func(tok string) []string { return []string{"Authorization", "Bearer " + tok} }
	do := func(tok, method, path, body string, want int) *Response {
		t.Helper()
		var b []byte
		if body != "" {
			b = []byte(body)
		}
		r := c.Do(method, path, b, as(tok)...)
		if r.Status != want {
			t.Fatalf("%s %s %s: %d, want %d: %.600s", tok, method, path, r.Status, want, r.Body)
		}
		return r
	}
	// refuse sends a request that must be refused with status, twice (a
	// refusal changes nothing): its OperationOutcome names an issue at
	// path, in English by default and in Chinese for Accept-Language zh-CN.
	refuse := func(tok, method, path, body string, status int, at string) {
		t.Helper()
		for _, lang := range []string{"en", "zh-CN"} {
			r := c.Do(method, path, []byte(body), append(as(tok), "Accept-Language", lang)...)
			if r.Status != status {
				t.Fatalf("%s %s %s (%s): %d, want %d: %.600s", tok, method, path, lang, r.Status, status, r.Body)
			}
			var oo struct {
				ResourceType string
				Issue        []struct {
					Severity   string
					Details    struct{ Text string }
					Expression []string
				}
			}
			if err := json.Unmarshal(r.Body, &oo); err != nil || oo.ResourceType != "OperationOutcome" {
				t.Fatalf("refusal is not an OperationOutcome (%v): %.400s", err, r.Body)
			}
			found := false
			for _, is := range oo.Issue {
				if is.Severity != "error" || !slices.Contains(is.Expression, at) {
					continue
				}
				found = true
				han := strings.ContainsFunc(is.Details.Text, func(r rune) bool { return r >= 0x4e00 && r <= 0x9fff })
				if han != (lang == "zh-CN") {
					t.Errorf("%s %s (%s): the issue at %s reads %q", method, path, lang, at, is.Details.Text)
				}
			}
			if !found {
				t.Errorf("%s %s (%s): no error at %s: %.400s", method, path, lang, at, r.Body)
			}
		}
	}

	do("ha", "PUT", "/Patient/ra1", `{"resourceType":"Patient","id":"ra1","meta":{"profile":["`+sd+`cmts-recipient"]},`+
		`"identifier":[{"system":"`+sid+`recipient-code","value":"R-A1"}],"name":[{"family":"PIIRA1"}],"gender":"female","birthDate":"1950-03-04"}`, 201)
	do("ha", "PUT", "/Task/k1", consultationTask("k1", "requested", "centre-c", ""), 201)
	do("ha", "PUT", "/Task/k2", consultationTask("k2", "requested", "centre-d", ""), 201)

	// Visibility.
	{
		r := do("cc", "GET", "/Task/k1", "", 200)
		for _, want := range []string{"QUESTION", "SITUATION", `"versionId":"1"`} {
			if !strings.Contains(string(r.Body), want) {
				t.Errorf("the centre's read lacks %s (it reads the request as written): %.600s", want, r.Body)
			}
		}
		do("cc", "GET", "/Task/k2", "", 404)
		do("cc", "GET", "/Patient/ra1", "", 404)
		do("hb", "GET", "/Task/k1", "", 404)
		do("cd", "GET", "/Task/k1", "", 404)
		do("cd", "GET", "/Task/k2", "", 200)
		for _, tc := range []struct {
			tok, query string
			want       int
		}{
			{"cc", "/Task?owner=Organization/centre-c&status=requested", 1},
			{"cc", "/Task?owner:identifier=" + policy.TenantSystem + "|centre-c", 1},
			{"cc", "/Task", 1},
			{"cc", "/Task?_id=k1,k2", 1},
			{"cc", "/Task?status=accepted", 0},
			{"cc", "/Patient", 0},
			{"cc", "/Task?_include=Task:patient", 1},
			{"hb", "/Task", 0},
			{"ha", "/Task?status=requested", 2},
			{"cd", "/Task?owner=Organization/centre-d", 1},
		} {
			b := do(tc.tok, "GET", tc.query, "", 200).JSON(t)
			entries, _ := b["entry"].([]any)
			if len(entries) != tc.want {
				t.Errorf("%s %s: %d entries, want %d", tc.tok, tc.query, len(entries), tc.want)
			}
		}
		// The regulator reads it de-identified, as every other resource.
		if r := do("reg", "GET", "/Task/k1", "", 200); strings.Contains(string(r.Body), "QUESTION") {
			t.Errorf("the regulator reads the question's free text: %.400s", r.Body)
		}
	}

	// Workflow.
	{
		// What the hospital may not do: create a consultation the router
		// cannot deliver, or one already completed, or act for the centre.
		noTenant := strings.Replace(consultationTask("k3", "requested", "centre-c", ""), `,"identifier":{"system":"`+policy.TenantSystem+`","value":"centre-c"}`, "", 1)
		refuse("ha", "PUT", "/Task/k3", noTenant, 422, "Task.owner.identifier")
		refuse("ha", "PUT", "/Task/k3", consultationTask("k3", "completed", "centre-c", `"output":[{"type":{"text":"advice"},"valueString":"x"}],`), 422, "Task.status")
		refuse("ha", "PUT", "/Task/k1", consultationTask("k1", "accepted", "centre-c", ""), 403, "Task.status")

		// The centre accepts, works, completes; the version stays A's.
		steps := []struct {
			status, extra string
			want          int
			path          string
		}{
			{"accepted", `"businessStatus":{"text":"triaged"},`, 200, ""},
			{"requested", "", 422, "Task.status"},
			{"cancelled", "", 403, "Task.status"},
			{"in-progress", "PATCH", 200, ""},
			{"completed", "", 422, "Task.output"},
			{"completed", `"output":[{"type":{"text":"advice"},"valueString":"ADVICE: WMT by colonic TET, 3 courses"}],`, 200, ""},
			{"in-progress", "", 422, "Task.status"},
		}
		for _, s := range steps {
			if s.extra == "PATCH" {
				// The same by JSON Patch.
				patch := `[{"op":"replace","path":"/status","value":"` + s.status + `"},{"op":"add","path":"/note","value":[{"text":"reviewing"}]}]`
				if r := c.Do("PATCH", "/Task/k1", []byte(patch), append(as("cc"), "Content-Type", "application/json-patch+json")...); r.Status != s.want {
					t.Fatalf("cc PATCH /Task/k1: %d, want %d: %.600s", r.Status, s.want, r.Body)
				}
				continue
			}
			body := consultationTask("k1", s.status, "centre-c", s.extra)
			if s.path != "" {
				refuse("cc", "PUT", "/Task/k1", body, s.want, s.path)
				continue
			}
			do("cc", "PUT", "/Task/k1", body, s.want)
		}
		// Changing what the hospital wrote: the question, the patient, the
		// addressee; deleting.
		edits := map[string]string{
			"Task.input": strings.Replace(consultationTask("k1", "completed", "centre-c", ""), "QUESTION", "EDITED", 1),
			"Task.for":   strings.Replace(consultationTask("k1", "completed", "centre-c", ""), "Patient/ra1", "Patient/other", 1),
			"Task.owner": strings.Replace(consultationTask("k1", "completed", "centre-c", ""), `"Organization/centre-c"`, `"Organization/centre-x"`, 1),
		}
		for path, body := range edits {
			body = strings.Replace(body, `"intent":"order",`, `"intent":"order","output":[{"type":{"text":"advice"},"valueString":"ADVICE: WMT by colonic TET, 3 courses"}],`, 1)
			refuse("cc", "PUT", "/Task/k1", body, 403, path)
		}
		edit := `[{"op":"replace","path":"/input/0/valueString","value":"EDITED"}]`
		if r := c.Do("PATCH", "/Task/k1", []byte(edit), append(as("cc"), "Content-Type", "application/json-patch+json")...); r.Status != 403 {
			t.Errorf("cc PATCH of Task.input: %d, want 403: %.400s", r.Status, r.Body)
		}
		do("cc", "DELETE", "/Task/k1", "", 403)

		// The hospital reads the advice in its own resource; it cannot
		// reopen the request.
		r := do("ha", "GET", "/Task/k1", "", 200)
		for _, want := range []string{"ADVICE", `"status":"completed"`, `"versionId":"4"`} {
			if !strings.Contains(string(r.Body), want) {
				t.Errorf("the hospital's read lacks %s: %.600s", want, r.Body)
			}
		}
		refuse("ha", "PUT", "/Task/k1", consultationTask("k1", "requested", "centre-c", `"output":[{"type":{"text":"advice"},"valueString":"x"}],`), 422, "Task.status")
		do("hb", "PUT", "/Task/k1", consultationTask("k1", "requested", "centre-c", ""), 409)
		if entries, _ := do("ha", "GET", "/Task/k1/_history", "", 200).JSON(t)["entry"].([]any); len(entries) != 4 {
			t.Errorf("history has %d versions, want 4", len(entries))
		}
	}

	// Audit.
	{
		// Each change the centre made is an AuditEvent in its trail, in
		// the write's own transaction, naming the version and its user.
		want := map[string]bool{"Task/k1/_history/2": false, "Task/k1/_history/3": false, "Task/k1/_history/4": false}
		b := do("cc-admin", "GET", "/AuditEvent?_count=200", "", 200).JSON(t)
		entries, _ := b["entry"].([]any)
		for _, e := range entries {
			ev, _ := e.(map[string]any)["resource"].(map[string]any)
			raw, _ := json.Marshal(ev)
			for ref := range want {
				if strings.Contains(string(raw), `"reference":"`+ref+`"`) {
					if !strings.Contains(string(raw), `"value":"dr-wang"`) || !strings.Contains(string(raw), `"value":"centre-c"`) {
						t.Errorf("the event of %s names neither the centre's user nor its tenant: %s", ref, raw)
					}
					if strings.Contains(string(raw), "QUESTION") || strings.Contains(string(raw), "ADVICE") {
						t.Errorf("the event of %s holds the Task's text: %s", ref, raw)
					}
					want[ref] = true
				}
			}
		}
		for ref, ok := range want {
			if !ok {
				t.Errorf("no AuditEvent in the centre's trail names %s", ref)
			}
		}
	}
}
