package main

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/fmtbank/cmts/auth/authtest"
)

func TestServeBadTrustFile(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "trust.json")
	if err := os.WriteFile(path, []byte(`{"tenants": [], "issuers": []}`), 0o600); err != nil {
		t.Fatal(err)
	}
	m := NewMain(io.Discard)
	if err := m.ParseFlags([]string{"--addr", "127.0.0.1:0", "--data", t.TempDir(), "--trust", path}); err != nil {
		t.Fatal(err)
	}
	err := m.Open(t.Context())
	m.Close()
	if err == nil || !strings.Contains(err.Error(), "no issuers") {
		t.Fatalf("Open: %v, want the trust file refused", err)
	}
}

// secret is the client secret of the providers' client_credentials clients.
const secret = "s3cret-s3cret-s3cret"

// startProviders starts the OpenID Provider the server trusts, with an
// "ehr" client of every system scope and an "other-aud" client whose tokens
// name another audience (plus extra clients), and a second, untrusted
// provider with an "ehr" client of the same name and secret.
func startProviders(t *testing.T, extra ...authtest.Client) (op, untrusted *authtest.Provider) {
	t.Helper()
	clients := append([]authtest.Client{
		{ID: "ehr", Secret: secret, Scopes: "system/*.cruds"},
		{ID: "other-aud", Secret: secret, Scopes: "system/*.cruds", Audience: "not-cmts"},
	}, extra...)
	op = authtest.Start(t, authtest.Config{Clients: clients})
	untrusted = authtest.Start(t, authtest.Config{Clients: []authtest.Client{{ID: "ehr", Secret: secret, Scopes: "system/*.cruds"}}})
	return op, untrusted
}

