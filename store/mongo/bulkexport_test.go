package mongo_test

import (
	"context"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/fmtbank/cmts/fhir/export"
	"github.com/fmtbank/cmts/fhir/export/exporttest"
	"github.com/fmtbank/cmts/store"
	"github.com/fmtbank/cmts/store/mongo"
	"github.com/fmtbank/cmts/store/mongo/mongotest"
)

// TestBulkExport runs the Bulk Data $export suite (jobs as store records,
// their files in the database's GridFS, access), the same as on the
// embedded store.
//
// Not parallel with the other tests: it runs before them, its own cases
// side by side. Each case's export worker looks for jobs every 20 ms, a
// search that FerretDB answers by scanning the collection, so the
// worker's cost grows with how long its case lasts: alone, the suite
// takes some 30 s and 38 s of CPU, most of it FerretDB answering polls;
// beside the search table and the truth tests its cases took 30 to 80 s
// each instead of about 10, polling all the while.
func TestBulkExport(t *testing.T) {
	srv := mongotest.Start(t)
	exporttest.Run(t, func(t testing.TB) store.Store { return open(t, srv) },
		func(t testing.TB, st store.Store) export.Files { return st.(*mongo.Store).ExportFiles() })
}

// TestGridFS: the $export files in GridFS are shared by every instance on
// the database; a file written again replaces the earlier one; Remove
// takes the job's files away, and the chunks of a file never completed.
func TestGridFS(t *testing.T) {
	t.Parallel()
	srv := mongotest.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	db := srv.Database(t)
	openDB := func() *mongo.Store {
		s, err := mongo.Open(ctx, mongo.Options{URI: srv.URI(), Database: db})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	}
	one, two := openDB().ExportFiles(), openDB().ExportFiles()
	write := func(f export.Files, job, name, text string) io.WriteCloser {
		t.Helper()
		w, err := f.Create(ctx, job, name)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := io.WriteString(w, text); err != nil {
			t.Fatal(err)
		}
		return w
	}
	read := func(f export.Files, job, name string) (string, error) {
		t.Helper()
		r, err := f.Open(ctx, job, name)
		if err != nil {
			return "", err
		}
		defer r.Close()
		b, err := io.ReadAll(r)
		return string(b), err
	}
	// Larger than a chunk (255 KiB), to read across chunks.
	big := strings.Repeat(`{"resourceType":"Patient","id":"x"}`+"\n", 10_000)
	if err := write(one, "j1", "Patient.ndjson", big).Close(); err != nil {
		t.Fatal(err)
	}
	// Not closed: not a file yet.
	pending := write(one, "j1", "Procedure.ndjson", "half a file")
	if _, err := read(two, "j1", "Procedure.ndjson"); !errors.Is(err, export.ErrNoFile) {
		t.Errorf("a file never closed: want ErrNoFile, got %v", err)
	}
	if got, err := read(two, "j1", "Patient.ndjson"); err != nil || got != big {
		t.Errorf("read by another instance: %d bytes, %v; want %d bytes", len(got), err, len(big))
	}
	if err := write(two, "j1", "Patient.ndjson", "again\n").Close(); err != nil {
		t.Fatal(err)
	}
	if got, err := read(one, "j1", "Patient.ndjson"); err != nil || got != "again\n" {
		t.Errorf("written again: got %q, %v", got, err)
	}
	if err := write(one, "j2", "Patient.ndjson", "other job\n").Close(); err != nil {
		t.Fatal(err)
	}
	// The pending writer flushes a chunk when it is closed; it is not
	// closed: write a full chunk's worth so that chunks exist without a
	// files document, as a worker killed mid-file leaves them.
	if _, err := io.WriteString(pending, strings.Repeat("x", 17<<20)); err != nil {
		t.Fatal(err)
	}
	if n := mongo.CountExportChunks(ctx, t, two, "j1"); n == 0 {
		t.Fatal("no chunks of j1 before Remove")
	}
	if err := two.Remove(ctx, "j1"); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"Patient.ndjson", "Procedure.ndjson"} {
		if _, err := read(one, "j1", name); !errors.Is(err, export.ErrNoFile) {
			t.Errorf("j1/%s after Remove: want ErrNoFile, got %v", name, err)
		}
	}
	if n := mongo.CountExportChunks(ctx, t, two, "j1"); n != 0 {
		t.Errorf("chunks of j1 after Remove: %d, want 0", n)
	}
	if got, err := read(one, "j2", "Patient.ndjson"); err != nil || got != "other job\n" {
		t.Errorf("another job's file after Remove: %q, %v", got, err)
	}
}
