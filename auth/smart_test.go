package auth_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/fmtbank/cmts/auth"
	"github.com/fmtbank/cmts/fhir"
	"github.com/google/go-cmp/cmp"
)

// TestSMARTConfigurationFromDiscovery maps identity providers' discovery
// documents of other shapes than authtest's (which the end-to-end tests in
// cmd/cmts use) to the SMART document: only SMART's grant and response
// types, the OpenID Connect Discovery default when grant types are not
// listed, and the issuer with sso-openid-connect only when the provider
// can put fhirUser in its id_tokens.
func TestSMARTConfigurationFromDiscovery(t *testing.T) {
	withSSO := append(append([]string(nil), auth.SMARTCapabilities...), "sso-openid-connect")
	tests := []struct {
		name      string
		discovery map[string]any
		want      fhir.SMARTConfiguration
	}{
		{
			name: "every grant and response type, fhirUser claim",
			discovery: map[string]any{
				"grant_types_supported":    []string{"implicit", "authorization_code", "refresh_token", "client_credentials", "urn:ietf:params:oauth:grant-type:device_code"},
				"response_types_supported": []string{"code", "id_token", "code id_token", "none"},
				"claims_supported":         []string{"sub", "fhirUser"},
				"revocation_endpoint":      "/revoke",
			},
			want: fhir.SMARTConfiguration{
				Issuer:                 "ISSUER",
				GrantTypesSupported:    []string{"authorization_code", "client_credentials"},
				ResponseTypesSupported: []string{"code"},
				RevocationEndpoint:     "ISSUER/revoke",
				Capabilities:           withSSO,
			},
		},
		{
			name: "grant types not listed, no fhirUser claim",
			discovery: map[string]any{
				"response_types_supported": []string{"code", "id_token", "id_token token"},
				"claims_supported":         []string{"sub", "name"},
			},
			want: fhir.SMARTConfiguration{
				// OpenID Connect Discovery's default: authorization_code and implicit.
				GrantTypesSupported:    []string{"authorization_code"},
				ResponseTypesSupported: []string{"code"},
				Capabilities:           auth.SMARTCapabilities,
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var issuer string
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.URL.Path != "/.well-known/openid-configuration" {
					http.NotFound(w, r)
					return
				}
				doc := map[string]any{
					"issuer": issuer, "jwks_uri": issuer + "/jwks",
					"authorization_endpoint": issuer + "/auth", "token_endpoint": issuer + "/token",
					"subject_types_supported": []string{"public"}, "id_token_signing_alg_values_supported": []string{"RS256"},
				}
				for k, v := range tt.discovery {
					if s, ok := v.(string); ok {
						v = issuer + s
					}
					doc[k] = v
				}
				json.NewEncoder(w).Encode(doc)
			}))
			defer srv.Close()
			issuer = srv.URL
			tr, err := auth.ParseTrust([]byte(`{
			  "tenants": [{"id": "nhc", "kind": "authority", "name": "National Health Commission"}],
			  "issuers": [{"issuer": "` + issuer + `", "audience": "cmts", "tenant": "nhc"}],
			  "smart": {"issuer": "` + issuer + `"}}`))
			if err != nil {
				t.Fatal(err)
			}
			got, err := newVerifier(t, tr, auth.Options{}).SMARTConfiguration(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			want := tt.want
			if want.Issuer != "" {
				want.Issuer = issuer
			}
			if want.RevocationEndpoint != "" {
				want.RevocationEndpoint = issuer + "/revoke"
			}
			want.JWKSURI, want.AuthorizationEndpoint, want.TokenEndpoint = issuer+"/jwks", issuer+"/auth", issuer+"/token"
			want.ScopesSupported = auth.SMARTScopes
			want.CodeChallengeMethodsSupported = []string{"S256"}
			if diff := cmp.Diff(&want, got); diff != "" {
				t.Errorf("SMART configuration (-want +got):\n%s", diff)
			}
		})
	}
}
