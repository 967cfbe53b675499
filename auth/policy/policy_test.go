package policy_test

import (
	"bytes"
	"errors"
	"net/http"
	"net/url"
	"testing"

	"github.com/fmtbank/cmts/auth/policy"
	"github.com/fmtbank/cmts/fhir"
	"github.com/fmtbank/cmts/fhir/search"
	"github.com/fmtbank/cmts/store"
)

func newPolicy(t *testing.T) (*policy.Policy, *search.Engine) {
	t.Helper()
	e, err := search.New()
	if err != nil {
		t.Fatal(err)
	}
	return policy.New(e), e
}

// version indexes body as a version of tenant.
func version(t *testing.T, e *search.Engine, tenant, typ, id, body string) *store.Version {
	t.Helper()
	idx, err := e.Entries(typ, []byte(body))
	if err != nil {
		t.Fatal(err)
	}
	v := &store.Version{Tenant: tenant, Type: typ, ID: id, VersionID: 1, Resource: []byte(body), Index: idx}
	v.Reach = policy.Reach(v)
	return v
}

func principal(tenant string, kind fhir.TenantKind, patient string, roles []fhir.Role, scopes ...string) *fhir.Principal {
	return &fhir.Principal{Tenant: tenant, TenantKind: kind, Subject: "s", Roles: roles, Scopes: scopes,
		Grants: fhir.ParseScopes(scopes), Patient: patient}
}

var (
	clinician = []fhir.Role{fhir.RoleClinician}
	regulator = []fhir.Role{fhir.RoleRegulator}
	system    = []fhir.Role{fhir.RoleSystem}
	admin     = []fhir.Role{fhir.RoleAdmin}
	bankStaff = []fhir.Role{fhir.RoleBankStaff}
)

const (
	patientP1 = `{"resourceType":"Patient","id":"p1","name":[{"family":"张"}],"meta":{"profile":["http://fmtbank.org/fhir/StructureDefinition/cmts-recipient"]}}`
	patientP2 = `{"resourceType":"Patient","id":"p2"}`
	obsP1Lab  = `{"resourceType":"Observation","id":"o1","status":"final","code":{"text":"x"},"subject":{"reference":"Patient/p1"},"category":[{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/observation-category","code":"laboratory"}]}]}`
	obsP1Vit  = `{"resourceType":"Observation","id":"o2","status":"final","code":{"text":"x"},"subject":{"reference":"Patient/p1"},"category":[{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/observation-category","code":"vital-signs"}]}]}`
	obsP2     = `{"resourceType":"Observation","id":"o3","status":"final","code":{"text":"x"},"subject":{"reference":"Patient/p2"}}`
	lot       = `{"resourceType":"Specimen","id":"lot1","meta":{"profile":["http://fmtbank.org/fhir/StructureDefinition/cmts-microbiota-product"]}}`
	donor     = `{"resourceType":"Patient","id":"d1","identifier":[{"system":"http://fmtbank.org/fhir/sid/donor-code","value":"D-1"}]}`
	audit     = `{"resourceType":"AuditEvent","id":"a1","type":{"code":"rest"},"recorded":"2026-01-01T00:00:00Z","agent":[{"requestor":true}],"source":{"observer":{"display":"x"}}}`
)

