package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/fmtbank/cmts/fhir"
	"github.com/fmtbank/cmts/fhir/search"
	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

// TestMain lets the test binary act as the cmts command, so process-level
// tests (kill -9, SIGTERM) run the real binary's code without a separate build.
func TestMain(m *testing.M) {
	if os.Getenv("CMTS_TEST_BE_CMTS") == "1" {
		ctx, stop := signalContext()
		code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
		stop()
		os.Exit(code)
	}
	os.Exit(m.Run())
}

// defaultConfig is serve's configuration with no flags or env, changed by
// edit.
func defaultConfig(edit func(*Config)) Config {
	c := Config{Addr: "127.0.0.1:8080", Data: "./data", MongoDB: "cmts", MongoLease: 30 * time.Second, LogLevel: "info", MaxBody: 16 << 20, DefaultTenant: "default",
		ReadTimeout: time.Minute, WriteTimeout: 2 * time.Minute, IdleTimeout: time.Minute, ExportLease: time.Minute, MaxConcurrent: 64, MaxBundleEntries: 10_000, Search: search.DefaultLimits,
		Limits: fhir.DefaultLimits(), GC: defaultGC()}
	if edit != nil {
		edit(&c)
	}
	return c
}

func TestParseFlags(t *testing.T) {
	for _, tc := range []struct {
		name    string
		args    []string
		env     map[string]string
		want    Config
		wantErr string
	}{
		{name: "defaults", want: defaultConfig(nil)},
		{name: "flags", args: []string{"--addr", "127.0.0.1:9000", "--data", "/tmp/x", "--mongo-uri", "mongodb://h", "--mongo-db", "reg", "--base-url", "https://fhir.example/fhir", "--insecure-no-auth", "--log-level", "debug",
			"--read-timeout", "5s", "--write-timeout", "1m30s", "--idle-timeout", "10s", "--max-concurrent", "8", "--max-search-values", "10", "--max-sort-keys", "2", "--mongo-lease", "2m"},
			want: defaultConfig(func(c *Config) {
				c.Addr, c.Data, c.MongoURI, c.MongoDB, c.BaseURL, c.InsecureNoAuth, c.LogLevel = "127.0.0.1:9000", "/tmp/x", "mongodb://h", "reg", "https://fhir.example/fhir", true, "debug"
				c.MongoLease = 2 * time.Minute
				c.ReadTimeout, c.WriteTimeout, c.IdleTimeout, c.MaxConcurrent = 5*time.Second, 90*time.Second, 10*time.Second, 8
				c.Search.MaxValues, c.Search.MaxSortKeys = 10, 2
			})},
		{name: "env twins", env: map[string]string{"CMTS_ADDR": "[::1]:7000", "CMTS_DATA": "/srv/cmts", "CMTS_MONGO_URI": "mongodb://e", "CMTS_MONGO_DB": "x", "CMTS_BASE_URL": "http://b/fhir", "CMTS_INSECURE_NO_AUTH": "true", "CMTS_LOG_LEVEL": "warn", "CMTS_MAX_BODY": "1024",
			"CMTS_READ_TIMEOUT": "3s", "CMTS_MAX_SEARCH_TERMS": "50"},
			want: defaultConfig(func(c *Config) {
				c.Addr, c.Data, c.MongoURI, c.MongoDB, c.BaseURL, c.InsecureNoAuth, c.LogLevel, c.MaxBody = "[::1]:7000", "/srv/cmts", "mongodb://e", "x", "http://b/fhir", true, "warn", 1024
				c.ReadTimeout, c.Search.MaxTerms = 3*time.Second, 50
			})},
		{name: "env booleans as strconv.ParseBool", env: map[string]string{"CMTS_INSECURE_NO_AUTH": "1"},
			want: defaultConfig(func(c *Config) { c.InsecureNoAuth = true })},
		{name: "env boolean TRUE", env: map[string]string{"CMTS_INSECURE_NO_AUTH": "TRUE"},
			want: defaultConfig(func(c *Config) { c.InsecureNoAuth = true })},
		{name: "flag beats env", args: []string{"--addr", "localhost:1"}, env: map[string]string{"CMTS_ADDR": "127.0.0.1:2"},
			want: defaultConfig(func(c *Config) { c.Addr = "localhost:1" })},
		{name: "flag beats env boolean", args: []string{"--insecure-no-auth=false"}, env: map[string]string{"CMTS_INSECURE_NO_AUTH": "true"},
			want: defaultConfig(nil)},
		{name: "bad env number", env: map[string]string{"CMTS_MAX_BODY": "16MB"}, wantErr: "CMTS_MAX_BODY"},
		{name: "bad env boolean", env: map[string]string{"CMTS_INSECURE_NO_AUTH": "yes"}, wantErr: "CMTS_INSECURE_NO_AUTH"},
		{name: "bad env duration", env: map[string]string{"CMTS_READ_TIMEOUT": "60"}, wantErr: "CMTS_READ_TIMEOUT"},
		{name: "zero limit", args: []string{"--max-sort-keys", "0"}, wantErr: "--max-sort-keys"},
		{name: "negative body limit", env: map[string]string{"CMTS_MAX_BODY": "-1"}, wantErr: "--max-body"},
		{name: "zero timeout", args: []string{"--write-timeout", "0s"}, wantErr: "--write-timeout"},
		{name: "negative MongoDB lease", env: map[string]string{"CMTS_MONGO_LEASE": "-5s"}, wantErr: "--mongo-lease"},
		{name: "limits", args: []string{"--max-depth", "10", "--max-array", "20", "--max-elements", "30", "--max-patch-ops", "5"},
			want: defaultConfig(func(c *Config) { c.Limits = fhir.Limits{Depth: 10, Array: 20, Elements: 30, PatchOps: 5} })},
		{name: "limits env twins", env: map[string]string{"CMTS_MAX_DEPTH": "11", "CMTS_MAX_ARRAY": "21", "CMTS_MAX_ELEMENTS": "31", "CMTS_MAX_PATCH_OPS": "6"},
			want: defaultConfig(func(c *Config) { c.Limits = fhir.Limits{Depth: 11, Array: 21, Elements: 31, PatchOps: 6} })},
		{name: "zero depth", args: []string{"--max-depth", "0"}, wantErr: "--max-depth"},
		{name: "public address with a trust file", args: []string{"--trust", "trust.json", "--addr", "0.0.0.0:8443", "--base-url", "https://cmts.example/fhir"},
			want: defaultConfig(func(c *Config) {
				c.Trust, c.Addr, c.BaseURL = "trust.json", "0.0.0.0:8443", "https://cmts.example/fhir"
			})},
		{name: "trust env twin", env: map[string]string{"CMTS_TRUST": "trust.json", "CMTS_BASE_URL": "https://cmts.example/fhir"}, args: []string{"--addr", "10.1.2.3:8443"},
			want: defaultConfig(func(c *Config) {
				c.Trust, c.Addr, c.BaseURL = "trust.json", "10.1.2.3:8443", "https://cmts.example/fhir"
			})},
		{name: "public address without a base URL", args: []string{"--trust", "trust.json", "--addr", "0.0.0.0:8443"}, wantErr: "needs --base-url"},
		{name: "trust and insecure", args: []string{"--trust", "trust.json", "--insecure-no-auth"}, wantErr: "exclude each other"},
		{name: "insecure on a public address", args: []string{"--insecure-no-auth", "--addr", "0.0.0.0:8080"}, wantErr: "refuses the non-loopback address"},
		{name: "insecure on all interfaces", args: []string{"--insecure-no-auth", "--addr", ":8080"}, wantErr: "refuses the non-loopback address"},
		{name: "public address without an identity provider", args: []string{"--addr", "10.1.2.3:8080"}, wantErr: "no identity provider"},
		{name: "bad address", args: []string{"--addr", "nonsense"}, wantErr: "--addr"},
		{name: "bad log level", args: []string{"--log-level", "loud"}, wantErr: "--log-level"},
		{name: "stray argument", args: []string{"extra"}, wantErr: "unexpected arguments"},
		{name: "garbage collector", args: []string{"--gc-percent", "100", "--memory-limit", "4GiB"},
			want: defaultConfig(func(c *Config) { c.GC.Percent, c.GC.Limit = 100, 4<<30 })},
		{name: "bad memory limit", env: map[string]string{"CMTS_MEMORY_LIMIT": "4GB"}, wantErr: "CMTS_MEMORY_LIMIT"},
		{name: "zero gc percent", args: []string{"--gc-percent", "0"}, wantErr: "--gc-percent"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for k, v := range tc.env {
				t.Setenv(k, v)
			}
			m := NewMain(io.Discard)
			err := m.ParseFlags(tc.args)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want it to mention %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, m.Config, cmpopts.IgnoreUnexported(gcConfig{})); diff != "" {
				t.Errorf("config (-want +got):\n%s", diff)
			}
		})
	}
}

