package sqlite

import (
	"context"
	"database/sql"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/fmtbank/cmts/store"
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
		v, err := s.Read(ctx, store.Tenant("h1"), "Patient", "p")
		if err != nil || v.Method != "" || string(v.Resource) != "{}" {
			t.Errorf("Read = %+v, %v; want the old version without a method", v, err)
		}
		s.Close()
	}
}

// TestMigrateReach opens a file written before versions and current had a
// reach column: Open adds both, the old versions read back as
// store.ReachTenant (visible to their tenant only), and new ones keep theirs.
func TestMigrateReach(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	db, err := sql.Open("sqlite", "file:"+filepath.Join(dir, FileName))
	if err != nil {
		t.Fatal(err)
	}
	old := schema
	for _, table := range []string{"current", "versions"} {
		before := old
		old = strings.Replace(old, "reach   INTEGER NOT NULL DEFAULT 0,", "", 1)
		if old == before {
			t.Fatalf("the schema no longer declares %s.reach as this test expects", table)
		}
	}
	for _, q := range []string{old,
		`INSERT INTO current (type, id, tenant, vid, lu, deleted) VALUES ('Specimen', 'lot', 'b1', 1, 0, 0)`,
		`INSERT INTO versions (type, id, vid, tenant, lu, deleted, body) VALUES ('Specimen', 'lot', 1, 'b1', 0, 0, '{}')`,
	} {
		if _, err := db.ExecContext(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	db.Close()
	for i := range 2 { // the second Open finds the columns in place
		s, err := Open(ctx, dir)
		if err != nil {
			t.Fatalf("Open: %v", err)
		}
		if v, err := s.ReadVersion(ctx, store.Tenant("b1"), "Specimen", "lot", 1); err != nil || v.Reach != store.ReachTenant {
			t.Errorf("ReadVersion 1 = %+v, %v; want the old version, of reach tenant", v, err)
		}
		if _, err := s.ReadVersion(ctx, store.Tenant("h1"), "Specimen", "lot", 1); err == nil {
			t.Error("another tenant reads an old version")
		}
		if i == 0 {
			if _, err := s.Read(ctx, store.Tenant("h1"), "Specimen", "lot"); err == nil {
				t.Error("another tenant reads an old current version")
			}
			v := store.Version{Tenant: "b1", Type: "Specimen", ID: "lot", VersionID: 2, LastUpdated: time.Unix(1, 0).UTC(),
				Resource: []byte("{}"), Reach: store.ReachShared}
			if err := s.Put(ctx, store.Write{PrevVersion: 1, Version: v}); err != nil {
				t.Fatalf("Put: %v", err)
			}
		}
		if v, err := s.Read(ctx, store.Tenant("h1"), "Specimen", "lot"); err != nil || v.VersionID != 2 || v.Reach != store.ReachShared {
			t.Errorf("Read by another tenant = %+v, %v; want the new version, shared", v, err)
		}
		s.Close()
	}
}

// TestMigrateAddressee opens a file written before versions had an
// addressee: its rows read as addressed to nobody, and a new version's
// addressee takes effect.
func TestMigrateAddressee(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	db, err := sql.Open("sqlite", "file:"+filepath.Join(dir, FileName))
	if err != nil {
		t.Fatal(err)
	}
	old := schema
	for _, table := range []string{"current", "versions"} {
		before := old
		old = strings.Replace(old, "addressee TEXT NOT NULL DEFAULT '',", "", 1)
		if old == before {
			t.Fatalf("the schema no longer declares %s.addressee as this test expects", table)
		}
	}
	for _, q := range []string{old,
		`INSERT INTO current (type, id, tenant, vid, lu, deleted, reach) VALUES ('Task', 'k1', 'h1', 1, 0, 0, 0)`,
		`INSERT INTO versions (type, id, vid, tenant, lu, deleted, body, reach) VALUES ('Task', 'k1', 1, 'h1', 0, 0, '{}', 0)`,
	} {
		if _, err := db.ExecContext(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	db.Close()
	for i := range 2 { // the second Open finds the columns in place
		s, err := Open(ctx, dir)
		if err != nil {
			t.Fatalf("Open: %v", err)
		}
		if v, err := s.ReadVersion(ctx, store.Tenant("h1"), "Task", "k1", 1); err != nil || v.Addressee != "" {
			t.Errorf("ReadVersion 1 = %+v, %v; want the old version, addressed to nobody", v, err)
		}
		if _, err := s.ReadVersion(ctx, store.Tenant("c1"), "Task", "k1", 1); err == nil {
			t.Error("another tenant reads an old version")
		}
		if i == 0 {
			v := store.Version{Tenant: "h1", Type: "Task", ID: "k1", VersionID: 2, LastUpdated: time.Unix(1, 0).UTC(),
				Resource: []byte("{}"), Addressee: "c1"}
			if err := s.Put(ctx, store.Write{PrevVersion: 1, Version: v}); err != nil {
				t.Fatalf("Put: %v", err)
			}
		}
		if v, err := s.Read(ctx, store.Tenant("c1"), "Task", "k1"); err != nil || v.VersionID != 2 || v.Addressee != "c1" || v.Tenant != "h1" {
			t.Errorf("Read by the addressee = %+v, %v; want version 2 of h1, addressed to c1", v, err)
		}
		s.Close()
	}
}
