// Package storetest is the conformance suite every store backend passes: each
// backend's tests call Run with a constructor that returns a fresh, empty store.
package storetest

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/fmtbank/cmts/store"
	"github.com/google/go-cmp/cmp"
)

// NewStore returns a fresh, empty store; the suite closes it.
type NewStore func(t *testing.T) store.Store

// Run runs the whole conformance suite against the backend.
func Run(t *testing.T, newStore NewStore) {
	tests := []struct {
		name string
		fn   func(t *testing.T, s store.Store)
	}{
		{"CreateRead", testCreateRead},
		{"Versions", testVersions},
		{"PreconditionFailures", testPreconditions},
		{"Tombstone", testTombstone},
		{"TenantIsolation", testTenants},
		{"Access", testAccess},
		{"Addressee", testAddressee},
		{"HistoryOrderAndPaging", testHistory},
		{"HistoryStableWhileWriting", testHistoryStable},
		{"ConcurrentWritersOneWins", testConcurrent},
		{"PutIf", testPutIf},
		{"PutIfCreateRace", testPutIfCreateRace},
		{"PutIfUpdateRace", testPutIfUpdateRace},
		{"PutIfMixedRace", testPutIfMixedRace},
		{"PutIfDeleteRace", testPutIfDeleteRace},
		{"Transact", testTransact},
		{"TransactRace", testTransactRace},
		{"TransactCondRace", testTransactCondRace},
		{"TransactReaders", testTransactReaders},
		{"Method", testMethod},
		{"PutsIndependent", testPutsIndependent},
		{"SearchTokens", testSearchTokens},
		{"SearchPaging", testSearchPaging},
		{"Search", testSearch},
		{"SearchInvalid", testSearchInvalid},
		{"SearchLarge", testSearchLarge},
		{"SearchAfter", testSearchAfter},
		{"SearchCursorSorted", testSearchCursorSorted},
		{"Unicode", testUnicode},
		{"Ping", func(t *testing.T, s store.Store) {
			if err := s.Ping(context.Background()); err != nil {
				t.Fatalf("Ping: %v", err)
			}
		}},
	}
	// Each test has a store of its own, so they run in parallel: on a
	// backend behind a network most of their time is round trips.
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := newStore(t)
			t.Cleanup(func() { s.Close() })
			tc.fn(t, s)
		})
	}
}

// base is the suite's clock: fixed, so expected values are exact.
var base = time.Date(2026, 1, 2, 3, 4, 5, 123456000, time.UTC)

func version(tenant, typ, id string, vid int64, at time.Time, idx ...store.IndexEntry) store.Version {
	return store.Version{
		Tenant: tenant, Type: typ, ID: id, VersionID: vid, LastUpdated: at,
		Resource: fmt.Appendf(nil, `{"resourceType":%q,"id":%q,"meta":{"versionId":"%d"}}`, typ, id, vid),
		Index:    idx,
	}
}

func mustPut(t *testing.T, s store.Store, prev int64, v store.Version) {
	t.Helper()
	if err := s.Put(context.Background(), store.Write{PrevVersion: prev, Version: v}); err != nil {
		t.Fatalf("Put %s/%s v%d: %v", v.Type, v.ID, v.VersionID, err)
	}
}

// comparable strips what a backend need not return on reads.
func comparable(v *store.Version) store.Version {
	c := *v
	c.Index = nil
	return c
}