func TestReadable(t *testing.T) {
	pol, e := newPolicy(t)
	vs := map[string]*store.Version{
		"p1":    version(t, e, "hospital-a", "Patient", "p1", patientP1),
		"p2":    version(t, e, "hospital-a", "Patient", "p2", patientP2),
		"o-lab": version(t, e, "hospital-a", "Observation", "o1", obsP1Lab),
		"o-vit": version(t, e, "hospital-a", "Observation", "o2", obsP1Vit),
		"o-p2":  version(t, e, "hospital-a", "Observation", "o3", obsP2),
		"lot":   version(t, e, "bank-xa", "Specimen", "lot1", lot),
		"donor": version(t, e, "bank-xa", "Patient", "d1", donor),
		"b-p":   version(t, e, "hospital-b", "Patient", "p1", patientP1),
		"audit": version(t, e, "hospital-a", "AuditEvent", "a1", audit),
	}
	cases := []struct {
		name string
		p    *fhir.Principal
		see  []string // every other version is unreadable
		deid []string // of those seen, the ones shown de-identified
	}{
		{"hospital system sees its own and the lot", principal("hospital-a", fhir.TenantHospital, "", system, "system/*.rs"),
			[]string{"p1", "p2", "o-lab", "o-vit", "o-p2", "lot"}, nil},
		{"admin also reads the audit trail", principal("hospital-a", fhir.TenantHospital, "", admin, "user/*.rs"),
			[]string{"p1", "p2", "o-lab", "o-vit", "o-p2", "lot", "audit"}, nil},
		{"type scope", principal("hospital-a", fhir.TenantHospital, "", clinician, "user/Observation.rs"),
			[]string{"o-lab", "o-vit", "o-p2"}, nil},
		{"patient context", principal("hospital-a", fhir.TenantHospital, "p1", clinician, "patient/*.rs"),
			[]string{"p1", "o-lab", "o-vit"}, nil},
		{"patient context and v2 narrowing", principal("hospital-a", fhir.TenantHospital, "p1", clinician,
			"patient/Observation.rs?category=http://terminology.hl7.org/CodeSystem/observation-category|laboratory", "patient/Patient.r"),
			[]string{"p1", "o-lab"}, nil},
		{"patient scope without a patient in context grants nothing", principal("hospital-a", fhir.TenantHospital, "", clinician, "patient/*.rs"),
			nil, nil},
		{"bank sees its donor, not the hospital's patients", principal("bank-xa", fhir.TenantBank, "", bankStaff, "user/*.cruds"),
			[]string{"lot", "donor"}, nil},
		{"regulator: every tenant but donors and audit, de-identified", principal("nhc", fhir.TenantAuthority, "", regulator, "user/*.rs"),
			[]string{"p1", "p2", "o-lab", "o-vit", "o-p2", "lot", "b-p"}, []string{"p1", "p2", "o-lab", "o-vit", "o-p2", "b-p"}},
		{"no role", principal("hospital-a", fhir.TenantHospital, "", nil, "user/*.rs"), nil, nil},
		{"no scope", principal("hospital-a", fhir.TenantHospital, "", system, "openid"), nil, nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			see, deid := map[string]bool{}, map[string]bool{}
			for _, k := range c.see {
				see[k] = true
			}
			for _, k := range c.deid {
				deid[k] = true
			}
			for k, v := range vs {
				if got := pol.Readable(c.p, v); got != see[k] {
					t.Errorf("Readable(%s) = %v, want %v", k, got, see[k])
				}
				// The store returns versions without their index entries.
				bare := *v
				bare.Index = nil
				if got := pol.Readable(c.p, &bare); got != see[k] {
					t.Errorf("Readable(%s without index) = %v, want %v", k, got, see[k])
				}
				if see[k] {
					if got := pol.Deidentify(c.p, v); got != deid[k] {
						t.Errorf("Deidentify(%s) = %v, want %v", k, got, deid[k])
					}
				}
			}
		})
	}
}

func status(err error) int {
	if err == nil {
		return 0
	}
	var fe *fhir.Error
	if errors.As(err, &fe) {
		return fe.Status
	}
	return -1
}

func TestAllow(t *testing.T) {
	pol, _ := newPolicy(t)
	hosp := principal("hospital-a", fhir.TenantHospital, "", clinician, "user/Observation.rs", "user/Patient.cruds")
	reg := principal("nhc", fhir.TenantAuthority, "", regulator, "user/*.*")
	adm := principal("hospital-a", fhir.TenantHospital, "", admin, "user/*.*")
	cases := []struct {
		p    *fhir.Principal
		a    fhir.Action
		typ  string
		want int
	}{
		{hosp, fhir.ActionRead, "Observation", 0},
		{hosp, fhir.ActionSearchType, "Observation", 0},
		{hosp, fhir.ActionCreate, "Observation", http.StatusForbidden},
		{hosp, fhir.ActionDelete, "Patient", 0},
		{hosp, fhir.ActionRead, "Condition", http.StatusForbidden},
		{hosp, fhir.ActionSearchSystem, "", http.StatusForbidden},
		{hosp, fhir.ActionHistorySystem, "", http.StatusForbidden},
		{hosp, fhir.ActionTransaction, "", 0},
		{hosp, fhir.ActionRead, "AuditEvent", http.StatusForbidden},
		{reg, fhir.ActionSearchSystem, "", 0},
		{reg, fhir.ActionCreate, "Patient", http.StatusForbidden},
		{reg, fhir.ActionUpdate, "Observation", http.StatusForbidden},
		{reg, fhir.ActionSearchType, "AuditEvent", http.StatusForbidden},
		{adm, fhir.ActionSearchType, "AuditEvent", 0},
		{adm, fhir.ActionCreate, "AuditEvent", 0},
		{adm, fhir.ActionDelete, "AuditEvent", http.StatusForbidden},
		{adm, fhir.ActionPatch, "AuditEvent", http.StatusForbidden},
		{hosp, fhir.ActionCreate, "AuditEvent", http.StatusForbidden},
	}
	for _, c := range cases {
		if got := status(pol.Allow(c.p, c.a, c.typ)); got != c.want {
			t.Errorf("Allow(%v, %s, %q) = %d, want %d", c.p.Roles, c.a, c.typ, got, c.want)
		}
	}
}

