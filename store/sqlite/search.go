package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"math"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/fmtbank/cmts/store"
)

// Search compiles q to SQL over the current versions and their index entries.
//
// Every node of the AST has a condition form (cond): a boolean SQL expression
// on one row of current, mostly correlated EXISTS probes into that resource's
// entries (idx is clustered by (pk, param), so a probe is one seek).
// Evaluated alone, conditions would scan every current row of the tenant, so
// most nodes also have a candidate form (pkset): an uncorrelated SELECT of the
// pks that can match, answered from one of idx's secondary indexes (Chain and
// Has: the targets' or referrers' own candidates, then one join step).
//
// Search drives the query from the smallest candidate set of the top-level
// conjuncts (rowid IN (...)). When several compete, each is counted up to a
// cap, and a costly one (joins) that fits under the cap is read whole and
// drives as a list; the other conjuncts are probed on each candidate before
// its current row is read. Without any candidate set the query walks current
// in (tenant, type, id) order, which is also the default page order, so that
// LIMIT stops the walk early. When a candidate set drives, every match is
// visited to be sorted anyway, and the page rows carry the total too.
func (s *Store) Search(ctx context.Context, q store.Query) (*store.SearchPage, error) {
	count := q.Count
	if count <= 0 {
		count = 50
	}
	// One read transaction (a deferred BEGIN: a WAL snapshot, no lock on
	// writers) for the estimates and the statements, so that a candidate set
	// read while compiling is still exact when the query runs, and the total
	// agrees with the page.
	tx, err := s.r.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return nil, wrap(err)
	}
	defer tx.Rollback()
	st, err := compileSearch(q, count, s.estimator(ctx, tx))
	if err != nil {
		return nil, err
	}
	page := &store.SearchPage{Total: -1}
	if q.WantTotal && !st.pageTotal {
		if err := s.txQueryRow(ctx, tx, st.count.sql, st.count.args...).Scan(&page.Total); err != nil {
			return nil, wrap(err)
		}
	}
	rows, err := s.txQuery(ctx, tx, st.page.sql, st.page.args...)
	if err != nil {
		return nil, wrap(err)
	}
	defer rows.Close()
	row := scanner(rows)
	if st.pageTotal {
		row = withTotal{rows, &page.Total}
	}
	for rows.Next() {
		v, err := scanVersion(row)
		if err != nil {
			return nil, wrap(err)
		}
		page.Versions = append(page.Versions, v)
	}
	if err := rows.Err(); err != nil {
		return nil, wrap(err)
	}
	if st.pageTotal && len(page.Versions) == 0 {
		// No row carried the total: none matched, or the offset is past the
		// end.
		page.Total = 0
		if q.Offset > 0 {
			if err := s.txQueryRow(ctx, tx, st.count.sql, st.count.args...).Scan(&page.Total); err != nil {
				return nil, wrap(err)
			}
		}
	}
	if len(page.Versions) > count {
		page.Versions = page.Versions[:count]
		page.More = true
	}
	if q.Before != nil {
		slices.Reverse(page.Versions) // read backwards from the cursor
	}
	return page, nil
}

type scanner interface{ Scan(dest ...any) error }

// withTotal scans a page row followed by the total.
type withTotal struct {
	rows  *sql.Rows
	total *int
}

func (w withTotal) Scan(dest ...any) error { return w.rows.Scan(append(dest, w.total)...) }

// estimator counts a candidate set's rows up to the cap and one more; with
// keep, it also returns the set's distinct pks as a JSON array when they are
// no more than the cap.
func (s *Store) estimator(ctx context.Context, tx *sql.Tx) *estimates {
	t := s.tuning
	limit := strconv.Itoa(t.estimateCap + 1)
	return &estimates{tuning: t, shared: func(f frag) (bool, error) {
		var yes bool
		err := s.txQueryRow(ctx, tx, f.sql, f.args...).Scan(&yes)
		return yes, wrap(err)
	}, size: func(f frag, keep bool) (int, string, error) {
		var n int
		var pks string
		var err error
		if keep {
			err = s.txQueryRow(ctx, tx, `SELECT count(*), json_group_array(pk) FROM (SELECT DISTINCT pk FROM (`+f.sql+`) LIMIT `+limit+`)`,
				f.args...).Scan(&n, &pks)
			if n > t.estimateCap {
				pks = ""
			}
		} else {
			err = s.txQueryRow(ctx, tx, `SELECT count(*) FROM (SELECT 1 FROM (`+f.sql+`) LIMIT `+limit+`)`, f.args...).Scan(&n)
		}
		return n, pks, wrap(err)
	}}
}

// estimates sizes candidate sets (see estimator).
type estimates struct {
	tuning
	size func(f frag, keep bool) (rows int, pks string, err error)
	// shared runs a sharedTypes query.
	shared func(f frag) (bool, error)
}

// tuning bounds the estimates: estimateCap is the most rows an estimate
// reads; a candidate set of at most cheapEnough rows drives without the
// others being estimated (checking that many candidates costs about what
// estimating two more sets would).
type tuning struct {
	estimateCap, cheapEnough int
}

