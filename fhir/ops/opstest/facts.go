package opstest

import (
	"context"
	"encoding/json"
	"net/url"
	"strings"
	"testing"

	"github.com/fmtbank/cmts/auth/policy"
	"github.com/fmtbank/cmts/fhir"
	"github.com/fmtbank/cmts/fhir/ops"
	"github.com/fmtbank/cmts/fhir/search"
	"github.com/fmtbank/cmts/store"
	"github.com/google/go-cmp/cmp"
)

// testAEReportAfterChanges: the reports keep what they decoded of each
// version (ops' facts); after an event is changed, a procedure deleted and
// a procedure added, a second report on the same operations equals a
// report computed from scratch, and differs from the first.
func testAEReportAfterChanges(t *testing.T, newStore NewStore) {
	r := NewRegistry(t, newStore(t))
	AECohort(t, r)
	o := ops.New(ops.Options{Store: r.St, Policy: r.Pol})
	ctx := context.Background()
	q, err := ops.ParseAEQuery(url.Values{})
	if err != nil {
		t.Fatal(err)
	}
	report := func(o *ops.Ops) []string {
		t.Helper()
		body, err := o.AEReport(ctx, hosp1, q, true)
		if err != nil {
			t.Fatal(err)
		}
		return []string{string(body)}
	}
	before := report(o)
	// ea2 becomes severe and definitely related; pc2 is deleted (its event
	// ec1 no longer counts); pa4 is a new procedure of pa's second course.
	r.change("h1", func(res map[string]any) {
		res["severity"] = map[string]any{"coding": []any{map[string]any{
			"system": "http://terminology.hl7.org/CodeSystem/adverse-event-severity", "code": "severe"}}}
		res["suspectEntity"].([]any)[0].(map[string]any)["causality"] = []any{map[string]any{
			"assessment": map[string]any{"coding": []any{map[string]any{"system": cs + "relatedness", "code": "definitely"}}}}}
	}, "AdverseEvent", "ea2")
	r.remove("h1", "Procedure", "pc2")
	r.WMTProcedure(WMT{"h1", "pa4", "pa", "cpa", 2, "2026-03-06T10:00:00+08:00", "colonic-tet", ""})
	after := report(o)
	fresh := report(ops.New(ops.Options{Store: r.St, Policy: r.Pol}))
	if diff := cmp.Diff(fresh, after); diff != "" {
		t.Errorf("the report after changes is not the report from scratch (-fresh +after):\n%s", diff)
	}
	if cmp.Equal(before, after) {
		t.Error("the changes did not change the report: the test proves nothing")
	}
}

// change writes a new version of typ/id, edited by edit.
func (r *Registry) change(tenant string, edit func(map[string]any), typ, id string) {
	r.t.Helper()
	cur, err := r.St.Read(context.Background(), store.Tenant(tenant), typ, id)
	if err != nil {
		r.t.Fatal(err)
	}
	var res map[string]any
	if err := json.Unmarshal(cur.Resource, &res); err != nil {
		r.t.Fatal(err)
	}
	edit(res)
	r.write(r.Engine, cur, res)
}

// remove deletes typ/id.
func (r *Registry) remove(tenant, typ, id string) {
	r.t.Helper()
	cur, err := r.St.Read(context.Background(), store.Tenant(tenant), typ, id)
	if err != nil {
		r.t.Fatal(err)
	}
	r.write(nil, cur, nil)
}

// write stores the version after cur: res, or a tombstone when nil.
func (r *Registry) write(engine *search.Engine, cur *store.Version, res map[string]any) {
	r.t.Helper()
	v := store.Version{Tenant: cur.Tenant, Type: cur.Type, ID: cur.ID, VersionID: cur.VersionID + 1,
		LastUpdated: r.now(), Method: "DELETE", Deleted: res == nil, Reach: cur.Reach}
	if res != nil {
		body, err := json.Marshal(res)
		if err != nil {
			r.t.Fatal(err)
		}
		if v.Index, err = engine.Entries(cur.Type, body); err != nil {
			r.t.Fatal(err)
		}
		v.Resource, v.Method = body, "PUT"
		v.Reach = policy.Reach(&v) // as the server does: it follows the content
	}
	if err := r.St.Put(context.Background(), store.Write{PrevVersion: cur.VersionID, Version: v}); err != nil {
		r.t.Fatalf("write %s/%s: %v", cur.Type, cur.ID, err)
	}
}