func testCreateRead(t *testing.T, s store.Store) {
	ctx := context.Background()
	want := version("h1", "Patient", "p1", 1, base)
	mustPut(t, s, 0, want)
	got, err := s.Read(ctx, store.Tenant("h1"), "Patient", "p1")
	if err != nil {
		t.Fatalf("Read: %v", err)
	}
	if d := cmp.Diff(comparable(&want), comparable(got)); d != "" {
		t.Errorf("Read (-want +got):\n%s", d)
	}
	got, err = s.ReadVersion(ctx, store.Tenant("h1"), "Patient", "p1", 1)
	if err != nil {
		t.Fatalf("ReadVersion: %v", err)
	}
	if d := cmp.Diff(comparable(&want), comparable(got)); d != "" {
		t.Errorf("ReadVersion (-want +got):\n%s", d)
	}
	for _, tc := range []struct {
		name    string
		typ, id string
		vid     int64
	}{
		{"unknown id", "Patient", "nope", 0},
		{"other type same id", "Observation", "p1", 0},
		{"unknown version", "Patient", "p1", 2},
	} {
		var err error
		if tc.vid == 0 {
			_, err = s.Read(ctx, store.Tenant("h1"), tc.typ, tc.id)
		} else {
			_, err = s.ReadVersion(ctx, store.Tenant("h1"), tc.typ, tc.id, tc.vid)
		}
		if !errors.Is(err, store.ErrNotFound) {
			t.Errorf("%s: err = %v, want ErrNotFound", tc.name, err)
		}
	}
}

func testVersions(t *testing.T, s store.Store) {
	ctx := context.Background()
	for i := int64(1); i <= 5; i++ {
		mustPut(t, s, i-1, version("h1", "Specimen", "s1", i, base.Add(time.Duration(i)*time.Second)))
	}
	cur, err := s.Read(ctx, store.Tenant("h1"), "Specimen", "s1")
	if err != nil || cur.VersionID != 5 || !cur.LastUpdated.Equal(base.Add(5*time.Second)) {
		t.Fatalf("Read = %+v, %v; want version 5", cur, err)
	}
	for i := int64(1); i <= 5; i++ {
		v, err := s.ReadVersion(ctx, store.Tenant("h1"), "Specimen", "s1", i)
		if err != nil {
			t.Fatalf("ReadVersion %d: %v", i, err)
		}
		want := version("h1", "Specimen", "s1", i, base.Add(time.Duration(i)*time.Second))
		if d := cmp.Diff(comparable(&want), comparable(v)); d != "" {
			t.Errorf("ReadVersion %d (-want +got):\n%s", i, d)
		}
	}
}

func testPreconditions(t *testing.T, s store.Store) {
	ctx := context.Background()
	mustPut(t, s, 0, version("h1", "Patient", "p1", 1, base))
	mustPut(t, s, 1, version("h1", "Patient", "p1", 2, base.Add(time.Second)))
	for _, tc := range []struct {
		name string
		w    store.Write
	}{
		{"create existing", store.Write{PrevVersion: 0, Version: version("h1", "Patient", "p1", 1, base)}},
		{"stale previous version", store.Write{PrevVersion: 1, Version: version("h1", "Patient", "p1", 2, base)}},
		{"future previous version", store.Write{PrevVersion: 3, Version: version("h1", "Patient", "p1", 4, base)}},
		{"update of missing", store.Write{PrevVersion: 1, Version: version("h1", "Patient", "missing", 2, base)}},
		{"version not previous+1", store.Write{PrevVersion: 2, Version: version("h1", "Patient", "p1", 7, base)}},
	} {
		if err := s.Put(ctx, tc.w); !errors.Is(err, store.ErrConflict) {
			t.Errorf("%s: err = %v, want ErrConflict", tc.name, err)
		}
	}
	// Nothing failed half-way: still version 2, history has two versions.
	cur, err := s.Read(ctx, store.Tenant("h1"), "Patient", "p1")
	if err != nil || cur.VersionID != 2 {
		t.Fatalf("after failed writes Read = %+v, %v; want version 2", cur, err)
	}
	if _, err := s.Read(ctx, store.Tenant("h1"), "Patient", "missing"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("failed write created a resource: %v", err)
	}
	h, err := s.History(ctx, store.HistoryQuery{Access: store.Tenant("h1"), Type: "Patient", ID: "p1", Count: 10})
	if err != nil || len(h.Versions) != 2 {
		t.Fatalf("History = %d versions, %v; want 2", len(h.Versions), err)
	}
}

