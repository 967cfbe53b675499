package auth_test

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fmtbank/cmts/auth"
	"github.com/fmtbank/cmts/auth/authtest"
	"github.com/fmtbank/cmts/fhir"
	jose "github.com/go-jose/go-jose/v4"
	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

// providers are the identity providers of the tests: a hospital's own IdP
// (tenant fixed), a national IdP (tenant from a claim) and one nobody
// trusts.
type providers struct {
	hospital, national, untrusted *authtest.Provider
	trust                         *auth.Trust
}

const (
	secret       = "s3cret-s3cret-s3cret"
	systemScopes = "system/*.cruds"
)

func startProviders(t *testing.T) *providers {
	t.Helper()
	var p providers
	p.hospital = authtest.Start(t, authtest.Config{Clients: []authtest.Client{
		{ID: "ehr", Secret: secret, Scopes: systemScopes + " system/Patient.read"},
		{ID: "clinic-app", Secret: secret, Scopes: "user/*.rs user/Observation.cruds", Roles: []string{"clinician", "pharmacist"}},
		{ID: "other-aud", Secret: secret, Scopes: systemScopes, Audience: "not-cmts"},
		{ID: "late", Secret: secret, Scopes: systemScopes, NotBeforeIn: 3600},
	}})
	p.national = authtest.Start(t, authtest.Config{Clients: []authtest.Client{
		{ID: "bank-lims", Secret: secret, Scopes: "system/Specimen.cruds system/Observation.cruds", Tenant: "bank-xa", Roles: []string{"bank-staff"}},
		{ID: "nhc-portal", Secret: secret, Scopes: "user/*.rs", Tenant: "nhc", Roles: []string{"regulator", "admin"}},
		{ID: "patient-app", Secret: secret, Scopes: "patient/Observation.rs?category=laboratory patient/Patient.r launch/patient", Tenant: "hospital-b", Roles: []string{"clinician"}, Patient: "p-42"},
		{ID: "ghost", Secret: secret, Scopes: systemScopes, Tenant: "no-such-unit"},
		{ID: "untenanted", Secret: secret, Scopes: systemScopes},
		{ID: "smart-app", RedirectURIs: []string{"http://127.0.0.1:9/cb"}, Scopes: "patient/*.rs", Tenant: "hospital-b", Roles: []string{"clinician"}},
	}})
	p.untrusted = authtest.Start(t, authtest.Config{Clients: []authtest.Client{
		{ID: "ehr", Secret: secret, Scopes: systemScopes},
	}})
	tr, err := auth.ParseTrust([]byte(`{
	  "tenants": [{"id": "hospital-a", "kind": "hospital", "name": "Hospital A", "nameZh": "甲医院"},
	              {"id": "hospital-b", "kind": "hospital", "name": "Hospital B"},
	              {"id": "bank-xa", "kind": "bank", "name": "Xi'an microbiota bank"},
	              {"id": "nhc", "kind": "authority", "name": "National Health Commission"}],
	  "issuers": [{"issuer": "` + p.hospital.Issuer + `", "audience": "cmts", "tenant": "hospital-a"},
	              {"issuer": "` + p.national.Issuer + `", "audience": "cmts", "tenantClaim": "cmts_tenant"}],
	  "rolesClaim": "cmts_roles",
	  "smart": {"issuer": "` + p.national.Issuer + `"}}`))
	if err != nil {
		t.Fatal(err)
	}
	p.trust = tr
	return &p
}

// countingClient counts the requests it sends.
type countingClient struct {
	n atomic.Int64
}

func (c *countingClient) RoundTrip(r *http.Request) (*http.Response, error) {
	c.n.Add(1)
	return http.DefaultTransport.RoundTrip(r)
}