func TestNarrowAndCheckSearch(t *testing.T) {
	pol, _ := newPolicy(t)
	pat := principal("hospital-a", fhir.TenantHospital, "p1", clinician, "patient/Observation.rs", "patient/Patient.rs")
	user := principal("hospital-a", fhir.TenantHospital, "", clinician, "user/*.rs")
	reg := principal("nhc", fhir.TenantAuthority, "", regulator, "user/*.rs")
	if e, err := pol.Narrow(user, "Observation"); err != nil || e != nil {
		t.Errorf("user scope: Narrow = %v, %v; want none", e, err)
	}
	e, err := pol.Narrow(pat, "Observation")
	want := store.Or{store.Reference{Param: "subject", Type: "Patient", ID: "p1"}, store.Reference{Param: "performer", Type: "Patient", ID: "p1"}}
	if err != nil || (store.Query{Filter: e}).ConditionKey() != (store.Query{Filter: want}).ConditionKey() {
		t.Errorf("patient scope: Narrow = %#v, %v; want %#v", e, err, want)
	}
	if _, err := pol.Narrow(pat, "Practitioner"); status(err) != http.StatusForbidden {
		t.Errorf("Practitioner under patient scopes: %v, want 403", err)
	}
	checks := []struct {
		name    string
		p       *fhir.Principal
		typ     string
		query   string
		touched []string
		want    int
	}{
		{"chain through a readable type", user, "Observation", "subject:Patient.name=x", []string{"Patient"}, 0},
		{"chain through a narrowed type", pat, "Observation", "subject:Patient.gender=x", []string{"Patient"}, http.StatusForbidden},
		{"has through an unscoped type", user, "Patient", "_has:AuditEvent:patient:type=x", []string{"AuditEvent"}, http.StatusForbidden},
		{"regulator by gender", reg, "Patient", "gender=female", nil, 0},
		{"regulator by name", reg, "Patient", "name=zhang", nil, http.StatusForbidden},
		{"regulator by chained name", reg, "Observation", "subject:Patient.family=zhang", []string{"Patient"}, http.StatusForbidden},
		{"regulator sorted by name", reg, "Patient", "_sort=-birthdate,name", nil, http.StatusForbidden},
		{"regulator by registry code", reg, "Patient", "identifier=http://fmtbank.org/fhir/sid/recipient-code|R-1", nil, 0},
		{"regulator by another identifier", reg, "Patient", "identifier=urn:oid:1.2.3|110101", nil, http.StatusForbidden},
		{"clinician by name", user, "Patient", "name=zhang", nil, 0},
	}
	for _, c := range checks {
		q, _ := url.ParseQuery(c.query)
		if got := status(pol.CheckSearch(c.p, c.typ, q, c.touched)); got != c.want {
			t.Errorf("%s: CheckSearch = %d, want %d", c.name, got, c.want)
		}
	}
}

func TestWritable(t *testing.T) {
	pol, e := newPolicy(t)
	hosp := principal("hospital-a", fhir.TenantHospital, "", clinician, "user/*.cruds")
	bank := principal("bank-xa", fhir.TenantBank, "", bankStaff, "user/*.cruds")
	pat := principal("hospital-a", fhir.TenantHospital, "p1", clinician, "patient/Observation.cru")
	readOnly := principal("hospital-a", fhir.TenantHospital, "", clinician, "user/*.rs")
	reg := principal("nhc", fhir.TenantAuthority, "", regulator, "user/*.*")
	cases := []struct {
		name      string
		p         *fhir.Principal
		cur, next *store.Version
		want      int
		reach     store.Reach
	}{
		{"hospital creates a recipient", hosp, nil, version(t, e, "hospital-a", "Patient", "p1", patientP1), 0, store.ReachTenant},
		{"hospital may not make a lot", hosp, nil, version(t, e, "hospital-a", "Specimen", "lot1", lot), http.StatusForbidden, 0},
		{"bank makes a lot, shared", bank, nil, version(t, e, "bank-xa", "Specimen", "lot1", lot), 0, store.ReachShared},
		{"bank registers a donor, kept in the bank", bank, nil, version(t, e, "bank-xa", "Patient", "d1", donor), 0, store.ReachOwner},
		{"bank may not write a recipient", bank, nil, version(t, e, "bank-xa", "Patient", "p1", patientP1), http.StatusForbidden, 0},
		{"read-only scope", readOnly, nil, version(t, e, "hospital-a", "Patient", "p2", patientP2), http.StatusForbidden, 0},
		{"regulator never writes", reg, nil, version(t, e, "nhc", "Patient", "p2", patientP2), http.StatusForbidden, 0},
		{"patient scope: own observation", pat, nil, version(t, e, "hospital-a", "Observation", "o1", obsP1Lab), 0, store.ReachTenant},
		{"patient scope: another patient's", pat, nil, version(t, e, "hospital-a", "Observation", "o3", obsP2), http.StatusForbidden, 0},
		{"patient scope: moving an observation to another patient", pat, version(t, e, "hospital-a", "Observation", "o1", obsP1Lab),
			version(t, e, "hospital-a", "Observation", "o1", obsP2), http.StatusForbidden, 0},
		{"patient scope without d", pat, version(t, e, "hospital-a", "Observation", "o1", obsP1Lab),
			&store.Version{Tenant: "hospital-a", Type: "Observation", ID: "o1", Deleted: true}, http.StatusForbidden, 0},
		{"a clinician adds no audit event", hosp, nil, version(t, e, "hospital-a", "AuditEvent", "a1", audit), http.StatusForbidden, 0},
		{"a system adds an audit event, kept in its tenant", principal("hospital-a", fhir.TenantHospital, "", system, "system/*.cruds"),
			nil, version(t, e, "hospital-a", "AuditEvent", "a1", audit), 0, store.ReachOwner},
		{"nobody changes an audit event", principal("hospital-a", fhir.TenantHospital, "", system, "system/*.cruds"),
			version(t, e, "hospital-a", "AuditEvent", "a1", audit), version(t, e, "hospital-a", "AuditEvent", "a1", audit), http.StatusForbidden, 0},
		{"another tenant's tenant field", hosp, nil, version(t, e, "hospital-b", "Patient", "p2", patientP2), http.StatusForbidden, 0},
	}
	for _, c := range cases {
		c.next.Reach = store.ReachTenant
		got := status(pol.Writable(c.p, c.cur, c.next))
		if got != c.want {
			t.Errorf("%s: Writable = %d, want %d", c.name, got, c.want)
		}
		if got == 0 && c.next.Reach != c.reach {
			t.Errorf("%s: Reach = %d, want %d", c.name, c.next.Reach, c.reach)
		}
	}
}

