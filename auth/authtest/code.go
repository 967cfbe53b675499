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
	authURL := p.Issuer + "/auth?" + url.Values{
		"client_id": {clientID}, "response_type": {"code"}, "redirect_uri": {redirectURI},
		"scope": {scope}, "state": {state},
		"code_challenge": {base64.RawURLEncoding.EncodeToString(sum[:])}, "code_challenge_method": {"S256"},
	}.Encode()
	back := p.SignIn(t, nil, authURL, redirectURI, login)
	q := back.Query()
	if q.Get("state") != state {
		t.Fatalf("authtest: state %q came back as %q", state, q.Get("state"))
	}
	resp, err := http.PostForm(p.Issuer+"/token", url.Values{
		"grant_type": {"authorization_code"}, "code": {q.Get("code")}, "redirect_uri": {redirectURI},
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

// SignIn plays the user's browser from an authorization request URL (made by
// the test or by a client library): it signs in on the provider's
// development pages as login, consents, and returns the URL the provider
// redirected to under redirectURI, which carries the code and the state. It
// fails the test when the provider answers with an error instead. jar is the
// browser's cookie jar (nil for a fresh one), so that a test can go on to
// follow the redirect with the cookies an app set before.
func (p *Provider) SignIn(t testing.TB, jar http.CookieJar, authURL, redirectURI, login string) *url.URL {
	t.Helper()
	if jar == nil {
		var err error
		if jar, err = cookiejar.New(nil); err != nil {
			t.Fatal(err)
		}
	}
	var back *url.URL
	browser := &http.Client{Jar: jar, CheckRedirect: func(req *http.Request, _ []*http.Request) error {
		if strings.HasPrefix(req.URL.String(), redirectURI) {
			q := req.URL.Query()
			if e := q.Get("error"); e != "" {
				return fmt.Errorf("authorization error %s: %s", e, q.Get("error_description"))
			}
			back = req.URL
			return http.ErrUseLastResponse
		}
		return nil
	}}
	page, err := fetchPage(browser, http.MethodGet, authURL, nil)
	// The login page, then the consent page, then the redirect.
	for _, form := range []url.Values{
		{"prompt": {"login"}, "login": {login}, "password": {"any"}},
		{"prompt": {"consent"}},
	} {
		if err != nil || back != nil {
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
	if back == nil || back.Query().Get("code") == "" {
		t.Fatalf("authtest: no code came back; last page:\n%.2000s", page)
	}
	return back
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