func newVerifier(t *testing.T, tr *auth.Trust, opts auth.Options) *auth.Verifier {
	t.Helper()
	v, err := auth.NewVerifier(tr, opts)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// TestVerifier runs the Verifier against real providers, started once: the
// key rotation comes last, as it changes the hospital provider's keys.
func TestVerifier(t *testing.T) {
	p := startProviders(t)
	t.Run("principals", func(t *testing.T) { testPrincipals(t, p) })
	t.Run("authorization code", func(t *testing.T) { testAuthorizationCode(t, p) })
	t.Run("refuses", func(t *testing.T) { testRefuses(t, p) })
	t.Run("key rotation", func(t *testing.T) { testKeyRotation(t, p) })
}

// testPrincipals: client_credentials tokens of several tenants and roles.
func testPrincipals(t *testing.T, p *providers) {
	v := newVerifier(t, p.trust, auth.Options{})
	tests := []struct {
		name  string
		op    *authtest.Provider
		id    string
		scope string
		want  fhir.Principal
	}{
		{"hospital EHR without roles acts as system", p.hospital, "ehr", "system/*.cruds system/Patient.read",
			fhir.Principal{Tenant: "hospital-a", TenantKind: "hospital", Subject: "ehr", ClientID: "ehr",
				Roles:  []fhir.Role{fhir.RoleSystem},
				Scopes: []string{"system/*.cruds", "system/Patient.read"},
				Grants: []fhir.Scope{{Context: "system", ResourceType: "*", Permissions: "cruds"}, {Context: "system", ResourceType: "Patient", Permissions: "rs"}}}},
		{"scopes are those asked for and allowed", p.hospital, "ehr", "system/Patient.read system/Observation.cruds",
			fhir.Principal{Tenant: "hospital-a", TenantKind: "hospital", Subject: "ehr", ClientID: "ehr",
				Roles:  []fhir.Role{fhir.RoleSystem},
				Scopes: []string{"system/Patient.read"},
				Grants: []fhir.Scope{{Context: "system", ResourceType: "Patient", Permissions: "rs"}}}},
		{"clinician, unknown roles ignored", p.hospital, "clinic-app", "user/*.rs user/Observation.cruds",
			fhir.Principal{Tenant: "hospital-a", TenantKind: "hospital", Subject: "clinic-app", ClientID: "clinic-app",
				Roles:  []fhir.Role{fhir.RoleClinician},
				Scopes: []string{"user/*.rs", "user/Observation.cruds"},
				Grants: []fhir.Scope{{Context: "user", ResourceType: "*", Permissions: "rs"}, {Context: "user", ResourceType: "Observation", Permissions: "cruds"}}}},
		{"bank staff, tenant from the claim", p.national, "bank-lims", "system/Specimen.cruds",
			fhir.Principal{Tenant: "bank-xa", TenantKind: "bank", Subject: "bank-lims", ClientID: "bank-lims",
				Roles:  []fhir.Role{fhir.RoleBankStaff},
				Scopes: []string{"system/Specimen.cruds"},
				Grants: []fhir.Scope{{Context: "system", ResourceType: "Specimen", Permissions: "cruds"}}}},
		{"regulator and admin of the authority", p.national, "nhc-portal", "user/*.rs",
			fhir.Principal{Tenant: "nhc", TenantKind: "authority", Subject: "nhc-portal", ClientID: "nhc-portal",
				Roles:  []fhir.Role{fhir.RoleRegulator, fhir.RoleAdmin},
				Scopes: []string{"user/*.rs"},
				Grants: []fhir.Scope{{Context: "user", ResourceType: "*", Permissions: "rs"}}}},
		{"patient context and v2 narrowing", p.national, "patient-app", "patient/Observation.rs?category=laboratory patient/Patient.r",
			fhir.Principal{Tenant: "hospital-b", TenantKind: "hospital", Subject: "patient-app", ClientID: "patient-app",
				Roles: []fhir.Role{fhir.RoleClinician}, Patient: "p-42",
				Scopes: []string{"patient/Observation.rs?category=laboratory", "patient/Patient.r"},
				Grants: []fhir.Scope{
					{Context: "patient", ResourceType: "Observation", Permissions: "rs", Params: map[string][]string{"category": {"laboratory"}}},
					{Context: "patient", ResourceType: "Patient", Permissions: "r"}}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tok := tt.op.Token(t, tt.id, secret, tt.scope)
			got, err := v.Verify(context.Background(), tok)
			if err != nil {
				t.Fatalf("Verify: %v", err)
			}
			tt.want.Issuer = tt.op.Issuer
			if diff := cmp.Diff(&tt.want, got, cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("principal (-want +got):\n%s", diff)
			}
		})
	}
}

// testAuthorizationCode: a user's token from a SMART launch (code +
// PKCE) carries the user as subject and the patient in context, and is no
// system token.
func testAuthorizationCode(t *testing.T, p *providers) {
	v := newVerifier(t, p.trust, auth.Options{})
	tr := p.national.AuthorizationCode(t, "smart-app", "http://127.0.0.1:9/cb", "openid launch/patient patient/*.rs", "p-7")
	got, err := v.Verify(context.Background(), tr.AccessToken)
	if err != nil {
		t.Fatal(err)
	}
	want := &fhir.Principal{Tenant: "hospital-b", TenantKind: "hospital", Subject: "p-7", Issuer: p.national.Issuer, ClientID: "smart-app",
		Roles: []fhir.Role{fhir.RoleClinician}, Patient: "p-7", Scopes: []string{"patient/*.rs"},
		Grants: []fhir.Scope{{Context: "patient", ResourceType: "*", Permissions: "rs"}}}
	if diff := cmp.Diff(want, got, cmpopts.EquateEmpty()); diff != "" {
		t.Errorf("principal (-want +got):\n%s", diff)
	}
}

// wantInvalid checks err is the 401 of an invalid token.
func wantInvalid(t *testing.T, err error, reason string) {
	t.Helper()
	var fe *fhir.Error
	if !errors.As(err, &fe) || fe.Status != http.StatusUnauthorized {
		t.Fatalf("err = %v, want a 401 *fhir.Error", err)
	}
	if d := fe.Issues[0].Diagnostics; !strings.Contains(d, reason) {
		t.Errorf("diagnostics %q, want %q", d, reason)
	}
}

// testRefuses: every bad token is a 401, and bad signatures under a known
// key id cost no JWKS fetch.
func testRefuses(t *testing.T, p *providers) {
	jwks := &countingClient{}
	v := newVerifier(t, p.trust, auth.Options{HTTPClient: &http.Client{Transport: jwks}})
	good := p.hospital.Token(t, "ehr", secret, systemScopes)
	if _, err := v.Verify(context.Background(), good); err != nil {
		t.Fatalf("a good token: %v", err)
	}
	if _, err := v.Verify(context.Background(), p.national.Token(t, "bank-lims", secret, "system/Specimen.cruds")); err != nil {
		t.Fatalf("a good token: %v", err)
	}
	fetches := jwks.n.Load() // discovery and the first JWKS of each trusted issuer
	header, payload, sig := split(t, good)

	// Same header and signature, another tenant's claim in the payload.
	var claims map[string]any
	decode(t, payload, &claims)
	claims["cmts_roles"] = []string{"admin"}
	forgedPayload := join(header, encode(t, claims), sig)

	// A key of our own, under the provider's kid.
	var hdr struct {
		KID string `json:"kid"`
	}
	decode(t, header, &hdr)
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	forgedKey := signRS256(t, key, hdr.KID, claims)

	none := join(encode(t, map[string]any{"alg": "none", "typ": "at+jwt", "kid": hdr.KID}), payload, "")

	// HS256 with the provider's public key (PEM and JWK) as the secret.
	pub := providerKey(t, p.hospital.Issuer, hdr.KID)
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	pemKey := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
	jwkKey, err := json.Marshal(jose.JSONWebKey{Key: pub, KeyID: hdr.KID, Algorithm: "RS256", Use: "sig"})
	if err != nil {
		t.Fatal(err)
	}

	untrusted := p.untrusted.Token(t, "ehr", secret, systemScopes)
	tests := []struct {
		name, token, reason string
	}{
		{"payload changed", forgedPayload, "signature"},
		{"signed with another key under the provider's kid", forgedKey, "signature"},
		{"signature cut", join(header, payload, ""), "signature"},
		{"alg none", none, "signature"},
		{"HS256 with the public key as PEM", signHS256(t, pemKey, hdr.KID, payload), "signature"},
		{"HS256 with the public key as JWK", signHS256(t, jwkKey, hdr.KID, payload), "signature"},
		{"untrusted issuer", untrusted, "issuer not trusted"},
		{"wrong audience", p.hospital.Token(t, "other-aud", secret, systemScopes), "audience"},
		{"not yet valid", p.hospital.Token(t, "late", secret, systemScopes), "not yet valid"},
		{"unknown tenant", p.national.Token(t, "ghost", secret, systemScopes), "tenant"},
		{"no tenant claim", p.national.Token(t, "untenanted", secret, systemScopes), "tenant"},
		{"garbage", "garbage", "malformed"},
		{"three garbage parts", "a.b.c", "malformed"},
		{"empty", "", "malformed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := v.Verify(context.Background(), tt.token)
			wantInvalid(t, err, tt.reason)
		})
	}
	if n := jwks.n.Load() - fetches; n != 0 {
		t.Errorf("%d fetches for bad tokens with a known kid, want none", n)
	}

	t.Run("expired", func(t *testing.T) {
		// The token lives 300 s; an hour later it is stale whatever the skew.
		late := newVerifier(t, p.trust, auth.Options{Now: func() time.Time { return time.Now().Add(time.Hour) }})
		_, err := late.Verify(context.Background(), good)
		wantInvalid(t, err, "expired")
	})
	t.Run("expires in the cache", func(t *testing.T) {
		var later atomic.Bool
		clock := func() time.Time {
			if later.Load() {
				return time.Now().Add(time.Hour)
			}
			return time.Now()
		}
		cached := newVerifier(t, p.trust, auth.Options{Now: clock})
		if _, err := cached.Verify(context.Background(), good); err != nil {
			t.Fatal(err)
		}
		later.Store(true)
		_, err := cached.Verify(context.Background(), good)
		var fe *fhir.Error
		if !errors.As(err, &fe) || fe.Status != http.StatusUnauthorized {
			t.Fatalf("a cached token an hour later: %v, want 401", err)
		}
	})
	t.Run("within the clock skew", func(t *testing.T) {
		skewed := newVerifier(t, p.trust, auth.Options{Now: func() time.Time { return time.Now().Add(300*time.Second + 30*time.Second) }})
		if _, err := skewed.Verify(context.Background(), good); err != nil {
			t.Errorf("a token expired 30 s ago with 60 s skew: %v", err)
		}
	})
}