// TestHelpNamesEnvTwins: -help lists each flag with its environment twin.
func TestHelpNamesEnvTwins(t *testing.T) {
	var errb bytes.Buffer
	if code := run(context.Background(), []string{"serve", "-help"}, io.Discard, &errb); code != 0 {
		t.Fatalf("serve -help: exit %d", code)
	}
	for _, want := range []string{"(env CMTS_ADDR)", "(env CMTS_MAX_BODY)", "(env CMTS_INSECURE_NO_AUTH)", "(env CMTS_READ_TIMEOUT)"} {
		if !strings.Contains(errb.String(), want) {
			t.Errorf("serve -help does not mention %s:\n%s", want, errb.String())
		}
	}
}

func TestRunCommands(t *testing.T) {
	var out, errb bytes.Buffer
	if code := run(context.Background(), nil, &out, &errb); code != 2 || !strings.Contains(errb.String(), "usage") {
		t.Errorf("no command: %d %q", code, errb.String())
	}
	if code := run(context.Background(), []string{"frobnicate"}, &out, &errb); code != 2 {
		t.Errorf("unknown command: %d", code)
	}
	if code := run(context.Background(), []string{"serve", "--insecure-no-auth", "--addr", "0.0.0.0:0"}, &out, &errb); code != 2 {
		t.Errorf("insecure public serve: exit %d, want 2", code)
	}
	out.Reset()
	for _, v := range []string{"version", "--version", "-version"} {
		out.Reset()
		if code := run(context.Background(), []string{v}, &out, &errb); code != 0 || out.String() != "dev\n" {
			t.Errorf("%s: %d %q", v, code, out.String())
		}
	}
}