func TestView(t *testing.T) {
	pol, e := newPolicy(t)
	p1 := version(t, e, "hospital-a", "Patient", "p1", patientP1)
	reg := principal("nhc", fhir.TenantAuthority, "", regulator, "user/*.rs")
	own := principal("hospital-a", fhir.TenantHospital, "", clinician, "user/*.rs")
	got, err := pol.View(own, p1)
	if err != nil || string(got) != patientP1 {
		t.Errorf("own tenant: View = %s, %v; want the stored body", got, err)
	}
	got, err = pol.View(reg, p1)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(got, []byte("张")) || !bytes.Contains(got, []byte(`"REDACTED"`)) {
		t.Errorf("regulator: View = %s; want the name removed and a REDACTED label", got)
	}
}

// TestTraceView: what a look-back shows each caller of resources read
// across tenants.
func TestTraceView(t *testing.T) {
	pol, e := newPolicy(t)
	recipient := version(t, e, "hospital-a", "Patient", "p1", patientP1)
	d1 := version(t, e, "bank-a", "Patient", "d1", donor)
	tests := []struct {
		name   string
		p      *fhir.Principal
		v      *store.Version
		shown  bool
		deided bool
	}{
		{"hospital, its own recipient in full", principal("hospital-a", fhir.TenantHospital, "", clinician, "user/*.rs"), recipient, true, false},
		{"another hospital sees nothing", principal("hospital-b", fhir.TenantHospital, "", clinician, "user/*.rs"), recipient, false, false},
		{"a bank sees the recipient de-identified", principal("bank-a", fhir.TenantBank, "", bankStaff, "user/*.rs"), recipient, true, true},
		{"a bank without a scope on Patient", principal("bank-a", fhir.TenantBank, "", bankStaff, "user/Specimen.rs"), recipient, false, false},
		{"a bank with a patient scope", principal("bank-a", fhir.TenantBank, "d1", bankStaff, "patient/*.rs"), recipient, false, false},
		{"the regulator de-identified", principal("nhc", fhir.TenantAuthority, "", regulator, "user/*.rs"), recipient, true, true},
		{"the bank its own donor", principal("bank-a", fhir.TenantBank, "", bankStaff, "user/*.rs"), d1, true, false},
		{"another bank never sees a donor", principal("bank-b", fhir.TenantBank, "", bankStaff, "user/*.rs"), d1, false, false},
		{"the regulator never sees a donor", principal("nhc", fhir.TenantAuthority, "", regulator, "user/*.rs"), d1, false, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, ok, err := pol.TraceView(tc.p, tc.v)
			if err != nil {
				t.Fatal(err)
			}
			if ok != tc.shown {
				t.Fatalf("shown = %v, want %v", ok, tc.shown)
			}
			if ok && bytes.Contains(got, []byte(`"REDACTED"`)) != tc.deided {
				t.Errorf("want de-identified %v: %s", tc.deided, got)
			}
		})
	}
}
