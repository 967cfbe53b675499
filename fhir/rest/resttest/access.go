package resttest

import (
	"net/http"
	"net/url"
	"sort"
	"strings"
	"testing"

	"github.com/fmtbank/cmts/fhir"
	"github.com/fmtbank/cmts/fhir/rest"
)

// bearerPrincipals authenticates a request by its bearer token, a key of the
// map: the test's stand-in for verified tokens (the verifier has tests of
// its own, against a real OpenID Provider).
type bearerPrincipals map[string]*fhir.Principal

func (b bearerPrincipals) Authenticate(r *http.Request) (*fhir.Principal, error) {
	tok := strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")
	p, ok := b[tok]
	if !ok {
		return nil, fhir.Unauthorized("unknown test token", "未知的测试令牌")
	}
	cp := *p
	return &cp, nil
}

func testPrincipal(tenant string, kind fhir.TenantKind, patient string, roles []fhir.Role, scopes ...string) *fhir.Principal {
	return &fhir.Principal{Tenant: tenant, TenantKind: kind, Subject: "test", Roles: roles, Scopes: scopes,
		Grants: fhir.ParseScopes(scopes), Patient: patient}
}

// seeded is one resource of the access matrix: who writes it, and two
// markers: mark is kept by the de-identified view (a registry code), pii
// is removed by it (a name or a note).
type seeded struct {
	token, path, body, mark, pii string
}

const (
	sid          = "http://fmtbank.org/fhir/sid/"
	sd           = "http://fmtbank.org/fhir/StructureDefinition/"
	categoryLab  = `"category":[{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/observation-category","code":"laboratory"}]}]`
	categoryVits = `"category":[{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/observation-category","code":"vital-signs"}]}]`
)

func accessSeed() []seeded {
	patient := func(token, id, code, pii string) seeded {
		return seeded{token, "/Patient/" + id, `{"resourceType":"Patient","id":"` + id + `","meta":{"profile":["` + sd + `cmts-recipient"]},` +
			`"identifier":[{"system":"` + sid + `recipient-code","value":"` + code + `"}],"name":[{"family":"` + pii + `"}]}`, code, pii}
	}
	obs := func(token, id, subject, code, pii, category string) seeded {
		return seeded{token, "/Observation/" + id, `{"resourceType":"Observation","id":"` + id + `","status":"final",` + category + `,` +
			`"identifier":[{"system":"` + sid + `observation","value":"` + code + `"}],"code":{"text":"x"},` +
			`"subject":{"reference":"Patient/` + subject + `"},"specimen":{"reference":"Specimen/lot1"},"note":[{"text":"` + pii + `"}]}`, code, pii}
	}
	return []seeded{
		patient("ha", "pa1", "R-A1", "PIIA1"),
		patient("ha", "pa2", "R-A2", "PIIA2"),
		obs("ha", "oa1", "pa1", "O-A1", "PIIOA1", categoryLab),
		obs("ha", "oa2", "pa2", "O-A2", "PIIOA2", categoryLab),
		obs("ha", "oa3", "pa1", "O-A3", "PIIOA3", categoryVits),
		patient("hb", "pb1", "R-B1", "PIIB1"),
		obs("hb", "ob1", "pb1", "O-B1", "PIIOB1", categoryLab),
		{"bank", "/Patient/d1", `{"resourceType":"Patient","id":"d1","meta":{"profile":["` + sd + `cmts-donor"]},` +
			`"identifier":[{"system":"` + sid + `donor-code","value":"D-1"}],"name":[{"family":"PIID1"}]}`, "D-1", "PIID1"},
		{"bank", "/Specimen/don1", `{"resourceType":"Specimen","id":"don1","meta":{"profile":["` + sd + `cmts-stool-donation"]},` +
			`"accessionIdentifier":{"system":"` + sid + `donation-id","value":"DN-1"},"subject":{"reference":"Patient/d1"},"note":[{"text":"PIIDN1"}]}`, "DN-1", "PIIDN1"},
		// A product lot holds no personal data: every tenant reads it as written.
		{"bank", "/Specimen/lot1", `{"resourceType":"Specimen","id":"lot1","meta":{"profile":["` + sd + `cmts-microbiota-product"]},` +
			`"identifier":[{"system":"` + sid + `product-lot","value":"L-1"}],"subject":{"reference":"Patient/d1"},"parent":[{"reference":"Specimen/don1"}],"note":[{"text":"LOTNOTE"}]}`, "L-1", "LOTNOTE"},
	}
}

