package mongo

import (
	"context"
	"errors"
	"fmt"
	"math/bits"
	"slices"
	"sync"
	"testing"

	"github.com/fmtbank/cmts/store"
	"github.com/fmtbank/cmts/store/mongo/mongotest"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/event"
	mongodrv "go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// On FerretDB v1 every lookup, even by _id, scans the collection (see
// readByProbes), so what Read and Put cost there is the number of lookups
// they make and whether each is by _id alone (a scan in SQLite) or not (every
// document decoded and filtered in Go, ten times dearer or more). These tests
// count both, on any server: a count does not flake as timings do.

// command is one command the store sent: its name, collection and filters.
type command struct {
	name, coll string
	filters    []bson.Raw
}

// onlyID reports whether every filter of c is {_id: <string>}.
func (c command) onlyID() bool {
	for _, f := range c.filters {
		els, err := f.Elements()
		if err != nil || len(els) != 1 || els[0].Key() != "_id" || els[0].Value().Type != bson.TypeString {
			return false
		}
	}
	return true
}

// recorder records the commands sent through its monitor.
type recorder struct {
	mu   sync.Mutex
	cmds []command
}

func (r *recorder) started(_ context.Context, e *event.CommandStartedEvent) {
	c := command{name: e.CommandName}
	c.coll, _ = e.Command.Lookup(e.CommandName).StringValueOK()
	switch e.CommandName {
	case "find":
		c.filters = append(c.filters, slices.Clone(e.Command.Lookup("filter").Document()))
	case "update", "delete":
		list := "updates"
		if e.CommandName == "delete" {
			list = "deletes"
		}
		vals, _ := e.Command.Lookup(list).Array().Values()
		for _, v := range vals {
			c.filters = append(c.filters, slices.Clone(v.Document().Lookup("q").Document()))
		}
	}
	r.mu.Lock()
	r.cmds = append(r.cmds, c)
	r.mu.Unlock()
}

// take returns the commands recorded since the last call.
func (r *recorder) take() []command {
	r.mu.Lock()
	defer r.mu.Unlock()
	cmds := r.cmds
	r.cmds = nil
	return cmds
}

// openRecorded opens a store whose commands are recorded.
func openRecorded(t *testing.T, srv *mongotest.Server) (*Store, *recorder) {
	t.Helper()
	s := openTest(t, srv)
	r := &recorder{}
	client, err := mongodrv.Connect(options.Client().ApplyURI(srv.URI()).SetMonitor(&event.CommandMonitor{Started: r.started}))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Disconnect(context.Background()) })
	db := client.Database(s.versions.Database().Name())
	s.versions, s.pending = db.Collection(versionsColl), db.Collection(pendingColl)
	return s, r
}

// probeVersion is version vid of Patient/id.
func probeVersion(id string, vid int64) *store.Version {
	v := testVersion(vid, fmt.Sprint(vid))
	v.ID = id
	return v
}

// TestReadLookups: on FerretDB, Read of a resource with one version is one
// lookup in versions, and of one with n versions at most 2(log2(n)+1), each by
// _id alone (FerretDB's cheaper form), besides one query of the (small)
// pending collection; and it still finds the current version when a writer
// stopped half-way.
func TestReadLookups(t *testing.T) {
	t.Parallel()
	srv := mongotest.Start(t)
	s, rec := openRecorded(t, srv)
	// The probes are what is counted, on MongoDB too.
	s.idProbes = true
	ctx := t.Context()
	for _, n := range []int64{1, 2, 3, 4, 5, 8, 17, 100} {
		id := fmt.Sprintf("p%d", n)
		for vid := int64(1); vid <= n; vid++ {
			if err := s.Put(ctx, store.Write{PrevVersion: vid - 1, Version: *probeVersion(id, vid)}); err != nil {
				t.Fatal(err)
			}
		}
		rec.take()
		got, err := s.Read(ctx, store.Tenant("h1"), "Patient", id)
		if err != nil {
			t.Fatalf("%d versions: %v", n, err)
		}
		if got.VersionID != n {
			t.Errorf("%d versions: Read returned version %d", n, got.VersionID)
		}
		// The old walk up from version 1 made n+1 lookups.
		want := 2 * bits.Len64(uint64(n))
		if n == 1 {
			want = 1
		}
		lookups, markers := 0, 0
		for _, c := range rec.take() {
			switch {
			case c.name == "find" && c.coll == versionsColl && c.onlyID():
				lookups++
			case c.name == "find" && c.coll == pendingColl:
				markers++
			default:
				t.Errorf("%d versions: Read sent %s on %s with filters %v, want finds in versions by _id alone", n, c.name, c.coll, c.filters)
			}
		}
		if lookups > want {
			t.Errorf("%d versions: Read made %d lookups in versions, want at most %d", n, lookups, want)
		}
		if markers != 1 {
			t.Errorf("%d versions: Read asked pending %d times, want once", n, markers)
		}
		t.Logf("%d versions: %d lookups", n, lookups)
	}

	// A writer stopped after marking version 2, or after committing it.
	for _, after := range []string{"mark", "commit"} {
		id := "crash-" + after
		if err := s.Put(ctx, store.Write{Version: *probeVersion(id, 1)}); err != nil {
			t.Fatal(err)
		}
		s.crashAfter = after
		err := s.Put(ctx, store.Write{PrevVersion: 1, Version: *probeVersion(id, 2)})
		s.crashAfter = ""
		if err != errCrashed {
			t.Fatalf("crash after %s: %v", after, err)
		}
		want := int64(1)
		if after == "commit" {
			want = 2
		}
		got, err := s.Read(ctx, store.Tenant("h1"), "Patient", id)
		if err != nil || got.VersionID != want {
			t.Errorf("crash after %s: Read = %v, %v; want version %d", after, got, err, want)
		}
	}

	if _, err := s.Read(ctx, store.Tenant("h1"), "Patient", "none"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Read of a missing resource: %v, want ErrNotFound", err)
	}
	if _, err := s.Read(ctx, store.Tenant("h2"), "Patient", "p1"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Read of another tenant's resource: %v, want ErrNotFound", err)
	}
}

// TestPutLookups: a create is one insert, an update five commands whose
// filters are _id alone.
func TestPutLookups(t *testing.T) {
	t.Parallel()
	srv := mongotest.Start(t)
	s, rec := openRecorded(t, srv)
	ctx := t.Context()
	if err := s.Put(ctx, store.Write{Version: *probeVersion("p", 1)}); err != nil {
		t.Fatal(err)
	}
	if cmds := rec.take(); len(cmds) != 1 || cmds[0].name != "insert" {
		t.Errorf("create sent %v, want one insert", cmds)
	}
	if err := s.Put(ctx, store.Write{PrevVersion: 1, Version: *probeVersion("p", 2)}); err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, c := range rec.take() {
		got = append(got, c.name+" "+c.coll)
		if !c.onlyID() {
			t.Errorf("update sent %s on %s with filters %v, want _id alone", c.name, c.coll, c.filters)
		}
	}
	want := fmt.Sprint([]string{"find versions", "insert pending", "insert versions", "update versions", "delete pending"})
	if fmt.Sprint(got) != want {
		t.Errorf("update sent %v, want %v", got, want)
	}
}
