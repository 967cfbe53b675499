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
	"path/filepath"
	"strings"
	"time"

	"github.com/fmtbank/cmts/auth"
	"github.com/fmtbank/cmts/auth/audit"
	"github.com/fmtbank/cmts/auth/policy"
	"github.com/fmtbank/cmts/fhir"
	"github.com/fmtbank/cmts/fhir/bundle"
	"github.com/fmtbank/cmts/fhir/export"
	"github.com/fmtbank/cmts/fhir/ops"
	"github.com/fmtbank/cmts/fhir/rest"
	"github.com/fmtbank/cmts/fhir/search"
	"github.com/fmtbank/cmts/store"
	"github.com/fmtbank/cmts/store/mongo"
	"github.com/fmtbank/cmts/store/sqlite"
)

// Config is what `serve` is told by flags and their CMTS_* environment twins.
type Config struct {
	Addr     string
	Data     string
	MongoURI string
	MongoDB  string
	// MongoLease is how long a MongoDB writer's claims and transactions
	// outlive it when it dies (mongo.Options.ClaimLease).
	MongoLease     time.Duration
	BaseURL        string
	InsecureNoAuth bool
	LogLevel       string
	MaxBody        int64
	// Limits bound the work of one request body (--max-depth and the rest).
	Limits fhir.Limits
	// DefaultTenant is the tenant of every request under --insecure-no-auth.
	DefaultTenant string

	// ReadTimeout bounds reading a whole request, body included, so a body
	// trickling in at a byte a second cannot hold a connection for ever.
	ReadTimeout time.Duration
	// WriteTimeout bounds serving a request and writing its answer, so a
	// client that never reads cannot hold the answer's memory for ever.
	WriteTimeout time.Duration
	// IdleTimeout closes keep-alive connections with no request.
	IdleTimeout time.Duration
	// MaxConcurrent bounds the FHIR requests served at once.
	MaxConcurrent int
	// MaxBundleEntries bounds the entries of one batch or transaction.
	MaxBundleEntries int
	// Search bounds the cost of one search.
	Search search.Limits
	// Trust is the trust file of identity providers and tenants (--trust).
	Trust string
	// RequireProfiles makes Patient, Procedure, Specimen and AdverseEvent
	// writes claim one of the WMT profiles.
	RequireProfiles bool
	// ExportDir holds the Bulk Data $export files when set; otherwise
	// they are kept in the store's own place: GridFS on MongoDB, export
	// under --data on the embedded store. Every instance serving one store
	// must see the same one.
	ExportDir string
	// ExportLease is how long an export job whose worker died (a kill, a
	// crash) waits before another worker takes it up.
	ExportLease time.Duration
	// GC is how the garbage collector trades memory for CPU (serve,
	// import).
	GC gcConfig
}

// Main is the server the binary runs; end-to-end tests run the same one.
type Main struct {
	Config Config
	stderr io.Writer

	logger   *slog.Logger
	store    store.Store
	exporter *export.Exporter
	listener net.Listener
	server   *http.Server
	uploads  *uploads
	// audit batches the audit trail's records of reads; flushed at shutdown.
	audit *audit.Batcher
}

// NewMain returns a Main that logs to stderr.
func NewMain(stderr io.Writer) *Main { return &Main{stderr: stderr} }

