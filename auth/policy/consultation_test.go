package policy_test

import (
	"errors"
	"net/http"
	"strings"
	"testing"

	"github.com/fmtbank/cmts/auth/policy"
	"github.com/fmtbank/cmts/fhir"
	"github.com/fmtbank/cmts/store"
)

// consultation is a cmts-consultation Task of hospital-a with status,
// owner naming tenant by identifier ("" for a literal reference only), and
// the question q.
func consultation(status, tenant, q string) string {
	owner := `{"reference":"Organization/x"}`
	if tenant != "" {
		owner = `{"reference":"Organization/x","identifier":{"system":"` + policy.TenantSystem + `","value":"` + tenant + `"}}`
	}
	return `{"resourceType":"Task","id":"k1","meta":{"versionId":"1","profile":["http://fmtbank.org/fhir/StructureDefinition/cmts-consultation"]},` +
		`"status":"` + status + `","intent":"order","for":{"reference":"Patient/p1"},"owner":` + owner + `,` +
		`"input":[{"type":{"text":"question"},"valueString":"` + q + `"}]}`
}

func TestAddressee(t *testing.T) {
	t.Parallel()
	_, e := newPolicy(t)
	for _, tc := range []struct {
		name, tenant, typ, body, want string
	}{
		{"addressed", "hospital-a", "Task", consultation("requested", "centre-c", "q"), "centre-c"},
		{"to itself", "centre-c", "Task", consultation("requested", "centre-c", "q"), ""},
		{"literal reference only", "hospital-a", "Task", consultation("requested", "", "q"), ""},
		{"not a consultation", "hospital-a", "Task", strings.Replace(consultation("requested", "centre-c", "q"), "cmts-consultation", "other", 1), ""},
		{"not a Task", "hospital-a", "Patient", patientP1, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v := version(t, e, tc.tenant, tc.typ, "k1", tc.body)
			if got := policy.Addressee(v); got != tc.want {
				t.Errorf("Addressee = %q, want %q", got, tc.want)
			}
		})
	}
}

// TestAddresseeWrites: the centre reports on the request; the hospital
// keeps it; each refusal is a 403 at the element.
func TestAddresseeWrites(t *testing.T) {
	t.Parallel()
	pol, e := newPolicy(t)
	hospital := principal("hospital-a", fhir.TenantHospital, "", clinician, "user/*.cruds")
	centre := principal("centre-c", fhir.TenantHospital, "", clinician, "user/*.cruds")
	other := principal("centre-d", fhir.TenantHospital, "", clinician, "user/*.cruds")
	readOnly := principal("centre-c", fhir.TenantHospital, "", clinician, "user/*.rs")
	cur := version(t, e, "hospital-a", "Task", "k1", consultation("requested", "centre-c", "q"))
	cur.Addressee = policy.Addressee(cur)
	if !pol.Readable(centre, cur) || pol.Deidentify(centre, cur) {
		t.Errorf("the centre reads the request: %v, de-identified: %v; want as written", pol.Readable(centre, cur), pol.Deidentify(centre, cur))
	}
	if pol.Readable(other, cur) {
		t.Error("another centre reads the request")
	}
	for _, tc := range []struct {
		name string
		p    *fhir.Principal
		body string
		del  bool
		want int    // 0: allowed
		at   string // the refusal's element
	}{
		{"centre accepts", centre, consultation("accepted", "centre-c", "q"), false, 0, ""},
		{"centre completes with output", centre, strings.Replace(consultation("completed", "centre-c", "q"), `"intent"`, `"output":[{"type":{"text":"advice"},"valueString":"a"}],"note":[{"text":"n"}],"intent"`, 1), false, 0, ""},
		{"centre edits the question", centre, consultation("accepted", "centre-c", "edited"), false, http.StatusForbidden, "Task.input"},
		{"centre re-addresses", centre, consultation("accepted", "centre-d", "q"), false, http.StatusForbidden, "Task.owner"},
		{"centre cancels", centre, consultation("cancelled", "centre-c", "q"), false, http.StatusForbidden, "Task.status"},
		{"centre deletes", centre, "", true, http.StatusForbidden, ""},
		{"centre without update scope", readOnly, consultation("accepted", "centre-c", "q"), false, http.StatusForbidden, ""},
		{"another centre", other, consultation("accepted", "centre-c", "q"), false, http.StatusForbidden, ""},
		{"hospital accepts for the centre", hospital, consultation("accepted", "centre-c", "q"), false, http.StatusForbidden, "Task.status"},
		{"hospital cancels", hospital, consultation("cancelled", "centre-c", "q"), false, 0, ""},
		{"hospital edits the question", hospital, consultation("requested", "centre-c", "edited"), false, 0, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var next *store.Version
			if tc.del {
				next = &store.Version{Tenant: tc.p.Tenant, Type: "Task", ID: "k1", VersionID: 2, Deleted: true}
			} else {
				next = version(t, e, tc.p.Tenant, "Task", "k1", tc.body)
				next.VersionID = 2
			}
			err := pol.Writable(tc.p, cur, next)
			var fe *fhir.Error
			switch {
			case tc.want == 0 && err != nil:
				t.Fatalf("Writable: %v", err)
			case tc.want == 0:
				if next.Tenant != "hospital-a" || next.Addressee != "centre-c" {
					t.Errorf("stored as tenant %q addressed to %q; want hospital-a, centre-c", next.Tenant, next.Addressee)
				}
			case !errors.As(err, &fe) || fe.Status != tc.want:
				t.Fatalf("Writable = %v, want status %d", err, tc.want)
			case tc.at != "":
				found := false
				for _, is := range fe.Issues {
					for _, x := range is.Expression {
						found = found || x == tc.at
					}
					if is.Message.ZH == "" || is.Message.EN == "" {
						t.Errorf("refusal not bilingual: %+v", is.Message)
					}
				}
				if !found {
					t.Errorf("refusal %+v names no issue at %s", fe.Issues, tc.at)
				}
			}
		})
	}
}
