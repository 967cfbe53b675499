// Package sqlite is the embedded store: one SQLite file (pure Go, WAL mode)
// under the data directory, needing nothing else on the machine.
package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"github.com/fmtbank/cmts/store/sqlite/walvfs"
	"iter"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/fmtbank/cmts/store"
	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

var _ store.Store = (*Store)(nil)

// FileName is the database file created under the data directory.
const FileName = "cmts.db"

// schema is applied at open; every statement is idempotent.
const schema = `
-- current holds one narrow row per resource (the body stays in versions), so
-- that checking a search's candidates (tenant, type, deleted) reads few pages.
CREATE TABLE IF NOT EXISTS current (
	pk      INTEGER PRIMARY KEY,
	type    TEXT NOT NULL,
	id      TEXT NOT NULL,
	tenant  TEXT NOT NULL,
	vid     INTEGER NOT NULL,
	lu      INTEGER NOT NULL,
	deleted INTEGER NOT NULL,
	-- reach: that of the current version (store.Reach); files written
	-- before it existed gain it at Open (migrate).
	reach   INTEGER NOT NULL DEFAULT 0,
	-- addressee: that of the current version (store.Version.Addressee,
	-- '' for none; added like reach)
	addressee TEXT NOT NULL DEFAULT '',
	UNIQUE (type, id)
);
CREATE INDEX IF NOT EXISTS current_tenant_type ON current (tenant, type, id);
CREATE TABLE IF NOT EXISTS versions (
	type    TEXT NOT NULL,
	id      TEXT NOT NULL,
	vid     INTEGER NOT NULL,
	tenant  TEXT NOT NULL,
	lu      INTEGER NOT NULL,
	deleted INTEGER NOT NULL,
	body    BLOB,
	-- method: the interaction that made the version (store.Version.Method);
	-- files written before it existed gain it at Open (migrate).
	method  TEXT NOT NULL DEFAULT '',
	-- reach: store.Version.Reach (added like method)
	reach   INTEGER NOT NULL DEFAULT 0,
	-- addressee: store.Version.Addressee (added like method)
	addressee TEXT NOT NULL DEFAULT '',
	PRIMARY KEY (type, id, vid)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS versions_history ON versions (tenant, lu DESC, type, id, vid DESC);
CREATE INDEX IF NOT EXISTS versions_type_history ON versions (tenant, type, lu DESC, id, vid DESC);
-- a type's history over every tenant since a time (what changed since a
-- report last looked; the regulator's type history)
CREATE INDEX IF NOT EXISTS versions_type_lu ON versions (type, lu DESC);
-- idx holds the search index entries of current versions, clustered by
-- resource (pk) so that the entries of one resource sit together: a search
-- probes a candidate's entries in one seek, and an update replaces them
-- cheaply. n numbers the entries of one version; grp ties the components of
-- one composite value (0: none). Each secondary index carries (pk, param, n)
-- as well, so that a leaf of the search AST is answered from the index alone.
CREATE TABLE IF NOT EXISTS idx (
	pk     INTEGER NOT NULL,
	param  TEXT NOT NULL,
	n      INTEGER NOT NULL,
	kind   TEXT NOT NULL,
	system TEXT NOT NULL,
	code   TEXT NOT NULL,
	value  TEXT NOT NULL,
	low    TEXT NOT NULL,
	high   TEXT NOT NULL,
	grp    INTEGER NOT NULL,
	PRIMARY KEY (pk, param, n)
) WITHOUT ROWID;
-- token, reference (code = target id). Partial: string and uri entries
-- (half of them), which are found by value (idx_text; :exact by the
-- folded text, then code), are left out; a leaf on code names kind =
-- 'token' or 'reference', which SQLite sees implies the term (codeKinds).
-- Entries without a value stay, so that idx_code and idx_text together
-- hold every entry (Missing); value, mostly empty here, is carried so
-- that SQLite can tell that from the index alone. It replaces idx_token,
-- the same index over every entry.
DROP INDEX IF EXISTS idx_token;
CREATE INDEX IF NOT EXISTS idx_code ON idx (param, code, kind, system, grp, value) WHERE ` + codeKinds + `;
-- string prefix, uri, reference URL, token :text. Partial: the entries
-- with a value alone (about half: most tokens and every range has none),
-- so that a write inserts fewer rows; a leaf on value names the same
-- value <> '' term (leaf), which is how SQLite knows it may use it. It
-- replaces idx_value, the same index over every entry.
DROP INDEX IF EXISTS idx_value;
CREATE INDEX IF NOT EXISTS idx_text ON idx (param, value, grp) WHERE value <> '';
-- date, number, quantity ranges; the other end and kind make them covering.
-- Partial: only range entries (a quarter of them); a range leaf names the
-- same term (rangeKinds), which is how SQLite knows it may use them. The
-- term is a chain of equalities, not kind IN (...): SQLite tests a partial
-- index's term on every row written, and there an IN list builds a
-- temporary table each time (two per entry, a fifth of a write's CPU). They
-- replace idx_low and idx_high, the same indexes with the IN term.
DROP INDEX IF EXISTS idx_low;
DROP INDEX IF EXISTS idx_high;
CREATE INDEX IF NOT EXISTS idx_range_low ON idx (param, low, high, kind, grp) WHERE ` + rangeKinds + `;
CREATE INDEX IF NOT EXISTS idx_range_high ON idx (param, high, low, kind, grp) WHERE ` + rangeKinds + `;
-- (grp, mostly 0, takes no payload bytes: it lets a composite's leading
-- component be answered from the index too)
-- _id searches across types
CREATE INDEX IF NOT EXISTS current_id ON current (id);
-- A search over every tenant (the regulator's, a report's) walks one type
-- in page order through UNIQUE (type, id)'s own index. current_type was a
-- second index of the same columns, which every create paid for.
DROP INDEX IF EXISTS current_type;
`

