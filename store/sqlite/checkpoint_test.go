package sqlite

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/fmtbank/cmts/store"
)

// TestCheckpointsInBackground checks that the pages transactions commit
// reach the database file while the WAL is still far below the size at
// which the writer would copy them itself (walWriterCheckpoint): the
// checkpointer copied them. Without it the database file would stay at
// its size after the first commits until the WAL held 64 MiB.
func TestCheckpointsInBackground(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dir := t.TempDir()
	s := openIn(t, dir)
	size := func(name string) int64 { return fileSize(dir, name) }
	now := time.Now().UTC().Truncate(time.Microsecond)
	body := bytes.Repeat([]byte("x"), 2000)
	const perTx, txs = 100, 20 // about 5 MiB in all, a tenth of the writer's threshold
	for i := range txs {
		ws := make([]store.Write, perTx)
		for j := range ws {
			id := "p" + strconv.Itoa(i*perTx+j)
			ws[j] = textPatient(id, body, now)
			ws[j].Version.Index = []store.IndexEntry{{Param: "name", Kind: store.KindString, Code: id, Value: id}}
		}
		if err := s.Transact(ctx, nil, func([][]*store.Version) ([]store.Write, error) { return ws, nil }); err != nil {
			t.Fatal(err)
		}
	}
	const want = perTx * txs * 2000
	deadline := time.Now().Add(10 * time.Second)
	for size(FileName) < want && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if got := size(FileName); got < want {
		t.Fatalf("database file %d bytes after %d bytes committed (WAL %d bytes): nothing checkpointed it", got, want, size(FileName+"-wal"))
	}
	// and every resource reads back
	n, err := s.Count(ctx)
	if err != nil || n != perTx*txs {
		t.Fatalf("Count = %d, %v; want %d", n, err, perTx*txs)
	}
}

// TestCloseStopsCheckpoints checks that Close waits for the checkpointer
// and that a store reopened on the same files reads what was committed.
func TestCloseStopsCheckpoints(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dir := t.TempDir()
	s, err := Open(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC().Truncate(time.Microsecond)
	for i := range 50 {
		id := "p" + strconv.Itoa(i)
		if err := s.Put(ctx, store.Write{Version: store.Version{Tenant: "t1", Type: "Patient", ID: id, VersionID: 1, LastUpdated: now,
			Resource: []byte(`{"resourceType":"Patient","id":"` + id + `"}`)}}); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-s.ckpt.done:
	default:
		t.Fatal("the checkpointer still runs after Close")
	}
	s, err = Open(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if n, err := s.Count(ctx); err != nil || n != 50 {
		t.Fatalf("after reopening: Count = %d, %v; want 50", n, err)
	}
}

// TestWALTrimmed checks that the writer trims the WAL file when it starts
// it over (walSizeLimit): after a transaction larger than the limit is
// checkpointed, the next commit leaves the file no larger than the limit.
// The test lowers the limit on the writer's one connection, so as not to
// write 64 MiB; without a limit the file would keep the transaction's size.
// The checkpointer is stopped first: the WAL starts over only when a write
// begins with every page of it copied and no checkpoint under way, which
// the checkpointer, woken by each commit, makes a matter of timing here.
func TestWALTrimmed(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dir := t.TempDir()
	s := openIn(t, dir)
	var limit int64
	if err := s.w.QueryRowContext(ctx, `PRAGMA journal_size_limit`).Scan(&limit); err != nil || limit != walSizeLimit {
		t.Fatalf("the writer's journal_size_limit = %d, %v; want %d", limit, err, walSizeLimit)
	}
	const small = 1 << 20
	if _, err := s.w.ExecContext(ctx, `PRAGMA journal_size_limit = `+strconv.Itoa(small)); err != nil {
		t.Fatal(err)
	}
	s.ckpt.cancel()
	<-s.ckpt.done
	walSize := func() int64 { return fileSize(dir, FileName+"-wal") }
	now := time.Now().UTC().Truncate(time.Microsecond)
	ws := make([]store.Write, 1500)
	for i := range ws {
		ws[i] = textPatient("p"+strconv.Itoa(i), bytes.Repeat([]byte("x"), 4000), now)
	}
	if err := s.Transact(ctx, nil, func([][]*store.Version) ([]store.Write, error) { return ws, nil }); err != nil {
		t.Fatal(err)
	}
	if got := walSize(); got < 4*small {
		t.Fatalf("WAL %d bytes after a 6 MB transaction; the test needs it above %d", got, 4*small)
	}
	var busy, logged, copied int
	if err := s.r.QueryRowContext(ctx, `PRAGMA wal_checkpoint(PASSIVE)`).Scan(&busy, &logged, &copied); err != nil || logged != copied {
		t.Fatalf("checkpoint copied %d of %d pages: %v", copied, logged, err)
	}
	if err := s.Put(ctx, textPatient("after", []byte("x"), now)); err != nil {
		t.Fatal(err)
	}
	if got := walSize(); got > small {
		t.Errorf("WAL %d bytes after a small commit; want it trimmed to %d", got, small)
	}
	if v, err := s.Read(ctx, store.Tenant("t1"), "Patient", "p1499"); err != nil || v.VersionID != 1 {
		t.Errorf("Read p1499 = %+v, %v", v, err)
	}
}

// textPatient is the creation of Patient id whose text is body.
func textPatient(id string, body []byte, now time.Time) store.Write {
	return store.Write{Version: store.Version{Tenant: "t1", Type: "Patient", ID: id, VersionID: 1, LastUpdated: now,
		Resource: append([]byte(`{"resourceType":"Patient","id":"`+id+`","text":"`), append(body, `"}`...)...)}}
}

// fileSize is the size of the file name under dir (0 if there is none).
func fileSize(dir, name string) int64 {
	fi, err := os.Stat(filepath.Join(dir, name))
	if err != nil {
		return 0
	}
	return fi.Size()
}

// openIn opens a store on dir, closed when t ends.
func openIn(t *testing.T, dir string) *Store {
	t.Helper()
	s, err := Open(context.Background(), dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}
