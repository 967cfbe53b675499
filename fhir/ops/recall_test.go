package ops_test

import (
	"context"
	"errors"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/fmtbank/cmts/fhir"
	"github.com/fmtbank/cmts/fhir/bundle"
	"github.com/fmtbank/cmts/fhir/ops"
	"github.com/fmtbank/cmts/store"
	"github.com/google/go-cmp/cmp"
)

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

func (r *registry) ops(t testing.TB, guard bundle.Guard) *ops.Ops {
	t.Helper()
	codec, err := fhir.NewCodec()
	if err != nil {
		t.Fatal(err)
	}
	w, err := bundle.NewWriter(bundle.Options{Store: r.st, Codec: codec, Indexer: r.engine, Guard: guard,
		Now: func() time.Time { return recallNow }})
	if err != nil {
		t.Fatal(err)
	}
	return ops.New(ops.Options{Store: r.st, Policy: r.pol, Writer: w, Now: func() time.Time { return recallNow }})
}

// lots is every lot's version and release status, with the status-date
// of the recalled ones.
func (r *registry) lots(t testing.TB) map[string]string {
	t.Helper()
	page, err := r.st.Search(context.Background(), store.Query{Access: store.Tenant(bank), Type: "Specimen", Count: 100,
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
		v, err := r.st.Read(context.Background(), store.Tenant(bank), "Specimen", id)
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

func TestRecall(t *testing.T) {
	t.Parallel()
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
			r := cohort(t)
			r.donation("don3", "d1", "2026-03-01")
			r.lot("l4", "d1", "don3")
			var guard bundle.Guard = r.pol
			if tc.refuse != "" {
				guard = refusing{r.pol, tc.refuse}
			}
			o := r.ops(t, guard)
			err := recall(o, tc.p, tc.typ, tc.id, tc.params)
			var fe *fhir.Error
			switch {
			case tc.status == 0 && err != nil:
				t.Fatal(err)
			case tc.status != 0 && (!errors.As(err, &fe) || fe.Status != tc.status):
				t.Fatalf("want %d, got %v", tc.status, err)
			}
			if diff := cmp.Diff(tc.want, r.lots(t)); diff != "" {
				t.Errorf("lots (-want +got):\n%s", diff)
			}
		})
	}
}

// TestRecallTwice: a recalled lot is not recalled again, and the answer is
// the trace with the lots recalled.
func TestRecallTwice(t *testing.T) {
	t.Parallel()
	r := cohort(t)
	o := r.ops(t, r.pol)
	params := url.Values{"reason": {"r"}}
	for range 2 {
		if err := recall(o, bankStaff, "Specimen", "l2", params); err != nil {
			t.Fatal(err)
		}
	}
	v, err := r.st.Read(context.Background(), store.Tenant(bank), "Specimen", "l2")
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