var defaultTuning = tuning{estimateCap: 5000, cheapEnough: 2000}

// searchSQL is a compiled search: the statement counting every match, and the
// one reading a page (count+1 rows, to tell whether more follow). With
// pageTotal, each page row ends with the total as well: a query driven by a
// candidate set visits every match to sort them anyway, so counting them on
// the way saves a second pass.
type searchSQL struct {
	count, page frag
	pageTotal   bool
}

// compileSearch compiles q; estimate (nil: none) sizes candidate sets to
// choose between them.
func compileSearch(q store.Query, count int, estimate *estimates) (searchSQL, error) {
	if err := q.CheckCursor(); err != nil {
		return searchSQL{}, err
	}
	cp := &compiler{access: q.Access, estimate: estimate}
	where, driven, err := cp.where(q)
	if err != nil {
		return searchSQL{}, err
	}
	// A page before a cursor is read in the reverse order (Search turns it
	// round).
	cursor, back := q.After, false
	if q.Before != nil {
		cursor, back = q.Before, true
	}
	// First the page's pks in order (the sorter then carries pks and sort
	// values, not bodies), then the page's rows.
	var keys, inner, outer []string
	var args []any
	for n, k := range q.Sort {
		agg, col := "MIN", "low"
		if k.Desc {
			agg, col = "MAX", "high"
		}
		keys = append(keys, fmt.Sprintf(`(SELECT %s(CASE WHEN s.kind = 'token' THEN s.code WHEN s.kind IN ('date', 'number', 'quantity') THEN s.%s `+
			`WHEN s.kind = 'reference' AND s.code <> '' THEN s.system || '/' || s.code ELSE s.value END) `+
			`FROM idx s WHERE s.pk = c.pk AND s.param = ?) AS k%d`, agg, col, n))
		args = append(args, k.Param)
		nulls, dir := "", ""
		if back {
			nulls = " DESC"
		}
		if k.Desc != back {
			dir = " DESC"
		}
		inner = append(inner, fmt.Sprintf("k%d IS NULL%s, k%d%s", n, nulls, n, dir))
		outer = append(outer, fmt.Sprintf("p.k%d IS NULL%s, p.k%d%s", n, nulls, n, dir))
	}
	dir := ""
	if back {
		dir = " DESC"
	}
	typ, id := "c.type", "c.id"
	if len(q.Sort) > 0 {
		typ, id = "ty", "id" // the wrapped select's columns
	}
	inner = append(inner, typ+dir+", "+id+dir)
	outer = append(outer, "p.ty"+dir+", p.id"+dir)
	sel := append([]string{"c.pk AS pk", "c.type AS ty", "c.id AS id"}, keys...)
	// current carries the current version's reach and addressee; the body
	// and method are in versions.
	cols := "c2.tenant, c2.type, c2.id, c2.vid, c2.lu, c2.deleted, v2.body, v2.method, c2.reach, c2.addressee"
	// Not with a cursor: the total counts the pages before the cursor too.
	// Not when walking (tenant, type, id) in page order either: the page
	// stops early there.
	pageTotal := q.WantTotal && driven && cursor == nil
	if pageTotal {
		sel = append(sel, "count(*) OVER () AS total")
		cols += ", p.total"
	}
	from := `SELECT ` + strings.Join(sel, ", ") + ` FROM current c WHERE ` + where.sql
	fromArgs := append(args, where.args...)
	switch {
	case cursor != nil && len(q.Sort) == 0:
		// Keyset paging in (type, id) order, which the (tenant, type, id)
		// index serves in either direction.
		beyond := keyset(nil, nil, back, typ, id, cursor)
		from += " AND " + beyond.sql
		fromArgs = append(fromArgs, beyond.args...)
	case cursor != nil:
		// The sort values are computed columns: the cursor filters the
		// wrapped select.
		beyond := keyset(q.Sort, cursor.Keys, back, typ, id, cursor)
		from = `SELECT * FROM (` + from + `) WHERE ` + beyond.sql
		fromArgs = append(fromArgs, beyond.args...)
	case len(q.Sort) > 0:
		from = `SELECT * FROM (` + from + `)`
	}
	page := frag{
		sql: `SELECT ` + cols + ` FROM (` + from + ` ORDER BY ` + strings.Join(inner, ", ") + ` LIMIT ? OFFSET ?) p` +
			` JOIN current c2 ON c2.pk = p.pk JOIN versions v2 ON v2.type = c2.type AND v2.id = c2.id AND v2.vid = c2.vid` +
			` ORDER BY ` + strings.Join(outer, ", "),
		args: append(fromArgs, count+1, max(q.Offset, 0)),
	}
	return searchSQL{count: frag{`SELECT count(*) FROM current c WHERE ` + where.sql, where.args}, page: page, pageTotal: pageTotal}, nil
}