func testTombstone(t *testing.T, s store.Store) {
	ctx := context.Background()
	tok := store.IndexEntry{Param: "identifier", Kind: store.KindToken, System: "urn:x", Code: "1"}
	mustPut(t, s, 0, version("h1", "AdverseEvent", "a1", 1, base, tok))
	mustPut(t, s, 1, store.Version{Tenant: "h1", Type: "AdverseEvent", ID: "a1", VersionID: 2, LastUpdated: base.Add(time.Second), Deleted: true})
	cur, err := s.Read(ctx, store.Tenant("h1"), "AdverseEvent", "a1")
	if err != nil || !cur.Deleted || cur.VersionID != 2 || cur.Resource != nil {
		t.Fatalf("Read after delete = %+v, %v; want tombstone version 2", cur, err)
	}
	old, err := s.ReadVersion(ctx, store.Tenant("h1"), "AdverseEvent", "a1", 1)
	if err != nil || old.Deleted || old.Resource == nil {
		t.Fatalf("ReadVersion 1 after delete = %+v, %v; want the old body", old, err)
	}
	page, err := s.Search(ctx, store.Query{Access: store.Tenant("h1"), Type: "AdverseEvent", Filter: store.Token{Param: "identifier", Code: "1"}, Count: 10})
	if err != nil || len(page.Versions) != 0 {
		t.Fatalf("Search after delete = %v, %v; want nothing", page, err)
	}
	// Re-create after delete: a new version on top of the tombstone.
	mustPut(t, s, 2, version("h1", "AdverseEvent", "a1", 3, base.Add(2*time.Second), tok))
	page, err = s.Search(ctx, store.Query{Access: store.Tenant("h1"), Type: "AdverseEvent", Filter: store.Token{Param: "identifier", Code: "1"}, Count: 10})
	if err != nil || len(page.Versions) != 1 || page.Versions[0].VersionID != 3 {
		t.Fatalf("Search after re-create = %+v, %v; want version 3", page, err)
	}
}

func testTenants(t *testing.T, s store.Store) {
	ctx := context.Background()
	tok := store.IndexEntry{Param: "identifier", Kind: store.KindToken, System: "urn:x", Code: "same"}
	mustPut(t, s, 0, version("h1", "Patient", "p1", 1, base, tok))
	mustPut(t, s, 0, version("h2", "Patient", "p2", 1, base, tok))
	if _, err := s.Read(ctx, store.Tenant("h2"), "Patient", "p1"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("other tenant Read: %v, want ErrNotFound", err)
	}
	if _, err := s.ReadVersion(ctx, store.Tenant("h2"), "Patient", "p1", 1); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("other tenant ReadVersion: %v, want ErrNotFound", err)
	}
	if err := s.Put(ctx, store.Write{PrevVersion: 0, Version: version("h2", "Patient", "p1", 1, base)}); !errors.Is(err, store.ErrConflict) {
		t.Errorf("other tenant create of a taken id: %v, want ErrConflict", err)
	}
	if err := s.Put(ctx, store.Write{PrevVersion: 1, Version: version("h2", "Patient", "p1", 2, base)}); !errors.Is(err, store.ErrConflict) {
		t.Errorf("other tenant update: %v, want ErrConflict", err)
	}
	h, err := s.History(ctx, store.HistoryQuery{Access: store.Tenant("h2"), Count: 10})
	if err != nil || len(h.Versions) != 1 || h.Versions[0].ID != "p2" {
		t.Errorf("h2 system history = %+v, %v; want only p2", h, err)
	}
	page, err := s.Search(ctx, store.Query{Access: store.Tenant("h1"), Filter: store.Token{Param: "identifier", Code: "same"}, Count: 10})
	if err != nil || len(page.Versions) != 1 || page.Versions[0].ID != "p1" {
		t.Errorf("h1 search = %+v, %v; want only p1", page, err)
	}
}

