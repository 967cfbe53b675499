package auth

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

// signingAlgs are the JWS algorithms accepted: asymmetric only, so `none` and
// HMAC (which a verifier holding only public keys could be tricked into
// checking with a public key as the secret) never parse.
var signingAlgs = []jose.SignatureAlgorithm{
	jose.RS256, jose.RS384, jose.RS512, jose.PS256, jose.PS384, jose.PS512,
	jose.ES256, jose.ES384, jose.ES512, jose.EdDSA,
}

func signingAlgNames() []string {
	out := make([]string, len(signingAlgs))
	for i, a := range signingAlgs {
		out[i] = string(a)
	}
	return out
}

// keySet is an issuer's JWKS, fetched when a token names a key id it does
// not hold (a rotation), at most once per minRefresh. Unlike go-oidc's
// RemoteKeySet it does not refetch when a known key fails to verify, so a
// stream of forged tokens costs no fetches. It implements oidc.KeySet.
type keySet struct {
	url        string
	client     *http.Client
	minRefresh time.Duration
	now        func() time.Time

	fetchMu sync.Mutex // one fetch at a time

	mu      sync.RWMutex
	keys    []jose.JSONWebKey
	fetched time.Time
}

var errUnknownKey = errors.New("no key of the issuer verifies the token")

// VerifySignature checks the JWS signature and returns the payload.
func (k *keySet) VerifySignature(ctx context.Context, raw string) ([]byte, error) {
	jws, err := jose.ParseSigned(raw, signingAlgs)
	if err != nil {
		return nil, err
	}
	if len(jws.Signatures) != 1 {
		return nil, errors.New("not exactly one signature")
	}
	kid := jws.Signatures[0].Header.KeyID
	payload, known, err := k.verifyCached(jws, kid)
	if known {
		return payload, err
	}
	if err := k.refresh(ctx); err != nil {
		return nil, err
	}
	payload, _, err = k.verifyCached(jws, kid)
	return payload, err
}

// verifyCached verifies with the cached keys; known reports whether a key
// with the token's kid is cached (then a failure is final).
func (k *keySet) verifyCached(jws *jose.JSONWebSignature, kid string) (payload []byte, known bool, err error) {
	k.mu.RLock()
	keys := k.keys
	k.mu.RUnlock()
	for i := range keys {
		if kid != "" && keys[i].KeyID != kid {
			continue
		}
		if kid != "" {
			known = true
		}
		if p, err := jws.Verify(&keys[i]); err == nil {
			return p, true, nil
		}
	}
	return nil, known, errUnknownKey
}

// refresh fetches the JWKS unless it was fetched less than minRefresh ago.
func (k *keySet) refresh(ctx context.Context) error {
	k.fetchMu.Lock()
	defer k.fetchMu.Unlock()
	k.mu.RLock()
	last := k.fetched
	k.mu.RUnlock()
	now := k.now()
	if !last.IsZero() && now.Sub(last) < k.minRefresh {
		return nil
	}
	// The fetch serves every request waiting for the key, not only the one
	// that started it.
	fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	keys, err := k.fetch(fctx)
	k.mu.Lock()
	defer k.mu.Unlock()
	// A failed fetch counts too, so that an unreachable JWKS is not asked
	// again for every request.
	k.fetched = now
	if err != nil {
		return err
	}
	k.keys = keys
	return nil
}

func (k *keySet) fetch(ctx context.Context) ([]jose.JSONWebKey, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, k.url, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "application/json")
	resp, err := k.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("fetching JWKS: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return nil, fmt.Errorf("fetching JWKS: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("fetching JWKS: %s", resp.Status)
	}
	var set struct {
		Keys []json.RawMessage `json:"keys"`
	}
	if err := json.Unmarshal(body, &set); err != nil {
		return nil, fmt.Errorf("JWKS: %w", err)
	}
	var keys []jose.JSONWebKey
	for _, raw := range set.Keys {
		var key jose.JSONWebKey
		// Keys of types go-jose does not know, symmetric keys and
		// encryption keys are skipped, not fatal: a JWKS may hold them.
		if err := key.UnmarshalJSON(raw); err != nil || !key.Valid() || key.Use == "enc" {
			continue
		}
		if _, symmetric := key.Key.([]byte); symmetric {
			continue
		}
		keys = append(keys, key.Public())
	}
	return keys, nil
}
