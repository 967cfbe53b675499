// Package mongotest gives tests a real MongoDB-wire server.
//
// By default it builds and starts FerretDB v1 (MongoDB wire protocol over
// SQLite) from the separate Go module in ../testserver, one process per
// [Start] call, with its data in a fresh temporary directory. The compiled
// binary is cached under os.UserCacheDir()/cmts-test, keyed by a hash of the
// test server's sources, and built at most once even when several test
// processes (go test ./... runs each package as its own process) ask for it at
// the same time. The first build compiles FerretDB (a minute or more); later
// starts take about 25 ms.
//
// If the environment variable CMTS_TEST_MONGO_URI is set, no process is
// started and the tests use that MongoDB instead.
//
// If FerretDB cannot be built or started, the test is skipped, except when the
// environment variable CI is non-empty: then it fails, so that MongoDB tests
// are never silently skipped in CI.
//
// This package must not import FerretDB: FerretDB's dependency graph stays
// in the test server's own module.
package mongotest

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
	"go.mongodb.org/mongo-driver/v2/mongo/readpref"

	"github.com/fmtbank/cmts/fhir/fhirtest"
)

// EnvURI names the environment variable that points the tests at a real
// MongoDB (a mongodb:// or mongodb+srv:// URI) instead of FerretDB.
const EnvURI = "CMTS_TEST_MONGO_URI"

// EnvCI names the environment variable that, when non-empty, turns "FerretDB
// is unavailable" from a skip into a test failure.
const EnvCI = "CI"

const (
	// readyTimeout bounds how long a started server may take to answer a ping.
	readyTimeout = 60 * time.Second
	// stopTimeout bounds how long a server may take to exit after SIGTERM
	// before it is killed.
	stopTimeout = 10 * time.Second
)

// ferretEnv is added to a FerretDB process's environment. FerretDB v1 over
// SQLite decodes every document of a collection for each query, allocating
// as it goes, so with Go's default GOGC=100 much of its time is garbage
// collection: GOGC=400 saves about 30% of the CPU time of the search
// table's queries, and GOMEMLIMIT keeps a process's heap near 1 GiB at most.
var ferretEnv = []string{"GOGC=400", "GOMEMLIMIT=1GiB"}

// Server is a MongoDB-wire server for one test: either a FerretDB process
// owned by this package or an external MongoDB given by CMTS_TEST_MONGO_URI.
// Its methods are safe for concurrent use, except that Stop and Restart may
// call t.Skip/t.Fatal on the test passed to [Start] and so must be called
// from that test's goroutine.
type Server struct {
	t        testing.TB
	uri      string
	external bool

	// Set only for a FerretDB process.
	bin  string
	addr string // host:port, fixed for the Server's lifetime
	dir  string // SQLite data directory, fixed for the Server's lifetime

	mu   sync.Mutex
	proc *process // nil while stopped
}

// process is one running FerretDB process.
type process struct {
	cmd    *exec.Cmd
	done   chan struct{} // closed when the process has exited
	err    error         // exit error; valid after done is closed
	stderr *tailBuffer
}

// Start returns a running MongoDB-wire server for t.
//
// With CMTS_TEST_MONGO_URI set it returns a Server for that URI after a
// successful ping (failing t if the ping fails), and starts nothing.
// Otherwise it builds the FerretDB test server if no cached binary matches
// the current sources, starts it on a free loopback port with a data
// directory under t.TempDir(), and returns once a ping succeeds. The process
// is stopped in t.Cleanup. If building or starting fails, t is skipped, or
// failed when CI is set.
func Start(t testing.TB) *Server {
	t.Helper()

	if uri := os.Getenv(EnvURI); uri != "" {
		ctx, cancel := context.WithTimeout(context.Background(), readyTimeout)
		defer cancel()
		if err := ping(ctx, uri); err != nil {
			t.Fatalf("mongotest: %s=%s is not reachable: %v", EnvURI, redact(uri), err)
		}
		return &Server{t: t, uri: uri, external: true}
	}

	bin, err := binary(t)
	if err != nil {
		unavailable(t, "cannot build the FerretDB test server: %v", err)
	}

	s := &Server{t: t, bin: bin, dir: filepath.Join(t.TempDir(), "ferretdb")}
	t.Cleanup(s.stop)

	// A free port found by listening on :0 can be taken by someone else
	// before the server binds it, so try a few ports.
	var lastErr error
	for attempt := 0; attempt < 3; attempt++ {
		addr, err := freeAddr()
		if err != nil {
			unavailable(t, "cannot find a free loopback port: %v", err)
		}
		s.addr = addr
		s.uri = "mongodb://" + addr + "/"
		started := time.Now()
		if lastErr = s.start(); lastErr == nil {
			t.Logf("mongotest: FerretDB ready at %s in %v", s.uri, time.Since(started).Round(time.Millisecond))
			return s
		}
	}
	unavailable(t, "cannot start the FerretDB test server: %v", lastErr)
	return nil // not reached
}