// testKeyRotation: a token of a key the provider rotated in while the
// verifier runs is accepted after one JWKS fetch.
func testKeyRotation(t *testing.T, p *providers) {
	jwks := &countingClient{}
	v := newVerifier(t, p.trust, auth.Options{HTTPClient: &http.Client{Transport: jwks}, MinRefresh: time.Millisecond})
	old := p.hospital.Token(t, "ehr", secret, systemScopes)
	if _, err := v.Verify(context.Background(), old); err != nil {
		t.Fatal(err)
	}
	before := jwks.n.Load()
	for range 5 {
		if _, err := v.Verify(context.Background(), old); err != nil {
			t.Fatal(err)
		}
	}
	if n := jwks.n.Load() - before; n != 0 {
		t.Fatalf("%d fetches for tokens of a cached key, want none", n)
	}
	kid := p.hospital.Rotate(t)
	rotated := p.hospital.Token(t, "ehr", secret, systemScopes)
	var hdr struct {
		KID string `json:"kid"`
	}
	h, _, _ := split(t, rotated)
	decode(t, h, &hdr)
	if hdr.KID != kid {
		t.Fatalf("token signed with kid %q, want the new %q", hdr.KID, kid)
	}
	if _, err := v.Verify(context.Background(), rotated); err != nil {
		t.Fatalf("token of the new key: %v", err)
	}
	if n := jwks.n.Load() - before; n != 1 {
		t.Errorf("%d fetches after the rotation, want 1", n)
	}
	if _, err := v.Verify(context.Background(), old); err != nil {
		t.Errorf("token of the old, still published key: %v", err)
	}
}