// startTrusted starts `serve --trust` on a new embedded store, with a trust
// file that maps op's tokens of audience cmts to tenant hospital-a (roles
// in cmts_roles) and names op the SMART authorization server; it returns
// the FHIR base.
func startTrusted(t *testing.T, op *authtest.Provider) string {
	t.Helper()
	trust := filepath.Join(t.TempDir(), "trust.json")
	if err := os.WriteFile(trust, []byte(`{
	  "tenants": [{"id": "hospital-a", "kind": "hospital", "name": "Hospital A", "nameZh": "甲医院"}],
	  "issuers": [{"issuer": "`+op.Issuer+`", "audience": "cmts", "tenant": "hospital-a"}],
	  "rolesClaim": "cmts_roles",
	  "smart": {"issuer": "`+op.Issuer+`"}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	base, _ := startMain(t, "--data", t.TempDir(), "--trust", trust)
	return base + "/fhir"
}

// authDo sends a request with an optional Bearer token.
func authDo(t *testing.T, method, url, token, body string) (int, map[string]any, http.Header) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/fhir+json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	var m map[string]any
	b, _ := io.ReadAll(resp.Body)
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("%s %s: %d, body not JSON: %s", method, url, resp.StatusCode, b)
	}
	return resp.StatusCode, m, resp.Header
}

// TestServeTrust runs `serve --trust` against a real OpenID Provider: tokens
// it issues work, every bad token is a 401 with an OperationOutcome and a
// Bearer challenge, the SMART document and the CapabilityStatement name the
// provider, and a key rotation while the server runs is picked up.
func TestServeTrust(t *testing.T) {
	t.Parallel()
	op, untrusted := startProviders(t, authtest.Client{ID: "late", Secret: secret, Scopes: "system/*.cruds", NotBeforeIn: 3600})
	fhirBase := startTrusted(t, op)

	good := op.Token(t, "ehr", secret, "system/*.cruds")
	firstFetch := time.Now()
	if code, body, _ := authDo(t, "PUT", fhirBase+"/Patient/p1", good, `{"resourceType":"Patient","id":"p1","gender":"female"}`); code != 201 {
		t.Fatalf("PUT with a good token: %d %v", code, body)
	}
	if code, body, _ := authDo(t, "GET", fhirBase+"/Patient/p1", good, ""); code != 200 || body["id"] != "p1" {
		t.Fatalf("GET with a good token: %d %v", code, body)
	}

	parts := strings.Split(good, ".")
	var hdr struct {
		KID string `json:"kid"`
	}
	b, _ := base64.RawURLEncoding.DecodeString(parts[0])
	json.Unmarshal(b, &hdr)
	var claims map[string]any
	b, _ = base64.RawURLEncoding.DecodeString(parts[1])
	json.Unmarshal(b, &claims)
	claims["sub"] = "someone-else"
	b, _ = json.Marshal(claims)
	forged := parts[0] + "." + base64.RawURLEncoding.EncodeToString(b) + "." + parts[2]
	none := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"none","kid":"`+hdr.KID+`"}`)) + "." + parts[1] + "."
	hsHead := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"HS256","kid":"` + hdr.KID + `"}`))
	jwks := get(t, op.Issuer+"/jwks")
	mac := hmac.New(sha256.New, jwks)
	mac.Write([]byte(hsHead + "." + parts[1]))
	hs256 := hsHead + "." + parts[1] + "." + base64.RawURLEncoding.EncodeToString(mac.Sum(nil))

	for _, tc := range []struct {
		name, token, wantChallenge string
	}{
		{"no token", "", `Bearer realm="cmts"`},
		{"forged signature", forged, `Bearer realm="cmts", error="invalid_token"`},
		{"untrusted issuer", untrusted.Token(t, "ehr", secret, "system/*.cruds"), `Bearer realm="cmts", error="invalid_token"`},
		{"wrong audience", op.Token(t, "other-aud", secret, "system/*.cruds"), `Bearer realm="cmts", error="invalid_token"`},
		{"not yet valid", op.Token(t, "late", secret, "system/*.cruds"), `Bearer realm="cmts", error="invalid_token"`},
		{"alg none", none, `Bearer realm="cmts", error="invalid_token"`},
		{"HS256 signed with the provider's public JWKS", hs256, `Bearer realm="cmts", error="invalid_token"`},
		{"garbage", "garbage", `Bearer realm="cmts", error="invalid_token"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, body, h := authDo(t, "GET", fhirBase+"/Patient/p1", tc.token, "")
			if code != 401 || body["resourceType"] != "OperationOutcome" {
				t.Errorf("%d %v, want 401 with an OperationOutcome", code, body)
			}
			if got := h.Get("WWW-Authenticate"); got != tc.wantChallenge {
				t.Errorf("WWW-Authenticate %q, want %q", got, tc.wantChallenge)
			}
		})
	}

	t.Run("public documents", func(t *testing.T) {
		code, smart, _ := authDo(t, "GET", fhirBase+"/.well-known/smart-configuration", "", "")
		if code != 200 {
			t.Fatalf("smart-configuration: %d %v", code, smart)
		}
		for k, want := range map[string]any{
			"issuer": op.Issuer, "token_endpoint": op.Issuer + "/token", "authorization_endpoint": op.Issuer + "/auth",
			"code_challenge_methods_supported": []any{"S256"},
		} {
			if got, _ := json.Marshal(smart[k]); string(got) != string(must(json.Marshal(want))) {
				t.Errorf("smart-configuration %s = %s, want %v", k, got, want)
			}
		}
		if caps, _ := smart["capabilities"].([]any); len(caps) == 0 {
			t.Errorf("smart-configuration has no capabilities: %v", smart)
		}
		code, cs, _ := authDo(t, "GET", fhirBase+"/metadata", "", "")
		if code != 200 {
			t.Fatalf("metadata: %d", code)
		}
		sec, _ := json.Marshal(cs["rest"].([]any)[0].(map[string]any)["security"])
		for _, want := range []string{`"code":"SMART-on-FHIR"`, `"url":"http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris"`,
			`{"url":"token","valueUri":"` + op.Issuer + `/token"}`, `{"url":"authorize","valueUri":"` + op.Issuer + `/auth"}`} {
			if !strings.Contains(string(sec), want) {
				t.Errorf("rest.security %s lacks %s", sec, want)
			}
		}
	})

	t.Run("key rotation", func(t *testing.T) {
		op.Rotate(t)
		rotated := op.Token(t, "ehr", secret, "system/*.cruds")
		// The server fetches an issuer's keys at most every 10 s.
		time.Sleep(time.Until(firstFetch.Add(10*time.Second + 500*time.Millisecond)))
		if code, body, _ := authDo(t, "GET", fhirBase+"/Patient/p1", rotated, ""); code != 200 {
			t.Fatalf("token of the new key: %d %v", code, body)
		}
		if code, body, _ := authDo(t, "GET", fhirBase+"/Patient/p1", good, ""); code != 200 {
			t.Fatalf("token of the old key, still published: %d %v", code, body)
		}
	})
}

func TestServeWithoutTrustPublicDocuments(t *testing.T) {
	t.Parallel()
	base, _ := startMain(t, "--data", t.TempDir())
	for _, tc := range []struct {
		path string
		want int
	}{
		{"/healthz", 200}, {"/readyz", 200}, {"/fhir/metadata", 200},
		// No SMART server configured: the document is public but absent.
		{"/fhir/.well-known/smart-configuration", 404},
		{"/fhir/Patient", 401}, {"/fhir/Patient/x", 401}, {"/fhir/_history", 401}, {"/fhir", 401},
	} {
		code, _, h := do(t, "GET", base+tc.path, "")
		if code != tc.want {
			t.Errorf("GET %s: %d, want %d", tc.path, code, tc.want)
		}
		if code == 401 && h.Get("WWW-Authenticate") != `Bearer realm="cmts"` {
			t.Errorf("GET %s: WWW-Authenticate %q", tc.path, h.Get("WWW-Authenticate"))
		}
	}
}

func get(t *testing.T, url string) []byte {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func must(b []byte, err error) []byte {
	if err != nil {
		panic(err)
	}
	return b
}
