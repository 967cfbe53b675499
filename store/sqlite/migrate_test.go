package sqlite

import (
	"context"
	"database/sql"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/fmtbank/cmts/store"
	"github.com/google/go-cmp/cmp"
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

// TestMigrateIndexes opens a file with the index set of an earlier release
// (idx_token over every entry, idx_low and idx_high with an IN term,
// current_type): Open replaces them, and searches of every kind find the
// entries written before.
func TestMigrateIndexes(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s, err := Open(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	day := time.Date(1980, 5, 17, 0, 0, 0, 0, time.UTC)
	v := store.Version{Tenant: "h1", Type: "Patient", ID: "p1", VersionID: 1, LastUpdated: time.Unix(1, 0).UTC(), Resource: []byte("{}"),
		Index: []store.IndexEntry{
			{Param: "name", Kind: store.KindString, Code: "Zhang San", Value: "zhang san"},
			{Param: "gender", Kind: store.KindToken, System: "http://hl7.org/fhir/administrative-gender", Code: "male"},
			{Param: "birthdate", Kind: store.KindDate, Low: store.EncodeTime(day), High: store.EncodeTime(day.Add(24*time.Hour - time.Microsecond))},
		}}
	if err := s.Put(ctx, store.Write{Version: v}); err != nil {
		t.Fatal(err)
	}
	s.Close()
	db, err := sql.Open("sqlite", "file:"+filepath.Join(dir, FileName))
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{
		`DROP INDEX idx_code`, `DROP INDEX idx_range_low`, `DROP INDEX idx_range_high`,
		`CREATE INDEX idx_token ON idx (param, code, kind, system, grp)`,
		`CREATE INDEX idx_low ON idx (param, low, high, kind, grp) WHERE kind IN ('date', 'number', 'quantity')`,
		`CREATE INDEX idx_high ON idx (param, high, low, kind, grp) WHERE kind IN ('date', 'number', 'quantity')`,
		`CREATE INDEX current_type ON current (type, id)`,
	} {
		if _, err := db.ExecContext(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	db.Close()
	if s, err = Open(ctx, dir); err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var names []string
	rows, err := s.r.QueryContext(ctx, `SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name IN ('idx', 'current') AND sql IS NOT NULL ORDER BY name`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			t.Fatal(err)
		}
		names = append(names, n)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	want := []string{"current_addressed", "current_id", "current_shared", "current_tenant_type", "idx_code", "idx_range_high", "idx_range_low", "idx_text"}
	if diff := cmp.Diff(want, names); diff != "" {
		t.Errorf("indexes (-want +got):\n%s", diff)
	}
	for _, f := range []store.Expr{
		store.String{Param: "name", Mode: store.Exact, Text: "Zhang San", Folded: "zhang san"},
		store.String{Param: "name", Mode: store.Prefix, Text: "zhang"},
		store.Token{Param: "gender", Code: "male"},
		store.Range{Param: "birthdate", Bounds: []store.Bound{{Op: store.GE, Value: store.EncodeTime(day)}}},
		store.Missing{Param: "birthdate"},
	} {
		page, err := s.Search(ctx, store.Query{Access: store.Tenant("h1"), Type: "Patient", Filter: f, Count: 10})
		if err != nil {
			t.Fatalf("%#v: %v", f, err)
		}
		if len(page.Versions) != 1 || page.Versions[0].ID != "p1" {
			t.Errorf("%#v found %d resources; want p1", f, len(page.Versions))
		}
	}
}
