package opstest

import (
	"context"
	"encoding/json"
	"net/url"
	"testing"
	"time"

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
		LastUpdated: time.Now().UTC(), Method: "DELETE", Deleted: res == nil, Reach: cur.Reach}
	if res != nil {
		body, err := json.Marshal(res)
		if err != nil {
			r.t.Fatal(err)
		}
		if v.Index, err = engine.Entries(cur.Type, body); err != nil {
			r.t.Fatal(err)
		}
		v.Resource, v.Method = body, "PUT"
	}
	if err := r.St.Put(context.Background(), store.Write{PrevVersion: cur.VersionID, Version: v}); err != nil {
		r.t.Fatalf("write %s/%s: %v", cur.Type, cur.ID, err)
	}
}
