package sqlite

import (
	"context"
	"database/sql"
	"path/filepath"
	"strings"
	"testing"
)

// TestMigrateMethod opens a file written before versions had a method
// column: Open adds it, the old versions read back without a method, and
// new ones keep theirs.
func TestMigrateMethod(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	db, err := sql.Open("sqlite", "file:"+filepath.Join(dir, FileName))
	if err != nil {
		t.Fatal(err)
	}
	old := strings.Replace(schema, "method  TEXT NOT NULL DEFAULT '',", "", 1)
	if old == schema {
		t.Fatal("the schema no longer declares versions.method as this test expects")
	}
	for _, q := range []string{old,
		`INSERT INTO current (type, id, tenant, vid, lu, deleted) VALUES ('Patient', 'p', 'h1', 1, 0, 0)`,
		`INSERT INTO versions (type, id, vid, tenant, lu, deleted, body) VALUES ('Patient', 'p', 1, 'h1', 0, 0, '{}')`,
	} {
		if _, err := db.ExecContext(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	db.Close()
	for range 2 { // the second Open finds the column in place
		s, err := Open(ctx, dir)
		if err != nil {
			t.Fatalf("Open: %v", err)
		}
		v, err := s.Read(ctx, "h1", "Patient", "p")
		if err != nil || v.Method != "" || string(v.Resource) != "{}" {
			t.Errorf("Read = %+v, %v; want the old version without a method", v, err)
		}
		s.Close()
	}
}