// ParseFlags reads flags; each flag's default comes from its env twin
// CMTS_<FLAG> (dashes to underscores), so an explicit flag wins over the env.
// A value that does not parse is an error, from the env as from a flag.
func (m *Main) ParseFlags(args []string) error {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(m.stderr)
	c := &m.Config
	storeFlags(fs, c)
	fs.StringVar(&c.Addr, "addr", "127.0.0.1:8080", "listen address")
	fs.StringVar(&c.BaseURL, "base-url", "", "public FHIR base URL for links (needed on a non-loopback address; default: the request's loopback host)")
	fs.BoolVar(&c.InsecureNoAuth, "insecure-no-auth", false, "no authentication (development only; loopback addresses only)")
	fs.StringVar(&c.Trust, "trust", "", "JSON file of the trusted OpenID Providers and tenants (docs/auth.md)")
	fs.StringVar(&c.ExportDir, "export-dir", "", "directory of the Bulk Data $export files (default: GridFS on MongoDB, export under --data on the embedded store)")
	fs.DurationVar(&c.ExportLease, "export-lease", time.Minute, "how long an export job whose server died waits before another takes it up")
	fs.StringVar(&c.LogLevel, "log-level", "info", "debug, info, warn or error")
	fs.Int64Var(&c.MaxBody, "max-body", rest.DefaultMaxBody, "largest request body in bytes")
	fs.IntVar(&c.Limits.Depth, "max-depth", fhir.DefaultDepth, "deepest nesting of JSON objects and arrays in a resource")
	fs.IntVar(&c.Limits.Array, "max-array", fhir.DefaultArray, "most entries in one JSON array of a resource")
	fs.IntVar(&c.Limits.Elements, "max-elements", fhir.DefaultElements, "most JSON values in one resource (each Bundle entry's resource counted apart)")
	fs.IntVar(&c.Limits.PatchOps, "max-patch-ops", fhir.DefaultPatchOps, "most operations in one JSON Patch")
	fs.StringVar(&c.DefaultTenant, "tenant", "default", "tenant of requests under --insecure-no-auth")
	fs.BoolVar(&c.RequireProfiles, "require-profiles", false, "Patient, Procedure, Specimen and AdverseEvent must claim a WMT profile")
	fs.DurationVar(&c.ReadTimeout, "read-timeout", time.Minute, "longest time to read a request, body included")
	fs.DurationVar(&c.WriteTimeout, "write-timeout", 2*time.Minute, "longest time to serve a request and write its answer")
	fs.DurationVar(&c.IdleTimeout, "idle-timeout", time.Minute, "how long an idle keep-alive connection stays open")
	fs.IntVar(&c.MaxBundleEntries, "max-bundle-entries", rest.DefaultMaxBundleEntries, "entries in one batch or transaction (more: 413)")
	fs.IntVar(&c.MaxConcurrent, "max-concurrent", rest.DefaultMaxConcurrent, "FHIR requests served at once; more wait briefly, then get 503")
	sl := &c.Search
	fs.IntVar(&sl.MaxValues, "max-search-values", search.DefaultLimits.MaxValues, "comma-separated values in one search parameter")
	fs.IntVar(&sl.MaxTerms, "max-search-terms", search.DefaultLimits.MaxTerms, "search values of all parameters together")
	fs.IntVar(&sl.MaxParams, "max-search-params", search.DefaultLimits.MaxParams, "search parameters (repeats included) in one search")
	fs.IntVar(&sl.MaxSortKeys, "max-sort-keys", search.DefaultLimits.MaxSortKeys, "keys in _sort")
	fs.IntVar(&sl.MaxIncludes, "max-includes", search.DefaultLimits.MaxIncludes, "_include and _revinclude values in one search")
	gcFlags(fs, &c.GC)
	if err := parseWithEnv(fs, args); err != nil {
		return err
	}
	if err := c.GC.parsed(fs); err != nil {
		return err
	}
	return c.check()
}

// storeFlags are the flags that choose the store, shared by every command
// that opens one.
func storeFlags(fs *flag.FlagSet, c *Config) {
	fs.StringVar(&c.Data, "data", "./data", "data directory of the embedded store")
	fs.StringVar(&c.MongoURI, "mongo-uri", "", "MongoDB URI; switches from the embedded store to MongoDB")
	fs.StringVar(&c.MongoDB, "mongo-db", "cmts", "MongoDB database name")
	fs.DurationVar(&c.MongoLease, "mongo-lease", mongo.DefaultClaimLease, "how long a MongoDB writer that died holds what it was writing; a live writer must take less than half of it over each batch of a transaction")
}