type key struct {
	typ, id string
	vid     int64
}

func keys(vs []*store.Version) []key {
	var out []key
	for _, v := range vs {
		out = append(out, key{v.Type, v.ID, v.VersionID})
	}
	return out
}

func testHistory(t *testing.T, s store.Store) {
	ctx := context.Background()
	// Two resources written at interleaved times, and two at the same instant
	// (the order then falls back to type, id).
	mustPut(t, s, 0, version("h1", "Patient", "a", 1, base))
	mustPut(t, s, 0, version("h1", "Patient", "b", 1, base.Add(1*time.Second)))
	mustPut(t, s, 1, version("h1", "Patient", "a", 2, base.Add(2*time.Second)))
	mustPut(t, s, 0, version("h1", "Specimen", "x", 1, base.Add(3*time.Second)))
	mustPut(t, s, 0, version("h1", "Procedure", "y", 1, base.Add(3*time.Second)))
	mustPut(t, s, 2, store.Version{Tenant: "h1", Type: "Patient", ID: "a", VersionID: 3, LastUpdated: base.Add(4 * time.Second), Deleted: true})
	all := []key{{"Patient", "a", 3}, {"Procedure", "y", 1}, {"Specimen", "x", 1}, {"Patient", "a", 2}, {"Patient", "b", 1}, {"Patient", "a", 1}}
	for _, tc := range []struct {
		name string
		q    store.HistoryQuery
		want []key
	}{
		{"system", store.HistoryQuery{}, all},
		{"type", store.HistoryQuery{Type: "Patient"}, []key{{"Patient", "a", 3}, {"Patient", "a", 2}, {"Patient", "b", 1}, {"Patient", "a", 1}}},
		{"instance", store.HistoryQuery{Type: "Patient", ID: "a"}, []key{{"Patient", "a", 3}, {"Patient", "a", 2}, {"Patient", "a", 1}}},
		{"since", store.HistoryQuery{Since: base.Add(3 * time.Second)}, all[:3]},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, size := range []int{1, 2, 4, 100} {
				q := tc.q
				q.Access, q.Count = store.Tenant("h1"), size
				var got []key
				for pages := 0; ; pages++ {
					if pages > 20 {
						t.Fatal("paging does not end")
					}
					p, err := s.History(ctx, q)
					if err != nil {
						t.Fatalf("History: %v", err)
					}
					if len(p.Versions) > size {
						t.Fatalf("page of %d, want at most %d", len(p.Versions), size)
					}
					got = append(got, keys(p.Versions)...)
					if p.Next == nil {
						break
					}
					q.After = p.Next
				}
				if d := cmp.Diff(tc.want, got, cmp.AllowUnexported(key{})); d != "" {
					t.Errorf("page size %d (-want +got):\n%s", size, d)
				}
			}
		})
	}
	h, err := s.History(ctx, store.HistoryQuery{Access: store.Tenant("h1"), Type: "Patient", ID: "a", Count: 1})
	if err != nil || !h.Versions[0].Deleted || h.Versions[0].Resource != nil {
		t.Errorf("newest history entry = %+v, %v; want the tombstone", h, err)
	}
}

func testHistoryStable(t *testing.T, s store.Store) {
	ctx := context.Background()
	for i := 0; i < 6; i++ {
		mustPut(t, s, 0, version("h1", "Patient", fmt.Sprintf("p%d", i), 1, base.Add(time.Duration(i)*time.Second)))
	}
	p1, err := s.History(ctx, store.HistoryQuery{Access: store.Tenant("h1"), Count: 3})
	if err != nil {
		t.Fatal(err)
	}
	// New writes arrive between pages; the second page must continue where the
	// first stopped, neither repeating nor skipping.
	mustPut(t, s, 0, version("h1", "Patient", "new", 1, base.Add(time.Hour)))
	mustPut(t, s, 1, version("h1", "Patient", "p5", 2, base.Add(time.Hour)))
	p2, err := s.History(ctx, store.HistoryQuery{Access: store.Tenant("h1"), Count: 3, After: p1.Next})
	if err != nil {
		t.Fatal(err)
	}
	want := []key{{"Patient", "p5", 1}, {"Patient", "p4", 1}, {"Patient", "p3", 1}, {"Patient", "p2", 1}, {"Patient", "p1", 1}, {"Patient", "p0", 1}}
	if d := cmp.Diff(want, append(keys(p1.Versions), keys(p2.Versions)...), cmp.AllowUnexported(key{})); d != "" {
		t.Errorf("pages (-want +got):\n%s", d)
	}
}

