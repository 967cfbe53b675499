package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/fmtbank/cmts/auth"
	"github.com/fmtbank/cmts/fhir"
	"github.com/fmtbank/cmts/fhir/rest"
	"github.com/fmtbank/cmts/store"
	"github.com/fmtbank/cmts/store/mongo"
	"github.com/fmtbank/cmts/store/sqlite"
)

// Config is what `serve` is told by flags and their CMTS_* environment twins.
type Config struct {
	Addr           string
	Data           string
	MongoURI       string
	MongoDB        string
	BaseURL        string
	InsecureNoAuth bool
	LogLevel       string
	MaxBody        int64
	// DefaultTenant is the tenant of every request under --insecure-no-auth.
	DefaultTenant string
	// RequireProfiles makes Patient, Procedure, Specimen and AdverseEvent
	// writes claim one of the WMT profiles.
	RequireProfiles bool
}

// Main is the server the binary runs; end-to-end tests run the same one.
type Main struct {
	Config Config
	stderr io.Writer

	logger   *slog.Logger
	store    store.Store
	listener net.Listener
	server   *http.Server
}

// NewMain returns a Main that logs to stderr.
func NewMain(stderr io.Writer) *Main { return &Main{stderr: stderr} }

// ParseFlags reads flags; each flag's default comes from its env twin
// CMTS_<FLAG> (dashes to underscores), so an explicit flag wins over the env.
func (m *Main) ParseFlags(args []string) error {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(m.stderr)
	c := &m.Config
	fs.StringVar(&c.Addr, "addr", env("addr", "127.0.0.1:8080"), "listen address")
	fs.StringVar(&c.Data, "data", env("data", "./data"), "data directory of the embedded store")
	fs.StringVar(&c.MongoURI, "mongo-uri", env("mongo-uri", ""), "MongoDB URI; switches from the embedded store to MongoDB")
	fs.StringVar(&c.MongoDB, "mongo-db", env("mongo-db", "cmts"), "MongoDB database name")
	fs.StringVar(&c.BaseURL, "base-url", env("base-url", ""), "public FHIR base URL (default: derived from each request)")
	fs.BoolVar(&c.InsecureNoAuth, "insecure-no-auth", env("insecure-no-auth", "false") == "true", "no authentication (development only; loopback addresses only)")
	fs.StringVar(&c.LogLevel, "log-level", env("log-level", "info"), "debug, info, warn or error")
	fs.Int64Var(&c.MaxBody, "max-body", envInt("max-body", rest.DefaultMaxBody), "largest request body in bytes")
	fs.StringVar(&c.DefaultTenant, "tenant", env("tenant", "default"), "tenant of requests under --insecure-no-auth")
	fs.BoolVar(&c.RequireProfiles, "require-profiles", env("require-profiles", "false") == "true", "Patient, Procedure, Specimen and AdverseEvent must claim a WMT profile")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments: %v", fs.Args())
	}
	return c.check()
}

func env(name, def string) string {
	if v, ok := os.LookupEnv("CMTS_" + strings.ToUpper(strings.ReplaceAll(name, "-", "_"))); ok {
		return v
	}
	return def
}

func envInt(name string, def int64) int64 {
	var n int64
	if _, err := fmt.Sscan(env(name, ""), &n); err == nil {
		return n
	}
	return def
}

// check refuses configurations that would expose data: until an identity
// provider is configured, nothing could authenticate callers, so the server
// listens on loopback only, with or without --insecure-no-auth.
func (c *Config) check() error {
	host, _, err := net.SplitHostPort(c.Addr)
	if err != nil {
		return fmt.Errorf("--addr %q: %w", c.Addr, err)
	}
	if !isLoopback(host) {
		if c.InsecureNoAuth {
			return fmt.Errorf("--insecure-no-auth refuses the non-loopback address %q", c.Addr)
		}
		return fmt.Errorf("no identity provider is configured, so the non-loopback address %q is refused", c.Addr)
	}
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(c.LogLevel)); err != nil {
		return fmt.Errorf("--log-level %q: %w", c.LogLevel, err)
	}
	return nil
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// Open opens the store and the listener; the server then runs with Run.
func (m *Main) Open(ctx context.Context) error {
	var lvl slog.Level
	_ = lvl.UnmarshalText([]byte(m.Config.LogLevel))
	m.logger = slog.New(slog.NewJSONHandler(m.stderr, &slog.HandlerOptions{Level: lvl}))

	var err error
	if m.store, err = openStore(ctx, m.Config); err != nil {
		return err
	}
	codec, err := fhir.NewCodec()
	if err != nil {
		return err
	}
	var authn fhir.Authenticator = auth.None{}
	if m.Config.InsecureNoAuth {
		authn = auth.Insecure{Tenant: m.Config.DefaultTenant}
	}
	engine, guide, err := withGuide(m.store, m.Config.RequireProfiles)
	if err != nil {
		return err
	}
	api, err := rest.New(rest.Options{
		Store: m.store, Codec: codec, Indexer: engine, Auth: authn, Validator: guide, Conformance: guide,
		BaseURL: m.Config.BaseURL, MaxBody: m.Config.MaxBody, Logger: m.logger, Version: version,
	})
	if err != nil {
		return err
	}
	m.listener, err = net.Listen("tcp", m.Config.Addr)
	if err != nil {
		return err
	}
	m.server = &http.Server{Handler: api, ReadHeaderTimeout: 10 * time.Second, ErrorLog: slog.NewLogLogger(m.logger.Handler(), slog.LevelWarn)}
	return nil
}

// openStore opens the configured backend: MongoDB when a URI is given, else
// the embedded store under the data directory.
func openStore(ctx context.Context, c Config) (store.Store, error) {
	var st store.Store
	var err error
	if c.MongoURI != "" {
		st, err = mongo.Open(ctx, mongo.Options{URI: c.MongoURI, Database: c.MongoDB})
	} else {
		st, err = sqlite.Open(ctx, c.Data)
	}
	if err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	return st, nil
}

// URL is the server's root URL (the listener's real address).
func (m *Main) URL() string { return "http://" + m.listener.Addr().String() }

// Run serves until ctx ends, then stops accepting, lets in-flight requests
// finish (up to 30 s) and returns.
func (m *Main) Run(ctx context.Context) error {
	backend := "sqlite"
	if m.Config.MongoURI != "" {
		backend = "mongodb"
	}
	m.logger.Info("serving", "addr", m.listener.Addr().String(), "store", backend, "insecure_no_auth", m.Config.InsecureNoAuth)
	errc := make(chan error, 1)
	go func() { errc <- m.server.Serve(m.listener) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	m.logger.Info("shutting down")
	sctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err := m.server.Shutdown(sctx)
	if serr := <-errc; !errors.Is(serr, http.ErrServerClosed) && err == nil {
		err = serr
	}
	return err
}

// Close closes the store (after Run has returned).
func (m *Main) Close() error {
	if m.store == nil {
		return nil
	}
	return m.store.Close()
}