// URI returns the connection string of the server, e.g.
// "mongodb://127.0.0.1:40123/". It stays the same across Stop and Restart.
func (s *Server) URI() string { return s.uri }

// External reports whether the server is an external MongoDB given by
// CMTS_TEST_MONGO_URI rather than a FerretDB process started by [Start].
// Tests of behaviour that FerretDB lacks (transactions, change streams) can
// use it to decide what to expect.
func (s *Server) External() bool { return s.external }

// Database returns a database name not returned before, so that each test or
// subtest starts from an empty database: "t" followed by 16 hex digits. On an
// external MongoDB the database is dropped in t.Cleanup (errors are only
// logged); a FerretDB's data directory is discarded with the server.
func (s *Server) Database(t testing.TB) string {
	t.Helper()
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatalf("mongotest: random database name: %v", err)
	}
	name := "t" + hex.EncodeToString(b[:])
	if s.external {
		t.Cleanup(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			c, err := mongo.Connect(options.Client().ApplyURI(s.uri))
			if err != nil {
				t.Logf("mongotest: drop database %s: %v", name, err)
				return
			}
			defer c.Disconnect(context.Background())
			if err := c.Database(name).Drop(ctx); err != nil {
				t.Logf("mongotest: drop database %s: %v", name, err)
			}
		})
	}
	return name
}

// Stop stops the server process (SIGTERM, then SIGKILL after 10 s) and
// returns once it has exited; until [Server.Restart], connections to URI
// fail. Data written before Stop is kept for Restart. Stopping a stopped
// server does nothing. On an external MongoDB, Stop skips the test.
func (s *Server) Stop() {
	s.t.Helper()
	if s.external {
		s.t.Skipf("mongotest: %s is set; cannot stop an external MongoDB", EnvURI)
	}
	s.stop()
}

// Restart stops the server process if it is running and starts it again on
// the same address and with the same data directory, returning once a ping
// succeeds; documents written before are still there. It fails the test if
// the server does not come back. On an external MongoDB, Restart skips the
// test.
func (s *Server) Restart() {
	s.t.Helper()
	if s.external {
		s.t.Skipf("mongotest: %s is set; cannot restart an external MongoDB", EnvURI)
	}
	s.stop()
	if err := s.start(); err != nil {
		s.t.Fatalf("mongotest: restart FerretDB on %s: %v", s.addr, err)
	}
}

// Connect returns a client for uri, disconnected in t.Cleanup. Like
// mongo.Connect it does not contact the server; the first operation does.
// It fails t if the URI is invalid.
func Connect(t testing.TB, uri string) *mongo.Client {
	t.Helper()
	c, err := mongo.Connect(options.Client().ApplyURI(uri))
	if err != nil {
		t.Fatalf("mongotest: connect %s: %v", redact(uri), err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = c.Disconnect(ctx)
	})
	return c
}