// keyset is the condition "beyond the cursor" in the order pages are read:
// the page order, or its reverse when back. Columns k0.. hold the sort
// values (NULL: none, which sorts last), then typ and id.
func keyset(sort []store.SortKey, at []*string, back bool, typ, id string, c *store.SearchCursor) frag {
	var alts []frag
	var same []string
	var sameArgs []any
	for n, k := range sort {
		col := fmt.Sprintf("k%d", n)
		op := ">"
		if k.Desc != back {
			op = "<"
		}
		var beyond frag
		switch {
		case at[n] == nil && !back:
			beyond = frag{sql: "0"} // nothing follows the missing
		case at[n] == nil:
			beyond = frag{sql: col + " IS NOT NULL"}
		case !back:
			beyond = frag{col + " IS NULL OR " + col + " " + op + " ?", []any{*at[n]}}
		default:
			beyond = frag{col + " " + op + " ?", []any{*at[n]}}
		}
		alts = append(alts, frag{strings.Join(append(append([]string(nil), same...), "("+beyond.sql+")"), " AND "),
			append(append([]any(nil), sameArgs...), beyond.args...)})
		if at[n] == nil {
			same = append(same, col+" IS NULL")
		} else {
			same, sameArgs = append(same, col+" = ?"), append(sameArgs, *at[n])
		}
	}
	op := ">"
	if back {
		op = "<"
	}
	tail := fmt.Sprintf("(%s %s ? OR (%s = ? AND %s %s ?))", typ, op, typ, id, op)
	alts = append(alts, frag{strings.Join(append(same, tail), " AND "), append(sameArgs, c.Type, c.Type, c.ID)})
	return joinFrags(alts, " OR ")
}

// frag is a piece of SQL with the arguments of its placeholders, in order.
type frag struct {
	sql  string
	args []any
}

// sqlf builds a frag: each %s in format takes a frag's SQL (and its
// arguments, in order); a ? takes the next plain argument.
func sqlf(format string, parts ...any) frag {
	var b strings.Builder
	var args []any
	i := 0
	for j := 0; j < len(format); j++ {
		switch {
		case format[j] == '%' && j+1 < len(format) && format[j+1] == 's':
			f := parts[i].(frag)
			i++
			b.WriteString(f.sql)
			args = append(args, f.args...)
			j++
		case format[j] == '?':
			b.WriteByte('?')
			args = append(args, parts[i])
			i++
		default:
			b.WriteByte(format[j])
		}
	}
	if i != len(parts) {
		panic(fmt.Sprintf("sqlite: sqlf %q: %d parts, %d used", format, len(parts), i))
	}
	return frag{b.String(), args}
}

// joinFrags joins conditions with sep (" AND ", " OR ").
func joinFrags(fs []frag, sep string) frag {
	var out frag
	for i, f := range fs {
		if i > 0 {
			out.sql += sep
		}
		out.sql += "(" + f.sql + ")"
		out.args = append(out.args, f.args...)
	}
	return out
}

// compiler turns AST nodes into SQL for one query.
//
// SQLite's planner has no statistics here (nobody runs ANALYZE on the
// embedded store), so the SQL fixes the access paths itself: a correlated
// probe into one resource's entries marks every column but pk and param with
// a unary + so that it seeks idx's clustered key (pk, param) rather than a
// secondary index with more equality columns; joins are CROSS JOINs, which
// SQLite never reorders, written in the order they should run; and the
// columns a step must not be driven by are marked too.
type compiler struct {
	access store.Access
	n      int // aliases made so far
	// estimate, when set, sizes candidate sets to choose between them; a
	// small one comes back whole and drives the query as a list of pks.
	// Without it the guess by form decides.
	estimate *estimates
	// shared caches sharedTypes answers, by the types joined with ",".
	shared map[string]bool
}

// visible is the access condition (see access) on current alias t. A row
// reached by a probe (plus) takes the whole condition; a walk of types
// leaves the shared arm out when none of them has a shared row, so that the
// (tenant, type, id) index still drives it. Without estimates (no database
// to ask) every type may have shared rows.
func (cp *compiler) visible(t string, plus bool, types ...string) (frag, error) {
	shared := true
	if !plus && !cp.access.Everyone && len(cp.access.Tenants) > 0 && cp.estimate != nil {
		key := strings.Join(types, ",")
		var ok bool
		if shared, ok = cp.shared[key]; !ok {
			var err error
			if shared, err = cp.estimate.shared(sharedTypes(types)); err != nil {
				return frag{}, err
			}
			if cp.shared == nil {
				cp.shared = map[string]bool{}
			}
			cp.shared[key] = shared
		}
	}
	return access(cp.access, t, plus, shared), nil
}

// alias returns a table alias not used elsewhere in the query.
func (cp *compiler) alias(prefix string) string {
	cp.n++
	return prefix + strconv.Itoa(cp.n)
}

// scope is where a condition is evaluated: on the resource whose current row
// is alias c, and inside a composite on the entries of one group only (those
// of param whose grp equals grp's).
type scope struct {
	c     string
	grp   string
	param string
}

// entries restricts idx alias a to the scope's entries, as a probe by
// (pk, param).
func (s scope) entries(a string) frag {
	if s.grp == "" {
		return sqlf(a + ".pk = " + s.c + ".pk")
	}
	return sqlf(a+".pk = "+s.c+".pk AND +"+a+".grp = "+s.grp+".grp AND "+a+".param = ?", s.param)
}