// codeKinds is true of the entries of idx_code: those a leaf on code may
// find (tokens, references) and those without a value (so not in
// idx_text).
const codeKinds = `(kind = 'token' OR kind = 'reference' OR value = '')`

// rangeKinds is true of range entries: the term of the range indexes,
// which a range leaf names too (leaf).
const rangeKinds = `(kind = 'date' OR kind = 'number' OR kind = 'quantity')`

// sharedSchema is applied after migrate (the columns it names may be new):
// partial indexes holding the shared rows alone (reach = 1, few: product
// lots) and the addressed ones (addressee <> ”, fewer: consultation
// Tasks), which serve the other arms of accessArms, and tell a search
// cheaply whether a type has any (sharedTypes).
const sharedSchema = `
CREATE INDEX IF NOT EXISTS current_addressed ON current (addressee, type, id) WHERE addressee <> '';
CREATE INDEX IF NOT EXISTS versions_addressed_history ON versions (addressee, lu DESC, type, id, vid DESC) WHERE addressee <> '';
CREATE INDEX IF NOT EXISTS current_shared ON current (type, id) WHERE reach = 1;
CREATE INDEX IF NOT EXISTS versions_shared_history ON versions (lu DESC, type, id, vid DESC) WHERE reach = 1;
CREATE INDEX IF NOT EXISTS versions_shared_type_history ON versions (type, lu DESC, id, vid DESC) WHERE reach = 1;
`

// insertEntry is OR FAIL, not the default OR ABORT, so that SQLite keeps no
// statement journal (a copy of every page a multi-row statement touches,
// kept to undo the statement alone): a failing write is rolled back whole,
// with its transaction or savepoint, and a row of idx cannot break a
// constraint anyway.
const insertEntry = `INSERT OR FAIL INTO idx (pk, param, n, kind, system, code, value, low, high, grp) VALUES ` + insertRow

// insertRow is a row of insertEntry.
const insertRow = `(?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`

// insertSizes are the numbers of entries one prepared INSERT writes: a
// version's entries go in as few statements as the binary digits of their
// count, the largest insertSizes[0] at a time. A resource at the REST
// limits has a few hundred thousand entries, all written while the write
// lock is held, and a statement per entry costs more than the entry.
var insertSizes = []int{64, 32, 16, 8, 4, 2, 1}

// The writer's statements other than the inserts of idx rows (insertSQL).
const (
	selectCurrent = `SELECT pk, vid, tenant FROM current WHERE type = ? AND id = ?`
	insertCurrent = `INSERT INTO current (type, id, tenant, vid, lu, deleted, reach, addressee) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`
	updateCurrent = `UPDATE current SET vid = ?, lu = ?, deleted = ?, reach = ?, addressee = ? WHERE pk = ?`
	deleteIndex   = `DELETE FROM idx WHERE pk = ?`
	insertVersion = `INSERT INTO versions (type, id, vid, tenant, lu, deleted, body, method, reach, addressee) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`
)

// prepare compiles the writer's statements once: SQLite otherwise
// compiles a statement on every call, which cost as much as executing it.
func prepare(ctx context.Context, w *sql.DB) (map[string]*sql.Stmt, error) {
	queries := []string{selectCurrent, insertCurrent, updateCurrent, deleteIndex, insertVersion, `SAVEPOINT put`, `ROLLBACK TO put`, `RELEASE put`}
	out := make(map[string]*sql.Stmt, len(queries))
	for _, q := range queries {
		st, err := w.PrepareContext(ctx, q)
		if err != nil {
			for _, st := range out {
				st.Close()
			}
			return nil, fmt.Errorf("sqlite: prepare %.40s: %w", q, err)
		}
		out[q] = st
	}
	return out, nil
}

// stmt is query prepared for tx: the statement prepared at Open, which
// database/sql reuses on the writer's one connection. An insert of idx
// rows of a shape not met before is prepared for tx alone (the writer's
// connection is tx's until it ends) and once more, for good, when the
// next transaction begins (begin). The caller holds txStmts.mu.
func (s *Store) stmt(ctx context.Context, tx *sql.Tx, query string) (*sql.Stmt, error) {
	if st := s.prepared[query]; st != nil {
		return tx.StmtContext(ctx, st), nil
	}
	st, err := tx.PrepareContext(ctx, query)
	if err != nil {
		return nil, wrap(err)
	}
	if !slices.Contains(s.txStmts.pending, query) {
		s.txStmts.pending = append(s.txStmts.pending, query)
	}
	return st, nil
}

// begin starts a write transaction, having first prepared the statements
// stmt met unprepared.
func (s *Store) begin(ctx context.Context) (*sql.Tx, error) {
	b := &s.txStmts
	b.mu.Lock()
	pending := b.pending
	b.pending = nil
	b.mu.Unlock()
	for _, q := range pending {
		st, err := s.w.PrepareContext(ctx, q)
		if err != nil {
			return nil, wrap(err)
		}
		b.mu.Lock()
		if s.prepared[q] == nil {
			s.prepared[q] = st
		} else {
			st.Close()
		}
		b.mu.Unlock()
	}
	return s.w.BeginTx(ctx, nil)
}

// exec runs one of the prepared statements in tx, bound to tx once (see
// txStmts).
func (s *Store) exec(ctx context.Context, tx *sql.Tx, query string, args ...any) (sql.Result, error) {
	st, err := s.bound(ctx, tx, query)
	if err != nil {
		return nil, err
	}
	return st.ExecContext(ctx, args...)
}

