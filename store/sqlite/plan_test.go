package sqlite

import (
	"context"
	"database/sql"
	"math/rand/v2"
	"regexp"
	"strings"
	"testing"

	"github.com/fmtbank/cmts/store"
)

// TestSearchPlansUseIndexes compiles every benchmarked search form, and the
// other forms of planQueries, over a small registry and checks SQLite's
// plan for each: no table is read whole, and the forms below find their
// rows through the index named. The indexes are few for the writes' sake
// (see schema); this is what keeps a change of them from costing a search
// its index.
func TestSearchPlansUseIndexes(t *testing.T) {
	ctx := context.Background()
	s, err := Open(ctx, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	set := newBenchSet(2000)
	if err := bulkLoad(ctx, s, set); err != nil {
		t.Fatal(err)
	}
	uses := map[string]string{
		"string-exact":       "idx_text",
		"string-exact-ascii": "idx_text",
		"range-ge":           "idx_range_high",
		"Date/day":           "idx_range_",
		"missing-false":      "idx_text",
		"everyone-type":      "sqlite_autoindex_current_1",
	}
	// A scan of a materialised subquery or of the page's pks (p) reads
	// rows already found.
	wholeTable := regexp.MustCompile(`^SCAN (?:[a-z]+[0-9]*)(?: |$)`)
	for _, bm := range append(benchmarks(set), planQueries()...) {
		t.Run(bm.name, func(t *testing.T) {
			st := compileFor(t, s, bm.next(rand.New(rand.NewPCG(5, 6))))
			var plans []string
			for _, f := range []frag{st.count, st.page} {
				p, err := explain(ctx, s, f)
				if err != nil {
					t.Fatal(err)
				}
				plans = append(plans, p)
				for _, line := range strings.Split(p, "\n") {
					if line = strings.TrimSpace(line); wholeTable.MatchString(line) && !strings.HasPrefix(line, "SCAN p") {
						t.Errorf("%s reads a table whole:\n%s", line, p)
					}
				}
			}
			if want := uses[bm.name]; want != "" && !strings.Contains(strings.Join(plans, ""), " "+want) {
				t.Errorf("the plan does not use %s:\n%s", want, strings.Join(plans, ""))
			}
		})
	}
}

// TestInsertBuildsNoTable checks that writing index entries of every row
// shape evaluates the partial indexes' terms without building a temporary
// table (as an IN list there does, for every row).
func TestInsertBuildsNoTable(t *testing.T) {
	ctx := context.Background()
	s, err := Open(ctx, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for shape := range rowShape(1 << 6) {
		args := rowShape(shape).appendArgs(nil, &store.IndexEntry{}, 0)
		rows, err := s.w.QueryContext(ctx, "EXPLAIN "+s.insertSQL(shape, 2), make([]any, 2*(1+len(args)))...)
		if err != nil {
			t.Fatal(err)
		}
		cols, err := rows.Columns()
		if err != nil {
			t.Fatal(err)
		}
		for rows.Next() {
			vals := make([]any, len(cols))
			ptrs := make([]any, len(cols))
			for i := range vals {
				ptrs[i] = &vals[i]
			}
			if err := rows.Scan(ptrs...); err != nil {
				t.Fatal(err)
			}
			if op, _ := vals[1].(string); op == "OpenEphemeral" {
				t.Errorf("inserting index entries of shape %06b opens a temporary table (step %v)", shape, vals[0])
			}
		}
		if err := rows.Err(); err != nil {
			t.Fatal(err)
		}
		rows.Close()
	}
}

// planEveryone is a search over every tenant of one type, in page order.
func planEveryone(typ string, f store.Expr) func(*rand.Rand) store.Query {
	return func(*rand.Rand) store.Query {
		return store.Query{Access: store.Access{Everyone: true}, Type: typ, Filter: f, Count: 20, WantTotal: true}
	}
}

// compileFor compiles q as Search would, with s's estimates.
func compileFor(t testing.TB, s *Store, q store.Query) searchSQL {
	t.Helper()
	ctx := context.Background()
	tx, err := s.r.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()
	st, err := compileSearch(q, q.Count, s.estimator(ctx, tx))
	if err != nil {
		t.Fatal(err)
	}
	return st
}