func testConcurrent(t *testing.T, s store.Store) {
	ctx := context.Background()
	mustPut(t, s, 0, version("h1", "Patient", "p1", 1, base))
	const writers = 8
	for round := int64(1); round <= 3; round++ {
		var wg sync.WaitGroup
		errs := make([]error, writers)
		for w := 0; w < writers; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				v := version("h1", "Patient", "p1", round+1, base.Add(time.Duration(round)*time.Second))
				v.Resource = fmt.Appendf(nil, `{"resourceType":"Patient","id":"p1","writer":%d}`, w)
				errs[w] = s.Put(ctx, store.Write{PrevVersion: round, Version: v})
			}()
		}
		wg.Wait()
		wins := 0
		winner := -1
		for w, err := range errs {
			switch {
			case err == nil:
				wins++
				winner = w
			case !errors.Is(err, store.ErrConflict):
				t.Fatalf("round %d writer %d: %v, want nil or ErrConflict", round, w, err)
			}
		}
		if wins != 1 {
			t.Fatalf("round %d: %d writers won, want exactly 1", round, wins)
		}
		cur, err := s.Read(ctx, store.Tenant("h1"), "Patient", "p1")
		if err != nil || cur.VersionID != round+1 || string(cur.Resource) != fmt.Sprintf(`{"resourceType":"Patient","id":"p1","writer":%d}`, winner) {
			t.Fatalf("round %d: current = %+v, %v; want the winner's version", round, cur, err)
		}
	}
	h, err := s.History(ctx, store.HistoryQuery{Access: store.Tenant("h1"), Type: "Patient", ID: "p1", Count: 100})
	if err != nil || len(h.Versions) != 4 {
		t.Fatalf("history has %d versions, %v; want 4 (losers leave nothing)", len(h.Versions), err)
	}
}

func ids(vs []*store.Version) []string {
	out := []string{}
	for _, v := range vs {
		out = append(out, v.Type+"/"+v.ID)
	}
	sort.Strings(out)
	return out
}

func ptr(s string) *string { return &s }

