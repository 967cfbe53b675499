// Package opstest is the conformance suite of the WMT safety operations
// (fhir/ops): hand-worked cohorts written straight into a store, the same
// tests run on every backend.
package opstest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/fmtbank/cmts/auth/policy"
	"github.com/fmtbank/cmts/fhir"
	"github.com/fmtbank/cmts/fhir/bundle"
	"github.com/fmtbank/cmts/fhir/ops"
	"github.com/fmtbank/cmts/fhir/search"
	"github.com/fmtbank/cmts/profiles"
	"github.com/fmtbank/cmts/store"
	"github.com/google/go-cmp/cmp"
)

// NewStore returns a fresh, empty store (the suite does not close it).
type NewStore func(t testing.TB) store.Store

// Run runs the suite on stores from newStore.
func Run(t *testing.T, newStore NewStore) {
	t.Run("Trace", func(t *testing.T) { testTrace(t, newStore) })
	t.Run("TraceDepth", func(t *testing.T) { testTraceDepth(t, newStore) })
	t.Run("TraceAfterChanges", func(t *testing.T) { testTraceAfterChanges(t, newStore) })
	t.Run("Recall", func(t *testing.T) { testRecall(t, newStore) })
	t.Run("RecallTwice", func(t *testing.T) { testRecallTwice(t, newStore) })
	t.Run("AEReport", func(t *testing.T) { testAEReport(t, newStore) })
	t.Run("AEReportAfterChanges", func(t *testing.T) { testAEReportAfterChanges(t, newStore) })
	t.Run("EfficacyReport", func(t *testing.T) { testEfficacyReport(t, newStore) })
	t.Run("FollowUpDue", func(t *testing.T) { testFollowUpDue(t, newStore) })
	t.Run("AidEligibility", func(t *testing.T) { testAidEligibility(t, newStore) })
}

const (
	sd   = "http://fmtbank.org/fhir/StructureDefinition/"
	sid  = "http://fmtbank.org/fhir/sid/"
	bank = "b1"
)

// Registry writes resources straight into a store as their tenants would
// (index and reach computed as the server does).
type Registry struct {
	t  testing.TB
	St store.Store
	// Engine indexes what the registry writes (the guide's parameters).
	Engine *search.Engine
	// Pol is the access policy over the guide's search engine.
	Pol *policy.Policy
	// Now stamps what the registry writes (default time.Now).
	Now func() time.Time
}

// NewRegistry writes into st.
func NewRegistry(t testing.TB, st store.Store) *Registry {
	t.Helper()
	sps, err := profiles.SearchParameters()
	if err != nil {
		t.Fatal(err)
	}
	engine, err := search.New(sps...)
	if err != nil {
		t.Fatal(err)
	}
	return &Registry{t: t, St: st, Engine: engine, Pol: policy.New(engine)}
}

func (r *Registry) put(tenant string, res map[string]any) {
	r.t.Helper()
	typ, id := res["resourceType"].(string), res["id"].(string)
	body, err := json.Marshal(res)
	if err != nil {
		r.t.Fatal(err)
	}
	idx, err := r.Engine.Entries(typ, body)
	if err != nil {
		r.t.Fatal(err)
	}
	v := store.Version{Tenant: tenant, Type: typ, ID: id, VersionID: 1, LastUpdated: r.now(),
		Resource: body, Index: idx, Method: "PUT"}
	v.Reach = policy.Reach(&v)
	if err := r.St.Put(context.Background(), store.Write{Version: v}); err != nil {
		r.t.Fatalf("put %s/%s: %v", typ, id, err)
	}
}

// now is the stamp of a write.
func (r *Registry) now() time.Time {
	if r.Now != nil {
		return r.Now().UTC()
	}
	return time.Now().UTC()
}

func meta(profile string) map[string]any { return map[string]any{"profile": []string{sd + profile}} }
func ref(s string) map[string]any        { return map[string]any{"reference": s} }

// Donor writes the bank's donor Patient id (donor code D-id).
func (r *Registry) Donor(id string) {
	r.put(bank, map[string]any{"resourceType": "Patient", "id": id, "meta": meta("cmts-donor"),
		"identifier": []any{map[string]any{"system": sid + "donor-code", "value": "D-" + id}},
		"name":       []any{map[string]any{"family": "Donor " + id}}})
}

// Donation writes a stool donation of donor collected at collected.
func (r *Registry) Donation(id, donor, collected string) {
	r.put(bank, map[string]any{"resourceType": "Specimen", "id": id, "meta": meta("cmts-stool-donation"),
		"accessionIdentifier": map[string]any{"system": sid + "donation-id", "value": id},
		"subject":             ref("Patient/" + donor), "collection": map[string]any{"collectedDateTime": collected}})
}