// start starts the process on s.addr and waits until it answers a ping.
func (s *Server) start() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.proc != nil {
		return nil
	}

	p := &process{done: make(chan struct{}), stderr: &tailBuffer{max: 8 << 10}}
	p.cmd = exec.Command(s.bin, "-listen", s.addr, "-dir", s.dir)
	p.cmd.Env = append(os.Environ(), ferretEnv...)
	p.cmd.Stdout = p.stderr
	p.cmd.Stderr = p.stderr
	setDeathSignal(p.cmd)
	if err := p.cmd.Start(); err != nil {
		return err
	}
	go func() {
		p.err = p.cmd.Wait()
		close(p.done)
	}()

	ctx, cancel := context.WithTimeout(context.Background(), readyTimeout)
	defer cancel()

	// Wait for the port first: a driver whose first dial failed waits
	// 500 ms before it tries again.
	for {
		conn, err := net.DialTimeout("tcp", s.addr, time.Second)
		if err == nil {
			conn.Close()
			break
		}
		select {
		case <-p.done:
			return fmt.Errorf("server exited: %v; output:\n%s", p.err, p.stderr)
		case <-ctx.Done():
			p.kill()
			return fmt.Errorf("not listening on %s within %v: %v; output:\n%s", s.addr, readyTimeout, err, p.stderr)
		case <-time.After(20 * time.Millisecond):
		}
	}

	c, err := mongo.Connect(options.Client().ApplyURI(s.uri).
		SetServerSelectionTimeout(time.Second).
		SetConnectTimeout(time.Second))
	if err != nil {
		p.kill()
		return err
	}
	defer c.Disconnect(context.Background())
	for {
		pctx, pcancel := context.WithTimeout(ctx, 2*time.Second)
		err = c.Ping(pctx, readpref.Primary())
		pcancel()
		if err == nil {
			s.proc = p
			return nil
		}
		select {
		case <-p.done:
			return fmt.Errorf("server exited: %v; output:\n%s", p.err, p.stderr)
		case <-ctx.Done():
			p.kill()
			return fmt.Errorf("no ping within %v: %v; output:\n%s", readyTimeout, err, p.stderr)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// stop stops the process, if any, and waits for it to exit.
func (s *Server) stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.proc == nil {
		return
	}
	p := s.proc
	s.proc = nil
	if err := p.cmd.Process.Signal(terminateSignal); err != nil {
		p.kill()
		return
	}
	select {
	case <-p.done:
	case <-time.After(stopTimeout):
		p.kill()
	}
}

// kill kills the process and waits for it to exit.
func (p *process) kill() {
	_ = p.cmd.Process.Kill()
	<-p.done
}

// binary returns the path of a FerretDB test server binary built from the
// current sources, building it if needed. It is computed once per process.
func binary(t testing.TB) (string, error) {
	buildOnce.Do(func() { buildPath, buildErr = buildBinary(t.Logf) })
	return buildPath, buildErr
}

var (
	buildOnce sync.Once
	buildPath string
	buildErr  error
)

func buildBinary(logf func(string, ...any)) (string, error) {
	src, err := sourceDir()
	if err != nil {
		return "", err
	}
	h := sha256.New()
	fmt.Fprintf(h, "%s/%s\n", runtime.GOOS, runtime.GOARCH)
	for _, name := range []string{"go.mod", "go.sum", "main.go"} {
		b, err := os.ReadFile(filepath.Join(src, name))
		if err != nil {
			return "", err
		}
		fmt.Fprintf(h, "%s %d\n", name, len(b))
		h.Write(b)
	}
	key := hex.EncodeToString(h.Sum(nil))[:16]

	cache, err := os.UserCacheDir()
	if err != nil {
		cache = os.TempDir()
	}
	cache = filepath.Join(cache, "cmts-test")
	if err := os.MkdirAll(cache, 0o755); err != nil {
		return "", err
	}
	bin := filepath.Join(cache, "ferretdb-"+key)
	if runtime.GOOS == "windows" {
		bin += ".exe"
	}
	if isExecutable(bin) {
		return bin, nil
	}

	// Several test processes may get here at once; one builds, the others
	// wait for the lock and then find the binary. (Where there is no lock,
	// each may build; the rename below keeps the binary whole.)
	waitStart := time.Now()
	unlock, err := fhirtest.LockFile(bin + ".lock")
	if err != nil {
		return "", err
	}
	defer unlock()
	if isExecutable(bin) {
		logf("mongotest: waited %v for another process to build %s", time.Since(waitStart).Round(time.Millisecond), bin)
		return bin, nil
	}

	goTool, err := exec.LookPath("go")
	if err != nil {
		return "", fmt.Errorf("the go tool is needed to build FerretDB: %v", err)
	}
	tmp := bin + ".tmp" + strconv.Itoa(os.Getpid())
	defer os.Remove(tmp)
	cmd := exec.Command(goTool, "build", "-o", tmp, ".")
	cmd.Dir = src
	cmd.Env = buildEnv(os.Environ())
	logf("mongotest: building the FerretDB test server from %s into %s (first run: compiling FerretDB takes minutes)", src, bin)
	buildStart := time.Now()
	out, err := cmd.CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("go build in %s: %v\n%s", src, err, out)
	}
	// Rename is atomic, so a binary that exists is complete.
	if err := os.Rename(tmp, bin); err != nil {
		return "", err
	}
	logf("mongotest: built the FerretDB test server in %v", time.Since(buildStart).Round(time.Millisecond))
	return bin, nil
}