func testSearchTokens(t *testing.T, s store.Store) {
	ctx := context.Background()
	tok := func(sys, code string) store.IndexEntry {
		return store.IndexEntry{Param: "identifier", Kind: store.KindToken, System: sys, Code: code}
	}
	mustPut(t, s, 0, version("h1", "Patient", "p1", 1, base, tok("urn:mrn", "100"), tok("urn:donor", "D-1")))
	mustPut(t, s, 0, version("h1", "Patient", "p2", 1, base, tok("urn:mrn", "200")))
	mustPut(t, s, 0, version("h1", "Patient", "p3", 1, base, tok("", "100")))
	mustPut(t, s, 0, version("h1", "Specimen", "s1", 1, base, tok("urn:mrn", "100")))
	// An update replaces the index entries: p2's old code no longer matches.
	mustPut(t, s, 1, version("h1", "Patient", "p2", 2, base, tok("urn:mrn", "201")))
	for _, tc := range []struct {
		name string
		typ  string
		f    store.Expr
		want []string
	}{
		{"code any system", "Patient", store.Token{Param: "identifier", Code: "100"}, []string{"Patient/p1", "Patient/p3"}},
		{"system and code", "Patient", store.Token{Param: "identifier", System: ptr("urn:mrn"), Code: "100"}, []string{"Patient/p1"}},
		{"no system", "Patient", store.Token{Param: "identifier", System: ptr(""), Code: "100"}, []string{"Patient/p3"}},
		{"all types", "", store.Token{Param: "identifier", System: ptr("urn:mrn"), Code: "100"}, []string{"Patient/p1", "Specimen/s1"}},
		{"replaced entry gone", "Patient", store.Token{Param: "identifier", Code: "200"}, []string{}},
		{"replaced entry new", "Patient", store.Token{Param: "identifier", Code: "201"}, []string{"Patient/p2"}},
		{"other param", "Patient", store.Token{Param: "code", Code: "100"}, []string{}},
		{"and", "Patient", store.And{store.Token{Param: "identifier", Code: "100"}, store.Token{Param: "identifier", Code: "D-1"}}, []string{"Patient/p1"}},
		{"or", "Patient", store.Or{store.Token{Param: "identifier", Code: "201"}, store.Token{Param: "identifier", Code: "D-1"}}, []string{"Patient/p1", "Patient/p2"}},
		{"id", "Patient", store.ID{IDs: []string{"p2", "p3", "zz"}}, []string{"Patient/p2", "Patient/p3"}},
		{"id and token", "Patient", store.And{store.ID{IDs: []string{"p1", "p2"}}, store.Token{Param: "identifier", Code: "100"}}, []string{"Patient/p1"}},
		{"empty or", "Patient", store.Or{}, []string{}},
		{"no filter", "Patient", nil, []string{"Patient/p1", "Patient/p2", "Patient/p3"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			page, err := s.Search(ctx, store.Query{Access: store.Tenant("h1"), Type: tc.typ, Filter: tc.f, Count: 100, WantTotal: true})
			if err != nil {
				t.Fatalf("Search: %v", err)
			}
			if d := cmp.Diff(tc.want, ids(page.Versions)); d != "" {
				t.Errorf("(-want +got):\n%s", d)
			}
			if page.Total != len(tc.want) {
				t.Errorf("Total = %d, want %d", page.Total, len(tc.want))
			}
		})
	}
}

func testSearchPaging(t *testing.T, s store.Store) {
	ctx := context.Background()
	var want []string
	for i := 0; i < 7; i++ {
		id := fmt.Sprintf("r%02d", i)
		mustPut(t, s, 0, version("h1", "Observation", id, 1, base))
		want = append(want, "Observation/"+id)
	}
	var got []string
	for off := 0; off < 20; off += 3 {
		p, err := s.Search(ctx, store.Query{Access: store.Tenant("h1"), Type: "Observation", Count: 3, Offset: off})
		if err != nil {
			t.Fatal(err)
		}
		if p.Total != -1 {
			t.Errorf("Total = %d without WantTotal, want -1", p.Total)
		}
		got = append(got, ids(p.Versions)...)
		if !p.More {
			break
		}
	}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("(-want +got):\n%s", d)
	}
}

func testUnicode(t *testing.T, s store.Store) {
	ctx := context.Background()
	v := version("h1", "Patient", "zh", 1, base, store.IndexEntry{Param: "identifier", Kind: store.KindToken, System: "urn:供体", Code: "供体-编号-001"})
	v.Resource = []byte(`{"resourceType":"Patient","id":"zh","name":[{"text":"张三"}]}`)
	mustPut(t, s, 0, v)
	got, err := s.Read(ctx, store.Tenant("h1"), "Patient", "zh")
	if err != nil || string(got.Resource) != string(v.Resource) {
		t.Fatalf("Read = %s, %v", got.Resource, err)
	}
	p, err := s.Search(ctx, store.Query{Access: store.Tenant("h1"), Filter: store.Token{Param: "identifier", System: ptr("urn:供体"), Code: "供体-编号-001"}, Count: 10})
	if err != nil || len(p.Versions) != 1 {
		t.Fatalf("Search = %+v, %v", p, err)
	}
}
