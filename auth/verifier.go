package auth

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"github.com/fmtbank/cmts/fhir"
)

// Options tune a Verifier; the zero value is for production.
type Options struct {
	// HTTPClient fetches discovery documents and JWKS (default: a client
	// with a 10 s timeout).
	HTTPClient *http.Client
	// Now is the clock (default time.Now).
	Now func() time.Time
	// Skew is the clock skew allowed on exp and nbf (default 60 s).
	Skew time.Duration
	// MinRefresh is the shortest time between two fetches of one issuer's
	// JWKS or discovery document (default 10 s).
	MinRefresh time.Duration
	// CacheSize is how many verified tokens are remembered until they
	// expire, so that a client reusing its token is not checked by RSA on
	// every request (default 10000; negative: no cache).
	CacheSize int
	Logger    *slog.Logger
}

// Verifier authenticates requests by their Bearer JWT access token, issued
// by one of the trust file's issuers. It implements fhir.Authenticator and,
// for the trust file's smart.issuer, fhir.SMARTConfigurer.
type Verifier struct {
	trust   *Trust
	opts    Options
	issuers map[string]*issuerState

	cacheMu sync.RWMutex
	cache   map[string]verified // by the raw token
}

// verified is a token that passed every check, and when it stops being valid.
type verified struct {
	p   *fhir.Principal
	exp time.Time
}

var (
	_ fhir.Authenticator   = (*Verifier)(nil)
	_ fhir.SMARTConfigurer = (*Verifier)(nil)
)

