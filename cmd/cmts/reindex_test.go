package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/fmtbank/cmts/store"
	"github.com/fmtbank/cmts/store/sqlite"
)

// TestReindex stores resources without index entries (as if written under an
// older parameter set), runs `cmts reindex`, and finds them by search after.
func TestReindex(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	ctx := context.Background()
	st, err := sqlite.Open(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	const n = 1203 // more than two batches
	for i := 0; i < n; i++ {
		body := fmt.Sprintf(`{"resourceType":"Patient","id":"p%d","identifier":[{"system":"urn:donor","value":"D-%d"}],"meta":{"versionId":"1","lastUpdated":"2026-01-01T00:00:00Z"}}`, i, i)
		v := store.Version{Tenant: "default", Type: "Patient", ID: fmt.Sprintf("p%d", i), VersionID: 1,
			LastUpdated: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), Resource: []byte(body)}
		if err := st.Put(ctx, store.Write{Version: v}); err != nil {
			t.Fatal(err)
		}
	}
	st.Close()

	search := func() string {
		base, stop := startMain(t, "--data", dir, "--insecure-no-auth")
		defer stop()
		_, body, _ := do(t, "GET", base+"/fhir/Patient?identifier=urn:donor|D-1202", "")
		return body
	}
	if body := search(); !strings.Contains(body, `"total":0`) {
		t.Fatalf("before reindex the search should find nothing: %s", body)
	}
	var out, errb bytes.Buffer
	if code := run(ctx, []string{"reindex", "--data", dir}, &out, &errb); code != 0 {
		t.Fatalf("reindex: exit %d\n%s", code, errb.String())
	}
	// The server's audit trail recorded the search: its AuditEvents are
	// resources too, reindexed with the Patients.
	var done int
	if s := errb.String(); !strings.Contains(s, "100%") || !strings.Contains(s, "[####") {
		t.Errorf("progress output:\n%s", s)
	} else if _, err := fmt.Sscanf(s[strings.LastIndex(s, "reindexed "):], "reindexed %d resources", &done); err != nil || done < n || done > n+5 {
		t.Errorf("reindexed %d resources (%v), want the %d Patients and the few AuditEvents of one search:\n%s", done, err, n, s)
	}
	if body := search(); !strings.Contains(body, `"total":1`) || !strings.Contains(body, `"id":"p1202"`) {
		t.Fatalf("after reindex: %s", body)
	}
}

// TestReindexNoStore: reindex of a directory without a store is an error,
// and creates nothing there.
func TestReindexNoStore(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "typo")
	var out, errb bytes.Buffer
	if code := run(context.Background(), []string{"reindex", "--data", dir}, &out, &errb); code == 0 || !strings.Contains(errb.String(), "no store") {
		t.Fatalf("reindex of %s: exit %d, %q", dir, code, errb.String())
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("reindex created %s", dir)
	}
}
