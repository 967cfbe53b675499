package mongo_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fmtbank/cmts/store"
	"github.com/fmtbank/cmts/store/mongo"
	"github.com/fmtbank/cmts/store/mongo/mongotest"
	"github.com/fmtbank/cmts/store/storetest"
)

// Every test starts a FerretDB of its own (mongotest.Start), so the tests
// run in parallel: those that wait on a stopped server overlap the others.

// open opens a store on a fresh database of srv, closed in t.Cleanup.
func open(t testing.TB, srv *mongotest.Server) *mongo.Store {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := mongo.Open(ctx, mongo.Options{URI: srv.URI(), Database: srv.Database(t)})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// TestConformance runs the shared store suite, a fresh database per subtest.
func TestConformance(t *testing.T) {
	t.Parallel()
	srv := mongotest.Start(t)
	storetest.Run(t, func(t *testing.T) store.Store { return open(t, srv) })
}

// TestOpenTwice: every instance creates the indexes at start-up, so a second
// Open on the same database must find them in place (FerretDB v1 drops the
// connection when one createIndexes names several existing indexes).
func TestOpenTwice(t *testing.T) {
	t.Parallel()
	srv := mongotest.Start(t)
	db := srv.Database(t)
	ctx := t.Context()
	for range 2 {
		s, err := mongo.Open(ctx, mongo.Options{URI: srv.URI(), Database: db})
		if err != nil {
			t.Fatalf("Open: %v", err)
		}
		s.Close()
	}
}

// TestOpenUnreachable: Open fails fast with ErrUnavailable when no server
// answers, and refuses missing options.
func TestOpenUnreachable(t *testing.T) {
	t.Parallel()
	start := time.Now()
	// Port 1 on loopback: nothing listens there.
	_, err := mongo.Open(t.Context(), mongo.Options{URI: "mongodb://127.0.0.1:1/", Database: "x", ServerSelectionTimeout: 500 * time.Millisecond})
	if !errors.Is(err, store.ErrUnavailable) {
		t.Fatalf("Open = %v, want ErrUnavailable", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("Open took %v, want about the server selection timeout", d)
	}
	for _, o := range []mongo.Options{{Database: "x"}, {URI: "mongodb://127.0.0.1:1/"}} {
		if _, err := mongo.Open(t.Context(), o); err == nil {
			t.Errorf("Open(%+v) succeeded", o)
		}
	}
}

// TestTokenEncoding checks that "|" inside a system or code cannot make two
// different tokens look alike.
func TestTokenEncoding(t *testing.T) {
	t.Parallel()
	srv := mongotest.Start(t)
	s := open(t, srv)
	ctx := t.Context()
	put := func(id, sys, code string) {
		t.Helper()
		v := store.Version{Tenant: "h1", Type: "Patient", ID: id, VersionID: 1, LastUpdated: time.Now().UTC().Truncate(time.Microsecond),
			Resource: []byte(`{}`), Index: []store.IndexEntry{{Param: "identifier", Kind: store.KindToken, System: sys, Code: code}}}
		if err := s.Put(ctx, store.Write{Version: v}); err != nil {
			t.Fatal(err)
		}
	}
	put("a", `a|b`, `c`)
	put("b", `a`, `b|c`)
	put("c", `a\`, `|b|c`)
	for _, tc := range []struct{ sys, code, want string }{{`a|b`, `c`, "a"}, {`a`, `b|c`, "b"}, {`a\`, `|b|c`, "c"}} {
		sys := tc.sys
		p, err := s.Search(ctx, store.Query{Access: store.Tenant("h1"), Filter: store.Token{Param: "identifier", System: &sys, Code: tc.code}, Count: 10})
		if err != nil {
			t.Fatal(err)
		}
		if len(p.Versions) != 1 || p.Versions[0].ID != tc.want {
			t.Errorf("%s|%s matched %d resources, want only %s", tc.sys, tc.code, len(p.Versions), tc.want)
		}
	}
}

// TestOutage stops the database under a store: calls fail fast with
// ErrUnavailable, and work again with the same data once it is back, without
// the caller reconnecting.
func TestOutage(t *testing.T) {
	t.Parallel()
	srv := mongotest.Start(t)
	s := open(t, srv)
	ctx := t.Context()
	v := store.Version{Tenant: "h1", Type: "Patient", ID: "p1", VersionID: 1, LastUpdated: time.Now().UTC().Truncate(time.Microsecond), Resource: []byte(`{"resourceType":"Patient"}`)}
	if err := s.Put(ctx, store.Write{Version: v}); err != nil {
		t.Fatal(err)
	}

	start := time.Now()
	srv.Stop()
	t.Logf("stopped in %v", time.Since(start).Round(time.Millisecond))
	next := v
	next.VersionID = 2
	for name, call := range map[string]func() error{
		"Ping": func() error { return s.Ping(ctx) },
		"Read": func() error { _, err := s.Read(ctx, store.Tenant("h1"), "Patient", "p1"); return err },
		"Put":  func() error { return s.Put(ctx, store.Write{PrevVersion: 1, Version: next}) },
		"Search": func() error {
			_, err := s.Search(ctx, store.Query{Access: store.Tenant("h1"), Count: 10})
			return err
		},
		"History": func() error {
			_, err := s.History(ctx, store.HistoryQuery{Access: store.Tenant("h1"), Count: 10})
			return err
		},
	} {
		start := time.Now()
		err := call()
		d := time.Since(start)
		t.Logf("%s while down: %v after %v", name, err, d.Round(time.Millisecond))
		if d > 2*mongo.DefaultServerSelectionTimeout+2*time.Second {
			t.Errorf("%s took %v while the database was down", name, d)
		}
		if !errors.Is(err, store.ErrUnavailable) {
			t.Errorf("%s while down = %v, want ErrUnavailable", name, err)
		}
	}

	srv.Restart()
	if err := s.Ping(ctx); err != nil {
		t.Fatalf("Ping after restart: %v", err)
	}
	got, err := s.Read(ctx, store.Tenant("h1"), "Patient", "p1")
	if err != nil || got.VersionID != 1 || string(got.Resource) != string(v.Resource) {
		t.Fatalf("Read after restart = %+v, %v; want version 1", got, err)
	}
	if err := s.Put(ctx, store.Write{PrevVersion: 1, Version: next}); err != nil {
		t.Fatalf("Put after restart: %v", err)
	}
	h, err := s.History(ctx, store.HistoryQuery{Access: store.Tenant("h1"), Type: "Patient", ID: "p1", Count: 10})
	if err != nil || len(h.Versions) != 2 {
		t.Fatalf("History after restart = %d versions, %v; want 2", len(h.Versions), err)
	}
}

// TestClosed: calls on a closed store fail with ErrUnavailable.
func TestClosed(t *testing.T) {
	t.Parallel()
	srv := mongotest.Start(t)
	s := open(t, srv)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Read(t.Context(), store.Tenant("h1"), "Patient", "p1"); !errors.Is(err, store.ErrUnavailable) {
		t.Errorf("Read after Close = %v, want ErrUnavailable", err)
	}
}

// TestSearchWhileWriting runs searches beside writers: a search never returns
// a resource twice, never a version older than one whose Put had returned
// before the search began, and never a version by a token it no longer has.
func TestSearchWhileWriting(t *testing.T) {
	t.Parallel()
	srv := mongotest.Start(t)
	s := open(t, srv)
	ctx := t.Context()
	const resources, updates = 4, 15
	var acked [resources]atomic.Int64
	version := func(r int, vid int64) store.Version {
		id := fmt.Sprintf("p%d", r)
		return store.Version{Tenant: "h1", Type: "Patient", ID: id, VersionID: vid, LastUpdated: time.Now().UTC().Truncate(time.Microsecond),
			Resource: fmt.Appendf(nil, `{"vid":%d}`, vid),
			Index:    []store.IndexEntry{{Param: "code", Kind: store.KindToken, Code: fmt.Sprintf("v%d", vid%2)}}}
	}
	var writers, searchers sync.WaitGroup
	done := make(chan struct{})
	for r := range resources {
		writers.Go(func() {
			for vid := int64(1); vid <= updates; vid++ {
				if err := s.Put(ctx, store.Write{PrevVersion: vid - 1, Version: version(r, vid)}); err != nil {
					t.Errorf("Put p%d v%d: %v", r, vid, err)
					return
				}
				acked[r].Store(vid)
			}
		})
	}
	for i := range 2 {
		searchers.Go(func() {
			for {
				select {
				case <-done:
					return
				default:
				}
				var floor [resources]int64
				for r := range resources {
					floor[r] = acked[r].Load()
				}
				code := "v0"
				q := store.Query{Access: store.Tenant("h1"), Filter: store.Token{Param: "code", Code: code}, Count: 100}
				if i == 1 {
					// Sorted: evaluated in Go rather than paged by the server.
					q.Sort = []store.SortKey{{Param: "code"}}
				}
				p, err := s.Search(ctx, q)
				if err != nil {
					t.Errorf("Search: %v", err)
					return
				}
				seen := map[string]bool{}
				for _, v := range p.Versions {
					if seen[v.ID] {
						t.Errorf("Search returned %s twice", v.ID)
					}
					seen[v.ID] = true
					var r int
					fmt.Sscanf(v.ID, "p%d", &r)
					if v.VersionID < floor[r] {
						t.Errorf("Search returned %s v%d after v%d was acknowledged", v.ID, v.VersionID, floor[r])
					}
					if v.VersionID%2 != 0 {
						t.Errorf("Search for %s returned %s v%d, which does not have it", code, v.ID, v.VersionID)
					}
				}
			}
		})
	}
	writers.Wait()
	close(done)
	searchers.Wait()
}
