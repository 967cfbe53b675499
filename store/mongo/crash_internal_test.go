package mongo

import (
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/fmtbank/cmts/store"
	"github.com/fmtbank/cmts/store/mongo/mongotest"
	"github.com/google/go-cmp/cmp"
	"go.mongodb.org/mongo-driver/v2/bson"
)

var t0 = time.Date(2026, 3, 4, 5, 6, 7, 891011000, time.UTC)

func testVersion(vid int64, code string) *store.Version {
	return &store.Version{
		Tenant: "h1", Type: "Patient", ID: "p1", VersionID: vid, LastUpdated: t0.Add(time.Duration(vid) * time.Second),
		Resource: fmt.Appendf(nil, `{"resourceType":"Patient","id":"p1","meta":{"versionId":"%d"}}`, vid),
		Index:    []store.IndexEntry{{Param: "identifier", Kind: store.KindToken, System: "urn:mrn", Code: code}},
	}
}

// crashes lists where a writer can die in an update: after which step of
// Put, and whether its version was committed by then.
var crashes = []struct {
	after     string
	committed bool
}{
	{"check", false},
	{"mark", false},
	{"commit", true},
	{"supersede", true},
}

// TestCrashBetweenSteps lets a writer die between the steps of Put and
// checks that readers see its version whole or not at all (and the previous
// version's index entries not beside it), that a writer holding a stale
// version still loses, and that the next writers race as usual, one wins,
// and nothing is left over.
func TestCrashBetweenSteps(t *testing.T) {
	t.Parallel()
	srv := mongotest.Start(t)
	for _, crash := range crashes {
		for _, readFirst := range []bool{true, false} {
			t.Run(fmt.Sprintf("after %s/read first %v", crash.after, readFirst), func(t *testing.T) {
				testCrash(t, srv, crash.after, crash.committed, readFirst)
			})
		}
	}
}

// testCrash runs one case of TestCrashBetweenSteps. With readFirst the
// readers look before the next writers come, else after.
func testCrash(t *testing.T, srv *mongotest.Server, after string, committed bool, readFirst bool) {
	s := openTest(t, srv)
	ctx := t.Context()
	if err := s.Put(ctx, store.Write{Version: *testVersion(1, "A")}); err != nil {
		t.Fatal(err)
	}
	s.crashAfter = after
	if err := s.Put(ctx, store.Write{PrevVersion: 1, Version: *testVersion(2, "B")}); !errors.Is(err, errCrashed) {
		t.Fatalf("dying writer: %v, want errCrashed", err)
	}
	s.crashAfter = ""
	cur, code, stale := int64(1), "A", "B"
	if committed {
		cur, code, stale = 2, "B", "A"
	}
	if readFirst {
		checkVisible(t, s, cur, code, stale)
	}

	// A writer that read the version before the current one loses.
	if committed {
		err := s.Put(ctx, store.Write{PrevVersion: 1, Version: *testVersion(2, "C")})
		if !errors.Is(err, store.ErrConflict) {
			t.Fatalf("stale writer: %v, want ErrConflict", err)
		}
		if readFirst {
			checkVisible(t, s, cur, code, stale)
		}
	}

	// The next writers race; one wins and everything is finished.
	errs := make([]error, 8)
	var wg sync.WaitGroup
	for i := range errs {
		wg.Go(func() {
			errs[i] = s.Put(ctx, store.Write{PrevVersion: cur, Version: *testVersion(cur+1, "D")})
		})
	}
	wg.Wait()
	wins := 0
	for _, err := range errs {
		switch {
		case err == nil:
			wins++
		case !errors.Is(err, store.ErrConflict):
			t.Fatalf("next writer: %v", err)
		}
	}
	if wins != 1 {
		t.Fatalf("%d next writers won, want 1", wins)
	}
	checkVisible(t, s, cur+1, "D", "A", "B")
	checkFinished(t, s, cur+1)
}

// TestSlowWriterResumes: a marker whose version is not there yet may belong
// to a writer still at work, so readers leave it, and when that writer
// commits at last its version becomes visible whole.
func TestSlowWriterResumes(t *testing.T) {
	t.Parallel()
	srv := mongotest.Start(t)
	s := openTest(t, srv)
	ctx := t.Context()
	if err := s.Put(ctx, store.Write{Version: *testVersion(1, "A")}); err != nil {
		t.Fatal(err)
	}
	v := testVersion(2, "B")
	if err := s.check(ctx, 1, v); err != nil {
		t.Fatal(err)
	}
	if _, err := s.mark(ctx, v); err != nil {
		t.Fatal(err)
	}
	checkVisible(t, s, 1, "A", "B") // runs Search, which must keep the marker
	if _, err := s.commit(ctx, v); err != nil {
		t.Fatal(err)
	}
	checkVisible(t, s, 2, "B", "A")
	if err := s.finish(ctx, v.Type, v.ID, v.VersionID); err != nil {
		t.Fatal(err)
	}
	checkFinished(t, s, 2)
}

