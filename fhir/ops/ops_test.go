package ops_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/fmtbank/cmts/auth/policy"
	"github.com/fmtbank/cmts/fhir"
	"github.com/fmtbank/cmts/fhir/ops"
	"github.com/fmtbank/cmts/fhir/search"
	"github.com/fmtbank/cmts/profiles"
	"github.com/fmtbank/cmts/store"
	"github.com/fmtbank/cmts/store/sqlite"
	"github.com/google/go-cmp/cmp"
)

const (
	sd   = "http://fmtbank.org/fhir/StructureDefinition/"
	sid  = "http://fmtbank.org/fhir/sid/"
	bank = "b1"
)

// registry writes resources straight into a store as their tenants would
// (index and reach computed as the server does).
type registry struct {
	t      testing.TB
	st     store.Store
	engine *search.Engine
	pol    *policy.Policy
}

func newRegistry(t testing.TB) *registry {
	t.Helper()
	sps, err := profiles.SearchParameters()
	if err != nil {
		t.Fatal(err)
	}
	engine, err := search.New(sps...)
	if err != nil {
		t.Fatal(err)
	}
	st, err := sqlite.Open(context.Background(), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return &registry{t: t, st: st, engine: engine, pol: policy.New(engine)}
}

func (r *registry) put(tenant string, res map[string]any) {
	r.t.Helper()
	typ, id := res["resourceType"].(string), res["id"].(string)
	body, err := json.Marshal(res)
	if err != nil {
		r.t.Fatal(err)
	}
	idx, err := r.engine.Entries(typ, body)
	if err != nil {
		r.t.Fatal(err)
	}
	v := store.Version{Tenant: tenant, Type: typ, ID: id, VersionID: 1, LastUpdated: time.Now().UTC(),
		Resource: body, Index: idx, Method: "PUT"}
	v.Reach = policy.Reach(&v)
	if err := r.st.Put(context.Background(), store.Write{Version: v}); err != nil {
		r.t.Fatalf("put %s/%s: %v", typ, id, err)
	}
}

func meta(profile string) map[string]any { return map[string]any{"profile": []string{sd + profile}} }
func ref(s string) map[string]any        { return map[string]any{"reference": s} }

func (r *registry) donor(id string) {
	r.put(bank, map[string]any{"resourceType": "Patient", "id": id, "meta": meta("cmts-donor"),
		"identifier": []any{map[string]any{"system": sid + "donor-code", "value": "D-" + id}},
		"name":       []any{map[string]any{"family": "Donor " + id}}})
}

func (r *registry) donation(id, donor, collected string) {
	r.put(bank, map[string]any{"resourceType": "Specimen", "id": id, "meta": meta("cmts-stool-donation"),
		"accessionIdentifier": map[string]any{"system": sid + "donation-id", "value": id},
		"subject":             ref("Patient/" + donor), "collection": map[string]any{"collectedDateTime": collected}})
}

func (r *registry) lot(id, donor string, parents ...string) {
	var ps []any
	for _, p := range parents {
		ps = append(ps, ref("Specimen/"+p))
	}
	r.put(bank, map[string]any{"resourceType": "Specimen", "id": id, "meta": meta("cmts-microbiota-product"),
		"identifier": []any{map[string]any{"system": sid + "product-lot", "value": "L-" + id}},
		"subject":    ref("Patient/" + donor), "parent": ps,
		"extension": []any{map[string]any{"url": sd + "release-status", "valueCode": "released"},
			map[string]any{"url": sd + "status-date", "valueDateTime": "2026-01-01T00:00:00Z"}}})
}

func (r *registry) recipient(hospital, id string) {
	r.put(hospital, map[string]any{"resourceType": "Patient", "id": id, "meta": meta("cmts-recipient"),
		"identifier": []any{map[string]any{"system": sid + "recipient-code", "value": "R-" + id},
			map[string]any{"system": "urn:oid:2.16.840.1.113883.2.4.6.3", "value": "ID-" + id}},
		"name": []any{map[string]any{"family": "Recipient " + id}}, "gender": "female", "birthDate": "1970-05-06"})
}

func (r *registry) procedure(hospital, id, patient string, lots ...string) {
	ext := []any{}
	for _, l := range lots {
		ext = append(ext, map[string]any{"url": sd + "product-lot", "valueReference": ref("Specimen/" + l)})
	}
	r.put(hospital, map[string]any{"resourceType": "Procedure", "id": id, "meta": meta("cmts-wmt-procedure"),
		"status": "completed", "subject": ref("Patient/" + patient), "performedDateTime": "2026-02-01",
		"extension": ext})
}

func (r *registry) event(hospital, id, patient string, procs ...string) {
	var s []any
	for _, p := range procs {
		s = append(s, map[string]any{"instance": ref("Procedure/" + p)})
	}
	r.put(hospital, map[string]any{"resourceType": "AdverseEvent", "id": id, "meta": meta("cmts-adverse-event"),
		"actuality": "actual", "subject": ref("Patient/" + patient), "date": "2026-02-03", "suspectEntity": s})
}

func principal(tenant string, kind fhir.TenantKind, role fhir.Role) *fhir.Principal {
	scopes := []string{"user/*.cruds"}
	return &fhir.Principal{Tenant: tenant, TenantKind: kind, Subject: "s", Roles: []fhir.Role{role},
		Scopes: scopes, Grants: fhir.ParseScopes(scopes)}
}

var (
	bankStaff = principal(bank, fhir.TenantBank, fhir.RoleBankStaff)
	bank2     = principal("b2", fhir.TenantBank, fhir.RoleBankStaff)
	hosp1     = principal("h1", fhir.TenantHospital, fhir.RoleClinician)
	hosp2     = principal("h2", fhir.TenantHospital, fhir.RoleClinician)
	regulator = principal("gov", fhir.TenantAuthority, fhir.RoleRegulator)
)

// cohort: donor d1 gave donation don1; lot l1 was made from it and lot l2
// from l1 (a second processing), lot l3 from don1 and don2 (a pool). Hospital
// h1's r1 had l2 (procedure p1, adverse event e1); h2's r2 had l1 (p2) and
// r3 had l3 (p3, e3 suspecting p3 and p4); r4 at h2 had donor d2's lot l9
// only (p4), so nothing from d1 reaches it but e3 suspects p4 too.
func cohort(t testing.TB) *registry {
	r := newRegistry(t)
	r.donor("d1")
	r.donor("d2")
	r.donation("don1", "d1", "2026-01-01")
	r.donation("don2", "d2", "2026-01-02")
	r.lot("l1", "d1", "don1")
	r.lot("l2", "d1", "l1")
	r.lot("l3", "d1", "don1", "don2")
	r.lot("l9", "d2", "don2")
	r.recipient("h1", "r1")
	r.recipient("h2", "r2")
	r.recipient("h2", "r3")
	r.recipient("h2", "r4")
	r.procedure("h1", "p1", "r1", "l2")
	r.procedure("h2", "p2", "r2", "l1")
	r.procedure("h2", "p3", "r3", "l3")
	r.procedure("h2", "p4", "r4", "l9")
	r.event("h1", "e1", "r1", "p1")
	r.event("h2", "e3", "r3", "p3", "p4")
	return r
}

// shown is one entry of a trace as the test compares it.
type shown struct {
	Ref, Source string
	Named       bool // still carries a name (not de-identified)
}

func trace(t *testing.T, o *ops.Ops, p *fhir.Principal, typ, id string) ([]shown, error) {
	t.Helper()
	status, body, _, ok, err := o.Operation(context.Background(), p, typ, id, "$trace", nil, nil)
	if err != nil {
		return nil, err
	}
	if !ok || status != 200 {
		t.Fatalf("$trace: ok %v status %d", ok, status)
	}
	var b struct {
		ResourceType, Type string
		Entry              []struct{ Resource map[string]any }
	}
	if err := json.Unmarshal(body, &b); err != nil {
		t.Fatal(err)
	}
	if b.ResourceType != "Bundle" || b.Type != "collection" {
		t.Fatalf("not a collection Bundle: %s", body)
	}
	var out []shown
	for _, e := range b.Entry {
		m := e.Resource["meta"].(map[string]any)
		_, named := e.Resource["name"]
		out = append(out, shown{Ref: fmt.Sprint(e.Resource["resourceType"], "/", e.Resource["id"]),
			Source: strings.TrimPrefix(m["source"].(string), ops.TenantSource), Named: named})
	}
	slices.SortFunc(out, func(a, b shown) int { return strings.Compare(a.Ref, b.Ref) })
	return out, nil
}

func TestTrace(t *testing.T) {
	t.Parallel()
	r := cohort(t)
	o := ops.New(ops.Options{Store: r.st, Policy: r.pol})
	// Resources as each caller sees them; x marks a de-identified one.
	b := func(ref string) shown {
		return shown{Ref: ref, Source: bank, Named: strings.HasPrefix(ref, "Patient/")}
	}
	own := func(tenant, ref string) shown {
		return shown{Ref: ref, Source: tenant, Named: strings.HasPrefix(ref, "Patient/")}
	}
	x := func(tenant, ref string) shown { return shown{Ref: ref, Source: tenant} }
	lot := func(id string) shown { return shown{Ref: "Specimen/" + id, Source: bank} }
	tests := []struct {
		name    string
		p       *fhir.Principal
		typ, id string
		want    []shown
		missing bool
	}{
		{name: "bank from its donor: every depth, recipients de-identified with their hospital", p: bankStaff, typ: "Patient", id: "d1",
			want: []shown{x("h1", "AdverseEvent/e1"), x("h2", "AdverseEvent/e3"), b("Patient/d1"),
				x("h1", "Patient/r1"), x("h2", "Patient/r2"), x("h2", "Patient/r3"),
				x("h1", "Procedure/p1"), x("h2", "Procedure/p2"), x("h2", "Procedure/p3"),
				b("Specimen/don1"), lot("l1"), lot("l2"), lot("l3")}},
		{name: "bank from a donation", p: bankStaff, typ: "Specimen", id: "don2",
			want: []shown{x("h2", "AdverseEvent/e3"), x("h2", "Patient/r3"), x("h2", "Patient/r4"),
				x("h2", "Procedure/p3"), x("h2", "Procedure/p4"), b("Specimen/don2"), lot("l3"), lot("l9")}},
		{name: "bank from a lot two levels down", p: bankStaff, typ: "Specimen", id: "l2",
			want: []shown{x("h1", "AdverseEvent/e1"), x("h1", "Patient/r1"), x("h1", "Procedure/p1"), lot("l2")}},
		{name: "hospital from a lot: its own in full, nothing of other hospitals", p: hosp1, typ: "Specimen", id: "l1",
			want: []shown{own("h1", "AdverseEvent/e1"), own("h1", "Patient/r1"), own("h1", "Procedure/p1"), lot("l1"), lot("l2")}},
		{name: "regulator from a lot: all tenants de-identified", p: regulator, typ: "Specimen", id: "l1",
			want: []shown{x("h1", "AdverseEvent/e1"), x("h1", "Patient/r1"), x("h2", "Patient/r2"),
				x("h1", "Procedure/p1"), x("h2", "Procedure/p2"), lot("l1"), lot("l2")}},
		{name: "hospital back from its recipient: lots, never the bank's donation or donor", p: hosp2, typ: "Patient", id: "r3",
			want: []shown{own("h2", "Patient/r3"), own("h2", "Procedure/p3"), lot("l3")}},
		{name: "bank back from a recipient it cannot read", p: bankStaff, typ: "Patient", id: "r3", missing: true},
		{name: "a donor never leaves its bank", p: hosp1, typ: "Patient", id: "d1", missing: true},
		{name: "another bank's donor", p: bank2, typ: "Patient", id: "d1", missing: true},
		{name: "regulator cannot start from a donor", p: regulator, typ: "Patient", id: "d1", missing: true},
		{name: "another bank's donation", p: bank2, typ: "Specimen", id: "don1", missing: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, err := trace(t, o, tc.p, tc.typ, tc.id)
			if tc.missing {
				var fe *fhir.Error
				if err == nil || !asFHIR(err, &fe) || fe.Status != 404 {
					t.Fatalf("want 404, got %v (%v)", err, got)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("trace (-want +got):\n%s", diff)
			}
		})
	}
}

func asFHIR(err error, fe **fhir.Error) bool { return errors.As(err, fe) }
