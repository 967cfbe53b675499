package walvfs_test

import (
	"bytes"
	"context"
	"database/sql"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	_ "modernc.org/sqlite"

	"github.com/fmtbank/cmts/store/sqlite/walvfs"
)

// open opens path in WAL mode, through walvfs if via, with the given
// synchronous setting, on one connection.
func open(t *testing.T, path string, via bool, synchronous string) *sql.DB {
	t.Helper()
	if err := walvfs.Register(); err != nil {
		t.Fatal(err)
	}
	dsn := "file:" + path + "?_pragma=journal_mode(WAL)&_pragma=busy_timeout(10000)&_pragma=synchronous(" + synchronous + ")"
	if via {
		dsn += "&vfs=" + walvfs.Name
	}
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		t.Fatal(err)
	}
	db.SetMaxOpenConns(1)
	t.Cleanup(func() { db.Close() })
	return db
}

// rows is the content the tests write: n rows of a few hundred random
// bytes, and an index on them, so that a commit dirties pages all over.
func insert(t *testing.T, db *sql.DB, rng *rand.Rand, from, n int) map[int][]byte {
	t.Helper()
	ctx := context.Background()
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()
	want := map[int][]byte{}
	for k := from; k < from+n; k++ {
		v := make([]byte, 200+rng.IntN(600))
		for i := range v {
			v[i] = byte(rng.Uint32())
		}
		if _, err := tx.ExecContext(ctx, `INSERT OR REPLACE INTO t (k, v) VALUES (?, ?)`, k, v); err != nil {
			t.Fatal(err)
		}
		want[k] = v
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	return want
}

func create(t *testing.T, db *sql.DB) {
	t.Helper()
	if _, err := db.Exec(`CREATE TABLE t (k INTEGER PRIMARY KEY, v BLOB NOT NULL); CREATE INDEX t_v ON t (v)`); err != nil {
		t.Fatal(err)
	}
}

// check reads every row of want through db and the database's integrity.
func check(t *testing.T, db *sql.DB, want map[int][]byte) {
	t.Helper()
	var n int
	if err := db.QueryRow(`SELECT count(*) FROM t`).Scan(&n); err != nil || n != len(want) {
		t.Fatalf("count = %d, %v; want %d", n, err, len(want))
	}
	for k, v := range want {
		var got []byte
		if err := db.QueryRow(`SELECT v FROM t WHERE k = ?`, k).Scan(&got); err != nil || !bytes.Equal(got, v) {
			t.Fatalf("row %d: %d bytes, %v; want the %d written", k, len(got), err, len(v))
		}
	}
	var ok string
	if err := db.QueryRow(`PRAGMA integrity_check`).Scan(&ok); err != nil || ok != "ok" {
		t.Fatalf("integrity_check = %q, %v", ok, err)
	}
}

// TestReadersSeeEachCommit checks that a commit's frames are in the WAL
// file before readers can see the commit: another connection, opened
// without walvfs (it reads the file itself), reads each commit's rows as
// soon as the commit returns. Under synchronous=NORMAL SQLite does not sync
// at a commit, and the frames go out because the commit frame is complete.
func TestReadersSeeEachCommit(t *testing.T) {
	for _, synchronous := range []string{"FULL", "NORMAL"} {
		t.Run(synchronous, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "t.db")
			w := open(t, path, true, synchronous)
			create(t, w)
			r := open(t, path, false, synchronous)
			rng := rand.New(rand.NewPCG(1, 2))
			want := map[int][]byte{}
			for i := range 40 {
				// rewrite some rows, add others
				for k, v := range insert(t, w, rng, i*15, 25) {
					want[k] = v
				}
				var n int
				if err := r.QueryRow(`SELECT count(*) FROM t`).Scan(&n); err != nil || n != len(want) {
					t.Fatalf("commit %d: the reader counts %d rows, %v; want %d", i, n, err, len(want))
				}
			}
			check(t, r, want)
		})
	}
}

