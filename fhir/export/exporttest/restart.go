package exporttest

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"path"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fmtbank/cmts/fhir/export"
	"github.com/fmtbank/cmts/store"
)

// dying is the store as a server sees it when it stops in the middle of a
// job: the second page of the type dies on cancels the worker's context;
// with crash set, no write reaches the store afterwards either (a kill,
// where the worker cannot release its lease).
type dying struct {
	store.Store
	dies   string
	crash  bool
	died   atomic.Bool
	cancel context.CancelFunc
}

func (d *dying) Search(ctx context.Context, q store.Query) (*store.SearchPage, error) {
	if q.Type == d.dies && q.After != nil {
		d.died.Store(true)
		d.cancel()
		return nil, context.Canceled
	}
	return d.Store.Search(ctx, q)
}

func (d *dying) Put(ctx context.Context, w store.Write) error {
	if d.crash && d.died.Load() {
		return errors.New("the server is gone")
	}
	return d.Store.Put(ctx, w)
}

// counting counts the searches of each type.
type counting struct {
	store.Store
	mu sync.Mutex
	n  map[string]int
}

func (c *counting) Search(ctx context.Context, q store.Query) (*store.SearchPage, error) {
	c.mu.Lock()
	c.n[q.Type]++
	c.mu.Unlock()
	return c.Store.Search(ctx, q)
}

// bigger adds h2 recipients r5..r8 with a procedure each, so that with
// pages of two every type the export reads has several pages.
func bigger(e *env) {
	for i := 5; i <= 8; i++ {
		e.r.Recipient("h2", fmt.Sprintf("r%d", i))
		e.r.Procedure("h2", fmt.Sprintf("p%d", i), fmt.Sprintf("r%d", i), "l9")
	}
}

var (
	biggerPatients   = []string{"r2", "r3", "r4", "r5", "r6", "r7", "r8"}
	biggerProcedures = []string{"p2", "p3", "p4", "p5", "p6", "p7", "p8"}
)

// stepDying runs one step of e's worker over a store that dies on the
// second page of typ.
func stepDying(t *testing.T, b backend, typ string, crash bool, kickoff string) (*env, string) {
	t.Helper()
	d := &dying{dies: typ, crash: crash}
	first := newEnv(t, b, setup{noWorker: true, pageSize: 2, wrap: func(st store.Store) store.Store { d.Store = st; return d }})
	bigger(first)
	status := first.kickoff("h2", kickoff)
	ctx, cancel := context.WithCancel(context.Background())
	d.cancel = cancel
	_ = first.ex.Step(ctx)
	if !d.died.Load() {
		t.Fatalf("the first worker did not reach the second page of %s", typ)
	}
	if res := first.c.Do(http.MethodGet, status, nil, "Authorization", "Bearer h2"); res.Status != http.StatusAccepted {
		t.Fatalf("after the first worker stopped: want 202, got %d %s", res.Status, res.Body)
	}
	return first, status
}

// rebase is status as served by e.
func (e *env) rebase(other *env, status string) string {
	return strings.Replace(status, other.c.Base, e.c.Base, 1)
}

// testCrashMidExport: the server running a Patient export is killed on
// the Procedures (the Patients finished); while its lease lives no other
// worker takes the job; once it is stale one does, and every resource is
// in the files exactly once.
func testCrashMidExport(t *testing.T, b backend) {
	first, status := stepDying(t, b, "Procedure", true, "/Patient/$export")
	second := newEnv(t, b, setup{st: first.r.St, files: first.files, noWorker: true, pageSize: 2})
	if err := second.ex.Step(context.Background()); err != nil {
		t.Fatal(err)
	}
	if res := second.c.Do(http.MethodGet, second.rebase(first, status), nil, "Authorization", "Bearer h2"); res.Status != http.StatusAccepted {
		t.Fatalf("a worker took a job whose lease lives: status %d", res.Status)
	}
	later := newEnv(t, b, setup{st: first.r.St, files: first.files, noWorker: true, pageSize: 2,
		now: func() time.Time { return time.Now().Add(2 * time.Minute) }})
	if err := later.ex.Step(context.Background()); err != nil {
		t.Fatal(err)
	}
	got := later.download("h2", later.poll("h2", later.rebase(first, status)), "output")
	if g := ids(got["Patient"]); !slices.Equal(biggerPatients, g) {
		t.Errorf("Patients: want %v once each, got %v", biggerPatients, g)
	}
	if g := ids(got["Procedure"]); !slices.Equal(biggerProcedures, g) {
		t.Errorf("Procedures: want %v once each, got %v", biggerProcedures, g)
	}
}

// testStopMidExport: a server stopped in the middle of a system export
// releases the job; the next worker takes it up at once and resumes after
// the last finished type (it does not read the Patients again).
func testStopMidExport(t *testing.T, b backend) {
	first, status := stepDying(t, b, "Procedure", false, "/$export")
	c := &counting{n: map[string]int{}}
	second := newEnv(t, b, setup{st: first.r.St, files: first.files, noWorker: true, pageSize: 2,
		wrap: func(st store.Store) store.Store { c.Store = st; return c }})
	if err := second.ex.Step(context.Background()); err != nil {
		t.Fatal(err)
	}
	got := second.download("h2", second.poll("h2", second.rebase(first, status)), "output")
	if g := ids(got["Patient"]); !slices.Equal(biggerPatients, g) {
		t.Errorf("Patients: want %v once each, got %v", biggerPatients, g)
	}
	if g := ids(got["Procedure"]); !slices.Equal(biggerProcedures, g) {
		t.Errorf("Procedures: want %v once each, got %v", biggerProcedures, g)
	}
	if n := c.n["Patient"]; n != 0 {
		t.Errorf("the resumed job searched the finished Patients again (%d searches)", n)
	}
	if c.n["Procedure"] == 0 {
		t.Errorf("the resumed job did not search the Procedures")
	}
}

// testExpiry: once a completed job expires its status URL is unknown, and
// a worker removes its record and its files.
func testExpiry(t *testing.T, b backend) {
	e := newEnv(t, b, setup{})
	status := e.kickoff("h1", "/$export")
	m := e.poll("h1", status)
	u, err := url.Parse(m["output"].([]any)[0].(map[string]any)["url"].(string))
	if err != nil {
		t.Fatal(err)
	}
	job, name := path.Base(path.Dir(u.Path)), path.Base(u.Path)
	ctx := context.Background()
	r, err := e.files.Open(ctx, job, name)
	if err != nil {
		t.Fatalf("the file before expiry: %v", err)
	}
	r.Close()
	later := newEnv(t, b, setup{st: e.r.St, files: e.files, noWorker: true,
		now: func() time.Time { return time.Now().Add(25 * time.Hour) }})
	if res := later.c.Do(http.MethodGet, later.rebase(e, status), nil, "Authorization", "Bearer h1"); res.Status != http.StatusNotFound {
		t.Errorf("expired job: want 404, got %d", res.Status)
	}
	if err := later.ex.Step(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := e.files.Open(ctx, job, name); !errors.Is(err, export.ErrNoFile) {
		t.Errorf("the expired job's file: want ErrNoFile, got %v", err)
	}
	v, err := e.r.St.Read(ctx, store.Tenant(export.JobTenant), "Basic", job)
	if err == nil && !v.Deleted {
		t.Errorf("the expired job's record is still there")
	} else if err != nil && !errors.Is(err, store.ErrNotFound) {
		t.Fatal(err)
	}
}
