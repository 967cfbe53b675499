package authtest

import (
	"encoding/base64"
	"encoding/json"
	"strings"
	"testing"
)

// TestAuthorizationCode runs a SMART standalone-launch style flow (code +
// PKCE, public client) on the provider and checks the access token it gets.
func TestAuthorizationCode(t *testing.T) {
	p := Start(t, Config{Clients: []Client{{
		ID: "smart-app", RedirectURIs: []string{"http://127.0.0.1:9/callback"},
		Scopes: "patient/*.rs patient/Observation.rs", Tenant: "hospital-a", Roles: []string{"clinician"},
	}}})
	tr := p.AuthorizationCode(t, "smart-app", "http://127.0.0.1:9/callback", "openid launch/patient patient/Observation.rs", "p-42")
	parts := strings.Split(tr.AccessToken, ".")
	if len(parts) != 3 {
		t.Fatalf("access token is not a JWT: %q", tr.AccessToken)
	}
	b, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var claims struct {
		Iss, Aud, Sub, Scope, Patient, CmtsTenant string
	}
	var raw map[string]any
	if err := json.Unmarshal(b, &raw); err != nil {
		t.Fatal(err)
	}
	json.Unmarshal(b, &claims)
	if claims.Iss != p.Issuer || claims.Aud != "cmts" || claims.Sub != "p-42" || claims.Patient != "p-42" ||
		raw["cmts_tenant"] != "hospital-a" || !strings.Contains(claims.Scope, "patient/Observation.rs") || tr.Patient != "p-42" {
		t.Errorf("token response patient %q, claims %s", tr.Patient, b)
	}
}