// testTraceAfterChanges: the look-back walks views kept up to date from the
// store's history (ops' facts), which read as a reader of every tenant (a
// recipient its hospital alone reads is found all the same); after a new lot, a new procedure and event
// on it, a deleted procedure and a recipient who comes to be read by its
// hospital only (given a donor code), a second look-back on the same
// operations shows each change, to each caller as before, and equals a
// look-back from scratch.
func testTraceAfterChanges(t *testing.T, newStore NewStore) {
	r := Cohort(t, newStore(t))
	// r5 at h1 carries a donor code from the start: h1 reads it, nobody
	// else does, not even in a look-back of the lot it had.
	r.put("h1", map[string]any{"resourceType": "Patient", "id": "r5", "meta": meta("cmts-recipient"),
		"identifier": []any{map[string]any{"system": sid + "recipient-code", "value": "R-r5"},
			map[string]any{"system": sid + "donor-code", "value": "D-r5"}},
		"name": []any{map[string]any{"family": "Recipient r5"}}, "gender": "male", "birthDate": "1980-01-02"})
	r.Procedure("h1", "p6", "r5", "l1")
	o := ops.New(ops.Options{Store: r.St, Policy: r.Pol})
	x := func(tenant, ref string) shown { return shown{Ref: ref, Source: tenant} }
	own := func(tenant, ref string) shown {
		return shown{Ref: ref, Source: tenant, Named: strings.HasPrefix(ref, "Patient/")}
	}
	lot := func(id string) shown { return shown{Ref: "Specimen/" + id, Source: bank} }
	cases := []struct {
		name          string
		p             *fhir.Principal
		typ, id       string
		before, after []shown
	}{
		{name: "bank from its donor", p: bankStaff, typ: "Patient", id: "d1",
			before: []shown{x("h1", "AdverseEvent/e1"), x("h2", "AdverseEvent/e3"), own(bank, "Patient/d1"),
				x("h1", "Patient/r1"), x("h2", "Patient/r2"), x("h2", "Patient/r3"),
				x("h1", "Procedure/p1"), x("h2", "Procedure/p2"), x("h2", "Procedure/p3"), x("h1", "Procedure/p6"),
				own(bank, "Specimen/don1"), lot("l1"), lot("l2"), lot("l3")},
			// r1 now reads as its hospital's only; r2 was reached through
			// p2 alone; r4 through p5 on the new lot l4.
			after: []shown{x("h1", "AdverseEvent/e1"), x("h2", "AdverseEvent/e3"), x("h2", "AdverseEvent/e5"),
				own(bank, "Patient/d1"), x("h2", "Patient/r3"), x("h2", "Patient/r4"),
				x("h1", "Procedure/p1"), x("h2", "Procedure/p3"), x("h2", "Procedure/p5"), x("h1", "Procedure/p6"),
				own(bank, "Specimen/don1"), lot("l1"), lot("l2"), lot("l3"), lot("l4")}},
		{name: "hospital from a lot: its own recipient still in full", p: hosp1, typ: "Specimen", id: "l1",
			before: []shown{own("h1", "AdverseEvent/e1"), own("h1", "Patient/r1"), own("h1", "Patient/r5"),
				own("h1", "Procedure/p1"), own("h1", "Procedure/p6"), lot("l1"), lot("l2")},
			after: []shown{own("h1", "AdverseEvent/e1"), own("h1", "Patient/r1"), own("h1", "Patient/r5"),
				own("h1", "Procedure/p1"), own("h1", "Procedure/p6"), lot("l1"), lot("l2"), lot("l4")}},
		{name: "other hospital from a lot: the new procedure, not the deleted one", p: hosp2, typ: "Specimen", id: "l1",
			before: []shown{own("h2", "Patient/r2"), own("h2", "Procedure/p2"), lot("l1"), lot("l2")},
			after: []shown{own("h2", "AdverseEvent/e5"), own("h2", "Patient/r4"), own("h2", "Procedure/p5"),
				lot("l1"), lot("l2"), lot("l4")}},
		{name: "regulator from a lot", p: regulator, typ: "Specimen", id: "l1",
			before: []shown{x("h1", "AdverseEvent/e1"), x("h1", "Patient/r1"), x("h2", "Patient/r2"),
				x("h1", "Procedure/p1"), x("h2", "Procedure/p2"), x("h1", "Procedure/p6"), lot("l1"), lot("l2")},
			after: []shown{x("h1", "AdverseEvent/e1"), x("h2", "AdverseEvent/e5"), x("h2", "Patient/r4"),
				x("h1", "Procedure/p1"), x("h2", "Procedure/p5"), x("h1", "Procedure/p6"), lot("l1"), lot("l2"), lot("l4")}},
	}
	run := func(o *ops.Ops, want func(int) []shown) {
		t.Helper()
		for i, tc := range cases {
			got, err := trace(t, o, tc.p, tc.typ, tc.id)
			if err != nil {
				t.Fatalf("%s: %v", tc.name, err)
			}
			if diff := cmp.Diff(want(i), got); diff != "" {
				t.Errorf("%s (-want +got):\n%s", tc.name, diff)
			}
		}
	}
	run(o, func(i int) []shown { return cases[i].before })
	r.Lot("l4", "d1", "l2")
	r.Procedure("h2", "p5", "r4", "l4")
	r.Event("h2", "e5", "r4", "p5")
	r.remove("h2", "Procedure", "p2")
	r.change("h1", func(res map[string]any) {
		res["identifier"] = append(res["identifier"].([]any), map[string]any{"system": sid + "donor-code", "value": "D-r1"})
	}, "Patient", "r1")
	run(o, func(i int) []shown { return cases[i].after })
	run(ops.New(ops.Options{Store: r.St, Policy: r.Pol}), func(i int) []shown { return cases[i].after })
}