// startMain runs the server in-process on a free port.
func startMain(t testing.TB, args ...string) (base string, stop func()) {
	t.Helper()
	m := NewMain(io.Discard)
	if err := m.ParseFlags(append([]string{"--addr", "127.0.0.1:0"}, args...)); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	if err := m.Open(ctx); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx) }()
	stopped := false
	stop = func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
		if err := m.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	}
	t.Cleanup(stop)
	return m.URL(), stop
}

func do(t *testing.T, method, url, body string) (int, string, http.Header) {
	t.Helper()
	req, _ := http.NewRequest(method, url, strings.NewReader(body))
	if body != "" {
		req.Header.Set("Content-Type", "application/fhir+json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), resp.Header
}

func TestServeEmbedded(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	base, stop := startMain(t, "--data", dir, "--insecure-no-auth")
	for _, path := range []string{"/healthz", "/readyz", "/fhir/metadata"} {
		if code, body, _ := do(t, "GET", base+path, ""); code != 200 {
			t.Errorf("%s: %d %s", path, code, body)
		}
	}
	if code, body, _ := do(t, "PUT", base+"/fhir/Patient/keep", `{"resourceType":"Patient","id":"keep","name":[{"text":"李四"}]}`); code != 201 {
		t.Fatalf("PUT: %d %s", code, body)
	}
	stop()

	// Data survives a restart.
	base, _ = startMain(t, "--data", dir, "--insecure-no-auth")
	code, body, _ := do(t, "GET", base+"/fhir/Patient/keep", "")
	if code != 200 || !strings.Contains(body, "李四") {
		t.Fatalf("after restart: %d %s", code, body)
	}
}

func TestServeWithoutAuthAnswers401(t *testing.T) {
	t.Parallel()
	base, _ := startMain(t, "--data", t.TempDir())
	if code, _, _ := do(t, "GET", base+"/fhir/metadata", ""); code != 200 {
		t.Errorf("metadata: %d, want 200 (it is public)", code)
	}
	code, body, _ := do(t, "GET", base+"/fhir/Patient/x", "")
	if code != 401 || !strings.Contains(body, "OperationOutcome") {
		t.Errorf("read without credentials: %d %s", code, body)
	}
}

// child is the cmts binary (this test binary in disguise) serving dir.
type child struct {
	cmd  *exec.Cmd
	base string
	logs *bytes.Buffer
	mu   *sync.Mutex
}

func startChild(t *testing.T, dir string) *child {
	t.Helper()
	return startChildArgs(t, "--data", dir)
}

// startChildArgs starts the server with these store arguments.
func startChildArgs(t *testing.T, storeArgs ...string) *child {
	t.Helper()
	cmd := exec.Command(os.Args[0], append([]string{"serve", "--addr", "127.0.0.1:0", "--insecure-no-auth"}, storeArgs...)...)
	cmd.Env = append(os.Environ(), "CMTS_TEST_BE_CMTS=1")
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	c := &child{cmd: cmd, logs: &bytes.Buffer{}, mu: &sync.Mutex{}}
	addr := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			line := sc.Text()
			c.mu.Lock()
			c.logs.WriteString(line + "\n")
			c.mu.Unlock()
			var rec struct {
				Msg  string `json:"msg"`
				Addr string `json:"addr"`
			}
			if json.Unmarshal([]byte(line), &rec) == nil && rec.Msg == "serving" {
				addr <- rec.Addr
			}
		}
	}()
	select {
	case a := <-addr:
		c.base = "http://" + a
	case <-time.After(30 * time.Second):
		cmd.Process.Kill()
		t.Fatalf("server did not start; logs:\n%s", c.log())
	}
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			cmd.Process.Kill()
			cmd.Wait()
		}
	})
	return c
}