// Lot writes a released product lot of donor made from parents.
func (r *Registry) Lot(id, donor string, parents ...string) {
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

// Recipient writes hospital's recipient Patient id (named, to show de-identification).
func (r *Registry) Recipient(hospital, id string) {
	r.put(hospital, map[string]any{"resourceType": "Patient", "id": id, "meta": meta("cmts-recipient"),
		"identifier": []any{map[string]any{"system": sid + "recipient-code", "value": "R-" + id},
			map[string]any{"system": "urn:oid:2.16.840.1.113883.2.4.6.3", "value": "ID-" + id}},
		"name": []any{map[string]any{"family": "Recipient " + id}}, "gender": "female", "birthDate": "1970-05-06"})
}

// Procedure writes hospital's WMT procedure id on patient using lots.
func (r *Registry) Procedure(hospital, id, patient string, lots ...string) {
	ext := []any{}
	for _, l := range lots {
		ext = append(ext, map[string]any{"url": sd + "product-lot", "valueReference": ref("Specimen/" + l)})
	}
	r.put(hospital, map[string]any{"resourceType": "Procedure", "id": id, "meta": meta("cmts-wmt-procedure"),
		"status": "completed", "subject": ref("Patient/" + patient), "performedDateTime": "2026-02-01",
		"extension": ext})
}

// Event writes hospital's adverse event id of patient suspecting procs.
func (r *Registry) Event(hospital, id, patient string, procs ...string) {
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

// Cohort writes into st the suite's hand-worked registry: donor d1 gave donation don1; lot l1 was made from it and lot l2
// from l1 (a second processing), lot l3 from don1 and don2 (a pool). Hospital
// h1's r1 had l2 (procedure p1, adverse event e1); h2's r2 had l1 (p2) and
// r3 had l3 (p3, e3 suspecting p3 and p4); r4 at h2 had donor d2's lot l9
// only (p4), so nothing from d1 reaches it but e3 suspects p4 too.
func Cohort(t testing.TB, st store.Store) *Registry {
	r := NewRegistry(t, st)
	r.Donor("d1")
	r.Donor("d2")
	r.Donation("don1", "d1", "2026-01-01")
	r.Donation("don2", "d2", "2026-01-02")
	r.Lot("l1", "d1", "don1")
	r.Lot("l2", "d1", "l1")
	r.Lot("l3", "d1", "don1", "don2")
	r.Lot("l9", "d2", "don2")
	r.Recipient("h1", "r1")
	r.Recipient("h2", "r2")
	r.Recipient("h2", "r3")
	r.Recipient("h2", "r4")
	r.Procedure("h1", "p1", "r1", "l2")
	r.Procedure("h2", "p2", "r2", "l1")
	r.Procedure("h2", "p3", "r3", "l3")
	r.Procedure("h2", "p4", "r4", "l9")
	r.Event("h1", "e1", "r1", "p1")
	r.Event("h2", "e3", "r3", "p3", "p4")
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

func testTrace(t *testing.T, newStore NewStore) {
	r := Cohort(t, newStore(t))
	o := ops.New(ops.Options{Store: r.St, Policy: r.Pol})
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
				if err == nil || !errors.As(err, &fe) || fe.Status != 404 {
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

var recallNow = time.Date(2026, 3, 10, 8, 0, 0, 0, time.UTC)

// refusing is the policy, refusing every write of one resource (to prove
// that one refused lot stores none).
type refusing struct {
	fhir.Policy
	id string
}

func (r refusing) Writable(p *fhir.Principal, cur, next *store.Version) error {
	if next.ID == r.id {
		return fhir.Forbidden("refused by the test", "测试拒绝")
	}
	return r.Policy.Writable(p, cur, next)
}

func (r *Registry) ops(t testing.TB, guard bundle.Guard) *ops.Ops {
	t.Helper()
	codec, err := fhir.NewCodec()
	if err != nil {
		t.Fatal(err)
	}
	if _, bench := t.(*testing.B); !bench {
		codec = codec.Verifying() // see resttest's codecAndEngine
	}
	w, err := bundle.NewWriter(bundle.Options{Store: r.St, Codec: codec, Indexer: r.Engine, Guard: guard,
		Now: func() time.Time { return recallNow }})
	if err != nil {
		t.Fatal(err)
	}
	return ops.New(ops.Options{Store: r.St, Policy: r.Pol, Writer: w, Now: func() time.Time { return recallNow }})
}

// lots is every lot's version and release status, with the status-date
// of the recalled ones.
func (r *Registry) lots(t testing.TB) map[string]string {
	t.Helper()
	page, err := r.St.Search(context.Background(), store.Query{Access: store.Tenant(bank), Type: "Specimen", Count: 100,
		Filter: store.Token{Param: "release-status", Code: "recalled"}})
	if err != nil {
		t.Fatal(err)
	}
	recalledNow := map[string]bool{}
	for _, v := range page.Versions {
		recalledNow[v.ID] = true
	}
	out := map[string]string{}
	for _, id := range []string{"l1", "l2", "l3", "l4", "l9"} {
		v, err := r.St.Read(context.Background(), store.Tenant(bank), "Specimen", id)
		if errors.Is(err, store.ErrNotFound) {
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		s := "v" + string(rune('0'+v.VersionID))
		if recalledNow[id] {
			s += " recalled"
		}
		out[id] = s
	}
	return out
}

func recall(o *ops.Ops, p *fhir.Principal, typ, id string, params url.Values) error {
	_, _, _, ok, err := o.Operation(context.Background(), p, typ, id, "$recall", params, nil)
	if err == nil && !ok {
		return errors.New("$recall not offered")
	}
	return err
}

func testRecall(t *testing.T, newStore NewStore) {
	reason := url.Values{"reason": {"donor screening positive"}}
	tests := []struct {
		name    string
		p       *fhir.Principal
		typ, id string
		params  url.Values
		refuse  string
		status  int // of the error; 0 for success
		want    map[string]string
	}{
		{name: "a donor: every lot at every depth, one transaction", p: bankStaff, typ: "Patient", id: "d1", params: reason,
			want: map[string]string{"l1": "v2 recalled", "l2": "v2 recalled", "l3": "v2 recalled", "l4": "v2 recalled", "l9": "v1"}},
		{name: "a lot: it and the lots made from it", p: bankStaff, typ: "Specimen", id: "l1", params: reason,
			want: map[string]string{"l1": "v2 recalled", "l2": "v2 recalled", "l3": "v1", "l4": "v1", "l9": "v1"}},
		{name: "a donation: its lots, pooled ones included", p: bankStaff, typ: "Specimen", id: "don2", params: reason,
			want: map[string]string{"l1": "v1", "l2": "v1", "l3": "v2 recalled", "l4": "v1", "l9": "v2 recalled"}},
		{name: "since: only lots from donations collected on or after it", p: bankStaff, typ: "Patient", id: "d1",
			params: url.Values{"reason": {"x"}, "since": {"2026-02-01"}},
			want:   map[string]string{"l1": "v1", "l2": "v1", "l3": "v1", "l4": "v2 recalled", "l9": "v1"}},
		{name: "one refused lot: nothing stored", p: bankStaff, typ: "Patient", id: "d1", params: reason, refuse: "l2", status: 403,
			want: map[string]string{"l1": "v1", "l2": "v1", "l3": "v1", "l4": "v1", "l9": "v1"}},
		{name: "a hospital may not recall", p: hosp1, typ: "Specimen", id: "l1", params: reason, status: 403,
			want: map[string]string{"l1": "v1", "l2": "v1", "l3": "v1", "l4": "v1", "l9": "v1"}},
		{name: "nor the regulator", p: regulator, typ: "Specimen", id: "l1", params: reason, status: 403,
			want: map[string]string{"l1": "v1", "l2": "v1", "l3": "v1", "l4": "v1", "l9": "v1"}},
		{name: "nor another bank (which cannot see the donor)", p: bank2, typ: "Patient", id: "d1", params: reason, status: 404,
			want: map[string]string{"l1": "v1", "l2": "v1", "l3": "v1", "l4": "v1", "l9": "v1"}},
		{name: "a reason is required", p: bankStaff, typ: "Patient", id: "d1", status: 400,
			want: map[string]string{"l1": "v1", "l2": "v1", "l3": "v1", "l4": "v1", "l9": "v1"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r := Cohort(t, newStore(t))
			r.Donation("don3", "d1", "2026-03-01")
			r.Lot("l4", "d1", "don3")
			var guard bundle.Guard = r.Pol
			if tc.refuse != "" {
				guard = refusing{r.Pol, tc.refuse}
			}
			o := r.ops(t, guard)
			// A look-back first, so that the answer is made from views
			// brought up to date after the recall's writes.
			if _, err := o.Trace(context.Background(), bankStaff, "Patient", "d1"); err != nil {
				t.Fatal(err)
			}
			_, body, _, _, err := o.Operation(context.Background(), tc.p, tc.typ, tc.id, "$recall", tc.params, nil)
			var fe *fhir.Error
			switch {
			case tc.status == 0 && err != nil:
				t.Fatal(err)
			case tc.status != 0 && (!errors.As(err, &fe) || fe.Status != tc.status):
				t.Fatalf("want %d, got %v", tc.status, err)
			}
			// The answer is the trace with the lots as recalled.
			recalled := 0
			for _, s := range tc.want {
				if strings.HasSuffix(s, "recalled") {
					recalled++
				}
			}
			if n := strings.Count(string(body), `"valueCode":"recalled"`); tc.status == 0 && n != recalled {
				t.Errorf("the answer shows %d lots recalled, want %d: %s", n, recalled, body)
			}
			if diff := cmp.Diff(tc.want, r.lots(t)); diff != "" {
				t.Errorf("lots (-want +got):\n%s", diff)
			}
		})
	}
}

// testRecallTwice: a recalled lot is not recalled again, and the answer is
// the trace with the lots recalled.
func testRecallTwice(t *testing.T, newStore NewStore) {
	r := Cohort(t, newStore(t))
	o := r.ops(t, r.Pol)
	params := url.Values{"reason": {"r"}}
	for range 2 {
		if err := recall(o, bankStaff, "Specimen", "l2", params); err != nil {
			t.Fatal(err)
		}
	}
	v, err := r.St.Read(context.Background(), store.Tenant(bank), "Specimen", "l2")
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{`"valueCode":"recalled"`, `"valueDateTime":"2026-03-10T08:00:00Z"`, `"text":"Recalled: r"`} {
		if !strings.Contains(string(v.Resource), s) {
			t.Errorf("the recalled lot lacks %s: %s", s, v.Resource)
		}
	}
	_, body, _, _, err := o.Operation(context.Background(), bankStaff, "Specimen", "l2", "$recall", params, nil)
	if err != nil || !strings.Contains(string(body), `"valueCode":"recalled"`) || !strings.Contains(string(body), `"Patient"`) {
		t.Errorf("the answer is not the trace of the recalled lot (%v): %s", err, body)
	}
	want := map[string]string{"l1": "v1", "l2": "v2 recalled", "l3": "v1", "l9": "v1"}
	if diff := cmp.Diff(want, r.lots(t)); diff != "" {
		t.Errorf("lots (-want +got):\n%s", diff)
	}
}

// testTraceDepth: a lot made from a lot, six times over, each level used
// by one recipient; the look-back from the donor reaches each recipient,
// and from the fourth lot only the recipients of levels four to six.
func testTraceDepth(t *testing.T, newStore NewStore) {
	r := NewRegistry(t, newStore(t))
	r.Donor("d1")
	r.Donation("don1", "d1", "2026-01-01")
	parent := "don1"
	for i := 1; i <= 6; i++ {
		lot, rec := fmt.Sprintf("k%d", i), fmt.Sprintf("q%d", i)
		r.Lot(lot, "d1", parent)
		r.Recipient("h1", rec)
		r.Procedure("h1", "pq"+rec[1:], rec, lot)
		parent = lot
	}
	r.Recipient("h1", "q0") // received nothing
	o := ops.New(ops.Options{Store: r.St, Policy: r.Pol})
	recipients := func(typ, id string) []string {
		got, err := trace(t, o, bankStaff, typ, id)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, s := range got {
			if strings.HasPrefix(s.Ref, "Patient/q") {
				out = append(out, strings.TrimPrefix(s.Ref, "Patient/"))
			}
		}
		return out
	}
	if diff := cmp.Diff([]string{"q1", "q2", "q3", "q4", "q5", "q6"}, recipients("Patient", "d1")); diff != "" {
		t.Errorf("from the donor (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"q4", "q5", "q6"}, recipients("Specimen", "k4")); diff != "" {
		t.Errorf("from the fourth lot (-want +got):\n%s", diff)
	}
	// Back from the last recipient: every lot up the chain (shared), never
	// the bank's donation or donor.
	got, err := trace(t, o, hosp1, "Patient", "q6")
	if err != nil {
		t.Fatal(err)
	}
	var refs []string
	for _, s := range got {
		refs = append(refs, s.Ref)
	}
	want := []string{"Patient/q6", "Procedure/pq6", "Specimen/k1", "Specimen/k2", "Specimen/k3", "Specimen/k4", "Specimen/k5", "Specimen/k6"}
	if diff := cmp.Diff(want, refs); diff != "" {
		t.Errorf("back from q6 (-want +got):\n%s", diff)
	}
}