// txStmts are the writer's statements bound to the transaction in
// progress, each bound once: database/sql keeps every statement bound to
// a transaction (Tx.StmtContext) until the transaction ends, closed or
// not, so binding one per execution held about a kilobyte per write of a
// large transaction until its commit. The writer has one connection, so
// one transaction at a time.
type txStmts struct {
	mu    sync.Mutex
	tx    *sql.Tx
	bound map[string]*sql.Stmt
	// pending are the statements to prepare at the next begin.
	pending []string
}

// bound is query bound to tx, bound on first use.
func (s *Store) bound(ctx context.Context, tx *sql.Tx, query string) (*sql.Stmt, error) {
	b := &s.txStmts
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.tx != tx {
		b.tx, b.bound = tx, map[string]*sql.Stmt{}
	}
	st, ok := b.bound[query]
	if !ok {
		var err error
		if st, err = s.stmt(ctx, tx, query); err != nil {
			return nil, err
		}
		b.bound[query] = st
	}
	return st, nil
}

// unbind forgets the statements bound to tx, which has ended (its end
// closed them), so that what it held is not kept until the next one.
func (s *Store) unbind(tx *sql.Tx) {
	b := &s.txStmts
	b.mu.Lock()
	if b.tx == tx {
		b.tx, b.bound = nil, nil
	}
	b.mu.Unlock()
}

// insertIndex writes a version's entries (n keeps their order).
func (s *Store) insertIndex(ctx context.Context, tx *sql.Tx, pk int64, entries []store.IndexEntry) error {
	var b idxBatch
	b.add(pk, entries)
	return s.flushIndex(ctx, tx, &b)
}

// idxBatch gathers the idx rows of the versions one write transaction
// stores (a commit's, or a group's), so that they are inserted together,
// by shape (which of their optional
// columns hold something): a statement per shape names the empty columns
// as literals, and one statement carries the rows of several versions
// (per statement, SQLite and database/sql cost about as much as a row).
type idxBatch struct {
	rows [1 << 6][]idxRow
	n    int
}

// idxRow is the n-th entry of the version whose current row is pk.
type idxRow struct {
	pk int64
	n  int
	e  *store.IndexEntry
}

// idxBatchRows is how many rows a batch gathers before it is written:
// enough for statements of insertSizes[0] rows of the common shapes, few
// enough that what is left to write when the last version comes (while
// the other cores have nothing to do) takes little time.
const idxBatchRows = 256

func (b *idxBatch) add(pk int64, entries []store.IndexEntry) {
	for i := range entries {
		sh := shapeOf(&entries[i])
		b.rows[sh] = append(b.rows[sh], idxRow{pk: pk, n: i, e: &entries[i]})
	}
	b.n += len(entries)
}

// reset empties b without writing its rows (their commit failed).
func (b *idxBatch) reset() {
	for shape := range b.rows {
		clear(b.rows[shape])
		b.rows[shape] = b.rows[shape][:0]
	}
	b.n = 0
}

// flushIndex writes b's rows and empties it.
func (s *Store) flushIndex(ctx context.Context, tx *sql.Tx, b *idxBatch) error {
	if b.n == 0 {
		return nil
	}
	args := make([]any, 0, 10*min(insertSizes[0], b.n))
	for shape := range b.rows {
		run := b.rows[shape]
		for _, size := range insertSizes {
			for len(run) >= size {
				args = args[:0]
				for _, r := range run[:size] {
					args = rowShape(shape).appendArgs(append(args, r.pk), r.e, r.n)
				}
				if _, err := s.exec(ctx, tx, s.insertSQL(rowShape(shape), size), args...); err != nil {
					return wrap(err)
				}
				run = run[size:]
			}
		}
	}
	b.reset()
	return nil
}

// rowShape tells which optional columns of an idx row hold something: bit
// i for system, code, value, low, high, grp in turn. The others are
// written as literals (” or 0).
type rowShape uint8

func shapeOf(e *store.IndexEntry) rowShape {
	var s rowShape
	for i, v := range [...]string{e.System, e.Code, e.Value, e.Low, e.High} {
		if v != "" {
			s |= 1 << i
		}
	}
	if e.Group != 0 {
		s |= 1 << 5
	}
	return s
}

// appendArgs appends what a row of shape s binds of e, the n-th entry.
func (s rowShape) appendArgs(args []any, e *store.IndexEntry, n int) []any {
	args = append(args, e.Param, n, string(e.Kind))
	for i, v := range [...]string{e.System, e.Code, e.Value, e.Low, e.High} {
		if s&(1<<i) != 0 {
			args = append(args, v)
		}
	}
	if s&(1<<5) != 0 {
		args = append(args, e.Group)
	}
	return args
}

// insertSQL is the INSERT of n rows of shape, built once per Store.
func (s *Store) insertSQL(shape rowShape, n int) string {
	k := int(shape)*(insertSizes[0]+1) + n
	s.insertText.mu.Lock()
	defer s.insertText.mu.Unlock()
	if q, ok := s.insertText.sql[k]; ok {
		return q
	}
	row := "(?, ?, ?, ?" // pk, param, n, kind
	for i := range 5 {
		if shape&(1<<i) != 0 {
			row += ", ?"
		} else {
			row += ", ''"
		}
	}
	if shape&(1<<5) != 0 {
		row += ", ?)"
	} else {
		row += ", 0)"
	}
	rows := strings.Repeat(row+", ", n)
	q := strings.TrimSuffix(insertEntry, insertRow) + strings.TrimSuffix(rows, ", ")
	if s.insertText.sql == nil {
		s.insertText.sql = map[int]string{}
	}
	s.insertText.sql[k] = q
	return q
}

