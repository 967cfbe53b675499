package rest

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"strings"

	"github.com/fmtbank/cmts/fhir"
	"github.com/fmtbank/cmts/fhir/bundle"
	"github.com/gin-gonic/gin"
)

// DefaultMaxBundleEntries bounds the entries of one batch or transaction
// unless configured.
const DefaultMaxBundleEntries = 10_000

// transaction serves POST [base] with a batch or transaction Bundle.
func (s *Server) transaction(c *gin.Context) {
	body, err := s.readBody(c, mimeFHIRJSON, mimeJSON)
	if err != nil {
		s.fail(c, err)
		return
	}
	// The budget of every entry's resource is checked before anything is
	// parsed; each entry's resource is then parsed and validated once, by
	// the writer (the Bundle around them is read by bundle.Parse).
	// Scan refuses a body that is not JSON first.
	if err := s.opts.Codec.Limits().Scan(body); err != nil {
		s.fail(c, err)
		return
	}
	req, err := bundle.Parse(body, s.opts.MaxBundleEntries, s.opts.Codec.IsResourceType)
	if err != nil {
		s.fail(c, err)
		return
	}
	if req.Type == "batch" {
		// The Bundle's type says which, whatever the URL (for the audit).
		c.Set(actionKey, fhir.ActionBatch)
	} else {
		c.Set(actionKey, fhir.ActionTransaction)
	}
	reply := bundle.Reply{Base: s.base(c), Return: preferReturn(c), Lang: fhir.NegotiateLanguage(c.GetHeader("Accept-Language"))}
	resp, err := s.writer.Process(c.Request.Context(), principal(c), req, &entryReader{s: s, outer: c.Request}, reply)
	if err != nil {
		s.fail(c, bundle.Locate(err))
		return
	}
	if param(c, "_pretty") == "true" {
		var buf bytes.Buffer
		if _, err := resp.WriteTo(&buf); err != nil {
			s.fail(c, err)
			return
		}
		s.writeJSON(c, http.StatusOK, buf.Bytes())
		return
	}
	// Written as it is rendered: a Bundle answering 10,000 entries is
	// never held whole.
	c.Header("Content-Type", jsonContentType(c))
	c.Status(http.StatusOK)
	if _, err := resp.WriteTo(c.Writer); err != nil {
		// The status is sent: the client (most likely gone) sees a
		// truncated body.
		s.opts.Logger.WarnContext(c.Request.Context(), "writing a bundle response", "error", err)
	}
}

// internalKey marks a request the server makes to itself for a Bundle's
// read entry; it carries the outer request's principal. Only code in this
// package can set it: no HTTP client can.
type internalKey struct{}

// entryReader serves a Bundle's GET and HEAD entries through the REST API
// itself, so they mean exactly what the same request would.
type entryReader struct {
	s     *Server
	outer *http.Request
}

func (r *entryReader) ReadEntry(ctx context.Context, p *fhir.Principal, e *bundle.Entry) (int, http.Header, []byte) {
	target := "/fhir/" + strings.TrimPrefix(e.URL, "/")
	var body io.Reader
	if e.Resource != nil {
		body = bytes.NewReader(e.Resource)
	}
	req, err := http.NewRequestWithContext(context.WithValue(ctx, internalKey{}, p), e.Method, target, body)
	if err != nil {
		fe := fhir.Invalid(fhir.IssueInvalid, "The entry's URL cannot be read", "条目的 URL 无法解析")
		return fe.Status, http.Header{}, fhir.OperationOutcome(fe.Issues, fhir.English)
	}
	req.Host, req.TLS = r.outer.Host, r.outer.TLS
	if body != nil {
		req.Header.Set("Content-Type", mimeFHIRJSON)
	}
	for _, h := range []string{"Accept-Language", "Prefer"} {
		if v := r.outer.Header.Get(h); v != "" {
			req.Header.Set(h, v)
		}
	}
	if e.IfNoneMatch != "" {
		req.Header.Set("If-None-Match", e.IfNoneMatch)
	}
	if e.IfModifiedSince != "" {
		req.Header.Set("If-Modified-Since", e.IfModifiedSince)
	}
	rec := &recorder{header: http.Header{}, status: http.StatusOK}
	r.s.engine.ServeHTTP(rec, req)
	return rec.status, rec.header, rec.body.Bytes()
}

// recorder keeps an internal answer.
type recorder struct {
	header http.Header
	status int
	body   bytes.Buffer
	wrote  bool
}

func (r *recorder) Header() http.Header { return r.header }
func (r *recorder) Write(b []byte) (int, error) {
	r.wrote = true
	return r.body.Write(b)
}
func (r *recorder) WriteHeader(status int) {
	if !r.wrote {
		r.status, r.wrote = status, true
	}
}

// internalPrincipal is the principal of an internal request, if it is one.
func internalPrincipal(r *http.Request) (*fhir.Principal, bool) {
	p, ok := r.Context().Value(internalKey{}).(*fhir.Principal)
	return p, ok
}
