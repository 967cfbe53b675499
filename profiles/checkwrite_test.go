package profiles_test

import (
	"bytes"
	"context"
	"testing"

	"github.com/fmtbank/cmts/fhir"
)

// TestCheckWriteClaims checks that the shortcut for writes that claim no
// profile (mayCheck) lets through nothing the full check would refuse: a
// claim however its key is written, and the rule of --require-profiles.
func TestCheckWriteClaims(t *testing.T) {
	t.Parallel()
	// The recipient profile requires the recipient code.
	broken := edit(t, example(t, "Patient-recipient-r0001.json"), func(m map[string]any) { delete(m, "identifier") })
	unclaimed := edit(t, broken, func(m map[string]any) { delete(m, "meta") })
	escaped := bytes.Replace(broken, []byte(`"profile"`), []byte(`"profil\u0065"`), 1)
	if bytes.Equal(escaped, broken) {
		t.Fatal("the example has no meta.profile to escape")
	}
	p := &fhir.Principal{Tenant: "default"}
	for _, tc := range []struct {
		name    string
		require bool
		body    []byte
		errors  bool
	}{
		{"claimed", false, broken, true},
		{"claimed with an escaped key", false, escaped, true},
		{"unclaimed", false, unclaimed, false},
		{"unclaimed, profiles required", true, unclaimed, true},
		{"valid", false, example(t, "Patient-recipient-r0001.json"), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, svc, _ := guide(t, tc.require)
			issues, err := svc.CheckWrite(context.Background(), p, "Patient", tc.body)
			if err != nil {
				t.Fatal(err)
			}
			got := false
			for _, is := range issues {
				got = got || is.Severity == "error"
			}
			if got != tc.errors {
				t.Fatalf("errors: %v, want %v: %+v", got, tc.errors, issues)
			}
		})
	}
}
