package audit

import (
	"context"
	"encoding/json"
	"net/url"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/fmtbank/cmts/fhir"
	"github.com/fmtbank/cmts/fhir/search"
	"github.com/fmtbank/cmts/store"
	"github.com/fmtbank/cmts/store/sqlite"
	"github.com/google/go-cmp/cmp"
)

// newStore opens an embedded store in a temporary directory.
func newStore(t *testing.T) store.Store {
	t.Helper()
	st, err := sqlite.Open(context.Background(), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// newMaker is a Maker for testServer with the R4 search parameters.
func newMaker(t testing.TB) *Maker {
	t.Helper()
	engine, err := search.New()
	if err != nil {
		t.Fatal(err)
	}
	return &Maker{Server: testServer, Indexer: engine}
}

// find runs AuditEvent?query for tenant and returns the references of the
// data entities (entity.what) of the matches, sorted.
func find(t *testing.T, st store.Store, tenant, query string) []string {
	t.Helper()
	engine, err := search.New()
	if err != nil {
		t.Fatal(err)
	}
	params, err := url.ParseQuery(query)
	if err != nil {
		t.Fatal(err)
	}
	filter, err := engine.Compile("AuditEvent", params)
	if err != nil {
		t.Fatalf("AuditEvent?%s: %v", query, err)
	}
	page, err := st.Search(context.Background(), store.Query{Access: store.Tenant(tenant), Type: "AuditEvent", Filter: filter, Count: 1000})
	if err != nil {
		t.Fatalf("AuditEvent?%s: %v", query, err)
	}
	out := []string{}
	for _, v := range page.Versions {
		var ev AuditEvent
		if err := json.Unmarshal(v.Resource, &ev); err != nil {
			t.Fatal(err)
		}
		what := ev.Subtype[0].Code + " " + ev.Outcome
		for _, e := range ev.Entity {
			if e.What != nil && e.What.Reference != "" && e.Role != nil && e.Role.Code == codeDomainRes.Code {
				what += " " + e.What.Reference
			}
		}
		out = append(out, what)
	}
	sort.Strings(out)
	return out
}

// TestWriteSearchable stores events through NewWrite and finds them by the
// parameters the audit trail is read with.
func TestWriteSearchable(t *testing.T) {
	t.Parallel()
	st := newStore(t)
	m := newMaker(t)
	codec, err := fhir.NewCodec()
	if err != nil {
		t.Fatal(err)
	}
	records := []Record{goldenRecords["read"], goldenRecords["create"], goldenRecords["search-type"],
		goldenRecords["read-patient-context"], goldenRecords["vread-not-found"], goldenRecords["delete"]}
	records[1].Time = testTime.Add(48 * time.Hour)
	at := time.Date(2026, 11, 30, 9, 0, 0, 0, time.UTC)
	for _, r := range records {
		w, err := m.Write(r, at)
		if err != nil {
			t.Fatal(err)
		}
		v := w.Version
		if v.Type != "AuditEvent" || v.VersionID != 1 || v.Method != "POST" || w.PrevVersion != 0 || !v.LastUpdated.Equal(at) || len(v.Index) == 0 {
			t.Errorf("write %+v", v)
		}
		if want := r.Principal.Tenant; v.Tenant != want {
			t.Errorf("tenant %q, want %q", v.Tenant, want)
		}
		res, err := codec.Parse(v.Resource)
		if err != nil {
			t.Fatalf("stored event not valid R4: %v\n%s", err, pretty(v.Resource))
		}
		if res.ID() != v.ID {
			t.Errorf("id %q in the body, %q in the store", res.ID(), v.ID)
		}
		if err := st.Put(context.Background(), w); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		tenant, query string
		want          []string
	}{
		{"hospital-a", "entity=Procedure/wmt-17", []string{"read 0 Procedure/wmt-17/_history/3"}},
		{"hospital-a", "entity=Observation/o-1", []string{"delete 0 Observation/o-1/_history/4", "vread 4 Observation/o-1/_history/9"}},
		{"hospital-a", "agent:identifier=https://idp.hospital-a.example/realms/cmts|ehr",
			[]string{"create 0 Procedure/0af3/_history/1", "delete 0 Observation/o-1/_history/4"}},
		{"hospital-a", "agent:identifier=http://fmtbank.org/fhir/sid/tenant|hospital-a",
			[]string{"create 0 Procedure/0af3/_history/1", "delete 0 Observation/o-1/_history/4", "read 0 Procedure/wmt-17/_history/3", "vread 4 Observation/o-1/_history/9"}},
		{"hospital-a", "date=ge2026-12-01", []string{"create 0 Procedure/0af3/_history/1"}},
		{"hospital-a", "date=lt2026-12-01&outcome=4", []string{"vread 4 Observation/o-1/_history/9"}},
		{"hospital-a", "subtype=create", []string{"create 0 Procedure/0af3/_history/1"}},
		{"hospital-a", "action=D", []string{"delete 0 Observation/o-1/_history/4"}},
		{"hospital-a", "address=10.1.2.3", []string{"read 0 Procedure/wmt-17/_history/3", "vread 4 Observation/o-1/_history/9"}},
		{"hospital-b", "entity=Patient/p-7", []string{"read 0 Patient/p-7/_history/1"}},
		{"hospital-b", "patient=Patient/p-7", []string{"read 0 Patient/p-7/_history/1"}},
		{"hospital-b", "patient=Patient/p-8", []string{}},
		{"nhc", "entity-role=24", []string{"search-type 0"}},
		// Tenancy: another tenant's events are not there.
		{"hospital-b", "entity=Procedure/wmt-17", []string{}},
	}
	for _, tt := range tests {
		got := find(t, st, tt.tenant, tt.query)
		if diff := cmp.Diff(tt.want, got); diff != "" {
			t.Errorf("%s AuditEvent?%s (-want +got):\n%s", tt.tenant, tt.query, diff)
		}
	}
}

func TestMakerNoTenantNoTime(t *testing.T) {
	t.Parallel()
	m := newMaker(t)
	m.NoTenant = "-"
	r := goldenRecords["unauthenticated"]
	r.Time = time.Time{}
	w, err := m.Write(r, testTime)
	if err != nil {
		t.Fatal(err)
	}
	if w.Version.Tenant != "-" {
		t.Errorf("tenant %q, want -", w.Version.Tenant)
	}
	var ev AuditEvent
	if err := json.Unmarshal(w.Version.Resource, &ev); err != nil {
		t.Fatal(err)
	}
	if want := instant(testTime); ev.Recorded != want || ev.Meta.LastUpdated != want {
		t.Errorf("recorded %s, lastUpdated %s; want both %s", ev.Recorded, ev.Meta.LastUpdated, want)
	}
}

// TestWriteIDs checks the ids of events: random by default, and with
// OrderedIDs growing with the time of the write (the embedded store's
// B-trees then append them), both 32 hex digits.
func TestWriteIDs(t *testing.T) {
	t.Parallel()
	at := time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)
	for _, ordered := range []bool{false, true} {
		m := newMaker(t)
		m.OrderedIDs = ordered
		var ids []string
		for i := range 50 {
			w, err := m.Write(goldenRecords["create"], at.Add(time.Duration(i)*time.Millisecond))
			if err != nil {
				t.Fatal(err)
			}
			if len(w.Version.ID) != 32 || strings.Trim(w.Version.ID, "0123456789abcdef") != "" {
				t.Fatalf("id %q", w.Version.ID)
			}
			ids = append(ids, w.Version.ID)
		}
		if got := sort.StringsAreSorted(ids); got != ordered {
			t.Errorf("OrderedIDs %v: ids in the order written: %v (%v)", ordered, got, ids[:3])
		}
	}
}