// where compiles the query's whole condition on current c, and reports
// whether a candidate set drives it.
func (cp *compiler) where(q store.Query) (frag, bool, error) {
	var conj []store.Expr
	flatten(q.Filter, &conj)
	best, driver, found, err := cp.best(conj)
	if err != nil {
		return frag{}, false, err
	}
	var parts []frag
	// With a driver, the unary + keeps SQLite from walking the (tenant, type,
	// id) index instead of looking candidates up by rowid.
	plus := ""
	if found {
		plus = "+"
	}
	types := q.Types
	if q.Type != "" {
		types = []string{q.Type}
	}
	vis, err := cp.visible("c", found, types...)
	if err != nil {
		return frag{}, false, err
	}
	parts = append(parts, vis, sqlf(plus+"c.deleted = 0"))
	if q.Type != "" {
		parts = append(parts, sqlf(plus+"c.type = ?", q.Type))
	}
	if len(q.Types) > 0 {
		in := frag{sql: plus + "c.type IN (" + strings.TrimSuffix(strings.Repeat("?, ", len(q.Types)), ", ") + ")"}
		for _, t := range q.Types {
			in.args = append(in.args, t)
		}
		parts = append(parts, in)
	}
	// The conjuncts that look only at entries are checked on the candidates
	// before their rows are read: idx is clustered by pk and narrow, current
	// holds the bodies.
	d := cp.alias("d")
	var early []frag
	for i, e := range conj {
		if found && i == best && driver.exact {
			continue
		}
		sc := scope{c: "c"}
		if found && !needsRow(e) {
			sc.c = d
		}
		f, err := cp.cond(e, sc)
		if err != nil {
			return frag{}, false, err
		}
		if sc.c == d {
			early = append(early, f)
		} else {
			parts = append(parts, f)
		}
	}
	if found {
		cands := driver.frag
		if len(early) > 0 {
			cands = sqlf("SELECT "+d+".pk FROM (%s) "+d+" WHERE %s", cands, joinFrags(early, " AND "))
		}
		parts = append(parts, sqlf("c.pk IN (%s)", cands))
	}
	return joinFrags(parts, " AND "), found, nil
}

// best returns the most selective candidate set among the conjuncts, and
// which conjunct it belongs to.
func (cp *compiler) best(conj []store.Expr) (int, cand, bool, error) {
	type option struct {
		i    int
		c    cand
		rows int
	}
	var opts []option
	for i, e := range conj {
		c, ok, err := cp.pkset(e)
		if err != nil {
			return 0, cand{}, false, err
		}
		if ok {
			opts = append(opts, option{i, c, math.MaxInt}) // not estimated: unknown
		}
	}
	if len(opts) == 0 {
		return 0, cand{}, false, nil
	}
	if len(opts) > 1 && cp.estimate != nil {
		// Cheapest-looking first; once one is small, driving from it is cheap
		// whatever the others hold, and estimating them could cost more.
		slices.SortStableFunc(opts, func(a, b option) int { return a.c.rank - b.c.rank })
		for k := range opts {
			if opts[k].c.rank == 0 {
				break // a list of ids: nothing is smaller
			}
			n, pks, err := cp.estimate.size(opts[k].c.frag, opts[k].c.costly)
			if err != nil {
				return 0, cand{}, false, err
			}
			if pks != "" {
				// Read already: the list drives, not the statement again.
				opts[k].c.frag = sqlf("SELECT value AS pk FROM json_each(?)", pks)
			}
			if opts[k].rows = n; n <= cp.estimate.cheapEnough {
				break
			}
		}
	}
	b := opts[0]
	for _, o := range opts[1:] {
		if o.rows < b.rows || (o.rows == b.rows && o.c.rank < b.c.rank) {
			b = o
		}
	}
	return b.i, b.c, true, nil
}

// flatten appends the conjuncts of e (nested Ands opened up, nil dropped).
func flatten(e store.Expr, out *[]store.Expr) {
	switch e := e.(type) {
	case nil:
	case store.And:
		for _, sub := range e {
			flatten(sub, out)
		}
	default:
		*out = append(*out, e)
	}
}