// envName is a flag's environment twin: CMTS_ and the name in capitals,
// dashes as underscores.
func envName(flagName string) string {
	return "CMTS_" + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

// parseWithEnv sets each flag from its env twin, then from args (so a flag
// wins), and names the twins in -help. Each value goes through the flag's
// own parser: a bad CMTS_* value is an error, not the default, and a
// boolean takes what strconv.ParseBool takes.
func parseWithEnv(fs *flag.FlagSet, args []string) error {
	if err := parseWithEnvArgs(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments: %v", fs.Args())
	}
	return nil
}

// check refuses configurations that would expose data: without a trust
// file nothing could authenticate callers, so the server listens on loopback
// only, with or without --insecure-no-auth.
func (c *Config) check() error {
	host, _, err := net.SplitHostPort(c.Addr)
	if err != nil {
		return fmt.Errorf("--addr %q: %w", c.Addr, err)
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{{"--read-timeout", c.ReadTimeout}, {"--write-timeout", c.WriteTimeout}, {"--idle-timeout", c.IdleTimeout}, {"--export-lease", c.ExportLease}, {"--mongo-lease", c.MongoLease}} {
		if d.v <= 0 {
			return fmt.Errorf("%s must be positive, not %v", d.name, d.v)
		}
	}
	for _, n := range []struct {
		name string
		v    int64
	}{{"--max-body", c.MaxBody}, {"--max-depth", int64(c.Limits.Depth)}, {"--max-array", int64(c.Limits.Array)},
		{"--max-elements", int64(c.Limits.Elements)}, {"--max-patch-ops", int64(c.Limits.PatchOps)}, {"--max-concurrent", int64(c.MaxConcurrent)}, {"--max-bundle-entries", int64(c.MaxBundleEntries)}, {"--max-search-values", int64(c.Search.MaxValues)},
		{"--max-search-terms", int64(c.Search.MaxTerms)}, {"--max-search-params", int64(c.Search.MaxParams)},
		{"--max-sort-keys", int64(c.Search.MaxSortKeys)}, {"--max-includes", int64(c.Search.MaxIncludes)}} {
		if n.v <= 0 {
			return fmt.Errorf("%s must be positive, not %d", n.name, n.v)
		}
	}
	if c.InsecureNoAuth && c.Trust != "" {
		return errors.New("--insecure-no-auth and --trust exclude each other")
	}
	if !isLoopback(host) && c.Trust == "" {
		if c.InsecureNoAuth {
			return fmt.Errorf("--insecure-no-auth refuses the non-loopback address %q", c.Addr)
		}
		return fmt.Errorf("no identity provider is configured, so the non-loopback address %q is refused", c.Addr)
	}
	if !isLoopback(host) && c.BaseURL == "" {
		// Links come from --base-url; without it only loopback Host headers
		// are answered, which no remote client sends.
		return fmt.Errorf("the non-loopback address %q needs --base-url (the public FHIR base for links)", c.Addr)
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
	var smart fhir.SMARTConfigurer
	if m.Config.InsecureNoAuth {
		authn = auth.Insecure{Tenant: m.Config.DefaultTenant}
	}
	if m.Config.Trust != "" {
		if authn, smart, err = openTrust(m.Config.Trust, m.logger); err != nil {
			return err
		}
	}
	engine, guide, err := withGuide(m.store, m.Config.RequireProfiles)
	if err != nil {
		return err
	}
	engine.Limits = m.Config.Search
	// The audit trail: writes are recorded in their own transaction
	// (hook), everything else in batches (m.audit), flushed at shutdown.
	recorder := m.Config.BaseURL
	if recorder == "" {
		recorder = "http://" + m.Config.Addr + "/fhir"
	}
	maker := &audit.Maker{Server: audit.Server{BaseURL: recorder}, Indexer: engine, OrderedIDs: bundle.WantsOrderedIDs(m.store)}
	if m.audit, err = audit.NewBatcher(audit.BatcherOptions{Store: m.store, Maker: maker, Logger: m.logger}); err != nil {
		return err
	}
	hook, err := audit.NewHook(maker, m.audit)
	if err != nil {
		return err
	}
	pol := policy.New(engine)
	// The operations write through a Writer of their own with the same
	// validation, policy and audit as the REST writes.
	opsWriter, err := bundle.NewWriter(bundle.Options{Store: m.store, Codec: codec, Indexer: engine,
		Validator: guide, MaxBody: m.Config.MaxBody, Guard: pol, Auditor: hook})
	if err != nil {
		return err
	}
	var files export.Files = export.Dir(filepath.Join(m.Config.Data, "export"))
	if ms, ok := m.store.(*mongo.Store); ok {
		files = ms.ExportFiles()
	}
	if m.Config.ExportDir != "" {
		files = export.Dir(m.Config.ExportDir)
	}
	if m.exporter, err = export.New(export.Options{Store: m.store, Policy: pol, Indexer: engine, Types: codec.ResourceTypes(),
		Compartment: policy.PatientCompartment, Files: files, Stale: m.Config.ExportLease, Logger: m.logger}); err != nil {
		return err
	}
	api, err := rest.New(rest.Options{
		Store: m.store, Codec: codec, Indexer: engine, Auth: authn, SMART: smart, Validator: guide, Conformance: guide,
		BaseURL: m.Config.BaseURL, MaxBody: m.Config.MaxBody, Limits: m.Config.Limits, Logger: m.logger, Version: version,
		MaxConcurrent: m.Config.MaxConcurrent, MaxBundleEntries: m.Config.MaxBundleEntries,
		Policy: pol, Operations: ops.New(ops.Options{Store: m.store, Policy: pol, Writer: opsWriter}), Audit: m.audit, Auditor: hook,
		Export: m.exporter,
	})
	if err != nil {
		return err
	}
	m.listener, err = net.Listen("tcp", m.Config.Addr)
	if err != nil {
		return err
	}
	m.uploads = newUploads()
	m.server = &http.Server{
		Handler:           m.uploads.wrap(api),
		ReadHeaderTimeout: min(10*time.Second, m.Config.ReadTimeout),
		ReadTimeout:       m.Config.ReadTimeout,
		WriteTimeout:      m.Config.WriteTimeout,
		IdleTimeout:       m.Config.IdleTimeout,
		ErrorLog:          slog.NewLogLogger(m.logger.Handler(), slog.LevelWarn),
	}
	return nil
}

// openTrust loads the trust file and returns the token verifier, which
// also describes the SMART authorization server.
func openTrust(path string, logger *slog.Logger) (*auth.Verifier, *auth.Verifier, error) {
	trust, err := auth.LoadTrust(path)
	if err != nil {
		return nil, nil, err
	}
	v, err := auth.NewVerifier(trust, auth.Options{Logger: logger})
	return v, v, err
}

// openStore opens the configured backend: MongoDB when a URI is given, else
// the embedded store under the data directory.
func openStore(ctx context.Context, c Config) (store.Store, error) {
	var st store.Store
	var err error
	if c.MongoURI != "" {
		st, err = mongo.Open(ctx, mongo.Options{URI: c.MongoURI, Database: c.MongoDB, ClaimLease: c.MongoLease})
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

// uploadGrace is how long a shutdown waits for request bodies still
// arriving; a client that sends in time is served, a stalled one is cut off.
const uploadGrace = 3 * time.Second

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
	// The export worker runs jobs accepted here or by another instance,
	// and takes up those a stopped instance left.
	wctx, stopWorker := context.WithCancel(context.Background())
	workerDone := make(chan struct{})
	go func() { defer close(workerDone); _ = m.exporter.Run(wctx) }()
	defer func() { stopWorker(); <-workerDone }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	m.logger.Info("shutting down")
	// Requests whose bodies are still arriving would hold the drain for up
	// to --read-timeout; they get a short grace, the rest finish.
	m.uploads.cutOff(uploadGrace)
	sctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err := m.server.Shutdown(sctx)
	if serr := <-errc; !errors.Is(serr, http.ErrServerClosed) && err == nil {
		err = serr
	}
	// What the drained requests did is stored before the store closes.
	if aerr := m.audit.Close(sctx); aerr != nil && err == nil {
		err = aerr
	}
	return err
}

// Close closes the store (after Run has returned).
func (m *Main) Close() error {
	if m.store == nil {
		return nil
	}
	if m.audit != nil {
		// Already flushed when Run shut down cleanly; otherwise now.
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		m.audit.Close(ctx)
	}
	return m.store.Close()
}
