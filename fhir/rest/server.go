// Package rest serves the FHIR R4 REST API over Gin. Handlers speak to the
// store only through the store.Store interface, never to a database driver.
package rest

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/fmtbank/cmts/fhir"
	"github.com/fmtbank/cmts/fhir/bundle"
	"github.com/fmtbank/cmts/fhir/search"
	"github.com/fmtbank/cmts/store"
	"github.com/gin-gonic/gin"
)

// Indexer computes search index entries, compiles search queries and lists
// the parameters it supports; search.Engine implements it.
type Indexer interface {
	Entries(resourceType string, body []byte) ([]store.IndexEntry, error)
	// References is Entries of one reference parameter ("*": all of them).
	References(resourceType string, body []byte, param string) ([]store.IndexEntry, error)
	Compile(resourceType string, params url.Values) (store.Expr, error)
	Parse(resourceType string, params url.Values, strict bool) (*search.Search, error)
	Params(resourceType string) []search.Param
}

// Options configure a Server. Store, Codec, Indexer and Auth are required.
type Options struct {
	Store   store.Store
	Codec   *fhir.Codec
	Indexer Indexer
	Auth    fhir.Authenticator
	// SMART describes the authorization server for
	// /.well-known/smart-configuration and the CapabilityStatement's
	// rest.security; nil serves neither.
	SMART fhir.SMARTConfigurer
	// BaseURL is the public FHIR base (e.g. https://cmts.example.org/fhir);
	// empty derives it from each request.
	BaseURL string
	// MaxBody limits request bodies (default 16 MiB), and the resource a
	// JSON Patch makes.
	MaxBody int64
	// Limits bound the work one request may cause: the codec's scan of a
	// resource body and the operations of a JSON Patch. When set (any field
	// non-zero; the others take their defaults) they replace the codec's;
	// when zero, the codec's apply.
	Limits fhir.Limits
	// Now is the clock (default time.Now); tests fix it.
	Now    func() time.Time
	Logger *slog.Logger
	// Version is this build's version, shown in the CapabilityStatement.
	Version string
	// MaxConcurrent bounds the FHIR requests served at once (default
	// DefaultMaxConcurrent); one more waits up to QueueWait for a place, then
	// is answered 503 with Retry-After. It bounds the memory that slow or
	// stalled clients can hold.
	MaxConcurrent int
	// QueueWait is how long a request waits for a place (default 2 s).
	QueueWait time.Duration
	// MaxBundleEntries bounds the entries of a batch or transaction
	// (default DefaultMaxBundleEntries; more: 413).
	MaxBundleEntries int
	// Validator (optional) checks writes against profiles and answers
	// $validate; Conformance (optional) serves the implementation guide's
	// resources read-only and the terminology operations.
	Validator   fhir.Validator
	Conformance fhir.Conformance
	// Operations (optional) runs the operations on stored data (the WMT
	// safety operations).
	Operations fhir.Operations
	// Export (optional) runs Bulk Data $export jobs (system, Patient and
	// Group level) and serves their status and file URLs.
	Export fhir.Exports
	// Policy decides what each caller may do and see (required).
	Policy fhir.Policy
	// Audit (optional) records every answered request; Auditor (optional)
	// records every write in the same store transaction as its data. A
	// deployment sets both: together they are the audit trail.
	Audit   fhir.AuditTrail
	Auditor bundle.Auditor
}

// DefaultMaxConcurrent is the bound on concurrent FHIR requests unless
// configured: enough to keep two cores and the store busy.
const DefaultMaxConcurrent = 64

// DefaultMaxBody is the request body limit unless configured.
const DefaultMaxBody = 16 << 20

// Server is the FHIR REST API.
type Server struct {
	opts   Options
	engine *gin.Engine
	// writer carries out every write, single or in a Bundle.
	writer *bundle.Writer
	// slots holds one token per request being served (MaxConcurrent).
	slots chan struct{}
}

