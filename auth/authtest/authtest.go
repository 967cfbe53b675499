// Package authtest runs a real OpenID Provider (npm oidc-provider) on
// loopback for tests: JWT access tokens by client_credentials (and, for
// SMART launches, authorization code with PKCE through the provider's
// development login pages), with the cmts claims (cmts_roles, cmts_tenant,
// patient), SMART's fhirUser claim in id_tokens (Patient/<login>: the user
// who signs in stands for a patient), and key rotation while it runs.
//
// It is an ordinary package so that tests in any folder can import it, but
// it is meant to be used only from tests.
package authtest

import (
	"bufio"
	_ "embed"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fmtbank/cmts/fhir/fhirtest"
)

//go:embed op.mjs
var script []byte

// Client is a client registered with the provider.
type Client struct {
	ID     string `json:"client_id"`
	Secret string `json:"client_secret,omitempty"`
	// Scopes are the SMART scopes the client may be granted (space-separated).
	Scopes string `json:"cmts_scopes,omitempty"`
	// Roles, Tenant and Patient become the cmts_roles, cmts_tenant and
	// patient claims of its tokens when set.
	Roles   []string `json:"cmts_roles,omitempty"`
	Tenant  string   `json:"cmts_tenant,omitempty"`
	Patient string   `json:"patient,omitempty"`
	// NotBeforeIn puts the tokens' nbf this many seconds after issue.
	NotBeforeIn int `json:"nbf_offset,omitempty"`
	// ExpiredFor dates the tokens back so that they expired this many
	// seconds before they were issued (signed as any other token).
	ExpiredFor int `json:"expired_for,omitempty"`
	// Audience replaces the provider's audience in this client's tokens.
	Audience string `json:"audience,omitempty"`
	// RedirectURIs make it an authorization-code client (public, PKCE,
	// when Secret is empty); otherwise it is a client_credentials client.
	RedirectURIs []string `json:"redirect_uris"`

	GrantTypes              []string `json:"grant_types"`
	ResponseTypes           []string `json:"response_types"`
	TokenEndpointAuthMethod string   `json:"token_endpoint_auth_method,omitempty"`
}

// Config configures a provider.
type Config struct {
	// Audience is the `aud` of the access tokens (default "cmts").
	Audience string `json:"audience"`
	// TTL is the access tokens' lifetime in seconds (default 300).
	TTL     int      `json:"ttl,omitempty"`
	Clients []Client `json:"clients"`
}

// Provider is a running OpenID Provider.
type Provider struct {
	// Issuer is its issuer URL (http://127.0.0.1:PORT).
	Issuer string

	mu    sync.Mutex
	stdin io.WriteCloser
	lines *bufio.Scanner
}

// Start starts a provider for the test and stops it at the test's end. It
// skips the test (fails it under CI) when node or the npm packages are
// missing.
func Start(t testing.TB, cfg Config) *Provider {
	t.Helper()
	modules := fhirtest.NodeModules(t)
	if _, err := exec.LookPath("node"); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("authtest: node not found: %v", err)
		}
		t.Skipf("authtest: node not found: %v", err)
	}
	if cfg.Audience == "" {
		cfg.Audience = "cmts"
	}
	if cfg.Clients == nil {
		cfg.Clients = []Client{} // the provider wants a list, not null
	}
	for i := range cfg.Clients {
		c := &cfg.Clients[i]
		if len(c.RedirectURIs) == 0 {
			c.RedirectURIs = []string{}
			c.GrantTypes = []string{"client_credentials"}
			c.ResponseTypes = []string{}
		} else {
			c.GrantTypes = []string{"authorization_code", "refresh_token"}
			c.ResponseTypes = []string{"code"}
			if c.Secret == "" {
				c.TokenEndpointAuthMethod = "none"
			}
		}
	}
	dir := t.TempDir()
	b, err := json.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	cfgPath, scriptPath := filepath.Join(dir, "config.json"), filepath.Join(dir, "op.mjs")
	if err := os.WriteFile(cfgPath, b, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(scriptPath, script, 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("node", scriptPath, modules, cfgPath)
	cmd.Env = append(os.Environ(), "NODE_ENV=test")
	var stderr strings.Builder
	cmd.Stderr = &stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("authtest: starting node: %v", err)
	}
	t.Cleanup(func() {
		stdin.Close() // the script exits when stdin closes
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			cmd.Process.Kill()
			<-done
		}
	})
	p := &Provider{stdin: stdin, lines: bufio.NewScanner(stdout)}
	var hello struct {
		Issuer string `json:"issuer"`
	}
	if err := p.readLine(&hello); err != nil {
		t.Fatalf("authtest: provider did not start: %v\n%s", err, stderr.String())
	}
	p.Issuer = hello.Issuer
	return p
}

// readLine reads the script's next JSON line, within 60 s.
func (p *Provider) readLine(v any) error {
	type result struct {
		line []byte
		err  error
	}
	ch := make(chan result, 1)
	go func() {
		for p.lines.Scan() {
			// oidc-provider writes its own notices; ours are JSON.
			if b := p.lines.Bytes(); len(b) > 0 && b[0] == '{' {
				ch <- result{line: append([]byte(nil), b...)}
				return
			}
		}
		err := p.lines.Err()
		if err == nil {
			err = io.EOF
		}
		ch <- result{err: err}
	}()
	select {
	case r := <-ch:
		if r.err != nil {
			return r.err
		}
		return json.Unmarshal(r.line, v)
	case <-time.After(60 * time.Second):
		return fmt.Errorf("no answer in 60 s")
	}
}

// Rotate makes the provider sign with a new key from now on (the old key
// stays published) and returns the new key's id.
func (p *Provider) Rotate(t testing.TB) string {
	t.Helper()
	p.mu.Lock()
	defer p.mu.Unlock()
	if _, err := io.WriteString(p.stdin, "rotate\n"); err != nil {
		t.Fatalf("authtest: rotate: %v", err)
	}
	var r struct {
		KID string `json:"kid"`
	}
	if err := p.readLine(&r); err != nil || r.KID == "" {
		t.Fatalf("authtest: rotate: %v", err)
	}
	return r.KID
}

// Token gets an access token for a client_credentials client, with the
// scopes asked for (space-separated).
func (p *Provider) Token(t testing.TB, clientID, secret, scope string) string {
	t.Helper()
	form := url.Values{"grant_type": {"client_credentials"}, "scope": {scope}}
	req, err := http.NewRequest(http.MethodPost, p.Issuer+"/token", strings.NewReader(form.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(url.QueryEscape(clientID), url.QueryEscape(secret))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("authtest: token request: %v", err)
	}
	defer resp.Body.Close()
	var tr struct {
		AccessToken string `json:"access_token"`
		Error       string `json:"error"`
		Description string `json:"error_description"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&tr); err != nil || tr.AccessToken == "" {
		t.Fatalf("authtest: token for %s: %s %v %s: %s", clientID, resp.Status, err, tr.Error, tr.Description)
	}
	return tr.AccessToken
}