func (c *child) log() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.logs.String()
}

// TestKill9LosesNoAcknowledgedWrite kills the server with SIGKILL in the
// middle of a stream of writes; every write it acknowledged must be there
// after a restart.
func TestKill9LosesNoAcknowledgedWrite(t *testing.T) {
	dir := t.TempDir()
	c := startChild(t, dir)
	type ack struct {
		id      string
		version string
	}
	var (
		mu    sync.Mutex
		acked []ack
		wg    sync.WaitGroup
	)
	stopWriting := make(chan struct{})
	client := &http.Client{Timeout: 10 * time.Second}
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stopWriting:
					return
				default:
				}
				// Half new resources, half updates of a per-writer resource.
				id := fmt.Sprintf("w%d-%d", w, i)
				if i%2 == 1 {
					id = fmt.Sprintf("w%d-hot", w)
				}
				body := fmt.Sprintf(`{"resourceType":"Observation","id":%q,"status":"final","code":{"text":"write %d"}}`, id, i)
				req, _ := http.NewRequest("PUT", c.base+"/fhir/Observation/"+id, strings.NewReader(body))
				req.Header.Set("Content-Type", "application/fhir+json")
				resp, err := client.Do(req)
				if err != nil {
					return // the server is gone
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode == 200 || resp.StatusCode == 201 {
					mu.Lock()
					acked = append(acked, ack{id, strings.Trim(strings.TrimPrefix(resp.Header.Get("ETag"), "W/"), `"`)})
					mu.Unlock()
				}
			}
		}()
	}
	// Let writes flow, then kill without warning.
	deadline := time.Now().Add(20 * time.Second)
	for {
		mu.Lock()
		n := len(acked)
		mu.Unlock()
		if n >= 300 || time.Now().After(deadline) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := c.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	c.cmd.Wait()
	close(stopWriting)
	wg.Wait()
	if len(acked) < 50 {
		t.Fatalf("only %d writes acknowledged before the kill", len(acked))
	}

	c2 := startChild(t, dir)
	latest := map[string]int{}
	for _, a := range acked {
		var v int
		fmt.Sscan(a.version, &v)
		latest[a.id] = max(latest[a.id], v)
	}
	for id, v := range latest {
		code, body, h := do(t, "GET", c2.base+"/fhir/Observation/"+id, "")
		if code != 200 {
			t.Errorf("acknowledged %s (version %d) lost: %d %s", id, v, code, body)
			continue
		}
		var got int
		fmt.Sscan(strings.Trim(strings.TrimPrefix(h.Get("ETag"), "W/"), `"`), &got)
		if got < v {
			t.Errorf("%s is at version %d after restart, but version %d was acknowledged", id, got, v)
		}
	}
	t.Logf("%d acknowledged writes (%d resources) all present after kill -9", len(acked), len(latest))
}

