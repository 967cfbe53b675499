package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/fmtbank/cmts/auth"
	"github.com/fmtbank/cmts/profiles/synth"
	"github.com/fmtbank/cmts/store"
	"github.com/fmtbank/cmts/store/sqlite"
)

// TestGen runs `cmts gen` into an empty store: the store then holds every
// resource the truth file counts, the truth is the generator's, and a
// second run into the same store is refused.
func TestGen(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	truthFile := filepath.Join(t.TempDir(), "truth.json")
	var stdout, stderr bytes.Buffer
	args := []string{"gen", "--patients", "40", "--seed", "9", "--data", dir, "--truth", truthFile}
	if code := run(context.Background(), args, &stdout, &stderr); code != 0 {
		t.Fatalf("cmts gen: exit %d\n%s", code, stderr.String())
	}
	if !strings.Contains(stdout.String(), "generated 40 patients (seed 9)") {
		t.Errorf("summary: %q", stdout.String())
	}
	b, err := os.ReadFile(truthFile)
	if err != nil {
		t.Fatal(err)
	}
	var got synth.Truth
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatal(err)
	}
	reg, err := synth.Generate(synth.Options{Patients: 40, Seed: 9})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(reg.Truth(), got); diff != "" {
		t.Errorf("truth file (-want +got):\n%s", diff)
	}
	ctx := context.Background()
	st, err := sqlite.Open(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	n, err := st.Count(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// Who reads what (wmt-ig.md): a hospital reads every bank's lots, the
	// regulator never a donor.
	for _, c := range []struct {
		a   store.Access
		typ string
	}{
		{store.Tenant("hospital-c"), "Specimen"},
		{store.Access{Tenants: []string{"nhc"}, Everyone: true}, "Patient"},
	} {
		page, err := st.Search(ctx, store.Query{Access: c.a, Type: c.typ, Count: 1000})
		if err != nil {
			t.Fatal(err)
		}
		lots, donors := 0, 0
		for _, v := range page.Versions {
			switch {
			case v.Tenant == "hospital-c":
			case v.Reach == store.ReachShared:
				lots++
			case bytes.Contains(v.Resource, []byte("cmts-donor")):
				donors++
			}
		}
		if c.typ == "Specimen" && lots == 0 {
			t.Errorf("hospital-c reads no product lot of a bank")
		}
		if donors != 0 {
			t.Errorf("%v reads %d donors", c.a, donors)
		}
	}
	st.Close()
	want := 0
	for _, c := range got.Resources {
		want += c
	}
	if n != want {
		t.Errorf("store holds %d resources, truth counts %d", n, want)
	}
	stderr.Reset()
	if code := run(context.Background(), args, &stdout, &stderr); code != 1 || !strings.Contains(stderr.String(), "empty store") {
		t.Errorf("a second run: exit %d, %q; want 1 and a word about an empty store", code, stderr.String())
	}
}

func TestGenFlags(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--patients", "0"}, "--patients must be positive"},
		{[]string{"--patients", "x"}, "invalid value"},
		{[]string{"--batch", "-1"}, "--batch must be positive"},
		{[]string{"--seed", "-3"}, "invalid value"},
		{[]string{"extra"}, "unexpected arguments"},
	} {
		var stdout, stderr bytes.Buffer
		if code := run(context.Background(), append([]string{"gen"}, tc.args...), &stdout, &stderr); code != 2 || !strings.Contains(stderr.String(), tc.want) {
			t.Errorf("cmts gen %v: exit %d, %q; want 2 and %q", tc.args, code, stderr.String(), tc.want)
		}
	}
}

// TestGenTrustFile: the sample trust file names every tenant the generator
// writes for, with its kind, so a server started with it serves the
// generated registry.
func TestGenTrustFile(t *testing.T) {
	t.Parallel()
	trust, err := auth.LoadTrust(filepath.Join("testdata", "gen-trust.json"))
	if err != nil {
		t.Fatal(err)
	}
	var got []synth.Tenant
	for _, tn := range trust.Tenants {
		got = append(got, synth.Tenant{ID: tn.ID, Kind: string(tn.Kind), Name: tn.Name, NameZh: tn.NameZh})
	}
	want := synth.Tenants()
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("tenants (-generator +trust file):\n%s", diff)
	}
}