// testAccess is the role × scope × tenant × interaction matrix: each caller
// runs every read interaction (read, vread, history at all levels, searches
// with _include, _revinclude, chains and _has, a batch of reads) and no
// answer may hold a marker of a resource it may not see, or a removed
// marker of one it sees de-identified; all together must show everything
// it may see. Then the write interactions, conditional ones included, must
// leave other tenants' data alone.
func testAccess(t *testing.T, newStore NewStore) {
	all := []string{"/Patient/pa1", "/Patient/pa2", "/Observation/oa1", "/Observation/oa2", "/Observation/oa3",
		"/Patient/pb1", "/Observation/ob1", "/Patient/d1", "/Specimen/don1", "/Specimen/lot1"}
	hospA := []string{"/Patient/pa1", "/Patient/pa2", "/Observation/oa1", "/Observation/oa2", "/Observation/oa3", "/Specimen/lot1"}
	callers := []struct {
		token  string
		p      *fhir.Principal
		sees   []string // paths of the resources it may see
		deid   bool     // it sees them de-identified (the lot excepted)
		writes bool     // it may write its tenant's data
	}{
		{"ha", testPrincipal("hospital-a", fhir.TenantHospital, "", []fhir.Role{fhir.RoleSystem}, "system/*.cruds"), hospA, false, true},
		{"ha-clin-obs", testPrincipal("hospital-a", fhir.TenantHospital, "", []fhir.Role{fhir.RoleClinician}, "user/Observation.rs"),
			[]string{"/Observation/oa1", "/Observation/oa2", "/Observation/oa3"}, false, false},
		{"ha-patient", testPrincipal("hospital-a", fhir.TenantHospital, "pa1", []fhir.Role{fhir.RoleClinician}, "patient/*.rs"),
			[]string{"/Patient/pa1", "/Observation/oa1", "/Observation/oa3"}, false, false},
		{"ha-patient-lab", testPrincipal("hospital-a", fhir.TenantHospital, "pa1", []fhir.Role{fhir.RoleClinician},
			"patient/Observation.rs?category=laboratory", "patient/Patient.rs"),
			[]string{"/Patient/pa1", "/Observation/oa1"}, false, false},
		{"hb", testPrincipal("hospital-b", fhir.TenantHospital, "", []fhir.Role{fhir.RoleClinician}, "user/*.cruds"),
			[]string{"/Patient/pb1", "/Observation/ob1", "/Specimen/lot1"}, false, true},
		{"bank", testPrincipal("bank-xa", fhir.TenantBank, "", []fhir.Role{fhir.RoleBankStaff}, "user/*.cruds"),
			[]string{"/Patient/d1", "/Specimen/don1", "/Specimen/lot1"}, false, true},
		{"regulator", testPrincipal("nhc", fhir.TenantAuthority, "", []fhir.Role{fhir.RoleRegulator}, "user/*.rs"),
			[]string{"/Patient/pa1", "/Patient/pa2", "/Observation/oa1", "/Observation/oa2", "/Observation/oa3",
				"/Patient/pb1", "/Observation/ob1", "/Specimen/don1", "/Specimen/lot1"}, true, false},
		{"no-role", testPrincipal("hospital-a", fhir.TenantHospital, "", nil, "user/*.rs"), nil, false, false},
	}
	tokens := bearerPrincipals{}
	for _, c := range callers {
		tokens[c.token] = c.p
	}
	c, _ := open(t, newStore, func(o *rest.Options) { o.Auth = tokens })
	seed := accessSeed()
	byPath := map[string]seeded{}
	for _, s := range seed {
		byPath[s.path] = s
		if r := c.Do("PUT", s.path, []byte(s.body), "Authorization", "Bearer "+s.token); r.Status != http.StatusCreated {
			t.Fatalf("seeding %s: %d %s", s.path, r.Status, r.Body)
		}
	}
	reads := []string{
		"/Patient", "/Observation", "/Specimen",
		"/Patient?_revinclude=Observation:subject", "/Observation?_include=Observation:subject",
		"/Observation?_include=Observation:specimen&_include:iterate=Specimen:subject",
		"/Specimen?_include=Specimen:subject&_include=Specimen:parent", "/Specimen?_revinclude=Observation:specimen",
		"/Patient?_has:Observation:subject:category=laboratory", "/Observation?subject:Patient.gender:missing=true",
		"/Observation?specimen:Specimen.subject:Patient.gender:missing=true",
		"/_history", "/Patient/_history", "/Observation/_history", "/Specimen/_history", "?_type=Patient,Observation,Specimen",
		"/Patient?_count=1", "/Observation?_summary=count",
	}
	for _, p := range all {
		reads = append(reads, p, p+"/_history/1", p+"/_history")
	}
	batch := `{"resourceType":"Bundle","type":"batch","entry":[`
	for i, p := range append(append([]string{}, all...), "/Observation?_include=Observation:subject") {
		if i > 0 {
			batch += ","
		}
		batch += `{"request":{"method":"GET","url":"` + strings.TrimPrefix(p, "/") + `"}}`
	}
	batch += `]}`

	for _, cl := range callers {
		t.Run(cl.token, func(t *testing.T) {
			may := map[string]bool{}
			for _, s := range seed {
				may[s.mark], may[s.pii] = false, false
			}
			for _, p := range cl.sees {
				s := byPath[p]
				may[s.mark] = true
				may[s.pii] = !cl.deid || p == "/Specimen/lot1"
			}
			seen := map[string]bool{}
			check := func(what string, r *Response) {
				for m, ok := range may {
					if strings.Contains(string(r.Body), m) {
						seen[m] = true
						if !ok {
							t.Errorf("%s answers %d with %s, which this caller may not see: %.400s", what, r.Status, m, r.Body)
						}
					}
				}
				if r.Status >= 400 && !strings.Contains(string(r.Body), "OperationOutcome") {
					t.Errorf("%s answers %d without an OperationOutcome", what, r.Status)
				}
			}
			for _, path := range reads {
				check("GET "+path, c.Do("GET", path, nil, "Authorization", "Bearer "+cl.token))
			}
			check("batch of reads", c.Do("POST", "", []byte(batch), "Authorization", "Bearer "+cl.token))
			var missing []string
			for m, ok := range may {
				if ok && !seen[m] {
					missing = append(missing, m)
				}
			}
			sort.Strings(missing)
			if len(missing) > 0 {
				t.Errorf("never shown, though this caller may see them: %v", missing)
			}
			// Reads of what it may see answer 200; of what it may not, 404 or 403.
			for _, p := range all {
				r := c.Do("GET", p, nil, "Authorization", "Bearer "+cl.token)
				visible := false
				for _, s := range cl.sees {
					visible = visible || s == p
				}
				switch {
				case visible && r.Status != 200:
					t.Errorf("GET %s: %d, want 200", p, r.Status)
				case !visible && r.Status != 404 && r.Status != 403:
					t.Errorf("GET %s: %d, want 404 or 403", p, r.Status)
				}
			}
		})
	}

	// Writes. Each must leave the data of others as it was: checked at the
	// end by the owners' reads.
	type write struct {
		token, method, path, body string
		header                    []string
		want                      []int // acceptable statuses
	}
	ifNoneExist := "identifier=" + url.QueryEscape(sid+"recipient-code|R-B1")
	writes := []write{
		// Conditional interactions match only the caller's own data.
		{"ha", "PUT", "/Patient?" + ifNoneExist, `{"resourceType":"Patient","identifier":[{"system":"` + sid + `recipient-code","value":"R-B1"}]}`, nil, []int{201}},
		{"ha", "DELETE", "/Patient?identifier=" + url.QueryEscape(sid+"recipient-code|R-A9"), "", nil, []int{204}},
		{"hb", "DELETE", "/Patient?identifier=" + url.QueryEscape(sid+"recipient-code|R-A1"), "", nil, []int{204}},
		{"hb", "POST", "/Patient", `{"resourceType":"Patient"}`, []string{"If-None-Exist", "identifier=" + url.QueryEscape(sid+"recipient-code|R-A2")}, []int{201}},
		// Another tenant's resource is absent for the caller, or its id taken.
		{"hb", "PUT", "/Patient/pa1", `{"resourceType":"Patient","id":"pa1","name":[{"family":"HIJACK"}]}`, nil, []int{409}},
		{"hb", "DELETE", "/Patient/pa1", "", nil, []int{404}},
		{"hb", "PATCH", "/Patient/pa1", `[{"op":"add","path":"/active","value":false}]`, []string{"Content-Type", "application/json-patch+json"}, []int{404}},
		// The lot is readable by every tenant, writable by its bank only.
		{"ha", "PUT", "/Specimen/lot1", `{"resourceType":"Specimen","id":"lot1","note":[{"text":"HIJACK"}]}`, nil, []int{403, 409}},
		{"ha", "DELETE", "/Specimen/lot1", "", nil, []int{403, 404}},
		{"ha", "POST", "/Specimen", `{"resourceType":"Specimen","meta":{"profile":["` + sd + `cmts-microbiota-product"]}}`, nil, []int{403}},
		{"bank", "POST", "/Patient", `{"resourceType":"Patient","meta":{"profile":["` + sd + `cmts-recipient"]}}`, nil, []int{403}},
		// Read-only roles and scopes, and patient context.
		{"regulator", "POST", "/Patient", `{"resourceType":"Patient"}`, nil, []int{403}},
		{"regulator", "DELETE", "/Observation/oa1", "", nil, []int{403}},
		{"ha-clin-obs", "PUT", "/Observation/oa1", `{"resourceType":"Observation","id":"oa1","status":"final","code":{"text":"HIJACK"}}`, nil, []int{403}},
		{"ha-patient", "POST", "/Observation", `{"resourceType":"Observation","status":"final","code":{"text":"x"},"subject":{"reference":"Patient/pa1"}}`, nil, []int{403}},
		{"no-role", "DELETE", "/Patient/pa2", "", nil, []int{403}},
		// A transaction with one refused entry is refused whole.
		{"regulator", "POST", "", `{"resourceType":"Bundle","type":"transaction","entry":[{"request":{"method":"DELETE","url":"Observation/oa1"}}]}`, nil, []int{403}},
		{"ha", "POST", "", `{"resourceType":"Bundle","type":"transaction","entry":[` +
			`{"fullUrl":"urn:uuid:1","resource":{"resourceType":"Patient","name":[{"family":"TXN"}]},"request":{"method":"POST","url":"Patient"}},` +
			`{"resource":{"resourceType":"Specimen","meta":{"profile":["` + sd + `cmts-microbiota-product"]}},"request":{"method":"POST","url":"Specimen"}}]}`, nil, []int{403}},
	}
	for _, w := range writes {
		var body []byte
		if w.body != "" {
			body = []byte(w.body)
		}
		r := c.Do(w.method, w.path, body, append([]string{"Authorization", "Bearer " + w.token}, w.header...)...)
		ok := false
		for _, s := range w.want {
			ok = ok || r.Status == s
		}
		if !ok {
			t.Errorf("%s %s %s: %d, want %v: %.300s", w.token, w.method, w.path, r.Status, w.want, r.Body)
		}
		for _, s := range seed {
			if s.token != w.token && (strings.Contains(string(r.Body), s.pii)) && !(s.path == "/Specimen/lot1") {
				t.Errorf("%s %s %s shows %s of another tenant", w.token, w.method, w.path, s.pii)
			}
		}
	}
	for _, s := range seed {
		r := c.Do("GET", s.path, nil, "Authorization", "Bearer "+s.token)
		if r.Status != 200 || r.Header.Get("ETag") != `W/"1"` {
			t.Errorf("after the writes, the owner reads %s: %d %s", s.path, r.Status, r.Header.Get("ETag"))
		}
	}
	if r := c.Do("GET", "/Patient?name=TXN", nil, "Authorization", "Bearer ha"); r.JSON(t)["total"] != 0.0 {
		t.Errorf("a refused transaction stored part of itself: %.300s", r.Body)
	}
}
