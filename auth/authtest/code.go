package authtest

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"html"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strings"
	"testing"
)

// TokenResponse is a token endpoint's answer.
type TokenResponse struct {
	AccessToken string `json:"access_token"`
	TokenType   string `json:"token_type"`
	ExpiresIn   int    `json:"expires_in"`
	Scope       string `json:"scope"`
	IDToken     string `json:"id_token"`
	// Patient is the SMART launch context, when launch/patient was granted.
	Patient string `json:"patient"`
}

var formAction = regexp.MustCompile(`<form[^>]*action="([^"]+)"`)

// AuthorizationCode runs the authorization-code flow with PKCE (S256) as a
// browser would, signing in on the provider's development pages as login
// (who is also the patient in context when launch/patient is asked for) and
// consenting, then redeems the code for a public client.
func (p *Provider) AuthorizationCode(t testing.TB, clientID, redirectURI, scope, login string) TokenResponse {
	t.Helper()
	verifier := rand.Text() + rand.Text()
	sum := sha256.Sum256([]byte(verifier))
	state := rand.Text()
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	var code string
	browser := &http.Client{Jar: jar, CheckRedirect: func(req *http.Request, _ []*http.Request) error {
		if strings.HasPrefix(req.URL.String(), redirectURI) {
			q := req.URL.Query()
			if q.Get("state") != state {
				return fmt.Errorf("state %q came back as %q", state, q.Get("state"))
			}
			if e := q.Get("error"); e != "" {
				return fmt.Errorf("authorization error %s: %s", e, q.Get("error_description"))
			}
			code = q.Get("code")
			return http.ErrUseLastResponse
		}
		return nil
	}}
	authURL := p.Issuer + "/auth?" + url.Values{
		"client_id": {clientID}, "response_type": {"code"}, "redirect_uri": {redirectURI},
		"scope": {scope}, "state": {state},
		"code_challenge": {base64.RawURLEncoding.EncodeToString(sum[:])}, "code_challenge_method": {"S256"},
	}.Encode()
	page, err := fetchPage(browser, http.MethodGet, authURL, nil)
	// The login page, then the consent page, then the redirect.
	for _, form := range []url.Values{
		{"prompt": {"login"}, "login": {login}, "password": {"any"}},
		{"prompt": {"consent"}},
	} {
		if err != nil || code != "" {
			break
		}
		m := formAction.FindStringSubmatch(page)
		if m == nil {
			t.Fatalf("authtest: no form on the provider's page:\n%.2000s", page)
		}
		action, perr := url.Parse(html.UnescapeString(m[1]))
		if perr != nil {
			t.Fatal(perr)
		}
		base, _ := url.Parse(p.Issuer)
		page, err = fetchPage(browser, http.MethodPost, base.ResolveReference(action).String(), form)
	}
	if err != nil {
		t.Fatalf("authtest: authorization: %v", err)
	}
	if code == "" {
		t.Fatalf("authtest: no code came back; last page:\n%.2000s", page)
	}
	resp, err := http.PostForm(p.Issuer+"/token", url.Values{
		"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {redirectURI},
		"client_id": {clientID}, "code_verifier": {verifier},
	})
	if err != nil {
		t.Fatalf("authtest: token: %v", err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var tr TokenResponse
	if err := json.Unmarshal(b, &tr); err != nil || tr.AccessToken == "" {
		t.Fatalf("authtest: token: %s %s", resp.Status, b)
	}
	return tr
}

// fetchPage sends a request and returns the body of the page it ends on.
func fetchPage(c *http.Client, method, u string, form url.Values) (string, error) {
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequest(method, u, body)
	if err != nil {
		return "", err
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	resp, err := c.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			return "", ue.Err
		}
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return string(b), err
}
