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
type stmtCache struct {
	db  *sql.DB
	max int

	mu  sync.Mutex
	byQ map[string]*sql.Stmt
}

func newStmtCache(db *sql.DB, max int) *stmtCache {
	return &stmtCache{db: db, max: max, byQ: map[string]*sql.Stmt{}}
}

// get returns q prepared, or nil if it is not kept (or could not be
// prepared: the caller then runs q as it is, and meets the error there).
func (c *stmtCache) get(ctx context.Context, q string) *sql.Stmt {
	c.mu.Lock()
	defer c.mu.Unlock()
	if st, ok := c.byQ[q]; ok || len(c.byQ) >= c.max {
		return st
	}
	// Under the lock: preparing on one connection takes tens of
	// microseconds, once per text.
	st, err := c.db.PrepareContext(context.WithoutCancel(ctx), q)
	if err != nil {
		return nil
	}
	c.byQ[q] = st
	return st
}

// len is the number of statements kept.
func (c *stmtCache) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.byQ)
}

// close closes every statement kept.
func (c *stmtCache) close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, st := range c.byQ {
		st.Close()
	}
	c.byQ = map[string]*sql.Stmt{}
}

// maxReadStmts bounds the statements the read pool keeps prepared: each
// is compiled on every connection that runs it (8), at a few to some tens
// of KB each.
const maxReadStmts = 128

// queryRow runs q on the read pool, prepared once (stmtCache).
func (s *Store) queryRow(ctx context.Context, q string, args ...any) *sql.Row {
	if st := s.reads.get(ctx, q); st != nil {
		return st.QueryRowContext(ctx, args...)
	}
	return s.r.QueryRowContext(ctx, q, args...)
}

// query is queryRow for several rows.
func (s *Store) query(ctx context.Context, q string, args ...any) (*sql.Rows, error) {
	if st := s.reads.get(ctx, q); st != nil {
		return st.QueryContext(ctx, args...)
	}
	return s.r.QueryContext(ctx, q, args...)
}

// txQueryRow is queryRow in the read transaction tx.
func (s *Store) txQueryRow(ctx context.Context, tx *sql.Tx, q string, args ...any) *sql.Row {
	if st := s.reads.get(ctx, q); st != nil {
		return tx.StmtContext(ctx, st).QueryRowContext(ctx, args...)
	}
	return tx.QueryRowContext(ctx, q, args...)
}

// txQuery is txQueryRow for several rows.
func (s *Store) txQuery(ctx context.Context, tx *sql.Tx, q string, args ...any) (*sql.Rows, error) {
	if st := s.reads.get(ctx, q); st != nil {
		return tx.StmtContext(ctx, st).QueryContext(ctx, args...)
	}
	return tx.QueryContext(ctx, q, args...)
}
