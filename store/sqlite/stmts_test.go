package sqlite

import (
	"context"
	"strings"
	"testing"

	"github.com/fmtbank/cmts/store"
	"github.com/fmtbank/cmts/store/storetest"
)

// TestStmtCache checks that the read pool keeps a text prepared once, keeps
// no more than its bound, and leaves a text it cannot prepare to run
// unprepared, where its error shows.
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
	one := c.get(ctx, `SELECT 1`)
	if one == nil || c.get(ctx, `SELECT 1`) != one || c.len() != 1 {
		t.Fatalf("SELECT 1 not kept once: %v, %d kept", one, c.len())
	}
	if c.get(ctx, `SELEC 1`) != nil || c.len() != 1 {
		t.Fatalf("a text that does not prepare was kept (%d kept)", c.len())
	}
	if c.get(ctx, `SELECT 2`) == nil || c.get(ctx, `SELECT 3`) != nil || c.len() != 2 {
		t.Fatalf("the bound of 2 was not kept: %d kept", c.len())
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
