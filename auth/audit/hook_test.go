package audit

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/fmtbank/cmts/fhir"
	"github.com/fmtbank/cmts/fhir/bundle"
	"github.com/fmtbank/cmts/fhir/search"
	"github.com/fmtbank/cmts/store"
	"github.com/fmtbank/cmts/store/sqlite"
	"github.com/google/go-cmp/cmp"
)

// newWriter is a bundle.Writer over st whose writes are audited by a Hook
// (failures to b, which may be nil).
func newWriter(t *testing.T, st bundle.Store, b *Batcher) *bundle.Writer {
	t.Helper()
	codec, err := fhir.NewCodec()
	if err != nil {
		t.Fatal(err)
	}
	engine, err := search.New()
	if err != nil {
		t.Fatal(err)
	}
	hook, err := NewHook(newMaker(t), b)
	if err != nil {
		t.Fatal(err)
	}
	w, err := bundle.NewWriter(bundle.Options{Store: st, Codec: codec, Indexer: engine, Auditor: hook,
		Now: func() time.Time { return time.Date(2026, 11, 30, 9, 0, 0, 0, time.UTC) }})
	if err != nil {
		t.Fatal(err)
	}
	return w
}

func transaction(t *testing.T, body string) *bundle.Request {
	t.Helper()
	codec, err := fhir.NewCodec()
	if err != nil {
		t.Fatal(err)
	}
	req, err := bundle.Parse([]byte(body), 100, codec.IsResourceType)
	if err != nil {
		t.Fatal(err)
	}
	return req
}

const twoEntries = `{"resourceType":"Bundle","type":"transaction","entry":[
 {"fullUrl":"urn:uuid:1","resource":{"resourceType":"Patient","id":"r-5","name":[{"family":"Zhang"}]},
  "request":{"method":"PUT","url":"Patient/r-5"}},
 {"resource":{"resourceType":"Observation","status":"final","code":{"text":"Mayo score"},"subject":{"reference":"urn:uuid:1"}},
  "request":{"method":"POST","url":"Observation"}}]}`