// checkFinished checks that no marker is left and that only version cur is
// current.
func checkFinished(t *testing.T, s *Store, cur int64) {
	t.Helper()
	ctx := t.Context()
	n, err := s.pending.CountDocuments(ctx, bson.D{})
	if err != nil || n != 0 {
		t.Errorf("%d markers left, %v; want 0", n, err)
	}
	n, err = s.versions.CountDocuments(ctx, bson.D{{Key: "sup", Value: false}})
	if err != nil || n != 1 {
		t.Errorf("%d current versions, %v; want 1", n, err)
	}
	n, err = s.versions.CountDocuments(ctx, bson.D{})
	if err != nil || n != cur {
		t.Errorf("versions holds %d documents, %v; want %d", n, err, cur)
	}
}

// checkVisible checks that every read shows versions 1..cur of p1, that
// version cur is the current one, and that search finds it, once, by its
// token code and not by the stale codes.
func checkVisible(t *testing.T, s *Store, cur int64, code string, stale ...string) {
	t.Helper()
	ctx := t.Context()
	want := testVersion(cur, "")
	got, err := s.Read(ctx, store.Tenant("h1"), "Patient", "p1")
	if err != nil || got.VersionID != cur || string(got.Resource) != string(want.Resource) || !got.LastUpdated.Equal(want.LastUpdated) {
		t.Fatalf("Read = %+v, %v; want version %d", got, err, cur)
	}
	for vid := int64(1); vid <= cur; vid++ {
		got, err := s.ReadVersion(ctx, store.Tenant("h1"), "Patient", "p1", vid)
		if err != nil || string(got.Resource) != string(testVersion(vid, "").Resource) {
			t.Fatalf("ReadVersion %d = %+v, %v", vid, got, err)
		}
	}
	if _, err := s.ReadVersion(ctx, store.Tenant("h1"), "Patient", "p1", cur+1); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("ReadVersion %d = %v, want ErrNotFound", cur+1, err)
	}
	var wantVids, gotVids []int64
	for vid := cur; vid >= 1; vid-- {
		wantVids = append(wantVids, vid)
	}
	for _, q := range []store.HistoryQuery{
		{Access: store.Tenant("h1"), Count: 100},
		{Access: store.Tenant("h1"), Type: "Patient", Count: 100},
		{Access: store.Tenant("h1"), Type: "Patient", ID: "p1", Count: 100},
	} {
		// Page by one as well, so the cursor crosses pending versions.
		for _, size := range []int{1, 100} {
			q.Count, q.After, gotVids = size, nil, nil
			for {
				h, err := s.History(ctx, q)
				if err != nil {
					t.Fatal(err)
				}
				for _, v := range h.Versions {
					gotVids = append(gotVids, v.VersionID)
				}
				if h.Next == nil {
					break
				}
				q.After = h.Next
			}
			if d := cmp.Diff(wantVids, gotVids); d != "" {
				t.Fatalf("History %+v versions (-want +got):\n%s", q, d)
			}
		}
	}
	// The index entries are those of the current version only.
	p, err := s.Search(ctx, store.Query{Access: store.Tenant("h1"), Filter: store.Token{Param: "identifier", Code: code}, Count: 10, WantTotal: true})
	if err != nil || p.Total != 1 || len(p.Versions) != 1 || p.Versions[0].VersionID != cur {
		t.Fatalf("Search for %s = %+v, %v; want version %d", code, p, err, cur)
	}
	for _, c := range stale {
		if c == code {
			continue
		}
		p, err := s.Search(ctx, store.Query{Access: store.Tenant("h1"), Filter: store.Token{Param: "identifier", Code: c}, Count: 10, WantTotal: true})
		if err != nil || p.Total != 0 || len(p.Versions) != 0 {
			t.Fatalf("Search for stale %s = %+v, %v; want nothing", c, p, err)
		}
	}
	p, err = s.Search(ctx, store.Query{Access: store.Tenant("h1"), Type: "Patient", Count: 10, WantTotal: true})
	if err != nil || p.Total != 1 || len(p.Versions) != 1 || p.Versions[0].VersionID != cur {
		t.Fatalf("Search for every Patient = %+v, %v; want version %d once", p, err, cur)
	}
}

func openTest(t *testing.T, srv *mongotest.Server) *Store {
	t.Helper()
	s, err := Open(t.Context(), Options{URI: srv.URI(), Database: srv.Database(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}
