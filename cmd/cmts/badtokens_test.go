package main

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"strings"
	"testing"
	"time"

	"github.com/fmtbank/cmts/auth/authtest"
	jose "github.com/go-jose/go-jose/v4"
)

// TestServeRefusesBadTokens sends `serve --trust` every kind of bad token a
// client or an attacker may present, made from real tokens of a real OpenID
// Provider and of a second, untrusted one. Each must be a 401 with
// `WWW-Authenticate: Bearer error="invalid_token"` and an OperationOutcome
// that says why, and reveal nothing of the resource asked for.
func TestServeRefusesBadTokens(t *testing.T) {
	t.Parallel()
	// untrusted is a second real provider, with a client of the same name,
	// that the server does not trust.
	op, untrusted := startProviders(t,
		authtest.Client{ID: "late", Secret: secret, Scopes: "system/*.cruds", NotBeforeIn: 3600},
		// Expired an hour before issue: beyond any clock skew, without waiting.
		authtest.Client{ID: "stale", Secret: secret, Scopes: "system/*.cruds", ExpiredFor: 3600})
	target := startTrusted(t, op) + "/Patient/p1"

	good := op.Token(t, "ehr", secret, "system/*.cruds")
	if code, body, _ := authDo(t, "PUT", target, good, `{"resourceType":"Patient","id":"p1","name":[{"text":"李四"}]}`); code != 201 {
		t.Fatalf("PUT with a good token: %d %v", code, body)
	}
	head, payload, _ := jwtParts(t, good)
	var hdr struct {
		KID string `json:"kid"`
	}
	var claims map[string]any
	jsonPart(t, head, &hdr)
	jsonPart(t, payload, &claims)

	// The payload changed under the provider's signature: admin of the unit.
	forged := map[string]any{}
	for k, v := range claims {
		forged[k] = v
	}
	forged["cmts_roles"] = []string{"admin"}
	forgedPayload := base64JSON(t, forged)
	_, _, sig := jwtParts(t, good)

	// The same claims signed with a key of our own under the provider's kid.
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.RS256, Key: jose.JSONWebKey{Key: key, KeyID: hdr.KID}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	jws, err := signer.Sign(must(json.Marshal(forged)))
	if err != nil {
		t.Fatal(err)
	}
	otherKey, err := jws.CompactSerialize()
	if err != nil {
		t.Fatal(err)
	}

	// HS256 with the provider's public key as the HMAC secret, in each form
	// a confused verifier might use: PEM, the JWK, the JWKS document.
	jwksDoc := get(t, op.Issuer+"/jwks")
	var set jose.JSONWebKeySet
	if err := json.Unmarshal(jwksDoc, &set); err != nil {
		t.Fatal(err)
	}
	keys := set.Key(hdr.KID)
	if len(keys) != 1 {
		t.Fatalf("%d keys %q in the provider's JWKS %s", len(keys), hdr.KID, jwksDoc)
	}
	pub, ok := keys[0].Key.(*rsa.PublicKey)
	if !ok {
		t.Fatalf("key %q is a %T, want RSA", hdr.KID, keys[0].Key)
	}
	pemKey := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: must(x509.MarshalPKIXPublicKey(pub))})
	jwkKey := must(json.Marshal(keys[0]))

	none := base64JSON(t, map[string]any{"alg": "none", "typ": "at+jwt", "kid": hdr.KID})

	// Tokens the providers signed, each wrong in one claim only.
	fromUntrusted := untrusted.Token(t, "ehr", secret, "system/*.cruds")
	otherAudience := op.Token(t, "other-aud", secret, "system/*.cruds")
	stale := op.Token(t, "stale", secret, "system/*.cruds")
	late := op.Token(t, "late", secret, "system/*.cruds")
	now := float64(time.Now().Unix())
	for _, c := range []struct {
		what, token, claim string
		ok                 func(v any) bool
	}{
		{"the untrusted provider's", fromUntrusted, "iss", func(v any) bool { return v == untrusted.Issuer && v != op.Issuer }},
		{"the other audience's", otherAudience, "aud", func(v any) bool { return v == "not-cmts" }},
		{"the expired", stale, "exp", func(v any) bool { f, _ := v.(float64); return f < now-3000 }},
		{"the not yet valid", late, "nbf", func(v any) bool { f, _ := v.(float64); return f > now+3000 }},
	} {
		var cl map[string]any
		_, p, _ := jwtParts(t, c.token)
		jsonPart(t, p, &cl)
		if !c.ok(cl[c.claim]) {
			t.Fatalf("%s token has %s %v", c.what, c.claim, cl[c.claim])
		}
	}
	const (
		badSignature = "signature, issuer or audience check failed"
		malformed    = "malformed token"
	)
	for _, tc := range []struct {
		name, token, reason string
	}{
		{"forged signature: payload changed", head + "." + forgedPayload + "." + sig, badSignature},
		{"forged signature: another key under the provider's kid", otherKey, badSignature},
		{"forged signature: signature cut", head + "." + payload + ".", badSignature},
		{"untrusted issuer: a second provider", fromUntrusted, "issuer not trusted"},
		{"wrong audience", otherAudience, badSignature},
		{"expired", stale, "expired"},
		{"not yet valid", late, "not yet valid"},
		{"alg none", none + "." + payload + ".", badSignature},
		{"alg none, admin payload", none + "." + forgedPayload + ".", badSignature},
		{"HS256 with the provider's public key as PEM", hs256(t, pemKey, hdr.KID, forgedPayload), badSignature},
		{"HS256 with the provider's public key as JWK", hs256(t, jwkKey, hdr.KID, forgedPayload), badSignature},
		{"HS256 with the provider's JWKS document", hs256(t, jwksDoc, hdr.KID, forgedPayload), badSignature},
		{"garbage", "garbage", malformed},
		{"three garbage parts", "a.b.c", malformed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, body, h := authDo(t, "GET", target, tc.token, "")
			if code != 401 {
				t.Errorf("status %d, want 401", code)
			}
			if got, want := h.Get("WWW-Authenticate"), `Bearer realm="cmts", error="invalid_token"`; got != want {
				t.Errorf("WWW-Authenticate %q, want %q", got, want)
			}
			if ct := h.Get("Content-Type"); !strings.HasPrefix(ct, "application/fhir+json") {
				t.Errorf("Content-Type %q, want application/fhir+json", ct)
			}
			issues, _ := body["issue"].([]any)
			if body["resourceType"] != "OperationOutcome" || len(issues) == 0 {
				t.Fatalf("body %v, want an OperationOutcome", body)
			}
			issue, _ := issues[0].(map[string]any)
			if issue["severity"] != "error" || issue["code"] != "login" {
				t.Errorf("issue %v, want an error of code login", issue)
			}
			// The reason tells the refusals apart, so that each case is
			// refused for what it tests.
			if d, _ := issue["diagnostics"].(string); !strings.Contains(d, tc.reason) {
				t.Errorf("diagnostics %q, want %q", d, tc.reason)
			}
			if b := must(json.Marshal(body)); strings.Contains(string(b), "李四") {
				t.Errorf("the refusal reveals the patient: %s", b)
			}
		})
	}

	// The tokens made bad above were good ones of a trusted provider: the
	// same token, unaltered, is accepted (so the refusals are the
	// alterations').
	if code, body, _ := authDo(t, "GET", target, good, ""); code != 200 {
		t.Errorf("GET with the good token: %d %v", code, body)
	}
	if exp, _ := claims["exp"].(float64); time.Until(time.Unix(int64(exp), 0)) < time.Minute {
		t.Errorf("the good token expires at %v: too soon for the cases above to be about their alterations", exp)
	}
}

// jwtParts splits a compact JWS.
func jwtParts(t *testing.T, tok string) (head, payload, sig string) {
	t.Helper()
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		t.Fatalf("not a compact JWS: %q", tok)
	}
	return parts[0], parts[1], parts[2]
}

// jsonPart decodes a base64url JSON part of a JWS.
func jsonPart(t *testing.T, part string, v any) {
	t.Helper()
	b, err := base64.RawURLEncoding.DecodeString(part)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatal(err)
	}
}

// base64JSON encodes v as a base64url JSON part of a JWS.
func base64JSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

// hs256 signs payload by hand with HMAC-SHA256 (go-jose refuses to use key
// material that looks like a public key as an HMAC secret, which is the
// attack).
func hs256(t *testing.T, secret []byte, kid, payload string) string {
	t.Helper()
	head := base64JSON(t, map[string]any{"alg": "HS256", "typ": "at+jwt", "kid": kid})
	mac := hmac.New(sha256.New, secret)
	mac.Write([]byte(head + "." + payload))
	return head + "." + payload + "." + base64.RawURLEncoding.EncodeToString(mac.Sum(nil))
}
