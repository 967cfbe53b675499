package sqlite

import (
	"context"
	"fmt"

	"github.com/fmtbank/cmts/store"
)

// Scan pages through current versions of all tenants in (type, id) order.
func (s *Store) Scan(ctx context.Context, after *store.SearchCursor, limit int) ([]*store.Version, error) {
	q := `SELECT ` + currentCols + ` FROM ` + currentFrom + ` WHERE c.deleted = 0`
	var args []any
	if after != nil {
		q += ` AND (c.type > ? OR (c.type = ? AND c.id > ?))`
		args = append(args, after.Type, after.Type, after.ID)
	}
	rows, err := s.query(ctx, q+` ORDER BY c.type, c.id LIMIT ?`, append(args, limit)...)
	if err != nil {
		return nil, wrap(err)
	}
	defer rows.Close()
	var out []*store.Version
	for rows.Next() {
		v, err := scanVersion(rows)
		if err != nil {
			return nil, wrap(err)
		}
		out = append(out, v)
	}
	return out, wrap(rows.Err())
}

// SetIndex replaces a current version's entries in one transaction.
func (s *Store) SetIndex(ctx context.Context, v *store.Version, entries []store.IndexEntry) error {
	tx, err := s.begin(ctx)
	if err != nil {
		return wrap(err)
	}
	defer s.unbind(tx)
	defer tx.Rollback()
	var pk int64
	err = tx.QueryRowContext(ctx, `SELECT pk FROM current WHERE type = ? AND id = ? AND vid = ? AND deleted = 0`, v.Type, v.ID, v.VersionID).Scan(&pk)
	if err != nil {
		if wrap(err) == store.ErrNotFound {
			return fmt.Errorf("sqlite: %s/%s is no longer at version %d: %w", v.Type, v.ID, v.VersionID, store.ErrConflict)
		}
		return wrap(err)
	}
	if _, err := s.exec(ctx, tx, deleteIndex, pk); err != nil {
		return wrap(err)
	}
	if err := s.insertIndex(ctx, tx, pk, entries); err != nil {
		return err
	}
	if err := tx.Commit(); err != nil {
		return wrap(err)
	}
	s.committed()
	return nil
}

// Count counts current, non-deleted versions.
func (s *Store) Count(ctx context.Context) (int, error) {
	var n int
	err := s.r.QueryRowContext(ctx, `SELECT count(*) FROM current WHERE deleted = 0`).Scan(&n)
	return n, wrap(err)
}