// Store is the SQLite backend. Writes go through one connection (SQLite has
// one writer at a time anyway, and this avoids busy retries); reads use a pool.
type Store struct {
	w *sql.DB
	r *sql.DB
	// tuning bounds the estimates that choose how a search runs.
	tuning tuning
	// group batches concurrent Puts and Transacts without conditions into
	// one transaction (see commit).
	group groupCommit
	// insertText holds the text of the INSERTs of idx rows by shape and
	// count (insertSQL).
	insertText struct {
		mu  sync.Mutex
		sql map[int]string
	}
	// reads keeps the read pool's statements prepared (queryRow).
	reads *stmtCache
	// prepared holds the writer's statements by their SQL (see prepare).
	prepared map[string]*sql.Stmt
	// txStmts holds them bound to the writer's transaction in progress.
	txStmts txStmts
	// ckpt copies the WAL into the database file in the background.
	ckpt checkpoints
	// crashAfter names a step of Transact ("searched", "first",
	// "written") after which it stops as a writer that died there would.
	// Only tests set it.
	crashAfter string
}

// OrderedIDs tells the bundle writer to assign ids that grow with time
// (bundle.OrderedIDStore): a create then appends to the B-trees keyed by
// id (current's, versions') instead of dirtying a page of each at random,
// which a group commit writes out and fsyncs whole.
func (s *Store) OrderedIDs() bool { return true }

// Exists reports whether dir holds a store (Open would create one).
func Exists(dir string) bool {
	_, err := os.Stat(filepath.Join(dir, FileName))
	return err == nil
}

// Open opens (creating if needed) the database under dir.
func Open(ctx context.Context, dir string) (*Store, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("sqlite: data directory: %w", err)
	}
	path := filepath.Join(dir, FileName)
	// synchronous(FULL): an acknowledged write survives a crash of the machine,
	// not only of the process; registry data is worth the fsync.
	q := url.Values{}
	// cache_size and mmap_size: a search checks candidates by random rowid;
	// reading pages through a mapping (shared by the connections, kept by the
	// OS) and a 16 MiB cache per connection avoids a read call per page. The
	// mapping is capped by SQLite's build at 2 GiB; the rest is read.
	// temp_store(MEMORY): the statement journal of each multi-row insert in
	// a transaction stays in memory instead of a temporary file written
	// page by page (about a sixth of the CPU of a large transaction).
	for _, p := range []string{"busy_timeout(10000)", "journal_mode(WAL)", "synchronous(FULL)", "foreign_keys(ON)", "temp_store(MEMORY)",
		"cache_size(-16384)", "mmap_size(2147418112)"} {
		q.Add("_pragma", p)
	}
	q.Set("_txlock", "immediate")
	// vfs: the WAL's frames go out in one write per commit (walvfs).
	if err := walvfs.Register(); err != nil {
		return nil, fmt.Errorf("sqlite: %w", err)
	}
	q.Set("vfs", walvfs.Name)
	dsn := "file:" + path + "?" + q.Encode()
	// The writer keeps its savepoint journals (group commit, see Put) in
	// memory rather than in a temporary file: they hold the pages one
	// batch changed, and writing them out cost a system call per page.
	// Readers keep SQLite's default, so that a large sort may spill.
	// The writer checkpoints the WAL itself only once it holds
	// walWriterCheckpoint pages: the checkpointer does it in the
	// background after each commit (see checkpoints). A WAL file keeps the
	// largest size it reached unless told (walSizeLimit).
	w, err := sql.Open("sqlite", dsn+"&_pragma=temp_store(MEMORY)&_pragma=wal_autocheckpoint("+strconv.Itoa(walWriterCheckpoint)+")"+
		"&_pragma=journal_size_limit("+strconv.Itoa(walSizeLimit)+")")
	if err != nil {
		return nil, fmt.Errorf("sqlite: open: %w", err)
	}
	w.SetMaxOpenConns(1)
	if _, err := w.ExecContext(ctx, schema); err != nil {
		w.Close()
		return nil, fmt.Errorf("sqlite: schema: %w", err)
	}
	// CREATE TABLE IF NOT EXISTS keeps a table of an older shape; say so
	// rather than fail on the first write.
	if _, err := w.ExecContext(ctx, `SELECT grp FROM idx LIMIT 0`); err != nil {
		w.Close()
		return nil, fmt.Errorf("sqlite: %s was written by an older development build (index table without composite groups); move it away: %w", path, err)
	}
	if err := migrate(ctx, w); err != nil {
		w.Close()
		return nil, fmt.Errorf("sqlite: %s: %w", path, err)
	}
	if _, err := w.ExecContext(ctx, sharedSchema); err != nil {
		w.Close()
		return nil, fmt.Errorf("sqlite: schema: %w", err)
	}
	prepared, err := prepare(ctx, w)
	if err != nil {
		w.Close()
		return nil, err
	}
	r, err := sql.Open("sqlite", dsn)
	if err != nil {
		w.Close()
		return nil, fmt.Errorf("sqlite: open: %w", err)
	}
	r.SetMaxOpenConns(8)
	st := &Store{w: w, r: r, tuning: defaultTuning, prepared: prepared, reads: newStmtCache(r, maxReadStmts)}
	st.startCheckpoints()
	return st, nil
}

// walWriterCheckpoint is the size of the WAL, in pages, past which the
// writer checkpoints it after a commit (SQLite's wal_autocheckpoint,
// 1,000 by default): 64 MiB. Below it the checkpointer does.
const walWriterCheckpoint = 16384

// walSizeLimit is the size, in bytes, to which the writer trims the WAL
// file when it starts it over (SQLite's journal_size_limit): the first
// commit after a restart truncates what lies past it and past that
// commit's own frames. Without it, the file kept the largest size it
// reached: up to 64 MiB and a whole transaction on top (a 10,000-entry
// one writes some 50 MiB), when the checkpointer fell behind. It is the
// size at which the writer checkpoints anyway (walWriterCheckpoint pages
// of 4 KiB), so that a WAL working below it is never trimmed and grown
// again.
const walSizeLimit = walWriterCheckpoint * 4096