// New checks the options and builds the routes.
func New(opts Options) (*Server, error) {
	switch {
	case opts.Store == nil:
		return nil, errors.New("rest: no store")
	case opts.Codec == nil:
		return nil, errors.New("rest: no codec")
	case opts.Indexer == nil:
		return nil, errors.New("rest: no indexer")
	case opts.Auth == nil:
		return nil, errors.New("rest: no authenticator")
	case opts.Policy == nil:
		return nil, errors.New("rest: no access policy")
	}
	if opts.MaxBody <= 0 {
		opts.MaxBody = DefaultMaxBody
	}
	if opts.Limits == (fhir.Limits{}) {
		opts.Limits = opts.Codec.Limits()
	} else {
		opts.Codec = opts.Codec.WithLimits(opts.Limits)
		opts.Limits = opts.Codec.Limits()
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.MaxConcurrent <= 0 {
		opts.MaxConcurrent = DefaultMaxConcurrent
	}
	if opts.MaxBundleEntries <= 0 {
		opts.MaxBundleEntries = DefaultMaxBundleEntries
	}
	if opts.QueueWait <= 0 {
		opts.QueueWait = 2 * time.Second
	}
	opts.BaseURL = strings.TrimSuffix(opts.BaseURL, "/")
	s := &Server{opts: opts, slots: make(chan struct{}, opts.MaxConcurrent)}
	var err error
	s.writer, err = bundle.NewWriter(bundle.Options{Store: opts.Store, Codec: opts.Codec, Indexer: opts.Indexer,
		Validator: opts.Validator, Now: opts.Now, MaxBody: opts.MaxBody, PatchOps: opts.Limits.PatchOps, Guard: opts.Policy,
		Auditor: opts.Auditor})
	if err != nil {
		return nil, err
	}
	s.engine = s.routes()
	return s, nil
}

// ServeHTTP serves the API, /healthz and /readyz.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.engine.ServeHTTP(w, r) }

// route is one REST interaction; the router and the CapabilityStatement are
// both built from the same table, so metadata cannot drift from what is served.
type route struct {
	method string
	path   string
	// interaction is the CapabilityStatement code ("" for none).
	interaction string
	level       string // "type", "instance" or "system"
	handle      func(*Server, *gin.Context)
}

func routeTable() []route {
	return []route{
		{http.MethodGet, "/metadata", "", "system", (*Server).capabilities},
		{http.MethodGet, smartConfigurationPath, "", "system", (*Server).smartConfiguration},
		{http.MethodGet, "/_history", "history-system", "system", (*Server).historySystem},
		{http.MethodGet, "", "search-system", "system", (*Server).search},
		// One handler serves both: the Bundle's type says which.
		{http.MethodPost, "", "transaction", "system", (*Server).transaction},
		{http.MethodPost, "/", "batch", "system", (*Server).transaction},
		{http.MethodPost, "/_search", "search-system", "system", (*Server).search},
		{http.MethodGet, "/:type", "search-type", "type", (*Server).search},
		{http.MethodPost, "/:type/_search", "search-type", "type", (*Server).search},
		{http.MethodPost, "/:type", "create", "type", (*Server).create},
		{http.MethodPut, "/:type", "update", "type", (*Server).conditionalUpdate},
		{http.MethodDelete, "/:type", "delete", "type", (*Server).conditionalDelete},
		{http.MethodGet, "/:type/_history", "history-type", "type", (*Server).historyType},
		{http.MethodGet, "/:type/:id", "read", "instance", (*Server).read},
		{http.MethodPut, "/:type/:id", "update", "instance", (*Server).update},
		{http.MethodPatch, "/:type/:id", "patch", "instance", (*Server).patch},
		{http.MethodDelete, "/:type/:id", "delete", "instance", (*Server).delete},
		{http.MethodGet, "/:type/:id/_history", "history-instance", "instance", (*Server).historyInstance},
		{http.MethodGet, "/:type/:id/_history/:vid", "vread", "instance", (*Server).vread},
		// Bulk Data: the status and file URLs an $export kick-off hands out.
		{http.MethodGet, exportStatusPath + "/:job", "", "system", (*Server).exportStatus},
		{http.MethodDelete, exportStatusPath + "/:job", "", "system", (*Server).exportCancel},
		{http.MethodGet, exportFilePath + "/:job/:file", "", "system", (*Server).exportFile},
		// Operations ($validate, terminology) are answered by profileRoutes.
		{http.MethodPost, "/:type/:id", "", "type", (*Server).unknownOperation},
		{http.MethodGet, "/:type/:id/:op", "", "instance", (*Server).unknownOperation},
		{http.MethodPost, "/:type/:id/:op", "", "instance", (*Server).unknownOperation},
	}
}

func (s *Server) routes() *gin.Engine {
	// Gin's debug mode prints every route at start-up and is a process-wide
	// switch; the server never wants it.
	gin.SetMode(gin.ReleaseMode)
	e := gin.New()
	e.HandleMethodNotAllowed = true
	e.RedirectTrailingSlash = false
	e.Use(s.recoverer, s.logRequests)
	e.GET("/healthz", func(c *gin.Context) { c.String(http.StatusOK, "ok\n") })
	e.GET("/readyz", s.ready)
	api := e.Group("/fhir", s.auditRequests, s.checkHost, s.admit, s.negotiate, s.authenticate, s.profileRoutes)
	for _, r := range routeTable() {
		api.Handle(r.method, r.path, s.typed(allowed(fhir.Action(r.interaction), r.handle)))
	}
	e.NoRoute(func(c *gin.Context) {
		s.fail(c, fhir.Invalid(fhir.IssueNotFound, "No such endpoint: "+c.Request.URL.Path, "不存在的接口："+c.Request.URL.Path).
			WithStatus(http.StatusNotFound))
	})
	e.NoMethod(func(c *gin.Context) {
		s.fail(c, fhir.MethodNotAllowed(c.Request.Method, c.Request.URL.Path))
	})
	return e
}

// typed checks the :type segment names an R4 resource type, and the :id
// segment is a valid id, before the handler runs.
func (s *Server) typed(h func(*Server, *gin.Context)) gin.HandlerFunc {
	return func(c *gin.Context) {
		if t := c.Param("type"); t != "" && !s.opts.Codec.IsResourceType(t) {
			s.fail(c, fhir.UnknownType(t))
			return
		}
		if id, ok := c.Params.Get("id"); ok {
			if err := bundle.CheckID(id); err != nil {
				s.fail(c, err)
				return
			}
		}
		h(s, c)
	}
}

// allowed asks the access policy about the route's interaction before its
// handler runs (routes without one are public or answer an error).
func allowed(a fhir.Action, h func(*Server, *gin.Context)) func(*Server, *gin.Context) {
	if a == "" {
		return h
	}
	return func(s *Server, c *gin.Context) {
		c.Set(actionKey, a)
		if err := s.opts.Policy.Allow(principal(c), a, c.Param("type")); err != nil {
			s.fail(c, err)
			return
		}
		h(s, c)
	}
}

const actionKey = "cmts.action"

// auditRequests records every request in the audit trail once answered:
// who, what (the query's parameter names, never their values), the outcome.
// A write that succeeded was recorded with its data, in its transaction.
func (s *Server) auditRequests(c *gin.Context) {
	client := fhir.Client{Remote: c.ClientIP(), RequestID: c.GetHeader("X-Request-Id")}
	if _, ok := internalPrincipal(c.Request); ok {
		// A Bundle's read entry comes from the outer request's client.
		client = fhir.ClientFrom(c.Request.Context())
	}
	c.Request = c.Request.WithContext(fhir.WithClient(c.Request.Context(), client))
	c.Next()
	if s.opts.Audit == nil {
		return
	}
	r := fhir.AuditRequest{Remote: client.Remote, RequestID: client.RequestID, Time: s.opts.Now(),
		Status: c.Writer.Status(), Type: c.Param("type"), ID: c.Param("id"), Version: c.Param("vid"), Query: c.Request.URL.RawQuery}
	if v, ok := c.Get(principalKey); ok {
		r.Principal = v.(*fhir.Principal)
	}
	if v, ok := c.Get(actionKey); ok {
		r.Action = v.(fhir.Action)
	}
	switch {
	case strings.HasPrefix(c.Param("op"), "$"):
		r.Action, r.Operation = fhir.ActionOperation, c.Param("op")
	case strings.HasPrefix(r.ID, "$"):
		r.Action, r.Operation, r.ID = fhir.ActionOperation, r.ID, ""
	case strings.HasPrefix(r.Type, "$"):
		r.Action, r.Operation, r.Type = fhir.ActionOperation, r.Type, ""
	case r.Action == "" && c.FullPath() == "/fhir/metadata":
		r.Action = fhir.ActionCapabilities
	case r.Action == "":
		// Never reached a route (a bad URL, a refusal before routing).
		r.Action = fhir.ActionOf(c.Request.Method)
	}
	switch r.Action {
	case fhir.ActionCreate, fhir.ActionUpdate, fhir.ActionPatch, fhir.ActionDelete:
		if r.Status < 400 {
			return
		}
	}
	s.opts.Audit.Requested(c.Request.Context(), r)
}

// view is the body of v as the caller may see it (see fhir.Policy.View).
func (s *Server) view(c *gin.Context, v *store.Version) ([]byte, error) {
	return s.opts.Policy.View(principal(c), v)
}

// readable reports whether the caller may see v.
func (s *Server) readable(c *gin.Context, v *store.Version) bool {
	return s.opts.Policy.Readable(principal(c), v)
}

func (s *Server) ready(c *gin.Context) {
	ctx, cancel := context.WithTimeout(c.Request.Context(), 2*time.Second)
	defer cancel()
	if err := s.opts.Store.Ping(ctx); err != nil {
		s.fail(c, err)
		return
	}
	c.String(http.StatusOK, "ready\n")
}

// admit holds a request until one of MaxConcurrent places is free, or
// answers 503 after QueueWait.
func (s *Server) admit(c *gin.Context) {
	if _, ok := internalPrincipal(c.Request); ok {
		// A Bundle's read entry runs inside its Bundle's place.
		c.Next()
		return
	}
	t := time.NewTimer(s.opts.QueueWait)
	defer t.Stop()
	select {
	case s.slots <- struct{}{}:
	case <-t.C:
		c.Header("Retry-After", "1")
		s.fail(c, fhir.Busy())
		return
	case <-c.Request.Context().Done():
		c.Abort()
		return
	}
	defer func() { <-s.slots }()
	c.Next()
}

func (s *Server) recoverer(c *gin.Context) {
	defer func() {
		if v := recover(); v != nil {
			if v == http.ErrAbortHandler {
				panic(v)
			}
			s.opts.Logger.Error("panic in handler", "route", c.FullPath(), "panic", v)
			s.fail(c, errors.New("panic"))
		}
	}()
	c.Next()
}

// logRequests logs the route pattern, never the URL: ids and query values can
// identify patients.
func (s *Server) logRequests(c *gin.Context) {
	start := time.Now()
	c.Next()
	s.opts.Logger.Info("request", "method", c.Request.Method, "route", c.FullPath(),
		"status", c.Writer.Status(), "duration", time.Since(start))
}

// statusClientClosed is logged for a request whose client went away (the
// code nginx uses); it never reaches a client.
const statusClientClosed = 499

const principalKey = "cmts.principal"

func (s *Server) authenticate(c *gin.Context) {
	if public(c.FullPath()) {
		// The CapabilityStatement and the SMART document are public, as
		// SMART clients need them to discover how to authenticate.
		c.Next()
		return
	}
	if p, ok := internalPrincipal(c.Request); ok {
		// A Bundle's read entry: the outer request was authenticated.
		c.Set(principalKey, p)
		c.Next()
		return
	}
	p, err := s.opts.Auth.Authenticate(c.Request)
	if err != nil {
		s.fail(c, err)
		return
	}
	c.Set(principalKey, p)
	c.Next()
}

func principal(c *gin.Context) *fhir.Principal {
	return c.MustGet(principalKey).(*fhir.Principal)
}

// access is what the request's store calls may see: every store read of a
// handler takes it from here.
func (s *Server) access(c *gin.Context) store.Access {
	return s.opts.Policy.Access(principal(c))
}

// fail answers with the error's status and OperationOutcome; internal errors
// are logged (the client sees no detail).
func (s *Server) fail(c *gin.Context, err error) {
	fe := fhir.AsError(err)
	if fe.Status >= 500 && c.Request.Context().Err() != nil {
		// The client went away (its context ends with the connection): not
		// a server fault, and nobody reads an answer.
		s.opts.Logger.Info("client closed request", "route", c.FullPath())
		c.Status(statusClientClosed)
		c.Abort()
		return
	}
	if fe.Status >= 500 {
		s.opts.Logger.Error("request failed", "route", c.FullPath(), "status", fe.Status, "err", err)
	}
	if fe.Status == http.StatusUnauthorized {
		c.Header("WWW-Authenticate", bearerChallenge(c.Request))
	}
	if fe.RetryAfter > 0 {
		c.Header("Retry-After", strconv.Itoa(int((fe.RetryAfter+time.Second-1)/time.Second)))
	}
	lang := fhir.NegotiateLanguage(c.GetHeader("Accept-Language"))
	s.writeJSON(c, fe.Status, fhir.OperationOutcome(fe.Issues, lang))
	c.Abort()
}
