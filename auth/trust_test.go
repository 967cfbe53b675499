package auth

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// designExample is the trust file of design.md, "Authentication and access
// contract", verbatim.
const designExample = `{"tenants": [{"id": "hospital-a", "kind": "hospital", "name": "Hospital A", "nameZh": "甲医院"},
               {"id": "bank-xa", "kind": "bank", "name": "Xi'an microbiota bank"},
               {"id": "nhc", "kind": "authority", "name": "National Health Commission"}],
   "issuers": [{"issuer": "https://idp.hospital-a.example/realms/cmts", "audience": "cmts", "tenant": "hospital-a"},
               {"issuer": "https://idp.nhc.example", "audience": "cmts", "tenantClaim": "cmts_tenant"}],
   "rolesClaim": "cmts_roles",
   "smart": {"issuer": "https://idp.nhc.example"}}`

func TestLoadTrustDesignExample(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "trust.json")
	if err := os.WriteFile(path, []byte(designExample), 0o600); err != nil {
		t.Fatal(err)
	}
	got, err := LoadTrust(path)
	if err != nil {
		t.Fatal(err)
	}
	want := &Trust{
		Tenants: []Tenant{
			{ID: "hospital-a", Kind: "hospital", Name: "Hospital A", NameZh: "甲医院"},
			{ID: "bank-xa", Kind: "bank", Name: "Xi'an microbiota bank"},
			{ID: "nhc", Kind: "authority", Name: "National Health Commission"},
		},
		Issuers: []Issuer{
			{Issuer: "https://idp.hospital-a.example/realms/cmts", Audience: "cmts", Tenant: "hospital-a"},
			{Issuer: "https://idp.nhc.example", Audience: "cmts", TenantClaim: "cmts_tenant"},
		},
		RolesClaim: "cmts_roles",
		SMART:      SMARTIssuer{Issuer: "https://idp.nhc.example"},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("LoadTrust (-want +got):\n%s", diff)
	}
}

func TestParseTrustRefuses(t *testing.T) {
	t.Parallel()
	tenants := `"tenants": [{"id": "h", "kind": "hospital", "name": "H"}]`
	tests := []struct {
		name, json, wantErr string
	}{
		{"unknown member", `{` + tenants + `, "issuers": [{"issuer": "https://i", "audience": "a", "tenant": "h"}], "roleClaim": "x"}`, "unknown field"},
		{"no issuers", `{` + tenants + `}`, "no issuers"},
		{"bad kind", `{"tenants": [{"id": "h", "kind": "clinic"}], "issuers": [{"issuer": "https://i", "audience": "a", "tenant": "h"}]}`, "kind \"clinic\""},
		{"duplicate tenant", `{"tenants": [{"id": "h", "kind": "bank"}, {"id": "h", "kind": "bank"}], "issuers": [{"issuer": "https://i", "audience": "a", "tenant": "h"}]}`, "given twice"},
		{"relative issuer", `{` + tenants + `, "issuers": [{"issuer": "idp", "audience": "a", "tenant": "h"}]}`, "absolute URL"},
		{"no audience", `{` + tenants + `, "issuers": [{"issuer": "https://i", "tenant": "h"}]}`, "no audience"},
		{"tenant and claim", `{` + tenants + `, "issuers": [{"issuer": "https://i", "audience": "a", "tenant": "h", "tenantClaim": "t"}]}`, "exactly one"},
		{"neither tenant nor claim", `{` + tenants + `, "issuers": [{"issuer": "https://i", "audience": "a"}]}`, "exactly one"},
		{"unknown tenant", `{` + tenants + `, "issuers": [{"issuer": "https://i", "audience": "a", "tenant": "x"}]}`, "not in tenants"},
		{"untrusted smart issuer", `{` + tenants + `, "issuers": [{"issuer": "https://i", "audience": "a", "tenant": "h"}], "smart": {"issuer": "https://j"}}`, "not one of the issuers"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := ParseTrust([]byte(tt.json))
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("ParseTrust: err = %v, want one containing %q", err, tt.wantErr)
			}
		})
	}
}

func TestParseTrustDefaultRolesClaim(t *testing.T) {
	t.Parallel()
	tr, err := ParseTrust([]byte(`{"tenants": [{"id": "h", "kind": "hospital"}], "issuers": [{"issuer": "https://i", "audience": "a", "tenant": "h"}]}`))
	if err != nil {
		t.Fatal(err)
	}
	if tr.RolesClaim != DefaultRolesClaim {
		t.Errorf("RolesClaim = %q, want %q", tr.RolesClaim, DefaultRolesClaim)
	}
}