// checkpointEvery is the least time between two background checkpoints.
const checkpointEvery = 100 * time.Millisecond

// checkpoints copies the pages committed to the WAL into the database file
// in the background, on a reader's connection, after a commit (committed
// wakes it), at most every checkpointEvery.
// SQLite's own checkpoint ran in the commit that filled 1,000 pages: a
// 1,000-entry transaction waited for a copy of its pages and a second
// fsync, a third of its commit. A checkpoint is PASSIVE: it copies what no
// reader still needs and waits for nobody. The WAL restarts from its
// beginning once all of it is copied; should the checkpointer fall
// behind, the writer's own checkpoint (walWriterCheckpoint) bounds it.
// A checkpoint that fails leaves the pages in the WAL, where the next
// one finds them.
type checkpoints struct {
	wake   chan struct{}
	cancel context.CancelFunc
	done   chan struct{}
}

func (s *Store) startCheckpoints() {
	ctx, cancel := context.WithCancel(context.Background())
	c := &s.ckpt
	c.wake, c.cancel, c.done = make(chan struct{}, 1), cancel, make(chan struct{})
	go func() {
		defer close(c.done)
		for {
			select {
			case <-ctx.Done():
				return
			case <-c.wake:
			}
			_, _ = s.r.ExecContext(ctx, `PRAGMA wal_checkpoint(PASSIVE)`)
			// Commits that come meanwhile wait for the next round, so
			// that many small ones (concurrent creates) make a few
			// checkpoints, each with one fsync, not one each.
			select {
			case <-ctx.Done():
				return
			case <-time.After(checkpointEvery):
			}
		}
	}()
}

// committed tells the checkpointer that a transaction committed.
func (s *Store) committed() {
	select {
	case s.ckpt.wake <- struct{}{}:
	default:
	}
}

// migrate brings a file written by an earlier release to the current
// schema: columns added since are added with their default, so existing
// data keeps working.
func migrate(ctx context.Context, w *sql.DB) error {
	for _, c := range []struct{ table, column, decl string }{
		{"versions", "method", "TEXT NOT NULL DEFAULT ''"},
		{"versions", "reach", "INTEGER NOT NULL DEFAULT 0"},
		{"current", "reach", "INTEGER NOT NULL DEFAULT 0"},
		{"versions", "addressee", "TEXT NOT NULL DEFAULT ''"},
		{"current", "addressee", "TEXT NOT NULL DEFAULT ''"},
	} {
		var n int
		if err := w.QueryRowContext(ctx, `SELECT count(*) FROM pragma_table_info(?) WHERE name = ?`, c.table, c.column).Scan(&n); err != nil {
			return fmt.Errorf("schema: %w", err)
		}
		if n == 0 {
			if _, err := w.ExecContext(ctx, `ALTER TABLE `+c.table+` ADD COLUMN `+c.column+` `+c.decl); err != nil {
				return fmt.Errorf("adding %s.%s: %w", c.table, c.column, err)
			}
		}
	}
	return nil
}

// Close stops the checkpointer and closes both connection pools; WAL
// content is checkpointed by SQLite.
func (s *Store) Close() error {
	s.ckpt.cancel()
	<-s.ckpt.done
	for _, st := range s.prepared {
		st.Close()
	}
	s.reads.close()
	return errors.Join(s.r.Close(), s.w.Close())
}

// Ping checks the database answers.
func (s *Store) Ping(ctx context.Context) error {
	if err := s.r.PingContext(ctx); err != nil {
		return wrap(err)
	}
	return nil
}

const versionCols = `tenant, type, id, vid, lu, deleted, body, method, reach, addressee`

// currentCols and currentFrom read current versions: current c with the body
// from versions v.
const (
	currentCols = `c.tenant, c.type, c.id, c.vid, c.lu, c.deleted, v.body, v.method, v.reach, v.addressee`
	currentFrom = `current c JOIN versions v ON v.type = c.type AND v.id = c.id AND v.vid = c.vid`
)

func scanVersion(row interface{ Scan(...any) error }) (*store.Version, error) {
	var v store.Version
	var lu int64
	var deleted, reach int
	if err := row.Scan(&v.Tenant, &v.Type, &v.ID, &v.VersionID, &lu, &deleted, &v.Resource, &v.Method, &reach, &v.Addressee); err != nil {
		return nil, err
	}
	v.LastUpdated = time.UnixMicro(lu).UTC()
	v.Deleted = deleted != 0
	v.Reach = store.Reach(reach)
	return &v, nil
}

// Read returns the current version.
func (s *Store) Read(ctx context.Context, a store.Access, typ, id string) (*store.Version, error) {
	vis := access(a, "c", true, true)
	v, err := scanVersion(s.queryRow(ctx,
		`SELECT `+currentCols+` FROM `+currentFrom+` WHERE c.type = ? AND c.id = ? AND `+vis.sql, append([]any{typ, id}, vis.args...)...))
	if err != nil {
		return nil, wrap(err)
	}
	return v, nil
}

// ReadVersion returns one version.
func (s *Store) ReadVersion(ctx context.Context, a store.Access, typ, id string, vid int64) (*store.Version, error) {
	vis := access(a, "v", true, true)
	v, err := scanVersion(s.queryRow(ctx,
		`SELECT `+versionCols+` FROM versions v WHERE v.type = ? AND v.id = ? AND v.vid = ? AND `+vis.sql, append([]any{typ, id, vid}, vis.args...)...))
	if err != nil {
		return nil, wrap(err)
	}
	return v, nil
}