// buildEnv returns env adjusted for building the test server module: no
// workspace, and no -mod/-modfile flags meant for the root module.
func buildEnv(env []string) []string {
	out := make([]string, 0, len(env)+2)
	for _, kv := range env {
		switch {
		case strings.HasPrefix(kv, "GOFLAGS="):
			var keep []string
			for _, f := range strings.Fields(strings.TrimPrefix(kv, "GOFLAGS=")) {
				name := strings.TrimLeft(f, "-")
				if strings.HasPrefix(name, "mod=") || strings.HasPrefix(name, "modfile=") {
					continue
				}
				keep = append(keep, f)
			}
			out = append(out, "GOFLAGS="+strings.Join(keep, " "))
		case strings.HasPrefix(kv, "GOWORK="):
		default:
			out = append(out, kv)
		}
	}
	return append(out, "GOWORK=off")
}

// sourceDir returns the directory of the test server module: next to this
// package in the source tree, or, if the build trimmed paths, found by
// walking up from the working directory to the root module.
func sourceDir() (string, error) {
	if _, file, _, ok := runtime.Caller(0); ok && filepath.IsAbs(file) {
		dir := filepath.Join(filepath.Dir(file), "..", "testserver")
		if isFile(filepath.Join(dir, "go.mod")) {
			return dir, nil
		}
	}
	wd, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for d := wd; ; d = filepath.Dir(d) {
		dir := filepath.Join(d, "store", "mongo", "testserver")
		if isFile(filepath.Join(dir, "go.mod")) {
			return dir, nil
		}
		if filepath.Dir(d) == d {
			return "", errors.New("cannot find store/mongo/testserver from " + wd)
		}
	}
}

// unavailable skips t, or fails it when CI is set.
func unavailable(t testing.TB, format string, args ...any) {
	t.Helper()
	msg := "mongotest: " + fmt.Sprintf(format, args...)
	if os.Getenv(EnvCI) != "" {
		t.Fatal(msg + " (" + EnvCI + " is set, so this fails instead of skipping)")
	}
	t.Skip(msg + " (set " + EnvURI + " to use a real MongoDB)")
}

func ping(ctx context.Context, uri string) error {
	c, err := mongo.Connect(options.Client().ApplyURI(uri))
	if err != nil {
		return err
	}
	defer c.Disconnect(context.Background())
	return c.Ping(ctx, readpref.Primary())
}

// freeAddr returns a loopback address with a port that was free just now.
func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	addr := l.Addr().String()
	return addr, l.Close()
}

// redact hides a password in a URI for messages.
func redact(uri string) string {
	scheme, rest, ok := strings.Cut(uri, "://")
	if !ok {
		return uri
	}
	userinfo, host, ok := strings.Cut(rest, "@")
	if !ok || !strings.Contains(userinfo, ":") {
		return uri
	}
	user, _, _ := strings.Cut(userinfo, ":")
	return scheme + "://" + user + ":xxxxx@" + host
}

func isFile(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && fi.Mode().IsRegular()
}

func isExecutable(path string) bool {
	fi, err := os.Stat(path)
	if err != nil || !fi.Mode().IsRegular() {
		return false
	}
	return runtime.GOOS == "windows" || fi.Mode().Perm()&0o111 != 0
}

// tailBuffer keeps the last max bytes written to it.
type tailBuffer struct {
	mu  sync.Mutex
	max int
	buf bytes.Buffer
}

func (b *tailBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.buf.Write(p)
	if over := b.buf.Len() - b.max; over > 0 {
		b.buf.Next(over)
	}
	return len(p), nil
}

func (b *tailBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
