// Package rest serves the FHIR R4 REST API over Gin. Handlers speak to the
// store only through the store.Store interface, never to a database driver.
package rest

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/fmtbank/cmts/fhir"
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
	// BaseURL is the public FHIR base (e.g. https://cmts.example.org/fhir);
	// empty derives it from each request.
	BaseURL string
	// MaxBody limits request bodies (default 16 MiB).
	MaxBody int64
	// Now is the clock (default time.Now); tests fix it.
	Now    func() time.Time
	Logger *slog.Logger
	// Version is this build's version, shown in the CapabilityStatement.
	Version string
	// Validator (optional) checks writes against profiles and answers
	// $validate; Conformance (optional) serves the implementation guide's
	// resources read-only and the terminology operations.
	Validator   fhir.Validator
	Conformance fhir.Conformance
}

// DefaultMaxBody is the request body limit unless configured.
const DefaultMaxBody = 16 << 20

// Server is the FHIR REST API.
type Server struct {
	opts   Options
	engine *gin.Engine
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
	}
	if opts.MaxBody <= 0 {
		opts.MaxBody = DefaultMaxBody
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	opts.BaseURL = strings.TrimSuffix(opts.BaseURL, "/")
	s := &Server{opts: opts}
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
		{http.MethodGet, "/_history", "history-system", "system", (*Server).historySystem},
		{http.MethodGet, "", "search-system", "system", (*Server).search},
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
	api := e.Group("/fhir", s.negotiate, s.authenticate, s.profileRoutes)
	for _, r := range routeTable() {
		api.Handle(r.method, r.path, s.typed(r.handle))
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
			if err := checkID(id); err != nil {
				s.fail(c, err)
				return
			}
		}
		h(s, c)
	}
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

const principalKey = "cmts.principal"

func (s *Server) authenticate(c *gin.Context) {
	if c.FullPath() == "/fhir/metadata" {
		// The CapabilityStatement is public, as SMART clients need it to
		// discover how to authenticate.
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

// fail answers with the error's status and OperationOutcome; internal errors
// are logged (the client sees no detail).
func (s *Server) fail(c *gin.Context, err error) {
	fe := fhir.AsError(err)
	if fe.Status >= 500 {
		s.opts.Logger.Error("request failed", "route", c.FullPath(), "status", fe.Status, "err", err)
	}
	lang := fhir.NegotiateLanguage(c.GetHeader("Accept-Language"))
	s.writeJSON(c, fe.Status, fhir.OperationOutcome(fe.Issues, lang))
	c.Abort()
}