// Put writes a version, its history row and its index entries in one
// transaction, shared with the Puts and Transacts (without conditions)
// that arrive meanwhile (see commit).
func (s *Store) Put(ctx context.Context, w store.Write) error {
	return s.commit(ctx, &queuedPut{ws: []store.Write{w}})
}

// commit stores ws all or none, in a transaction shared with the commits
// that arrive while another is being written, and so its fsync (group
// commit): a commit that finds none in progress leads, writing every
// queued one (its own among them), each in a savepoint of its own so that
// one failing precondition fails that commit alone; then it hands the lead
// to the first commit queued meanwhile, so that no caller serves others for
// longer than one batch. Every caller returns once its own writes are
// durable (or failed).
func (s *Store) commit(ctx context.Context, r *queuedPut) error {
	r.done, r.lead = make(chan error, 1), make(chan struct{}, 1)
	g := &s.group
	g.mu.Lock()
	g.queue = append(g.queue, r)
	if g.busy {
		g.mu.Unlock()
		select {
		case err := <-r.done:
			return err
		case <-r.lead:
		}
	} else {
		g.busy = true
		g.mu.Unlock()
	}
	g.mu.Lock()
	batch := g.queue
	g.queue = nil
	g.mu.Unlock()
	// The batch carries others' writes: it is not given up when this
	// caller's context ends.
	s.commitGroup(context.WithoutCancel(ctx), batch)
	g.mu.Lock()
	if len(g.queue) > 0 {
		g.queue[0].lead <- struct{}{}
	} else {
		g.busy = false
	}
	g.mu.Unlock()
	return <-r.done
}

// groupCommit queues the commits waiting for the one in progress (see
// commit).
type groupCommit struct {
	mu    sync.Mutex
	busy  bool
	queue []*queuedPut
}

// queuedPut is one caller's writes, to be stored all or none.
type queuedPut struct {
	ws []store.Write
	// seq, when set, yields the writes instead of ws (TransactSeq); such a
	// commit is written in a transaction of its own.
	seq iter.Seq2[store.Write, error]
	// transact: the writes of a Transact, which a test may stop half-way
	// (Store.crashAfter).
	transact bool
	done     chan error
	// lead tells a queued commit to write the queue (see commit).
	lead chan struct{}
}

// maxGroup bounds the commits one transaction carries, and maxGroupWrites
// their writes (a commit larger than that goes alone), so that readers see
// progress and a batch's rollback costs little.
const (
	maxGroup       = 256
	maxGroupWrites = 1024
)

// commitGroup writes batch in transactions of up to maxGroup commits and
// answers each.
func (s *Store) commitGroup(ctx context.Context, batch []*queuedPut) {
	for len(batch) > 0 {
		n, writes := 1, len(batch[0].ws)
		for n < min(len(batch), maxGroup) && batch[0].seq == nil && batch[n].seq == nil && writes+len(batch[n].ws) <= maxGroupWrites {
			writes += len(batch[n].ws)
			n++
		}
		s.commitGroupTx(ctx, batch[:n])
		batch = batch[n:]
	}
}

// commitGroupTx writes batch in one transaction and answers each commit.
// It first writes every commit straight, without savepoints: a savepoint
// copies each page the commit changes before changing it (about a tenth of
// a create's CPU), and a commit rarely fails. When one does, that
// transaction is rolled back and the batch written again with a savepoint
// per commit, so that the failing one fails alone.
func (s *Store) commitGroupTx(ctx context.Context, batch []*queuedPut) {
	if len(batch) > 1 && s.writeGroupTx(ctx, batch, false) {
		return
	}
	s.writeGroupTx(ctx, batch, true)
}

// writeGroupTx is one try of commitGroupTx, with a savepoint per commit or
// none. It reports whether it answered every commit; without savepoints, a
// commit that fails (other than by a test's crash) makes it roll back and
// answer none.
func (s *Store) writeGroupTx(ctx context.Context, batch []*queuedPut, savepoints bool) bool {
	errs := make([]error, len(batch))
	fail := func(err error) bool {
		for _, r := range batch {
			r.done <- err
		}
		return true
	}
	tx, err := s.begin(ctx)
	if err != nil {
		return fail(wrap(err))
	}
	defer s.unbind(tx)
	defer tx.Rollback()
	// The index rows of the commits are written together (idxBatch), each
	// commit's before its savepoint is released.
	b := &idxBatch{}
	switch {
	case len(batch) == 1:
		if err := s.putAll(ctx, tx, batch[0], b); err != nil {
			return fail(err) // rolled back: put may have written part
		}
		if err := s.flushIndex(ctx, tx, b); err != nil {
			return fail(err)
		}
	case !savepoints:
		for _, r := range batch {
			if err := s.putAll(ctx, tx, r, b); err != nil {
				if errors.Is(err, errCrashed) {
					return fail(err)
				}
				return false // rolled back by the deferred Rollback
			}
		}
		if err := s.flushIndex(ctx, tx, b); err != nil {
			return false
		}
	default:
		for i, r := range batch {
			if _, err := s.exec(ctx, tx, `SAVEPOINT put`); err != nil {
				return fail(wrap(err))
			}
			errs[i] = s.putAll(ctx, tx, r, b)
			if errs[i] == nil {
				errs[i] = s.flushIndex(ctx, tx, b)
			}
			if errs[i] != nil {
				if errors.Is(errs[i], errCrashed) {
					return fail(errs[i])
				}
				b.reset()
				if _, err := s.exec(ctx, tx, `ROLLBACK TO put`); err != nil {
					return fail(wrap(err))
				}
			}
			if _, err := s.exec(ctx, tx, `RELEASE put`); err != nil {
				return fail(wrap(err))
			}
		}
	}
	for _, r := range batch {
		if r.transact {
			if err := s.crash("written"); err != nil {
				return fail(err)
			}
		}
	}
	if err := wrap(tx.Commit()); err != nil {
		for i := range errs {
			if errs[i] == nil {
				errs[i] = err
			}
		}
	} else {
		s.committed()
	}
	for i, r := range batch {
		r.done <- errs[i]
	}
	return true
}

