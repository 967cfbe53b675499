package sqlite

import (
	"context"
	"database/sql"
	"sync"
)

// stmtCache keeps the read pool's statements prepared, by their SQL, up to
// max of them. SQLite compiling a statement again on every call was about
// a third of a read by id and a sixth of a search's CPU. A search compiles
// to a few texts per shape of query (its values are bound), so what
// clients send is covered by a few dozen; texts beyond max run unprepared,
// as all did before. None is dropped while the store is open: a statement
// closed between get and its use would fail that use.
//
// A text is prepared in the background the first time it is asked for,
// and that first call runs it unprepared: preparing takes a connection of
// the pool, and a search asking from inside its read transaction already
// holds one, so with every connection held by searches waiting for a
// preparation none would ever come free.
type stmtCache struct {
	db  *sql.DB
	max int

	mu sync.Mutex
	// byQ holds each text asked for; nil while it is being prepared, and
	// for good if it could not be (it then always runs unprepared).
	byQ     map[string]*sql.Stmt
	closed  bool
	pending sync.WaitGroup
}

func newStmtCache(db *sql.DB, max int) *stmtCache {
	return &stmtCache{db: db, max: max, byQ: map[string]*sql.Stmt{}}
}

// get returns q prepared, or nil if it is not (yet): the caller then runs
// q as it is.
func (c *stmtCache) get(q string) *sql.Stmt {
	c.mu.Lock()
	defer c.mu.Unlock()
	if st, ok := c.byQ[q]; ok || c.closed || len(c.byQ) >= c.max {
		return st
	}
	c.byQ[q] = nil
	c.pending.Add(1)
	go c.prepare(q)
	return nil
}

func (c *stmtCache) prepare(q string) {
	defer c.pending.Done()
	st, err := c.db.PrepareContext(context.Background(), q)
	c.mu.Lock()
	defer c.mu.Unlock()
	if err != nil {
		return
	}
	if c.closed {
		st.Close()
		return
	}
	c.byQ[q] = st
}

// len is the number of texts held, prepared or not.
func (c *stmtCache) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.byQ)
}

// close waits for the preparations under way and closes every statement
// kept.
func (c *stmtCache) close() {
	c.mu.Lock()
	c.closed = true
	c.mu.Unlock()
	c.pending.Wait()
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, st := range c.byQ {
		if st != nil {
			st.Close()
		}
	}
	c.byQ = map[string]*sql.Stmt{}
}

// maxReadStmts bounds the statements the read pool keeps prepared: each
// is compiled on every connection that runs it (8), at a few to some tens
// of KB each.
const maxReadStmts = 128

// queryRow runs q on the read pool, prepared once it is kept (stmtCache).
func (s *Store) queryRow(ctx context.Context, q string, args ...any) *sql.Row {
	if st := s.reads.get(q); st != nil {
		return st.QueryRowContext(ctx, args...)
	}
	return s.r.QueryRowContext(ctx, q, args...)
}

// query is queryRow for several rows.
func (s *Store) query(ctx context.Context, q string, args ...any) (*sql.Rows, error) {
	if st := s.reads.get(q); st != nil {
		return st.QueryContext(ctx, args...)
	}
	return s.r.QueryContext(ctx, q, args...)
}

// txQueryRow is queryRow in the read transaction tx.
func (s *Store) txQueryRow(ctx context.Context, tx *sql.Tx, q string, args ...any) *sql.Row {
	if st := s.reads.get(q); st != nil {
		return tx.StmtContext(ctx, st).QueryRowContext(ctx, args...)
	}
	return tx.QueryRowContext(ctx, q, args...)
}

// txQuery is txQueryRow for several rows.
func (s *Store) txQuery(ctx context.Context, tx *sql.Tx, q string, args ...any) (*sql.Rows, error) {
	if st := s.reads.get(q); st != nil {
		return tx.StmtContext(ctx, st).QueryContext(ctx, args...)
	}
	return tx.QueryContext(ctx, q, args...)
}
