package profiles_test

import (
	"context"
	"encoding/json"
	"net/http"
	"os"
	"strings"
	"testing"

	"github.com/fmtbank/cmts/fhir/rest"
	"github.com/fmtbank/cmts/fhir/rest/resttest"
	"github.com/fmtbank/cmts/fhir/search"
	"github.com/fmtbank/cmts/profiles"
	"github.com/fmtbank/cmts/store"
	"github.com/fmtbank/cmts/store/sqlite"
)

const sd = profiles.Canonical + "/StructureDefinition/"

// serve starts the REST API on a fresh embedded store with the guide wired
// in as cmd/cmts wires it.
func serve(t *testing.T, require bool) *resttest.Client {
	t.Helper()
	st, svc, engine := guide(t, require)
	return resttest.Serve(t, st, func(o *rest.Options) {
		o.Validator, o.Conformance, o.Indexer = svc, svc, engine
	})
}

// guide is a fresh embedded store and the guide's service and search
// engine over it.
func guide(t *testing.T, require bool) (store.Store, *profiles.Service, *search.Engine) {
	t.Helper()
	st, err := sqlite.Open(context.Background(), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	defs, err := profiles.Embedded()
	if err != nil {
		t.Fatal(err)
	}
	svc, err := profiles.NewService(defs, st, require)
	if err != nil {
		t.Fatal(err)
	}
	sps, err := profiles.SearchParameters()
	if err != nil {
		t.Fatal(err)
	}
	engine, err := search.New(sps...)
	if err != nil {
		t.Fatal(err)
	}
	return st, svc, engine
}

func example(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile("examples/" + name)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func edit(t *testing.T, b []byte, f func(m map[string]any)) []byte {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	f(m)
	out, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func expressions(t *testing.T, r *resttest.Response) []string {
	t.Helper()
	var oo struct {
		Issue []struct {
			Severity   string
			Expression []string
		}
	}
	if err := json.Unmarshal(r.Body, &oo); err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, is := range oo.Issue {
		if is.Severity == "error" {
			out = append(out, strings.Join(is.Expression, ","))
		}
	}
	return out
}

// TestWriteValidation: every write path validates a resource that claims
// one of the guide's profiles; a bad one is 422 with every problem, and
// nothing is stored.
func TestWriteValidation(t *testing.T) {
	t.Parallel()
	c := serve(t, false)
	for _, f := range []string{"Patient-donor-d000123.json", "Patient-recipient-r0001.json", "Specimen-donation-1.json",
		"Specimen-product-l1.json", "Condition-indication-1.json", "Procedure-procedure-1.json", "AdverseEvent-ae-1.json",
		"Observation-efficacy-1.json", "Task-consultation-1.json"} {
		b := example(t, f)
		var head struct{ ResourceType, ID string }
		json.Unmarshal(b, &head)
		if r := c.Do(http.MethodPut, "/"+head.ResourceType+"/"+head.ID, b); r.Status != http.StatusCreated {
			t.Fatalf("PUT %s: %d %s", f, r.Status, r.Body)
		}
	}
	bad := edit(t, example(t, "AdverseEvent-ae-1.json"), func(m map[string]any) {
		delete(m, "id")
		m["date"] = "2026-04-14T20:00:00+08:00" // before its procedure
		m["severity"].(map[string]any)["coding"].([]any)[0].(map[string]any)["code"] = "severe"
	})
	r := c.Do(http.MethodPost, "/AdverseEvent", bad)
	if r.Status != http.StatusUnprocessableEntity {
		t.Fatalf("create: %d %s", r.Status, r.Body)
	}
	if got := strings.Join(expressions(t, r), " "); got != "AdverseEvent.date AdverseEvent.severity" {
		t.Errorf("create errors at %q", got)
	}
	if r := c.Do(http.MethodGet, "/AdverseEvent", nil); !strings.Contains(string(r.Body), `"total":1`) {
		t.Errorf("a refused create stored something: %s", r.Body)
	}
	r = c.Do(http.MethodPut, "/AdverseEvent/ae-1", edit(t, bad, func(m map[string]any) { m["id"] = "ae-1" }))
	if r.Status != http.StatusUnprocessableEntity {
		t.Errorf("update: %d %s", r.Status, r.Body)
	}
	r = c.Do(http.MethodPatch, "/Procedure/procedure-1", []byte(`[{"op":"replace","path":"/status","value":"done"}]`),
		"Content-Type", "application/json-patch+json")
	if r.Status != http.StatusUnprocessableEntity && r.Status != http.StatusBadRequest {
		t.Errorf("patch to an invalid status: %d %s", r.Status, r.Body)
	}
	r = c.Do(http.MethodPatch, "/Procedure/procedure-1", []byte(`[{"op":"remove","path":"/extension/0"}]`),
		"Content-Type", "application/json-patch+json")
	if r.Status != http.StatusUnprocessableEntity {
		t.Errorf("patch removing the route: %d %s", r.Status, r.Body)
	}
	if r := c.Do(http.MethodGet, "/Procedure/procedure-1", nil); !strings.Contains(string(r.Body), `"versionId":"1"`) {
		t.Errorf("a refused patch stored a version: %s", r.Body)
	}
	// In a transaction and a batch: the entry is refused with its problems
	// located in the Bundle, and the transaction stores nothing.
	good := edit(t, example(t, "Condition-indication-1.json"), func(m map[string]any) { m["id"] = "indication-tx" })
	tx := []byte(`{"resourceType":"Bundle","type":"transaction","entry":[` +
		`{"resource":` + string(good) + `,"request":{"method":"PUT","url":"Condition/indication-tx"}},` +
		`{"resource":` + string(bad) + `,"request":{"method":"POST","url":"AdverseEvent"}}]}`)
	r = c.Do(http.MethodPost, "", tx)
	if r.Status != http.StatusUnprocessableEntity {
		t.Fatalf("transaction: %d %s", r.Status, r.Body)
	}
	if got := strings.Join(expressions(t, r), " "); got != "Bundle.entry[1].resource.date Bundle.entry[1].resource.severity" {
		t.Errorf("transaction errors at %q", got)
	}
	if r := c.Do(http.MethodGet, "/Condition/indication-tx", nil); r.Status != http.StatusNotFound {
		t.Errorf("a refused transaction stored its good entry: %d", r.Status)
	}
	r = c.Do(http.MethodPost, "", []byte(strings.Replace(string(tx), `"transaction"`, `"batch"`, 1)))
	if r.Status != http.StatusOK || !strings.Contains(string(r.Body), `"status":"201 Created"`) || !strings.Contains(string(r.Body), `"status":"422 Unprocessable Entity"`) {
		t.Errorf("batch: %d %s", r.Status, r.Body)
	}
	unknown := []byte(`{"resourceType":"Patient","meta":{"profile":["http://example.org/StructureDefinition/other"]},"gender":"male"}`)
	if r := c.Do(http.MethodPost, "/Patient", unknown); r.Status != http.StatusCreated {
		t.Errorf("a resource claiming an unknown profile: %d %s", r.Status, r.Body)
	}
}

// TestRecalledLotStaysRecalled: a recalled lot cannot be released again.
func TestRecalledLotStaysRecalled(t *testing.T) {
	t.Parallel()
	c := serve(t, false)
	lot := example(t, "Specimen-product-l1.json")
	status := func(code string) []byte {
		return edit(t, lot, func(m map[string]any) {
			m["extension"].([]any)[0].(map[string]any)["valueCode"] = code
		})
	}
	for i, code := range []string{"released", "recalled"} {
		if r := c.Do(http.MethodPut, "/Specimen/product-l1", status(code)); r.Status/100 != 2 {
			t.Fatalf("step %d (%s): %d %s", i, code, r.Status, r.Body)
		}
	}
	r := c.Do(http.MethodPut, "/Specimen/product-l1", status("released"))
	if r.Status != http.StatusUnprocessableEntity || strings.Join(expressions(t, r), " ") != "Specimen.extension[0].value" {
		t.Errorf("releasing a recalled lot: %d %s", r.Status, r.Body)
	}
	if r := c.Do(http.MethodPut, "/Specimen/product-l1", status("discarded")); r.Status != http.StatusOK {
		t.Errorf("discarding a recalled lot: %d %s", r.Status, r.Body)
	}
}

// TestLotReleasedWhenUsed: a procedure may use a lot only if it was
// released at performedDateTime, by the lot's status-date (business time).
func TestLotReleasedWhenUsed(t *testing.T) {
	t.Parallel()
	c := serve(t, false)
	for _, f := range []string{"Patient-recipient-r0001.json", "Condition-indication-1.json"} {
		var head struct{ ResourceType, ID string }
		b := example(t, f)
		json.Unmarshal(b, &head)
		c.Do(http.MethodPut, "/"+head.ResourceType+"/"+head.ID, b)
	}
	lot := func(status, since string) []byte {
		return edit(t, example(t, "Specimen-product-l1.json"), func(m map[string]any) {
			exts := m["extension"].([]any)
			exts[0].(map[string]any)["valueCode"] = status
			exts[1].(map[string]any)["valueDateTime"] = since
		})
	}
	// Entered in this order, but the release took effect on the 14th and
	// the quarantine on the 12th.
	for _, v := range [][]byte{lot("released", "2026-04-14T08:00:00+08:00"), lot("quarantined", "2026-04-12T08:00:00+08:00")} {
		if r := c.Do(http.MethodPut, "/Specimen/product-l1", v); r.Status/100 != 2 {
			t.Fatalf("lot: %d %s", r.Status, r.Body)
		}
	}
	proc := func(performed string) []byte {
		return edit(t, example(t, "Procedure-procedure-1.json"), func(m map[string]any) {
			delete(m, "id")
			m["performedDateTime"] = performed
		})
	}
	r := c.Do(http.MethodPost, "/Procedure", proc("2026-04-13T09:00:00+08:00"))
	if r.Status != http.StatusUnprocessableEntity || strings.Join(expressions(t, r), " ") != "Procedure.extension[1].value" ||
		!strings.Contains(string(r.Body), "quarantined") {
		t.Errorf("a procedure during quarantine: %d %s", r.Status, r.Body)
	}
	if r := c.Do(http.MethodPost, "/Procedure", proc("2026-04-15T09:00:00+08:00")); r.Status != http.StatusCreated {
		t.Errorf("a procedure after release: %d %s", r.Status, r.Body)
	}
	r = c.Do(http.MethodPost, "/Procedure", proc("2026-08-01T09:00:00+08:00"))
	if r.Status != http.StatusUnprocessableEntity || !strings.Contains(string(r.Body), "expired") {
		t.Errorf("a procedure after expiry: %d %s", r.Status, r.Body)
	}
}

func TestRequireProfiles(t *testing.T) {
	t.Parallel()
	c := serve(t, true)
	r := c.Do(http.MethodPost, "/Patient", []byte(`{"resourceType":"Patient","gender":"male"}`))
	if r.Status != http.StatusUnprocessableEntity || strings.Join(expressions(t, r), " ") != "Patient.meta.profile" {
		t.Errorf("a Patient without profile: %d %s", r.Status, r.Body)
	}
	if r := c.Do(http.MethodPost, "/Observation", []byte(`{"resourceType":"Observation","status":"final","code":{"text":"x"}}`)); r.Status != http.StatusCreated {
		t.Errorf("an Observation needs no profile: %d %s", r.Status, r.Body)
	}
	if r := c.Do(http.MethodPost, "/Patient", example(t, "Patient-donor-d000123.json")); r.Status != http.StatusCreated {
		t.Errorf("a donor: %d %s", r.Status, r.Body)
	}
}

func TestValidateOperation(t *testing.T) {
	t.Parallel()
	c := serve(t, false)
	bad := edit(t, example(t, "Procedure-procedure-1.json"), func(m map[string]any) { delete(m, "status") })
	r := c.Do(http.MethodPost, "/Procedure/$validate", bad)
	if r.Status != http.StatusOK || strings.Join(expressions(t, r), " ") != "Procedure.status" {
		t.Errorf("type-level $validate: %d %s", r.Status, r.Body)
	}
	params := []byte(`{"resourceType":"Parameters","parameter":[{"name":"resource","resource":` + string(example(t, "Procedure-procedure-1.json")) +
		`},{"name":"profile","valueUri":"` + sd + `cmts-adverse-event"}]}`)
	r = c.Do(http.MethodPost, "/Procedure/$validate", params)
	if r.Status != http.StatusOK || strings.Join(expressions(t, r), " ") != "Procedure.resourceType" {
		t.Errorf("$validate against another type's profile: %d %s", r.Status, r.Body)
	}
	if r := c.Do(http.MethodGet, "/Procedure", nil); !strings.Contains(string(r.Body), `"total":0`) {
		t.Errorf("$validate stored something: %s", r.Body)
	}
	c.Do(http.MethodPut, "/Patient/recipient-r0001", example(t, "Patient-recipient-r0001.json"))
	r = c.Do(http.MethodGet, "/Patient/recipient-r0001/$validate", nil)
	if r.Status != http.StatusOK || len(expressions(t, r)) != 0 {
		t.Errorf("instance $validate: %d %s", r.Status, r.Body)
	}
	r = c.Do(http.MethodPost, "/Procedure/$validate", bad, "Accept-Language", "zh-CN")
	if !strings.Contains(string(r.Body), "至少需要") {
		t.Errorf("no Chinese message: %s", r.Body)
	}
}

func TestConformanceServed(t *testing.T) {
	t.Parallel()
	c := serve(t, false)
	for _, path := range []string{"/StructureDefinition/cmts-wmt-procedure", "/CodeSystem/relatedness", "/ValueSet/indication",
		"/ConceptMap/relatedness-to-who-umc", "/SearchParameter/Procedure-product-lot", "/ImplementationGuide/cmts-wmt"} {
		if r := c.Do(http.MethodGet, path, nil); r.Status != http.StatusOK {
			t.Errorf("GET %s: %d", path, r.Status)
		}
	}
	for _, q := range []struct {
		path  string
		total string
	}{
		{"/StructureDefinition?url=" + sd + "cmts-donor", `"total":1`},
		{"/StructureDefinition?type=Patient", `"total":2`},
		{"/StructureDefinition?base=http://hl7.org/fhir/StructureDefinition/Specimen", `"total":2`},
		{"/StructureDefinition?name=CmtsAdverse", `"total":1`},
		{"/SearchParameter?base=Procedure", `"total":3`},
		{"/CodeSystem?url=" + profiles.Canonical + "/CodeSystem/route", `"total":1`},
	} {
		if r := c.Do(http.MethodGet, q.path, nil); r.Status != http.StatusOK || !strings.Contains(string(r.Body), q.total) {
			t.Errorf("GET %s: %d %.200s", q.path, r.Status, r.Body)
		}
	}
	for _, m := range []string{http.MethodPut, http.MethodDelete} {
		if r := c.Do(m, "/CodeSystem/relatedness", example(t, "Patient-donor-d000123.json")); r.Status != http.StatusMethodNotAllowed {
			t.Errorf("%s a code system: %d", m, r.Status)
		}
	}
	if r := c.Do(http.MethodPost, "/ValueSet", []byte(`{"resourceType":"ValueSet","status":"draft"}`)); r.Status != http.StatusMethodNotAllowed {
		t.Errorf("POST a value set: %d", r.Status)
	}
}

func TestTerminologyOperations(t *testing.T) {
	t.Parallel()
	c := serve(t, false)
	cs := profiles.Canonical + "/CodeSystem/"
	vs := profiles.Canonical + "/ValueSet/"
	for _, q := range []struct {
		method, path string
		body         string
		want         []string
	}{
		{"GET", "/CodeSystem/$lookup?system=" + cs + "relatedness&code=possibly&displayLanguage=zh-CN", "", []string{`"valueString":"可能有关"`, `"valueString":"Relatedness"`}},
		{"GET", "/CodeSystem/relatedness/$lookup?code=possibly", "", []string{`"valueString":"Possibly related"`}},
		{"GET", "/CodeSystem/$lookup?system=" + cs + "follow-up&code=w12", "", []string{`"valueCode":"target-day"`, `"valueInteger":84`, `"valueInteger":7`}},
		{"GET", "/CodeSystem/$lookup?system=http://terminology.hl7.org/CodeSystem/adverse-event-outcome&code=fatal", "", []string{`"valueString":"Fatal"`}},
		{"POST", "/CodeSystem/$lookup", `{"resourceType":"Parameters","parameter":[{"name":"coding","valueCoding":{"system":"` + cs + `route","code":"capsule"}},{"name":"displayLanguage","valueCode":"zh"}]}`, []string{`"valueString":"胶囊"`}},
		{"GET", "/ValueSet/$validate-code?url=" + vs + "route&system=" + cs + "route&code=enema", "", []string{`"valueBoolean":true`}},
		{"GET", "/ValueSet/route/$validate-code?system=" + cs + "route&code=teleport", "", []string{`"valueBoolean":false`}},
		{"GET", "/ValueSet/$validate-code?url=" + vs + "indication&system=http://hl7.org/fhir/sid/icd-10&code=K51&displayLanguage=zh-CN", "", []string{`"valueBoolean":true`, `溃疡性结肠炎`}},
		{"GET", "/ValueSet/$validate-code?url=http://hl7.org/fhir/ValueSet/adverse-event-severity&code=mild&system=http://terminology.hl7.org/CodeSystem/adverse-event-severity", "", []string{`"valueBoolean":true`}},
		{"GET", "/ValueSet/$expand?url=" + vs + "ae-term&filter=pain", "", []string{`"total":1`, `"code":"abdominal-pain"`}},
		{"GET", "/ValueSet/ae-term/$expand?displayLanguage=zh-CN&count=2&offset=1", "", []string{`"total":10`, `"offset":1`, `"display":"腹泻"`, `"display":"腹痛"`}},
		{"GET", "/ValueSet/$expand?url=" + vs + "ae-term&filter=" + "%E5%8F%91%E7%83%AD", "", []string{`"total":1`, `"code":"fever"`}},
		{"GET", "/ConceptMap/$translate?system=" + cs + "relatedness&code=probably&targetsystem=http://terminology.hl7.org/CodeSystem/adverse-event-causality-assess", "", []string{`"valueBoolean":true`, `"code":"Probably-Likely"`}},
		{"GET", "/ConceptMap/relatedness-to-research/$translate?system=" + cs + "relatedness&code=unrelated", "", []string{`"code":"not-related"`, `"valueCode":"equivalent"`}},
		{"GET", "/ConceptMap/$translate?system=" + cs + "relatedness&code=definitely", "", []string{`"code":"Certain"`, `"code":"related"`}},
	} {
		var body []byte
		if q.body != "" {
			body = []byte(q.body)
		}
		r := c.Do(q.method, q.path, body)
		if r.Status != http.StatusOK {
			t.Errorf("%s %s: %d %s", q.method, q.path, r.Status, r.Body)
			continue
		}
		for _, w := range q.want {
			if !strings.Contains(string(r.Body), w) {
				t.Errorf("%s %s: no %s in %s", q.method, q.path, w, r.Body)
			}
		}
	}
	if r := c.Do("GET", "/CodeSystem/$lookup?system="+cs+"route&code=nope", nil); r.Status != http.StatusNotFound {
		t.Errorf("lookup of an unknown code: %d", r.Status)
	}
	if r := c.Do("GET", "/Patient/x/$nope", nil); r.Status != http.StatusNotFound {
		t.Errorf("unknown operation: %d", r.Status)
	}
}

// TestCustomSearch: the guide's search parameters work through the REST API:
// chains, _include and sort.
func TestCustomSearch(t *testing.T) {
	t.Parallel()
	c := serve(t, false)
	for _, f := range []string{"Patient-donor-d000123.json", "Patient-recipient-r0001.json", "Specimen-donation-1.json",
		"Specimen-product-l1.json", "Condition-indication-1.json", "Procedure-procedure-1.json", "AdverseEvent-ae-1.json"} {
		b := example(t, f)
		var head struct{ ResourceType, ID string }
		json.Unmarshal(b, &head)
		if r := c.Do(http.MethodPut, "/"+head.ResourceType+"/"+head.ID, b); r.Status != http.StatusCreated {
			t.Fatalf("PUT %s: %d %s", f, r.Status, r.Body)
		}
	}
	second := edit(t, example(t, "Procedure-procedure-1.json"), func(m map[string]any) {
		m["id"] = "procedure-2"
		m["extension"].([]any)[3].(map[string]any)["valuePositiveInt"] = 2
		m["performedDateTime"] = "2026-05-15T09:00:00+08:00"
	})
	if r := c.Do(http.MethodPut, "/Procedure/procedure-2", second); r.Status != http.StatusCreated {
		t.Fatalf("PUT procedure-2: %d %s", r.Status, r.Body)
	}
	for _, q := range []struct{ query, want string }{
		{"/Procedure?product-lot.identifier=L-2026-0412-01", `"total":2`},
		{"/Procedure?product-lot:Specimen.subject:Patient.identifier=http://fmtbank.org/fhir/sid/donor-code|D-000123", `"total":2`},
		{"/Procedure?product-lot:Specimen.subject.identifier=http://fmtbank.org/fhir/sid/donor-code|D-000123", `"total":2`},
		{"/AdverseEvent?substance:Procedure.product-lot=Specimen/product-l1", `"total":1`},
		{"/Procedure?course=2", `"total":1`},
		{"/Procedure?route=colonic-tet&_sort=-course", `"id":"procedure-2"`},
		{"/Procedure?_id=procedure-1&_include=Procedure:product-lot", `"id":"product-l1"`},
		{"/AdverseEvent?relatedness=possibly", `"total":1`},
		{"/AdverseEvent?ctcae-grade=ge2", `"total":0`},
		{"/Specimen?release-status=released", `"total":1`},
	} {
		r := c.Do(http.MethodGet, q.query, nil)
		if r.Status != http.StatusOK || !strings.Contains(string(r.Body), q.want) {
			t.Errorf("GET %s: %d, no %s in %.400s", q.query, r.Status, q.want, r.Body)
		}
	}
	r := c.Do(http.MethodGet, "/Procedure?route=colonic-tet&_sort=-course", nil)
	if i, j := strings.Index(string(r.Body), "procedure-2"), strings.Index(string(r.Body), `"id":"procedure-1"`); i < 0 || j < 0 || i > j {
		t.Errorf("_sort=-course: procedure-2 should come first: %.300s", r.Body)
	}
}