// cond compiles e to a condition on the scope's resource.
func (cp *compiler) cond(e store.Expr, s scope) (frag, error) {
	switch e := e.(type) {
	case nil:
		return sqlf("1"), nil
	case store.And, store.Or:
		list, sep, empty := []store.Expr(nil), " AND ", "1"
		if a, ok := e.(store.And); ok {
			list = a
		} else {
			list, sep, empty = e.(store.Or), " OR ", "0"
		}
		if len(list) == 0 {
			return sqlf(empty), nil
		}
		var fs []frag
		for _, sub := range list {
			f, err := cp.cond(sub, s)
			if err != nil {
				return frag{}, err
			}
			fs = append(fs, f)
		}
		return joinFrags(fs, sep), nil
	case store.Not:
		f, err := cp.cond(e.Expr, s)
		if err != nil {
			return frag{}, err
		}
		return sqlf("NOT (%s)", f), nil
	case store.ID:
		return idIn(s.c+".id", e.IDs), nil
	case store.Missing:
		a := cp.alias("m")
		f := sqlf("EXISTS (SELECT 1 FROM idx "+a+" WHERE %s AND "+a+".param = ?)", s.entries(a), e.Param)
		if e.Missing {
			f.sql = "NOT " + f.sql
		}
		return f, nil
	case store.Token, store.String, store.Range, store.Reference:
		a := cp.alias("i")
		leaf, err := leaf(e, a, true)
		if err != nil {
			return frag{}, err
		}
		return sqlf("EXISTS (SELECT 1 FROM idx "+a+" WHERE %s AND %s)", s.entries(a), leaf), nil
	case store.Chain:
		// The resource's reference entries, then their targets by (type, id).
		a, t := cp.alias("i"), cp.alias("t")
		f := sqlf("EXISTS (SELECT 1 FROM idx "+a+" CROSS JOIN current "+t+" ON "+t+".type = "+a+".system AND "+t+".id = "+a+".code WHERE %s AND %s",
			s.entries(a), cp.chainRef(e, a, t, true))
		if e.Filter != nil {
			sub, err := cp.cond(e.Filter, scope{c: t})
			if err != nil {
				return frag{}, err
			}
			f = sqlf("%s AND %s", f, sub)
		}
		f.sql += ")"
		return f, nil
	case store.Has:
		// The referrers' entries that point at the resource, found through
		// idx_code (param, code = id, kind, system = type), then the
		// referrers' rows.
		a, r := cp.alias("i"), cp.alias("r")
		f := sqlf("EXISTS (SELECT 1 FROM idx "+a+" CROSS JOIN current "+r+" ON "+r+".pk = "+a+".pk WHERE "+
			a+".param = ? AND "+a+".code = "+s.c+".id AND "+a+".kind = 'reference' AND "+a+".system = "+s.c+".type AND "+
			"+"+r+".type = ? AND %s AND +"+r+".deleted = 0", e.Param, e.Type, access(cp.access, r, true, true))
		if e.Filter != nil {
			sub, err := cp.cond(e.Filter, scope{c: r})
			if err != nil {
				return frag{}, err
			}
			f = sqlf("%s AND %s", f, sub)
		}
		f.sql += ")"
		return f, nil
	case store.Composite:
		g := cp.alias("g")
		drv, rest, err := cp.composite(e, g, s, true, compositeLeads(e)[0])
		if err != nil {
			return frag{}, err
		}
		return sqlf("EXISTS (SELECT 1 FROM idx "+g+" WHERE %s AND %s AND %s)", s.entries(g), drv, rest), nil
	default:
		return frag{}, fmt.Errorf("sqlite: %T: %w", e, store.ErrInvalidQuery)
	}
}

// chainRef is a Chain's condition on its reference entry, idx alias a, and
// the target's current row, alias t. probe marks a's columns other than param
// (a is reached by (pk, param)).
func (cp *compiler) chainRef(e store.Chain, a, t string, probe bool) frag {
	p := ""
	if probe {
		p = "+"
	}
	f := sqlf(a+".param = ? AND "+p+a+".kind = 'reference'", e.Param)
	if e.TargetType != "" {
		f = sqlf("%s AND "+p+a+".system = ?", f, e.TargetType)
	}
	return sqlf("%s AND %s AND +"+t+".deleted = 0", f, access(cp.access, t, true, true))
}

