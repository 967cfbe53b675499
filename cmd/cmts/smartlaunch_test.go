package main

import (
	"bufio"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/fmtbank/cmts/auth/authtest"
	"github.com/fmtbank/cmts/fhir/fhirtest"
	"github.com/google/go-cmp/cmp"
)

// TestSMARTStandaloneLaunch runs a SMART standalone launch end to end: an app
// on npm fhirclient's Node API, given only the FHIR base, finds the
// authorization and token endpoints in our .well-known/smart-configuration,
// sends the browser to a real OpenID Provider with a PKCE S256 challenge;
// the user signs in and consents; the app redeems the code with its verifier
// and reads the patient in context, that patient's Observations and the user
// the id_token names (fhirUser) from the server with the access token.
func TestSMARTStandaloneLaunch(t *testing.T) {
	t.Parallel()
	const (
		clientID = "wmt-follow-up"
		scope    = "launch/patient openid fhirUser patient/*.rs"
		login    = "p-7" // the dev login's user stands for the patient in context
	)
	app := startSMARTApp(t, fhirtest.NodeModules(t))
	redirectURI := app.url + "/callback"
	op := authtest.Start(t, authtest.Config{Clients: []authtest.Client{
		{ID: "ehr", Secret: secret, Scopes: "system/*.cruds"},
		{ID: clientID, RedirectURIs: []string{redirectURI}, Scopes: "patient/*.rs", Roles: []string{"clinician"}},
	}})
	fhirBase := startTrusted(t, op)

	// The SMART document as SMART App Launch 2.x asks, for what we honour.
	code, doc, h := authDo(t, "GET", fhirBase+"/.well-known/smart-configuration", "", "")
	if code != 200 || !strings.HasPrefix(h.Get("Content-Type"), "application/json") {
		t.Fatalf("smart-configuration: %d %s %v", code, h.Get("Content-Type"), doc)
	}
	for k, want := range map[string]any{
		"issuer":                           op.Issuer, // the provider supports fhirUser: sso-openid-connect
		"authorization_endpoint":           op.Issuer + "/auth",
		"token_endpoint":                   op.Issuer + "/token",
		"grant_types_supported":            []any{"authorization_code", "client_credentials"},
		"response_types_supported":         []any{"code"},
		"code_challenge_methods_supported": []any{"S256"},
	} {
		if diff := cmp.Diff(want, doc[k]); diff != "" {
			t.Errorf("smart-configuration %s (-want +got):\n%s", k, diff)
		}
	}
	for k, want := range map[string][]string{
		"capabilities":     {"launch-standalone", "client-public", "context-standalone-patient", "permission-patient", "permission-v2", "sso-openid-connect"},
		"scopes_supported": {"openid", "fhirUser", "launch/patient", "patient/*.rs"},
	} {
		got, _ := doc[k].([]any)
		for _, w := range want {
			if !slices.Contains(got, any(w)) {
				t.Errorf("smart-configuration %s %v lacks %s", k, got, w)
			}
		}
	}

	// The hospital's EHR records two recipients and an observation of each.
	ehr := op.Token(t, "ehr", secret, "system/*.cruds")
	for _, r := range []struct{ path, body string }{
		{"Patient/p-7", `{"resourceType":"Patient","id":"p-7","name":[{"text":"王小明"}],"gender":"male"}`},
		{"Patient/p-8", `{"resourceType":"Patient","id":"p-8","gender":"female"}`},
		{"Observation/o-7", `{"resourceType":"Observation","id":"o-7","status":"final","code":{"text":"partial Mayo score"},"subject":{"reference":"Patient/p-7"},"valueInteger":2}`},
		{"Observation/o-8", `{"resourceType":"Observation","id":"o-8","status":"final","code":{"text":"partial Mayo score"},"subject":{"reference":"Patient/p-8"},"valueInteger":6}`},
	} {
		if code, body, _ := authDo(t, "PUT", fhirBase+"/"+r.path, ehr, r.body); code != 201 {
			t.Fatalf("PUT %s: %d %v", r.path, code, body)
		}
	}
	app.configure(t, map[string]string{"iss": fhirBase, "clientId": clientID, "scope": scope})

	// The browser opens the app's launch page and is sent to the provider.
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	browser := &http.Client{Jar: jar, Timeout: 30 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	code, body, h := browse(t, browser, app.url+"/launch")
	if code != http.StatusFound {
		t.Fatalf("GET /launch: %d %s", code, body)
	}
	authURL, err := url.Parse(h.Get("Location"))
	if err != nil {
		t.Fatal(err)
	}
	q := authURL.Query()
	if got, want := authURL.Scheme+"://"+authURL.Host+authURL.Path, op.Issuer+"/auth"; got != want {
		t.Errorf("the app sent the browser to %s, want the provider's authorization endpoint %s", got, want)
	}
	for k, want := range map[string]string{
		"response_type": "code", "client_id": clientID, "redirect_uri": redirectURI, "scope": scope,
		"aud": fhirBase, "code_challenge_method": "S256",
	} {
		if got := q.Get(k); got != want {
			t.Errorf("authorization request %s = %q, want %q", k, got, want)
		}
	}
	// A SHA-256 digest in unpadded base64url is 43 characters.
	if c := q.Get("code_challenge"); len(c) != 43 {
		t.Errorf("code_challenge %q, want an S256 challenge", c)
	}

	// The user signs in and consents; the provider sends the browser back to
	// the app, which completes the launch and reads.
	back := op.SignIn(t, jar, authURL.String(), redirectURI, login)
	if got := back.Query().Get("state"); got != q.Get("state") || got == "" {
		t.Errorf("state %q came back as %q", q.Get("state"), got)
	}
	code, body, _ = browse(t, browser, back.String())
	if code != http.StatusOK {
		t.Fatalf("GET the redirect URI: %d %s", code, body)
	}
	var seen struct {
		ServerURL            string   `json:"serverUrl"`
		AuthorizeURI         string   `json:"authorizeUri"`
		TokenURI             string   `json:"tokenUri"`
		CodeChallengeMethods []string `json:"codeChallengeMethods"`
		CodeChallenge        string   `json:"codeChallenge"`
		CodeVerifier         string   `json:"codeVerifier"`
		PatientID            string   `json:"patientId"`
		FHIRUser             string   `json:"fhirUser"`
		TokenResponse        struct {
			AccessToken string `json:"access_token"`
			TokenType   string `json:"token_type"`
			Scope       string `json:"scope"`
			Patient     string `json:"patient"`
		} `json:"tokenResponse"`
		Authorization string `json:"authorization"`
		Patient       struct {
			ID   string `json:"id"`
			Name []struct {
				Text string `json:"text"`
			} `json:"name"`
		} `json:"patient"`
		Observations struct {
			ResourceType string `json:"resourceType"`
			Entry        []struct {
				Resource struct {
					ID      string `json:"id"`
					Subject struct {
						Reference string `json:"reference"`
					} `json:"subject"`
				} `json:"resource"`
			} `json:"entry"`
		} `json:"observations"`
		User struct {
			ResourceType string `json:"resourceType"`
			ID           string `json:"id"`
		} `json:"user"`
	}
	if err := json.Unmarshal(body, &seen); err != nil {
		t.Fatalf("the app's report: %v\n%s", err, body)
	}

	// Discovery: the app was given only the FHIR base. The challenge methods
	// come only from the SMART document (fhirclient's CapabilityStatement
	// fallback has none), and PKCE "required" refuses to launch without S256.
	if seen.ServerURL != fhirBase || seen.AuthorizeURI != op.Issuer+"/auth" || seen.TokenURI != op.Issuer+"/token" {
		t.Errorf("fhirclient found server %s, authorize %s, token %s; want %s, %s/auth, %s/token",
			seen.ServerURL, seen.AuthorizeURI, seen.TokenURI, fhirBase, op.Issuer, op.Issuer)
	}
	if diff := cmp.Diff([]string{"S256"}, seen.CodeChallengeMethods); diff != "" {
		t.Errorf("code_challenge_methods fhirclient saw (-want +got):\n%s", diff)
	}
	// PKCE: the challenge sent is the S256 of the verifier the app kept for
	// the token request (which the provider checks: it requires PKCE).
	sum := sha256.Sum256([]byte(seen.CodeVerifier))
	if seen.CodeVerifier == "" || seen.CodeChallenge != q.Get("code_challenge") ||
		base64.RawURLEncoding.EncodeToString(sum[:]) != seen.CodeChallenge {
		t.Errorf("code_verifier %q, challenge kept %q, sent %q: not S256 of one another",
			seen.CodeVerifier, seen.CodeChallenge, q.Get("code_challenge"))
	}

	// The token and the launch context.
	tr := seen.TokenResponse
	if tr.TokenType != "Bearer" || tr.Patient != login || seen.PatientID != login ||
		!slices.Contains(strings.Fields(tr.Scope), "patient/*.rs") || seen.Authorization != "Bearer "+tr.AccessToken {
		t.Errorf("token response %+v, patient in context %q, Authorization %q", tr, seen.PatientID, seen.Authorization)
	}
	var claims map[string]any
	if parts := strings.Split(tr.AccessToken, "."); len(parts) == 3 {
		b, _ := base64.RawURLEncoding.DecodeString(parts[1])
		json.Unmarshal(b, &claims)
	}
	for k, want := range map[string]any{"iss": op.Issuer, "aud": "cmts", "client_id": clientID, "sub": login, "patient": login} {
		if claims[k] != want {
			t.Errorf("access token claim %s = %v, want %v (claims %v)", k, claims[k], want, claims)
		}
	}

	// What the app read with the token: the patient in context, and only
	// that patient's Observation (fhirclient adds ?patient= from the
	// CapabilityStatement's search parameters).
	if seen.Patient.ID != login || len(seen.Patient.Name) != 1 || seen.Patient.Name[0].Text != "王小明" {
		t.Errorf("patient read by the app: %+v", seen.Patient)
	}
	var got []string
	for _, e := range seen.Observations.Entry {
		got = append(got, e.Resource.ID+" "+e.Resource.Subject.Reference)
	}
	if diff := cmp.Diff([]string{"o-7 Patient/p-7"}, got); seen.Observations.ResourceType != "Bundle" || diff != "" {
		t.Errorf("Observations read by the app, a %s (-want +got):\n%s", seen.Observations.ResourceType, diff)
	}

	// openid fhirUser: the id_token names the signed-in user, whom the app
	// read from the server.
	if seen.FHIRUser != "Patient/"+login || seen.User.ResourceType != "Patient" || seen.User.ID != login {
		t.Errorf("fhirUser %q, the user read by the app: %+v", seen.FHIRUser, seen.User)
	}

	// The server accepts the app's token, and nothing forged from it.
	if code, body, _ := authDo(t, "GET", fhirBase+"/Patient/"+login, tr.AccessToken, ""); code != 200 || body["id"] != login {
		t.Errorf("GET Patient/%s with the app's token: %d %v", login, code, body)
	}
	if code, body, h := authDo(t, "GET", fhirBase+"/Patient/"+login, tr.AccessToken+"x", ""); code != 401 ||
		body["resourceType"] != "OperationOutcome" || !strings.Contains(h.Get("WWW-Authenticate"), `error="invalid_token"`) {
		t.Errorf("GET with the app's token, signature altered: %d %v %q", code, body, h.Get("WWW-Authenticate"))
	}
}

// smartApp is the fhirclient app of testdata/smartapp.mjs, running.
type smartApp struct {
	url   string
	stdin io.WriteCloser
	lines *bufio.Scanner
}

// startSMARTApp starts testdata/smartapp.mjs and stops it at the test's end.
func startSMARTApp(t *testing.T, modules string) *smartApp {
	t.Helper()
	cmd := exec.Command("node", "testdata/smartapp.mjs", modules)
	cmd.Env = os.Environ()
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
		if os.Getenv("CI") != "" {
			t.Fatalf("starting node: %v", err)
		}
		t.Skipf("starting node: %v", err)
	}
	t.Cleanup(func() {
		stdin.Close() // the app exits when stdin closes
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			cmd.Process.Kill()
			<-done
		}
		if t.Failed() && stderr.Len() > 0 {
			t.Logf("smartapp.mjs stderr:\n%s", stderr.String())
		}
	})
	a := &smartApp{stdin: stdin, lines: bufio.NewScanner(stdout)}
	var hello struct {
		App string `json:"app"`
	}
	if err := a.readLine(&hello); err != nil || hello.App == "" {
		t.Fatalf("smartapp.mjs did not start: %v\n%s", err, stderr.String())
	}
	a.url = hello.App
	return a
}