// NewVerifier returns a Verifier for the trust file. Discovery documents are
// fetched on first use, so a provider that is down at start-up does not stop
// the server; its tokens are refused until it answers.
func NewVerifier(trust *Trust, opts Options) (*Verifier, error) {
	if trust == nil {
		return nil, errors.New("auth: no trust file")
	}
	if err := trust.check(); err != nil {
		return nil, err
	}
	if opts.HTTPClient == nil {
		opts.HTTPClient = &http.Client{Timeout: 10 * time.Second}
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Skew <= 0 {
		opts.Skew = 60 * time.Second
	}
	if opts.MinRefresh <= 0 {
		opts.MinRefresh = 10 * time.Second
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.CacheSize == 0 {
		opts.CacheSize = 10000
	}
	v := &Verifier{trust: trust, opts: opts, issuers: map[string]*issuerState{}, cache: map[string]verified{}}
	for _, is := range trust.Issuers {
		v.issuers[is.Issuer] = &issuerState{cfg: is, opts: &v.opts}
	}
	return v, nil
}

// issuerState is one trusted issuer: its discovery document and keys, got
// on first use.
type issuerState struct {
	cfg  Issuer
	opts *Options

	mu        sync.Mutex
	verifier  *oidc.IDTokenVerifier
	discovery *discovery
	tried     time.Time
	err       error
}

// discovery is what we read from an issuer's openid-configuration.
type discovery struct {
	Issuer                            string   `json:"issuer"`
	JWKSURI                           string   `json:"jwks_uri"`
	AuthorizationEndpoint             string   `json:"authorization_endpoint"`
	TokenEndpoint                     string   `json:"token_endpoint"`
	TokenEndpointAuthMethodsSupported []string `json:"token_endpoint_auth_methods_supported"`
	GrantTypesSupported               []string `json:"grant_types_supported"`
	ResponseTypesSupported            []string `json:"response_types_supported"`
	RegistrationEndpoint              string   `json:"registration_endpoint"`
	IntrospectionEndpoint             string   `json:"introspection_endpoint"`
	RevocationEndpoint                string   `json:"revocation_endpoint"`
	ClaimsSupported                   []string `json:"claims_supported"`
}

// get returns the issuer's verifier, discovering it if need be (at most
// once per MinRefresh after a failure).
func (s *issuerState) get(ctx context.Context) (*oidc.IDTokenVerifier, *discovery, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.verifier != nil {
		return s.verifier, s.discovery, nil
	}
	now := s.opts.Now()
	if !s.tried.IsZero() && now.Sub(s.tried) < s.opts.MinRefresh {
		return nil, nil, s.err
	}
	s.tried = now
	// The discovery outlives the request that triggered it.
	dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	p, err := oidc.NewProvider(oidc.ClientContext(dctx, s.opts.HTTPClient), s.cfg.Issuer)
	if err != nil {
		s.err = fmt.Errorf("discovery of %s: %w", s.cfg.Issuer, err)
		return nil, nil, s.err
	}
	var d discovery
	if err := p.Claims(&d); err != nil || d.JWKSURI == "" {
		s.err = fmt.Errorf("discovery of %s: no jwks_uri (%v)", s.cfg.Issuer, err)
		return nil, nil, s.err
	}
	ks := &keySet{url: d.JWKSURI, client: s.opts.HTTPClient, minRefresh: s.opts.MinRefresh, now: s.opts.Now}
	s.verifier = oidc.NewVerifier(s.cfg.Issuer, ks, &oidc.Config{
		ClientID:             s.cfg.Audience,
		SupportedSigningAlgs: signingAlgNames(),
		// exp and nbf are checked below with our clock and skew; go-oidc
		// allows no skew on exp and a fixed five minutes on nbf.
		SkipExpiryCheck: true,
	})
	s.discovery = &d
	s.err = nil
	return s.verifier, s.discovery, nil
}

// claims are the access-token claims we read beyond go-oidc's.
type claims struct {
	Issuer   string       `json:"iss"`
	Subject  string       `json:"sub"`
	ClientID string       `json:"client_id"`
	AZP      string       `json:"azp"`
	Exp      *json.Number `json:"exp"`
	NBF      *json.Number `json:"nbf"`
	Scope    string       `json:"scope"`
	SCP      stringOrList `json:"scp"`
	Patient  string       `json:"patient"`
	raw      map[string]any
}

type stringOrList []string

func (s *stringOrList) UnmarshalJSON(b []byte) error {
	var one string
	if err := json.Unmarshal(b, &one); err == nil {
		*s = strings.Fields(one)
		return nil
	}
	var list []string
	if err := json.Unmarshal(b, &list); err != nil {
		return err
	}
	*s = list
	return nil
}

// Authenticate verifies the request's Bearer token and returns its
// principal. Every failure is a 401 *fhir.Error; the reason is in its
// diagnostics and cause, never the token.
func (v *Verifier) Authenticate(r *http.Request) (*fhir.Principal, error) {
	raw, ok := bearerToken(r)
	if !ok {
		return nil, fhir.Unauthorized("An access token is required (Authorization: Bearer ...)",
			"需要访问令牌（Authorization: Bearer ...）")
	}
	return v.Verify(r.Context(), raw)
}

// Verify checks a raw JWT access token and returns its principal. A token
// verified before is taken from the cache until its exp (plus the skew):
// tokens are short-lived, and a key withdrawn from the JWKS stops new
// tokens, not those already accepted.
func (v *Verifier) Verify(ctx context.Context, raw string) (*fhir.Principal, error) {
	now := v.opts.Now()
	v.cacheMu.RLock()
	hit, ok := v.cache[raw]
	v.cacheMu.RUnlock()
	if ok && now.Add(-v.opts.Skew).Before(hit.exp) {
		return clonePrincipal(hit.p), nil
	}
	p, exp, err := v.verify(ctx, raw, now)
	if err != nil {
		return nil, err
	}
	v.remember(raw, p, exp, now)
	return clonePrincipal(p), nil
}

// clonePrincipal copies a cached principal, so that no request can change
// what another one sees.
func clonePrincipal(p *fhir.Principal) *fhir.Principal {
	cp := *p
	cp.Roles = slices.Clone(p.Roles)
	cp.Scopes = slices.Clone(p.Scopes)
	cp.Grants = slices.Clone(p.Grants)
	return &cp
}

// remember caches a verified token; when the cache is full, expired tokens
// go, and if that frees nothing, all of them.
func (v *Verifier) remember(raw string, p *fhir.Principal, exp, now time.Time) {
	if v.opts.CacheSize < 0 {
		return
	}
	v.cacheMu.Lock()
	defer v.cacheMu.Unlock()
	if len(v.cache) >= v.opts.CacheSize {
		for k, e := range v.cache {
			if !now.Add(-v.opts.Skew).Before(e.exp) {
				delete(v.cache, k)
			}
		}
		if len(v.cache) >= v.opts.CacheSize {
			clear(v.cache)
		}
	}
	v.cache[raw] = verified{p: p, exp: exp}
}

// verify checks a token from scratch: issuer, signature, audience, times.
func (v *Verifier) verify(ctx context.Context, raw string, now time.Time) (*fhir.Principal, time.Time, error) {
	iss, err := unverifiedIssuer(raw)
	if err != nil {
		return nil, time.Time{}, invalidToken("malformed token", err)
	}
	st, ok := v.issuers[iss]
	if !ok {
		return nil, time.Time{}, invalidToken("issuer not trusted", nil)
	}
	verifier, _, err := st.get(ctx)
	if err != nil {
		v.opts.Logger.Warn("identity provider unavailable", "issuer", iss, "err", err)
		return nil, time.Time{}, invalidToken("the issuer's keys cannot be had now", err)
	}
	tok, err := verifier.Verify(ctx, raw)
	if err != nil {
		return nil, time.Time{}, invalidToken("signature, issuer or audience check failed", err)
	}
	var c claims
	if err := tok.Claims(&c); err != nil {
		return nil, time.Time{}, invalidToken("malformed claims", err)
	}
	if err := tok.Claims(&c.raw); err != nil {
		return nil, time.Time{}, invalidToken("malformed claims", err)
	}
	if c.Exp == nil {
		return nil, time.Time{}, invalidToken("no exp", nil)
	}
	exp, err := c.Exp.Float64()
	if err != nil || now.Add(-v.opts.Skew).After(unixTime(exp)) {
		return nil, time.Time{}, invalidToken("expired", err)
	}
	if c.NBF != nil {
		nbf, err := c.NBF.Float64()
		if err != nil || now.Add(v.opts.Skew).Before(unixTime(nbf)) {
			return nil, time.Time{}, invalidToken("not yet valid", err)
		}
	}
	p, err := v.principal(st.cfg, &c)
	return p, unixTime(exp), err
}

// principal maps verified claims to a Principal.
func (v *Verifier) principal(is Issuer, c *claims) (*fhir.Principal, error) {
	tenantID := is.Tenant
	if is.TenantClaim != "" {
		tenantID, _ = c.raw[is.TenantClaim].(string)
	}
	tenant, ok := v.trust.tenant(tenantID)
	if !ok {
		return nil, invalidToken("the token's tenant is not served here", nil)
	}
	p := &fhir.Principal{
		Tenant:     tenant.ID,
		TenantKind: tenant.Kind,
		Subject:    c.Subject,
		Issuer:     is.Issuer,
		ClientID:   c.ClientID,
		Patient:    c.Patient,
	}
	if p.ClientID == "" {
		p.ClientID = c.AZP
	}
	p.Scopes = strings.Fields(c.Scope)
	if len(p.Scopes) == 0 {
		p.Scopes = c.SCP
	}
	p.Grants = fhir.ParseScopes(p.Scopes)
	p.Roles = roles(c.raw[v.trust.RolesClaim])
	// RFC 9068: a token with no resource owner (client_credentials) has the
	// client as its subject. Such a client without roles acts as `system`.
	if len(p.Roles) == 0 && (c.Subject == "" || c.Subject == p.ClientID) {
		p.Roles = []fhir.Role{fhir.RoleSystem}
	}
	return p, nil
}

// roles reads the known roles from a claim (a string array, or a single
// space-separated string); roles we do not know are ignored, as an IdP may
// carry roles of other applications.
func roles(claim any) []fhir.Role {
	var names []string
	switch c := claim.(type) {
	case string:
		names = strings.Fields(c)
	case []any:
		for _, n := range c {
			if s, ok := n.(string); ok {
				names = append(names, s)
			}
		}
	}
	var out []fhir.Role
	for _, n := range names {
		switch r := fhir.Role(n); r {
		case fhir.RoleClinician, fhir.RoleResearcher, fhir.RoleRegulator, fhir.RoleBankStaff, fhir.RoleAdmin:
			out = append(out, r)
		}
	}
	return out
}

func unixTime(sec float64) time.Time {
	return time.Unix(0, int64(sec*float64(time.Second)))
}

// bearerToken returns the token of an `Authorization: Bearer` header.
func bearerToken(r *http.Request) (string, bool) {
	h := r.Header.Get("Authorization")
	scheme, tok, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	tok = strings.TrimSpace(tok)
	return tok, tok != ""
}

// unverifiedIssuer reads `iss` from a JWT's payload without checking
// anything, to choose among the trusted issuers (whose keys then check it).
func unverifiedIssuer(raw string) (string, error) {
	parts := strings.Split(raw, ".")
	if len(parts) != 3 {
		return "", errors.New("not a JWS compact serialization")
	}
	b, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return "", err
	}
	var c struct {
		Issuer string `json:"iss"`
	}
	if err := json.Unmarshal(b, &c); err != nil {
		return "", err
	}
	if c.Issuer == "" {
		return "", errors.New("no iss")
	}
	return c.Issuer, nil
}

// invalidToken is the 401 of every token failure.
func invalidToken(reason string, cause error) *fhir.Error {
	e := fhir.Unauthorized("The access token is not valid", "访问令牌无效").WithDiagnostics(reason)
	e.Cause = cause
	return e
}