func split(t *testing.T, tok string) (h, p, s string) {
	t.Helper()
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		t.Fatalf("not a JWS: %q", tok)
	}
	return parts[0], parts[1], parts[2]
}

func join(parts ...string) string { return strings.Join(parts, ".") }

func encode(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

func decode(t *testing.T, s string, v any) {
	t.Helper()
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatal(err)
	}
}

func signRS256(t *testing.T, key *rsa.PrivateKey, kid string, claims any) string {
	t.Helper()
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.RS256, Key: jose.JSONWebKey{Key: key, KeyID: kid}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(claims)
	if err != nil {
		t.Fatal(err)
	}
	jws, err := signer.Sign(b)
	if err != nil {
		t.Fatal(err)
	}
	s, err := jws.CompactSerialize()
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// signHS256 signs by hand: go-jose refuses to sign HS256 with key material
// that looks like a public key, and that is what the attack uses.
func signHS256(t *testing.T, secret []byte, kid, payload string) string {
	t.Helper()
	head := encode(t, map[string]any{"alg": "HS256", "typ": "at+jwt", "kid": kid})
	mac := hmac.New(sha256.New, secret)
	mac.Write([]byte(head + "." + payload))
	return join(head, payload, base64.RawURLEncoding.EncodeToString(mac.Sum(nil)))
}

// providerKey fetches the provider's public key with the kid from its JWKS.
func providerKey(t *testing.T, issuer, kid string) *rsa.PublicKey {
	t.Helper()
	resp, err := http.Get(issuer + "/jwks")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var set jose.JSONWebKeySet
	if err := json.NewDecoder(resp.Body).Decode(&set); err != nil {
		t.Fatal(err)
	}
	for _, k := range set.Key(kid) {
		if pub, ok := k.Key.(*rsa.PublicKey); ok {
			return pub
		}
	}
	t.Fatalf("no RSA key %q in the JWKS", kid)
	return nil
}
