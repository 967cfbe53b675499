package sqlite

import (
	"context"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fmtbank/cmts/store"
	"github.com/fmtbank/cmts/store/storetest"
)

// TestStmtCache checks that the read pool prepares a text in the
// background once asked for, keeps it, keeps no more than its bound, and
// leaves a text it cannot prepare to run unprepared, where its error shows.
func TestStmtCache(t *testing.T) {
	t.Parallel()
	s, err := Open(context.Background(), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	c := newStmtCache(s.r, 2)
	defer c.close()
	if c.get(`SELECT 1`) != nil {
		t.Fatal("SELECT 1 prepared on the call that first asks for it")
	}
	c.pending.Wait()
	one := c.get(`SELECT 1`)
	if one == nil || c.get(`SELECT 1`) != one || c.len() != 1 {
		t.Fatalf("SELECT 1 not kept once: %v, %d held", one, c.len())
	}
	c.get(`SELEC 1`)
	c.pending.Wait()
	if c.get(`SELEC 1`) != nil {
		t.Fatal("a text that does not prepare was kept prepared")
	}
	c.get(`SELECT 3`)
	c.pending.Wait()
	if c.get(`SELECT 3`) != nil || c.len() != 2 {
		t.Fatalf("the bound of 2 was not kept: %d held", c.len())
	}
	s.reads = c
	var n int
	if err := s.queryRow(ctx, `SELECT 3`).Scan(&n); err != nil || n != 3 {
		t.Fatalf("a text past the bound: %d, %v", n, err)
	}
	if err := s.queryRow(ctx, `SELEC 1`).Scan(&n); err == nil || !strings.Contains(err.Error(), "syntax error") {
		t.Fatalf("a text that does not prepare: %v, want its syntax error", err)
	}
}

// TestFirstSearchesAtOnce runs more concurrent searches of new shapes than
// the read pool has connections, each asking for its statements from
// inside its read transaction. Preparing them in the caller, under the
// cache's lock, left every connection held by a search that waited for a
// free one (deadlock, seen within a few rounds).
func TestFirstSearchesAtOnce(t *testing.T) {
	t.Parallel()
	for round := range 8 {
		s, err := Open(context.Background(), t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		var wg sync.WaitGroup
		start := make(chan struct{})
		for i := range 32 {
			wg.Go(func() {
				<-start
				q := store.Query{Access: store.Tenant("t"), Type: "Patient", WantTotal: true,
					Filter: store.Token{Param: "gender", Code: strconv.Itoa(i % 3)}}
				if i%2 == 1 {
					q.Filter = store.And{q.Filter, store.Token{Param: "active", Code: "true"}}
				}
				if _, err := s.Search(ctx, q); err != nil {
					t.Errorf("round %d: %v", round, err)
				}
			})
		}
		close(start)
		wg.Wait()
		cancel()
		s.Close()
		if t.Failed() {
			return
		}
	}
}

// TestConformanceUnprepared runs the conformance suite with no statement
// kept prepared, so that every read and search takes the path of texts
// past the cache's bound.
func TestConformanceUnprepared(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store {
		s, err := Open(context.Background(), t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		s.reads = newStmtCache(s.r, 0)
		return s
	})
}