// configure tells the app which server and client to launch with.
func (a *smartApp) configure(t *testing.T, cfg map[string]string) {
	t.Helper()
	b, err := json.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.stdin.Write(append(b, '\n')); err != nil {
		t.Fatalf("configuring the app: %v", err)
	}
	var ack struct {
		Ready bool `json:"ready"`
	}
	if err := a.readLine(&ack); err != nil || !ack.Ready {
		t.Fatalf("configuring the app: %v", err)
	}
}

// readLine reads the app's next JSON line, within 30 s.
func (a *smartApp) readLine(v any) error {
	ch := make(chan error, 1)
	go func() {
		if !a.lines.Scan() {
			err := a.lines.Err()
			if err == nil {
				err = io.EOF
			}
			ch <- err
			return
		}
		ch <- json.Unmarshal(a.lines.Bytes(), v)
	}()
	select {
	case err := <-ch:
		return err
	case <-time.After(30 * time.Second):
		return fmt.Errorf("no answer in 30 s")
	}
}

// browse GETs a page as the browser and returns its status, body and header.
func browse(t *testing.T, c *http.Client, u string) (int, []byte, http.Header) {
	t.Helper()
	resp, err := c.Get(u)
	if err != nil {
		t.Fatalf("GET %s: %v", u, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: %v", u, err)
	}
	return resp.StatusCode, b, resp.Header
}