// leaf compiles a Token, String, Range or Reference to a condition on one
// entry, idx alias a, of the leaf's parameter. A probe (a reached by (pk,
// param)) marks the other columns so that SQLite does not pick an index by
// them.
func leaf(e store.Expr, a string, probe bool) (frag, error) {
	col := func(c string) string {
		if probe {
			return "+" + a + "." + c
		}
		return a + "." + c
	}
	switch e := e.(type) {
	case store.Token:
		if e.Code == "" && e.System != nil {
			// system|: any code of the system.
			return sqlf(a+".param = ? AND "+col("system")+" = ? AND "+col("kind")+" = 'token'", e.Param, *e.System), nil
		}
		f := sqlf(a+".param = ? AND "+col("code")+" = ? AND "+col("kind")+" = 'token'", e.Param, e.Code)
		if e.System != nil {
			f = sqlf("%s AND "+col("system")+" = ?", f, *e.System)
		}
		return f, nil
	case store.String:
		// Every leaf on value names value <> '' (no entry with an empty
		// value matches a search text anyway): the (param, value) index
		// holds only such entries.
		p := sqlf(a+".param = ? AND "+col("value")+" <> ''", e.Param)
		switch e.Mode {
		case store.Prefix, store.Below:
			// A range on (param, value) instead of LIKE, which folds ASCII case
			// and needs escaping.
			if end, ok := prefixEnd(e.Text); ok {
				return sqlf("%s AND "+col("value")+" >= ? AND "+col("value")+" < ?", p, e.Text, end), nil
			}
			return sqlf("%s AND "+col("value")+" >= ?", p, e.Text), nil
		case store.Exact:
			// String entries are not in idx_code: they are found by their
			// folded text, then compared exactly. Without it, only by code
			// (every entry of the parameter is read).
			if e.Folded == "" {
				return sqlf(a+".param = ? AND "+col("code")+" = ?", e.Param, e.Text), nil
			}
			return sqlf("%s AND "+col("value")+" = ? AND "+col("code")+" = ?", p, e.Folded, e.Text), nil
		case store.Contains:
			return sqlf("%s AND instr("+col("value")+", ?) > 0", p, e.Text), nil
		case store.Equal:
			return sqlf("%s AND "+col("value")+" = ?", p, e.Text), nil
		case store.Above:
			// The entry's value is one of the text's prefixes: an IN list
			// served by the (param, value) index while the text is short.
			if len(e.Text) > maxAbovePrefixes {
				return sqlf("%s AND instr(?, "+col("value")+") = 1", p, e.Text), nil
			}
			f := sqlf("%s AND "+col("value")+" IN (?", p, "")
			for i := 1; i <= len(e.Text); i++ {
				f = sqlf("%s, ?", f, e.Text[:i])
			}
			f.sql += ")"
			return f, nil
		default:
			return frag{}, fmt.Errorf("sqlite: string mode %d: %w", e.Mode, store.ErrInvalidQuery)
		}
	case store.Range:
		f := sqlf(a+".param = ? AND "+qualify(rangeKinds, col("")), e.Param)
		for _, b := range e.Bounds {
			c := col("low")
			if b.High {
				c = col("high")
			}
			op, ok := compareOps[b.Op]
			if !ok {
				return frag{}, fmt.Errorf("sqlite: compare op %d: %w", b.Op, store.ErrInvalidQuery)
			}
			f = sqlf("%s AND "+c+" "+op+" ?", f, b.Value)
			// Entries have Low <= High, so an upper bound on High bounds Low
			// too (and a lower bound on Low bounds High): the implied bound
			// lets (param, low) or (param, high) scan a narrow range instead
			// of everything on one side.
			switch {
			case b.High && (b.Op == store.LT || b.Op == store.LE):
				f = sqlf("%s AND "+col("low")+" "+op+" ?", f, b.Value)
			case !b.High && (b.Op == store.GT || b.Op == store.GE):
				f = sqlf("%s AND "+col("high")+" "+op+" ?", f, b.Value)
			}
		}
		if e.System != nil {
			f = sqlf("%s AND "+col("system")+" = ?", f, *e.System)
		}
		if e.Code != nil {
			f = sqlf("%s AND "+col("code")+" = ?", f, *e.Code)
		}
		return f, nil
	case store.Reference:
		if e.URL != "" {
			return sqlf(a+".param = ? AND "+col("value")+" = ? AND "+col("value")+" <> '' AND "+col("kind")+" = 'reference'", e.Param, e.URL), nil
		}
		f := sqlf(a+".param = ? AND "+col("code")+" = ? AND "+col("kind")+" = 'reference'", e.Param, e.ID)
		if e.Type != "" {
			f = sqlf("%s AND "+col("system")+" = ?", f, e.Type)
		}
		return f, nil
	}
	return frag{}, fmt.Errorf("sqlite: %T: %w", e, store.ErrInvalidQuery)
}

// qualify prefixes the columns of a term of the schema (codeKinds,
// rangeKinds) with an alias: as the index's own term, it tells SQLite the
// index holds the rows.
func qualify(term, prefix string) string {
	return termColumns.ReplaceAllString(term, prefix+"$1")
}

var termColumns = regexp.MustCompile(`\b(kind|value)\b`)

var compareOps = map[store.CompareOp]string{store.LT: "<", store.LE: "<=", store.GT: ">", store.GE: ">="}

// maxAbovePrefixes bounds the IN list of an :above search.
const maxAbovePrefixes = 512

// prefixEnd returns the smallest string above every string that starts with
// p (SQLite compares text bytewise), and false when there is none.
func prefixEnd(p string) (string, bool) {
	b := []byte(p)
	for i := len(b) - 1; i >= 0; i-- {
		if b[i] < 0xff {
			b[i]++
			return string(b[:i+1]), true
		}
	}
	return "", false
}

func idIn(col string, ids []string) frag {
	if len(ids) == 0 {
		return sqlf("0")
	}
	args := make([]any, len(ids))
	for i, id := range ids {
		args[i] = id
	}
	return frag{col + " IN (" + strings.TrimSuffix(strings.Repeat("?, ", len(ids)), ", ") + ")", args}
}