// putAll writes r's writes in tx, stopping at the first failure (or at the
// step a test stops a Transact at), gathering their index rows in b.
func (s *Store) putAll(ctx context.Context, tx *sql.Tx, r *queuedPut, b *idxBatch) error {
	if r.seq != nil {
		return s.putSeq(ctx, tx, r, b)
	}
	for i, w := range r.ws {
		if err := s.put(ctx, tx, w, b); err != nil {
			return err
		}
		if i == 0 && r.transact {
			if err := s.crash("first"); err != nil {
				return err
			}
		}
	}
	return nil
}

// putSeq is putAll of the writes r.seq yields, refusing two of one
// resource as distinct does; b gathers their entries.
func (s *Store) putSeq(ctx context.Context, tx *sql.Tx, r *queuedPut, b *idxBatch) error {
	seen := map[[2]string]bool{}
	first := true
	for w, err := range r.seq {
		if err != nil {
			return err
		}
		k := [2]string{w.Version.Type, w.Version.ID}
		if seen[k] {
			return fmt.Errorf("sqlite: %s/%s written twice in one transaction: %w", k[0], k[1], store.ErrConflict)
		}
		seen[k] = true
		if err := s.put(ctx, tx, w, b); err != nil {
			return err
		}
		if first {
			first = false
			if err := s.crash("first"); err != nil {
				return err
			}
		}
	}
	return nil
}

// TransactSeq is Transact for writes made one by one (bundle.SeqStore):
// it stores every write that writes(matches) yields, all or none, in an SQL
// transaction of its own, writing each as it comes, so that the caller
// builds the next ones meanwhile (the write lock is held while it does).
// With conditions, their matches are searched first under the write lock,
// as Transact does.
func (s *Store) TransactSeq(ctx context.Context, conds []store.Query, writes func(matches [][]*store.Version) iter.Seq2[store.Write, error]) error {
	if len(conds) == 0 {
		return s.commit(ctx, &queuedPut{seq: writes(nil), transact: true})
	}
	tx, err := s.begin(ctx)
	if err != nil {
		return wrap(err)
	}
	defer s.unbind(tx)
	defer tx.Rollback()
	matches, err := s.matches(ctx, conds)
	if err != nil {
		return err
	}
	b := &idxBatch{}
	if err := s.putSeq(ctx, tx, &queuedPut{seq: writes(matches), transact: true}, b); err != nil {
		return err
	}
	if err := s.flushIndex(ctx, tx, b); err != nil {
		return err
	}
	if err := s.crash("written"); err != nil {
		return err
	}
	if err := tx.Commit(); err != nil {
		return wrap(err)
	}
	s.committed()
	return nil
}

// PutIf is Transact with one condition and at most one write.
func (s *Store) PutIf(ctx context.Context, q store.Query, decide func([]*store.Version) (*store.Write, error)) error {
	return s.Transact(ctx, []store.Query{q}, func(m [][]*store.Version) ([]store.Write, error) {
		w, err := decide(m[0])
		if err != nil || w == nil {
			return nil, err
		}
		return []store.Write{*w}, nil
	})
}

// Transact writes every version in one SQL transaction. With conditions it
// holds the database's write lock from before their searches to the
// commit: the transaction is IMMEDIATE (the DSN's _txlock) on the single
// writer connection, so no write of any kind, from this process or
// another, commits in between, and the searches, run on the read pool,
// see every write committed before them. A condition's key is not needed:
// every write waits for the one in progress. Without conditions decide
// runs before the lock is taken, so that the work of building a large
// transaction does not hold up other writers, and the writes are
// committed as Put's are, sharing a transaction and its fsync with
// concurrent writers (see commit).
func (s *Store) Transact(ctx context.Context, conds []store.Query, decide func([][]*store.Version) ([]store.Write, error)) error {
	if len(conds) == 0 {
		ws, err := decide(nil)
		if err != nil || len(ws) == 0 {
			return err
		}
		if err := distinct(ws); err != nil {
			return err
		}
		return s.commit(ctx, &queuedPut{ws: ws, transact: true})
	}
	return s.TransactSeq(ctx, conds, func(matches [][]*store.Version) iter.Seq2[store.Write, error] {
		return store.Writes(decide(matches))
	})
}

// matches searches the conditions of a Transact, whose write lock is held
// (the searches run on the read pool and see every write committed).
func (s *Store) matches(ctx context.Context, conds []store.Query) ([][]*store.Version, error) {
	matches := make([][]*store.Version, len(conds))
	for i, q := range conds {
		page, err := s.Search(ctx, q)
		if err != nil {
			return nil, err
		}
		matches[i] = page.Versions
	}
	if err := s.crash("searched"); err != nil {
		return nil, err
	}
	return matches, nil
}

// distinct refuses two writes of one resource in a transaction.
func distinct(ws []store.Write) error {
	seen := make(map[[2]string]bool, len(ws))
	for _, w := range ws {
		k := [2]string{w.Version.Type, w.Version.ID}
		if seen[k] {
			return fmt.Errorf("sqlite: %s/%s written twice in one transaction: %w", k[0], k[1], store.ErrConflict)
		}
		seen[k] = true
	}
	return nil
}

// errCrashed is what a write returns when a test stops it half-way (see
// Store.crashAfter); the deferred rollback then does what SQLite's recovery
// does for a process that died there.
var errCrashed = errors.New("sqlite: writer stopped by a test")

