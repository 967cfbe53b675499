package export

import (
	"bufio"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fmtbank/cmts/auth/policy"
	"github.com/fmtbank/cmts/fhir"
	"github.com/fmtbank/cmts/fhir/ops/opstest"
	"github.com/fmtbank/cmts/store"
	"github.com/fmtbank/cmts/store/sqlite"
)

// dying is a store whose searches fail from the second page of Patients
// on, as the store looks to a server stopped in the middle of a job.
type dying struct {
	store.Store
	died   atomic.Bool
	cancel context.CancelFunc
}

func (d *dying) Search(ctx context.Context, q store.Query) (*store.SearchPage, error) {
	if q.Type == "Patient" && q.After != nil {
		d.died.Store(true)
		d.cancel()
		return nil, context.Canceled
	}
	return d.Store.Search(ctx, q)
}

// TestRestartMidExport: a worker stops after a few pages of a job; once
// its lease is stale another worker runs the job again from the start, and
// the files hold every resource exactly once.
func TestRestartMidExport(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st, err := sqlite.Open(ctx, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	r := opstest.Cohort(t, st)
	for _, id := range []string{"r5", "r6", "r7", "r8"} {
		r.Recipient("h2", id)
	}
	codec, err := fhir.NewCodec()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	newExporter := func(s store.Store, now func() time.Time) *Exporter {
		ex, err := New(Options{Store: s, Policy: r.Pol, Indexer: r.Engine, Types: codec.ResourceTypes(),
			Compartment: policy.PatientCompartment, Dir: dir, PageSize: 2, Stale: time.Minute, Now: now})
		if err != nil {
			t.Fatal(err)
		}
		return ex
	}
	wctx, cancel := context.WithCancel(ctx)
	d := &dying{Store: st, cancel: cancel}
	first := newExporter(d, time.Now)
	scopes := []string{"system/*.read"}
	p := &fhir.Principal{Tenant: "h2", TenantKind: fhir.TenantHospital, Subject: "s", Roles: []fhir.Role{fhir.RoleSystem},
		Scopes: scopes, Grants: fhir.ParseScopes(scopes)}
	id, err := first.Kickoff(ctx, p, fhir.ExportKickoff{Level: "system", Request: "http://x/fhir/$export"})
	if err != nil {
		t.Fatal(err)
	}
	_ = first.Step(wctx)
	if !d.died.Load() {
		t.Fatal("the first worker did not reach the second page of Patients")
	}
	j, err := first.load(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if j.State != stateRunning {
		t.Fatalf("after the first worker stopped: state %s, want running", j.State)
	}
	// A live lease holds the job: a second worker leaves it alone.
	second := newExporter(st, time.Now)
	if err := second.Step(ctx); err != nil {
		t.Fatal(err)
	}
	if j, _ := second.load(ctx, id); j.State != stateRunning {
		t.Fatalf("a second worker took a job with a live lease: %s", j.State)
	}
	later := newExporter(st, func() time.Time { return time.Now().Add(2 * time.Minute) })
	if err := later.Step(ctx); err != nil {
		t.Fatal(err)
	}
	st2, err := later.Status(ctx, p, id, "http://x/fhir")
	if err != nil || !st2.Done {
		t.Fatalf("after the restart: %+v, %v", st2, err)
	}
	var m struct {
		Output []struct{ Type, URL string }
	}
	if err := json.Unmarshal(st2.Manifest, &m); err != nil {
		t.Fatal(err)
	}
	var patients []string
	for _, o := range m.Output {
		if o.Type != "Patient" {
			continue
		}
		f, err := os.Open(filepath.Join(dir, id, "Patient.ndjson"))
		if err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			var res struct{ ID string }
			if err := json.Unmarshal(sc.Bytes(), &res); err != nil {
				t.Fatal(err)
			}
			patients = append(patients, res.ID)
		}
		f.Close()
	}
	if want := []string{"r2", "r3", "r4", "r5", "r6", "r7", "r8"}; !slices.Equal(want, patients) {
		t.Errorf("Patients after the restart: want %v once each, got %v", want, patients)
	}
}

// TestExpiry: a completed job and its files are removed once expired, and
// its status URL is unknown from the moment it expires.
func TestExpiry(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st, err := sqlite.Open(ctx, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	r := opstest.Cohort(t, st)
	codec, err := fhir.NewCodec()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	at := func(d time.Duration) *Exporter {
		ex, err := New(Options{Store: st, Policy: r.Pol, Indexer: r.Engine, Types: codec.ResourceTypes(), Dir: dir,
			TTL: time.Hour, Now: func() time.Time { return time.Now().Add(d) }})
		if err != nil {
			t.Fatal(err)
		}
		return ex
	}
	scopes := []string{"user/*.rs"}
	p := &fhir.Principal{Tenant: "h1", TenantKind: fhir.TenantHospital, Subject: "s", Roles: []fhir.Role{fhir.RoleClinician},
		Scopes: scopes, Grants: fhir.ParseScopes(scopes)}
	now := at(0)
	id, err := now.Kickoff(ctx, p, fhir.ExportKickoff{Level: "system"})
	if err != nil {
		t.Fatal(err)
	}
	if err := now.Step(ctx); err != nil {
		t.Fatal(err)
	}
	if s, err := now.Status(ctx, p, id, "http://x/fhir"); err != nil || !s.Done {
		t.Fatalf("status: %+v %v", s, err)
	}
	if _, err := os.Stat(filepath.Join(dir, id)); err != nil {
		t.Fatalf("files: %v", err)
	}
	later := at(2 * time.Hour)
	if _, err := later.Status(ctx, p, id, "http://x/fhir"); fhir.AsError(err).Status != 404 {
		t.Errorf("expired job: want 404, got %v", err)
	}
	if err := later.Step(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := later.load(ctx, id); err != errNoJob {
		t.Errorf("expired job record: want removed, got %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, id)); !os.IsNotExist(err) {
		t.Errorf("expired job's files: want removed, got %v", err)
	}
}