// TestHookTransaction: a transaction's AuditEvent is stored with its data,
// one event naming every version written, and nothing from the resources
// is in it.
func TestHookTransaction(t *testing.T) {
	t.Parallel()
	st := newStore(t)
	w := newWriter(t, st, nil)
	ctx := NewContext(context.Background(), Client{Remote: "10.1.2.4", RequestID: "tx-1"})
	results, err := w.Write(ctx, ehr, transaction(t, twoEntries).Entries)
	if err != nil {
		t.Fatal(err)
	}
	obs := results[1].Version
	// One event for the transaction, naming each version it stored.
	want := []string{"transaction 0 Patient/r-5/_history/1 Observation/" + obs.ID + "/_history/1"}
	if diff := cmp.Diff(want, find(t, st, "hospital-a", "")); diff != "" {
		t.Errorf("AuditEvents (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(want, find(t, st, "hospital-a", "entity=Observation/"+obs.ID)); diff != "" {
		t.Errorf("AuditEvent?entity= (-want +got):\n%s", diff)
	}
	page, err := st.Search(context.Background(), store.Query{Access: store.Tenant("hospital-a"), Type: "AuditEvent", Count: 10})
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range page.Versions {
		if !v.LastUpdated.Equal(obs.LastUpdated) {
			t.Errorf("event stored at %v, the data at %v: one timestamp per transaction", v.LastUpdated, obs.LastUpdated)
		}
		for _, s := range []string{"Zhang", "Mayo"} {
			if contains(v.Resource, s) {
				t.Errorf("event holds %q from a resource: %s", s, v.Resource)
			}
		}
		if !contains(v.Resource, `"address":"10.1.2.4"`) || !contains(v.Resource, `"value":"tx-1"`) {
			t.Errorf("event lacks the client's address or request id: %s", v.Resource)
		}
	}
}

// racing is a store in which another writer wins every transaction's race:
// between the writer's decision and its commit, a rival version of the first
// resource written is stored.
type racing struct{ store.Store }

func (r racing) Transact(ctx context.Context, conds []store.Query, decide func([][]*store.Version) ([]store.Write, error)) error {
	writes, err := decide(make([][]*store.Version, len(conds)))
	if err != nil {
		return err
	}
	rival := writes[0]
	rival.Version.Resource = []byte(`{"resourceType":"Patient","id":"r-5","meta":{"versionId":"1"}}`)
	rival.Version.Index = nil
	if err := r.Store.Put(ctx, rival); err != nil {
		return err
	}
	return r.Store.Transact(ctx, nil, func([][]*store.Version) ([]store.Write, error) { return writes, nil })
}

// TestHookConflict: a transaction that loses its race stores neither its
// data nor the audit of its success.
func TestHookConflict(t *testing.T) {
	t.Parallel()
	st := newStore(t)
	w := newWriter(t, racing{st}, nil)
	_, err := w.Write(context.Background(), ehr, transaction(t, twoEntries).Entries)
	if !errors.Is(err, store.ErrConflict) && fhir.AsError(err).Status != http.StatusConflict {
		t.Fatalf("Write: %v, want a conflict", err)
	}
	if got := find(t, st, "hospital-a", ""); len(got) != 0 {
		t.Errorf("AuditEvents of a failed transaction: %v", got)
	}
	page, err := st.Search(context.Background(), store.Query{Access: store.Tenant("hospital-a"), Type: "Observation", Count: 10})
	if err != nil {
		t.Fatal(err)
	}
	if len(page.Versions) != 0 {
		t.Errorf("%d Observations stored by a failed transaction", len(page.Versions))
	}
	v, err := st.Read(context.Background(), store.Tenant("hospital-a"), "Patient", "r-5")
	if err != nil || contains(v.Resource, "Zhang") {
		t.Errorf("Patient/r-5 is not the rival's: %v %s", err, v.Resource)
	}
}

// TestHookBatchFailure: a batch entry that fails is audited as a failure
// through the Batcher; the one that succeeds, with its data.
func TestHookBatchFailure(t *testing.T) {
	t.Parallel()
	st := newStore(t)
	b, err := NewBatcher(BatcherOptions{Store: st, Maker: newMaker(t)})
	if err != nil {
		t.Fatal(err)
	}
	w := newWriter(t, st, b)
	req := transaction(t, `{"resourceType":"Bundle","type":"batch","entry":[
 {"resource":{"resourceType":"Patient","id":"r-6"},"request":{"method":"PUT","url":"Patient/r-6"}},
 {"request":{"method":"DELETE","url":"Observation/nothing-here"}},
 {"resource":{"resourceType":"Patient","id":"r-7"},"request":{"method":"PUT","url":"Patient/r-7","ifMatch":"W/\"3\""}}]}`)
	if _, err := w.Process(context.Background(), ehr, req, nil, bundle.Reply{Base: testServer.BaseURL}); err != nil {
		t.Fatal(err)
	}
	if err := b.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	want := []string{"delete 4 Observation/nothing-here", "update 0 Patient/r-6/_history/1", "update 4 Patient/r-7"}
	if diff := cmp.Diff(want, find(t, st, "hospital-a", "")); diff != "" {
		t.Errorf("AuditEvents (-want +got):\n%s", diff)
	}
	if got := find(t, st, "hospital-a", "outcome=4&entity=Patient/r-7"); len(got) != 1 {
		t.Errorf("AuditEvent?outcome=4&entity=Patient/r-7: %v", got)
	}
}

func TestEntryRecord(t *testing.T) {
	t.Parallel()
	v := &store.Version{Type: "Patient", ID: "r-9", VersionID: 2}
	tests := []struct {
		name string
		e    *bundle.Entry
		res  *bundle.Result
		want Record
	}{
		{"conditional create", &bundle.Entry{Method: "POST", Type: "Patient", IfNoneExist: "Patient?identifier=s|v"},
			&bundle.Result{Status: 200, Version: v},
			Record{Interaction: Create, Principal: ehr, Type: "Patient", ID: "r-9", Version: "2", Query: "identifier=s|v", Status: 200}},
		{"ifNoneExist without type, id ignored", &bundle.Entry{Method: "POST", Type: "Patient", ID: "mine", IfNoneExist: "identifier=s|v"}, nil,
			Record{Interaction: Create, Principal: ehr, Type: "Patient", Query: "identifier=s|v"}},
		{"conditional delete", &bundle.Entry{Method: "DELETE", Type: "Patient", Query: map[string][]string{"identifier": {"x"}}},
			&bundle.Result{Status: 204},
			Record{Interaction: Delete, Principal: ehr, Type: "Patient", Query: "identifier=x", Status: 204}},
		{"patch", &bundle.Entry{Method: "PATCH", Type: "Patient", ID: "r-9"}, &bundle.Result{Status: 200, Version: v},
			Record{Interaction: Patch, Principal: ehr, Type: "Patient", ID: "r-9", Version: "2", Status: 200}},
	}
	for _, tt := range tests {
		if diff := cmp.Diff(tt.want, EntryRecord(ehr, tt.e, tt.res)); diff != "" {
			t.Errorf("%s (-want +got):\n%s", tt.name, diff)
		}
	}
}

func contains(b []byte, s string) bool { return bytes.Contains(b, []byte(s)) }

// BenchmarkHookTransaction: the cost the audit adds to a transaction of 50
// creates on the embedded store (ns/op per transaction).
func BenchmarkHookTransaction(b *testing.B) {
	var entries strings.Builder
	for i := range 50 {
		if i > 0 {
			entries.WriteString(",")
		}
		entries.WriteString(`{"resource":{"resourceType":"Observation","status":"final","code":{"text":"Mayo score"},"subject":{"reference":"Patient/r-5"},"valueInteger":` + strconv.Itoa(i) + `},"request":{"method":"POST","url":"Observation"}}`)
	}
	body := `{"resourceType":"Bundle","type":"transaction","entry":[` + entries.String() + `]}`
	codec, err := fhir.NewCodec()
	if err != nil {
		b.Fatal(err)
	}
	engine, err := search.New()
	if err != nil {
		b.Fatal(err)
	}
	for _, audited := range []bool{false, true} {
		b.Run(map[bool]string{false: "plain", true: "audited"}[audited], func(b *testing.B) {
			st, err := sqlite.Open(context.Background(), b.TempDir())
			if err != nil {
				b.Fatal(err)
			}
			defer st.Close()
			opts := bundle.Options{Store: st, Codec: codec, Indexer: engine}
			if audited {
				opts.Auditor = &Hook{Maker: newMaker(b)}
			}
			w, err := bundle.NewWriter(opts)
			if err != nil {
				b.Fatal(err)
			}
			for b.Loop() {
				req, err := bundle.Parse([]byte(body), 100, codec.IsResourceType)
				if err != nil {
					b.Fatal(err)
				}
				if _, err := w.Write(context.Background(), ehr, req.Entries); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