// TestCrashImage checks what a crash of the process right after a commit
// leaves: the database and WAL files copied while the writer still holds
// them open (as kill -9 would leave them; the shared memory, which a crash
// of the machine loses, is not copied) open without walvfs, recover from
// the WAL and hold every committed row. The writer's cache is kept small,
// so that a large transaction spills pages to the WAL before its commit,
// rewrites some of them in place and then rewrites the checksums of the
// frames after them: the WAL path with the most kinds of write, and the
// last transaction is one. Under synchronous=NORMAL, which does not sync
// at a commit, SQLite still promises that a commit outlives a crash of the
// process.
func TestCrashImage(t *testing.T) {
	for _, synchronous := range []string{"FULL", "NORMAL"} {
		t.Run(synchronous, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "t.db")
			w := open(t, path, true, synchronous)
			// No checkpoint, which would read the WAL (and so write out
			// whatever walvfs still held) after each commit.
			if _, err := w.Exec(`PRAGMA cache_size = 20; PRAGMA wal_autocheckpoint = 0`); err != nil {
				t.Fatal(err)
			}
			create(t, w)
			rng := rand.New(rand.NewPCG(3, 4))
			want := map[int][]byte{}
			for i, n := range []int{10, 2000, 30, 3000, 5, 2500} {
				for k, v := range insert(t, w, rng, i*700, n) {
					want[k] = v
				}
			}
			image := t.TempDir()
			for _, name := range []string{"t.db", "t.db-wal"} {
				b, err := os.ReadFile(filepath.Join(dir, name))
				if err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(filepath.Join(image, name), b, 0o600); err != nil {
					t.Fatal(err)
				}
			}
			if fi, err := os.Stat(filepath.Join(image, "t.db-wal")); err != nil || fi.Size() < 1<<20 {
				t.Fatalf("the WAL holds %v bytes; the test means to recover from a large one", fi)
			}
			check(t, open(t, filepath.Join(image, "t.db"), false, synchronous), want)
		})
	}
}

// TestWritesGathered checks the point of the package, by the process's
// count of write system calls (Linux's /proc/self/io): a commit of a few
// hundred pages takes a handful of writes, not two a page.
func TestWritesGathered(t *testing.T) {
	if _, err := syscw(); err != nil {
		t.Skipf("no count of write calls here: %v", err)
	}
	path := filepath.Join(t.TempDir(), "t.db")
	w := open(t, path, true, "FULL")
	// No checkpoint, whose writes to the database file would count too; the
	// statement journals and the cache as the store has them, so that the
	// commit is written to the WAL alone, once.
	if _, err := w.Exec(`PRAGMA wal_autocheckpoint = 0; PRAGMA temp_store = MEMORY; PRAGMA cache_size = -16384`); err != nil {
		t.Fatal(err)
	}
	create(t, w)
	rng := rand.New(rand.NewPCG(5, 6))
	insert(t, w, rng, 0, 5000)
	walSize := func() int64 {
		fi, err := os.Stat(path + "-wal")
		if err != nil {
			t.Fatal(err)
		}
		return fi.Size()
	}
	size0 := walSize()
	before, _ := syscw()
	insert(t, w, rng, 0, 300) // rewrites rows across the table and its index
	after, _ := syscw()
	frames := (walSize() - size0) / (4096 + 24)
	if frames < 200 {
		t.Fatalf("the commit wrote %d frames; the test means one of hundreds", frames)
	}
	t.Logf("%d write calls for %d frames", after-before, frames)
	if calls := after - before; calls > frames/10 {
		t.Errorf("%d write calls for a commit of %d frames; want a few (one per 128 KiB)", calls, frames)
	}
}

// syscw is the process's count of write system calls so far.
func syscw() (int64, error) {
	b, err := os.ReadFile("/proc/self/io")
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "syscw: "); ok {
			return strconv.ParseInt(v, 10, 64)
		}
	}
	return 0, fmt.Errorf("/proc/self/io has no syscw")
}