// composite compiles a Composite around idx alias g, the row that names the
// group: drv restricts g (to a component's matching entry when a component is
// a plain leaf, else to any grouped entry of the composite), and rest holds
// the other components, each on the entries of g's group. probe: g is
// reached by (pk, param).
func (cp *compiler) composite(e store.Composite, g string, s scope, probe bool, lead int) (drv, rest frag, err error) {
	prefix := e.Param + "$"
	if lead >= 0 {
		if drv, err = leaf(e.Components[lead], g, probe); err != nil {
			return frag{}, frag{}, err
		}
	} else {
		// Any grouped entry of the composite names a group.
		drv = sqlf(g+".param >= ?", prefix)
		if end, ok := prefixEnd(prefix); ok {
			drv = sqlf("%s AND "+g+".param < ?", drv, end)
		}
	}
	drv.sql += " AND +" + g + ".grp <> 0"
	parts := []frag{sqlf("1")}
	for i, c := range e.Components {
		if i == lead {
			continue
		}
		f, err := cp.cond(c, scope{c: s.c, grp: g, param: prefix + strconv.Itoa(i)})
		if err != nil {
			return frag{}, frag{}, err
		}
		parts = append(parts, f)
	}
	return drv, joinFrags(parts, " AND "), nil
}

// compositeLeads returns the components that are plain leaves on their own
// component parameter (their entries can name the groups), or -1 alone.
func compositeLeads(e store.Composite) []int {
	var out []int
	for i, c := range e.Components {
		if leafParam(c) == e.Param+"$"+strconv.Itoa(i) {
			out = append(out, i)
		}
	}
	if len(out) == 0 {
		return []int{-1}
	}
	return out
}

// needsRow reports whether a condition on e reads the resource's current row
// (not only its entries).
func needsRow(e store.Expr) bool {
	switch e := e.(type) {
	case store.ID, store.Has:
		return true
	case store.And:
		return slices.ContainsFunc(e, needsRow)
	case store.Or:
		return slices.ContainsFunc(e, needsRow)
	case store.Not:
		return needsRow(e.Expr)
	case store.Composite:
		return slices.ContainsFunc(e.Components, needsRow)
	}
	return false
}

// leafParam returns the parameter of a Token, String, Range or Reference
// leaf, and "" for any other node.
func leafParam(e store.Expr) string {
	switch e := e.(type) {
	case store.Token:
		return e.Param
	case store.String:
		return e.Param
	case store.Range:
		return e.Param
	case store.Reference:
		return e.Param
	}
	return ""
}

// cand is a candidate set: an uncorrelated SELECT of pks (a column named pk)
// that includes every
// resource matching a node (exactly those when exact), with a guess of its
// size from its form (rank: lower is smaller).
type cand struct {
	frag  frag
	rank  int
	exact bool
	// costly: reading the set takes more than one index range (joins,
	// probes), so once read it is worth keeping rather than reading again.
	costly bool
}

// pkset returns e's candidate set, and false when e has none worth using
// (Not, Missing true: they hold for most resources).
func (cp *compiler) pkset(e store.Expr) (cand, bool, error) {
	switch e := e.(type) {
	case store.ID:
		return cand{frag: sqlf("SELECT pk FROM current WHERE %s", idIn("id", e.IDs)), rank: 0, exact: true}, true, nil
	case store.Token, store.String, store.Range, store.Reference:
		a := cp.alias("i")
		f, err := leaf(e, a, false)
		if err != nil {
			return cand{}, false, err
		}
		return cand{frag: sqlf("SELECT "+a+".pk FROM idx "+a+" WHERE %s", f), rank: leafRank(e), exact: true}, true, nil
	case store.Missing:
		if e.Missing {
			return cand{}, false, nil
		}
		// Every entry is in idx_code or in idx_text.
		a, b := cp.alias("m"), cp.alias("m")
		return cand{frag: sqlf("SELECT "+a+".pk FROM idx "+a+" WHERE "+a+".param = ? AND "+strings.ReplaceAll(codeKinds, "kind", a+".kind")+
			" UNION ALL SELECT "+b+".pk FROM idx "+b+" WHERE "+b+".param = ? AND "+b+".value <> ''", e.Param, e.Param), rank: 7, exact: true}, true, nil
	case store.And:
		var conj []store.Expr
		flatten(e, &conj)
		_, c, ok, err := cp.best(conj)
		c.exact = c.exact && len(conj) == 1
		return c, ok, err
	case store.Or:
		if len(e) == 0 {
			return cand{frag: sqlf("SELECT NULL AS pk WHERE 0"), rank: 0, exact: true}, true, nil
		}
		out := cand{exact: true}
		var fs []string
		for _, sub := range e {
			c, ok, err := cp.pkset(sub)
			if err != nil || !ok {
				return cand{}, false, err
			}
			fs = append(fs, c.frag.sql)
			out.frag.args = append(out.frag.args, c.frag.args...)
			out.rank = max(out.rank, c.rank)
			out.exact = out.exact && c.exact
			out.costly = out.costly || c.costly
		}
		out.frag.sql = strings.Join(fs, " UNION ALL ")
		return out, true, nil
	case store.Chain:
		return cp.chainSet(e)
	case store.Has:
		return cp.hasSet(e)
	case store.Composite:
		return cp.compositeSet(e)
	}
	return cand{}, false, nil
}

