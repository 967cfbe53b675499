package sqlite

import (
	"context"
	"fmt"
	"strings"

	"github.com/fmtbank/cmts/store"
)

// Search compiles q to SQL over the current versions and their index entries.
func (s *Store) Search(ctx context.Context, q store.Query) (*store.SearchPage, error) {
	where := []string{"c.tenant = ?", "c.deleted = 0"}
	args := []any{q.Tenant}
	if q.Type != "" {
		where = append(where, "c.type = ?")
		args = append(args, q.Type)
	}
	if q.Filter != nil {
		cond, cargs, err := compile(q.Filter)
		if err != nil {
			return nil, err
		}
		where = append(where, cond)
		args = append(args, cargs...)
	}
	cond := strings.Join(where, " AND ")
	page := &store.SearchPage{Total: -1}
	if q.WantTotal {
		if err := s.r.QueryRowContext(ctx, `SELECT count(*) FROM current c WHERE `+cond, args...).Scan(&page.Total); err != nil {
			return nil, wrap(err)
		}
	}
	count := q.Count
	if count <= 0 {
		count = 50
	}
	rows, err := s.r.QueryContext(ctx, `SELECT `+prefixed("c.", versionCols)+` FROM current c WHERE `+cond+
		` ORDER BY c.type, c.id LIMIT ? OFFSET ?`, append(args, count+1, q.Offset)...)
	if err != nil {
		return nil, wrap(err)
	}
	defer rows.Close()
	for rows.Next() {
		v, err := scanVersion(rows)
		if err != nil {
			return nil, wrap(err)
		}
		page.Versions = append(page.Versions, v)
	}
	if err := rows.Err(); err != nil {
		return nil, wrap(err)
	}
	if len(page.Versions) > count {
		page.Versions = page.Versions[:count]
		page.More = true
	}
	return page, nil
}

func prefixed(p, cols string) string {
	parts := strings.Split(cols, ", ")
	for i := range parts {
		parts[i] = p + parts[i]
	}
	return strings.Join(parts, ", ")
}

// compile turns an expression into a SQL condition on current c.
func compile(e store.Expr) (string, []any, error) {
	switch e := e.(type) {
	case store.And, store.Or:
		var list []store.Expr
		op := " AND "
		if a, ok := e.(store.And); ok {
			list = a
		} else {
			list, op = e.(store.Or), " OR "
		}
		if len(list) == 0 {
			if op == " AND " {
				return "1", nil, nil
			}
			return "0", nil, nil
		}
		var parts []string
		var args []any
		for _, sub := range list {
			c, a, err := compile(sub)
			if err != nil {
				return "", nil, err
			}
			parts = append(parts, "("+c+")")
			args = append(args, a...)
		}
		return strings.Join(parts, op), args, nil
	case store.Token:
		c := "EXISTS (SELECT 1 FROM idx i WHERE i.pk = c.pk AND i.param = ? AND i.code = ?"
		args := []any{e.Param, e.Code}
		if e.System != nil {
			c += " AND i.system = ?"
			args = append(args, *e.System)
		}
		return c + ")", args, nil
	case store.ID:
		if len(e.IDs) == 0 {
			return "0", nil, nil
		}
		args := make([]any, len(e.IDs))
		for i, id := range e.IDs {
			args[i] = id
		}
		return "c.id IN (" + strings.TrimSuffix(strings.Repeat("?, ", len(e.IDs)), ", ") + ")", args, nil
	default:
		return "", nil, fmt.Errorf("sqlite: %T: %w", e, store.ErrInvalidQuery)
	}
}