// TestSIGTERMFinishesInFlight sends SIGTERM while a request body is still
// arriving: the request completes, then the server exits cleanly.
func TestSIGTERMFinishesInFlight(t *testing.T) {
	dir := t.TempDir()
	c := startChild(t, dir)
	pr, pw := io.Pipe()
	req, _ := http.NewRequest("PUT", c.base+"/fhir/Patient/inflight", pr)
	req.Header.Set("Content-Type", "application/fhir+json")
	type result struct {
		code int
		err  error
	}
	res := make(chan result, 1)
	go func() {
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			res <- result{0, err}
			return
		}
		resp.Body.Close()
		res <- result{resp.StatusCode, nil}
	}()
	io.WriteString(pw, `{"resourceType":"Patient",`)
	time.Sleep(200 * time.Millisecond) // the request is in flight now
	if err := c.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond)
	io.WriteString(pw, `"id":"inflight"}`)
	pw.Close()
	r := <-res
	if r.err != nil || r.code != 201 {
		t.Fatalf("in-flight request: %d %v", r.code, r.err)
	}
	waitErr := make(chan error, 1)
	go func() { waitErr <- c.cmd.Wait() }()
	select {
	case err := <-waitErr:
		if err != nil {
			t.Fatalf("exit after SIGTERM: %v\n%s", err, c.log())
		}
	case <-time.After(30 * time.Second):
		t.Fatal("server did not exit after SIGTERM")
	}
	if !strings.Contains(c.log(), "shutting down") {
		t.Errorf("no shutdown log:\n%s", c.log())
	}
	// New connections are refused once it has stopped.
	if _, err := http.Get(c.base + "/healthz"); err == nil {
		t.Error("server still accepts connections after SIGTERM")
	}
	c2 := startChild(t, dir)
	if code, _, _ := do(t, "GET", c2.base+"/fhir/Patient/inflight", ""); code != 200 {
		t.Errorf("in-flight write not stored: %d", code)
	}
}

// TestSIGTERMCutsStalledUpload: a body that stops arriving does not hold the
// shutdown for its 30 s drain period (nor --read-timeout): after a short grace
// the upload is cut off, nothing of it is stored, and the server exits.
func TestSIGTERMCutsStalledUpload(t *testing.T) {
	dir := t.TempDir()
	c := startChild(t, dir)
	pr, pw := io.Pipe()
	defer pw.Close()
	req, _ := http.NewRequest("PUT", c.base+"/fhir/Patient/stalled", pr)
	req.Header.Set("Content-Type", "application/fhir+json")
	go func() {
		if resp, err := http.DefaultClient.Do(req); err == nil {
			resp.Body.Close()
		}
	}()
	io.WriteString(pw, `{"resourceType":"Patient",`)
	time.Sleep(200 * time.Millisecond)
	start := time.Now()
	if err := c.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	waitErr := make(chan error, 1)
	go func() { waitErr <- c.cmd.Wait() }()
	select {
	case err := <-waitErr:
		if err != nil {
			t.Fatalf("exit after SIGTERM: %v\n%s", err, c.log())
		}
	case <-time.After(25 * time.Second):
		// The drain period is 30 s: getting here means the stalled upload
		// held the shutdown.
		t.Fatalf("server still running 25 s after SIGTERM with a stalled upload\n%s", c.log())
	}
	t.Logf("exited %v after SIGTERM", time.Since(start).Round(100*time.Millisecond))
	c2 := startChild(t, dir)
	if code, _, _ := do(t, "GET", c2.base+"/fhir/Patient/stalled", ""); code != 404 {
		t.Errorf("the cut-off upload was stored: %d", code)
	}
}