func (s *Store) crash(step string) error {
	if s.crashAfter == step {
		return errCrashed
	}
	return nil
}

// put is Put inside tx, its index entries gathered in b.
func (s *Store) put(ctx context.Context, tx *sql.Tx, w store.Write, b *idxBatch) error {
	v := w.Version
	if v.VersionID != w.PrevVersion+1 {
		return fmt.Errorf("sqlite: version %d does not follow %d: %w", v.VersionID, w.PrevVersion, store.ErrConflict)
	}
	var pk int64
	if w.PrevVersion == 0 {
		// A create inserts without looking first: if the resource exists
		// after all, current's UNIQUE (type, id) refuses it (ErrConflict).
		res, err := s.exec(ctx, tx, insertCurrent,
			v.Type, v.ID, v.Tenant, v.VersionID, v.LastUpdated.UnixMicro(), boolInt(v.Deleted), int(v.Reach), v.Addressee)
		if err != nil {
			return wrap(err)
		}
		if pk, err = res.LastInsertId(); err != nil {
			return wrap(err)
		}
	} else {
		st, err := s.bound(ctx, tx, selectCurrent)
		if err != nil {
			return err
		}
		var cur int64
		var tenant string
		err = st.QueryRowContext(ctx, v.Type, v.ID).Scan(&pk, &cur, &tenant)
		switch {
		case errors.Is(err, sql.ErrNoRows):
			return fmt.Errorf("sqlite: %s/%s does not exist: %w", v.Type, v.ID, store.ErrConflict)
		case err != nil:
			return wrap(err)
		case tenant != v.Tenant || cur != w.PrevVersion:
			return fmt.Errorf("sqlite: %s/%s is at version %d, not %d: %w", v.Type, v.ID, cur, w.PrevVersion, store.ErrConflict)
		}
		if _, err := s.exec(ctx, tx, updateCurrent,
			v.VersionID, v.LastUpdated.UnixMicro(), boolInt(v.Deleted), int(v.Reach), v.Addressee, pk); err != nil {
			return wrap(err)
		}
		// the entries gathered may be an earlier version's of this one
		if err := s.flushIndex(ctx, tx, b); err != nil {
			return err
		}
		if _, err := s.exec(ctx, tx, deleteIndex, pk); err != nil {
			return wrap(err)
		}
	}
	if _, err := s.exec(ctx, tx, insertVersion,
		v.Type, v.ID, v.VersionID, v.Tenant, v.LastUpdated.UnixMicro(), boolInt(v.Deleted), v.Resource, v.Method, int(v.Reach), v.Addressee); err != nil {
		return wrap(err)
	}
	if !v.Deleted {
		b.add(pk, v.Index)
		if b.n >= idxBatchRows {
			return s.flushIndex(ctx, tx, b)
		}
	}
	return nil
}

// History pages through versions newest first: one SELECT per arm of the
// access (accessArms), each walking its own index in the history order,
// merged by UNION ALL (SQLite merges ordered arms and stops at the limit).
func (s *Store) History(ctx context.Context, q store.HistoryQuery) (*store.HistoryPage, error) {
	var where []string
	args := []any{}
	if q.Type != "" {
		where = append(where, "type = ?")
		args = append(args, q.Type)
	}
	if q.ID != "" {
		where = append(where, "id = ?")
		args = append(args, q.ID)
	}
	if !q.Since.IsZero() {
		where = append(where, "lu >= ?")
		args = append(args, q.Since.UnixMicro())
	}
	if a := q.After; a != nil {
		lu := a.LastUpdated.UnixMicro()
		where = append(where, "(lu < ? OR (lu = ? AND (type > ? OR (type = ? AND (id > ? OR (id = ? AND vid < ?))))))")
		args = append(args, lu, lu, a.Type, a.Type, a.ID, a.ID, a.VersionID)
	}
	count := q.Count
	if count <= 0 {
		count = 50
	}
	arms := accessArms(q.Access, "h", false)
	if len(arms) == 0 {
		return &store.HistoryPage{}, nil
	}
	var sels []string
	var all []any
	for _, arm := range arms {
		sels = append(sels, `SELECT `+versionCols+` FROM versions h WHERE `+strings.Join(append([]string{arm.sql}, where...), " AND "))
		all = append(append(all, arm.args...), args...)
	}
	all = append(all, count+1)
	rows, err := s.query(ctx, strings.Join(sels, " UNION ALL ")+` ORDER BY lu DESC, type, id, vid DESC LIMIT ?`, all...)
	if err != nil {
		return nil, wrap(err)
	}
	defer rows.Close()
	page := &store.HistoryPage{}
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
		last := page.Versions[count-1]
		page.Next = &store.HistoryCursor{LastUpdated: last.LastUpdated, Type: last.Type, ID: last.ID, VersionID: last.VersionID}
	}
	return page, nil
}

// wrap translates driver errors into store errors; nothing above this package
// sees SQLite's own.
func wrap(err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, sql.ErrNoRows) {
		return store.ErrNotFound
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	var se *sqlite.Error
	if errors.As(err, &se) {
		switch se.Code() & 0xff {
		case sqlite3.SQLITE_CONSTRAINT:
			return fmt.Errorf("sqlite: %v: %w", err, store.ErrConflict)
		case sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED, sqlite3.SQLITE_IOERR, sqlite3.SQLITE_CANTOPEN, sqlite3.SQLITE_FULL:
			return fmt.Errorf("sqlite: %v: %w", err, store.ErrUnavailable)
		}
	}
	if strings.Contains(err.Error(), "database is closed") {
		return fmt.Errorf("sqlite: %v: %w", err, store.ErrUnavailable)
	}
	return fmt.Errorf("sqlite: %w", err)
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}