// chainSet is a Chain's candidate set: the targets that match (by their own
// candidate set), then the entries that point at them, found through
// idx_code (param, code = id, kind, system = type). Without a candidate set
// for the targets there is none: every entry of the parameter, of every
// resource type, would be a candidate, and walking the query's type is
// cheaper.
func (cp *compiler) chainSet(e store.Chain) (cand, bool, error) {
	a, t := cp.alias("i"), cp.alias("t")
	sub, ok, err := cp.pkset(e.Filter)
	if err != nil || !ok {
		return cand{}, false, err
	}
	// +t.id, +t.type: no constraint on t is derived from a's, so the
	// target's candidates drive.
	f := sqlf("SELECT "+a+".pk FROM current "+t+" CROSS JOIN idx "+a+" ON "+a+".code = +"+t+".id AND "+a+".system = +"+t+".type WHERE "+
		t+".pk IN (%s) AND %s", sub.frag, cp.chainRef(e, a, t, false))
	if !sub.exact {
		c, err := cp.cond(e.Filter, scope{c: t})
		if err != nil {
			return cand{}, false, err
		}
		f = sqlf("%s AND %s", f, c)
	}
	return cand{frag: f, rank: max(sub.rank, 3), exact: true, costly: true}, true, nil
}

// hasSet is a Has's candidate set: the referrers that match (by their own
// candidate set when the filter has one), their reference entries by (pk,
// param), then the resources those point at.
func (cp *compiler) hasSet(e store.Has) (cand, bool, error) {
	a, r, t := cp.alias("i"), cp.alias("r"), cp.alias("t")
	sub, ok, err := cp.pkset(e.Filter)
	if err != nil {
		return cand{}, false, err
	}
	join := " CROSS JOIN current " + t + " ON " + t + ".type = " + a + ".system AND " + t + ".id = " + a + ".code WHERE "
	var f frag
	rank := 6
	if ok {
		f = sqlf("SELECT "+t+".pk FROM current "+r+" CROSS JOIN idx "+a+" ON "+a+".pk = "+r+".pk"+join+
			r+".pk IN (%s) AND +"+r+".type = ? AND %s AND +"+r+".deleted = 0 AND "+a+".param = ? AND +"+a+".kind = 'reference'",
			sub.frag, e.Type, access(cp.access, r, true, true), e.Param)
		rank = max(sub.rank, 3)
	} else {
		vis, err := cp.visible(r, false, e.Type)
		if err != nil {
			return cand{}, false, err
		}
		f = sqlf("SELECT "+t+".pk FROM current "+r+" CROSS JOIN idx "+a+" ON "+a+".pk = "+r+".pk"+join+
			"%s AND "+r+".type = ? AND +"+r+".deleted = 0 AND "+a+".param = ? AND +"+a+".kind = 'reference'",
			vis, e.Type, e.Param)
	}
	if e.Filter != nil && !(ok && sub.exact) {
		c, err := cp.cond(e.Filter, scope{c: r})
		if err != nil {
			return cand{}, false, err
		}
		f = sqlf("%s AND %s", f, c)
	}
	return cand{frag: f, rank: rank, exact: true, costly: true}, true, nil
}

// compositeSet is a Composite's candidate set, when a component is a plain
// leaf: the matching entries of the most selective such component name the
// groups, and the other components are probed in each group.
func (cp *compiler) compositeSet(e store.Composite) (cand, bool, error) {
	leads := compositeLeads(e)
	if leads[0] < 0 {
		return cand{}, false, nil
	}
	lead := leads[0]
	if len(leads) > 1 && cp.estimate != nil {
		best := math.MaxInt
		for _, i := range leads {
			a := cp.alias("i")
			f, err := leaf(e.Components[i], a, false)
			if err != nil {
				return cand{}, false, err
			}
			n, _, err := cp.estimate.size(sqlf("SELECT "+a+".pk FROM idx "+a+" WHERE %s AND "+a+".grp <> 0", f), false)
			if err != nil {
				return cand{}, false, err
			}
			if n < best {
				lead, best = i, n
			}
		}
	}
	g := cp.alias("g")
	from, c := "idx "+g, g
	if slices.ContainsFunc(e.Components, needsRow) {
		c = cp.alias("c")
		from += " CROSS JOIN current " + c + " ON " + c + ".pk = " + g + ".pk"
	}
	drv, rest, err := cp.composite(e, g, scope{c: c}, false, lead)
	if err != nil {
		return cand{}, false, err
	}
	return cand{frag: sqlf("SELECT "+g+".pk FROM "+from+" WHERE %s AND %s", drv, rest),
		rank: max(leafRank(e.Components[lead]), 3), exact: true, costly: true}, true, nil
}

// leafRank guesses how selective a leaf is from its form alone.
func leafRank(e store.Expr) int {
	switch e := e.(type) {
	case store.Token:
		switch {
		case e.Code == "" && e.System != nil:
			return 6 // system|: every token entry of the parameter
		case e.System != nil:
			return 1
		}
		return 2
	case store.Reference:
		if e.Type != "" || e.URL != "" {
			return 1
		}
		return 2
	case store.String:
		switch e.Mode {
		case store.Exact, store.Equal:
			return 2
		case store.Prefix, store.Below:
			if e.Text == "" {
				return 7
			}
			return 4
		}
		return 6
	case store.Range:
		return 5
	}
	return 7
}
