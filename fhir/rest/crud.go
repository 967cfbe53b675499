package rest

import (
	"errors"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/fmtbank/cmts/fhir"
	"github.com/fmtbank/cmts/fhir/bundle"
	"github.com/fmtbank/cmts/fhir/search"
	"github.com/fmtbank/cmts/store"
	"github.com/gin-gonic/gin"
)

// The write interactions (create, update, patch, delete and their
// conditional forms) are carried out by bundle.Writer, as a transaction of
// one entry: one implementation of their rules serves REST and Bundles.

func (s *Server) create(c *gin.Context) {
	body, err := s.readBody(c, mimeFHIRJSON, mimeJSON)
	if err != nil {
		s.fail(c, err)
		return
	}
	typ := c.Param("type")
	s.writeOne(c, &bundle.Entry{Method: http.MethodPost, URL: typ, Type: typ, Resource: body,
		IfNoneExist: c.GetHeader("If-None-Exist")})
}

func (s *Server) update(c *gin.Context) {
	body, err := s.readBody(c, mimeFHIRJSON, mimeJSON)
	if err != nil {
		s.fail(c, err)
		return
	}
	typ, id := c.Param("type"), c.Param("id")
	s.writeOne(c, &bundle.Entry{Method: http.MethodPut, URL: typ + "/" + id, Type: typ, ID: id, Resource: body,
		IfMatch: c.GetHeader("If-Match")})
}

func (s *Server) conditionalUpdate(c *gin.Context) {
	cond, err := s.criteria(c, "PUT on a type needs search criteria (conditional update) or an id in the URL")
	if err != nil {
		s.fail(c, err)
		return
	}
	body, err := s.readBody(c, mimeFHIRJSON, mimeJSON)
	if err != nil {
		s.fail(c, err)
		return
	}
	typ := c.Param("type")
	s.writeOne(c, &bundle.Entry{Method: http.MethodPut, URL: typ + "?" + cond.Encode(), Type: typ, Query: cond, Resource: body,
		IfMatch: c.GetHeader("If-Match")})
}

// patch applies a JSON Patch (see bundle.Writer for its limits; a patch
// that leaves the resource as it was makes no new version).
func (s *Server) patch(c *gin.Context) {
	body, err := s.readBody(c, mimeJSONPatch)
	if err != nil {
		s.fail(c, err)
		return
	}
	typ, id := c.Param("type"), c.Param("id")
	s.writeOne(c, &bundle.Entry{Method: http.MethodPatch, URL: typ + "/" + id, Type: typ, ID: id, Patch: body,
		IfMatch: c.GetHeader("If-Match")})
}

func (s *Server) delete(c *gin.Context) {
	typ, id := c.Param("type"), c.Param("id")
	s.writeOne(c, &bundle.Entry{Method: http.MethodDelete, URL: typ + "/" + id, Type: typ, ID: id, IfMatch: c.GetHeader("If-Match")})
}

func (s *Server) conditionalDelete(c *gin.Context) {
	cond, err := s.criteria(c, "DELETE on a type needs search criteria (conditional delete) or an id in the URL")
	if err != nil {
		s.fail(c, err)
		return
	}
	typ := c.Param("type")
	s.writeOne(c, &bundle.Entry{Method: http.MethodDelete, URL: typ + "?" + cond.Encode(), Type: typ, Query: cond,
		IfMatch: c.GetHeader("If-Match")})
}

// criteria reads a conditional interaction's search criteria from the URL:
// every pair readable, and at least one (else 405, as there is no such
// interaction on a type without criteria).
func (s *Server) criteria(c *gin.Context, without string) (url.Values, error) {
	cond, err := queryOf(c).Condition()
	if err != nil {
		return nil, err
	}
	if len(cond) == 0 {
		return nil, fhir.MethodNotAllowed(c.Request.Method, c.Request.URL.Path).WithDiagnostics(without)
	}
	return cond, nil
}

// writeOne carries out one write interaction and answers it.
func (s *Server) writeOne(c *gin.Context, e *bundle.Entry) {
	results, err := s.writer.Write(c.Request.Context(), principal(c), []*bundle.Entry{e})
	if err != nil {
		var ee *bundle.EntryError
		if errors.As(err, &ee) {
			err = ee.Err
		}
		s.fail(c, err)
		return
	}
	r := results[0]
	if r.Status == http.StatusNoContent {
		if r.Version != nil {
			versionHeaders(c, r.Version)
		}
		c.Status(http.StatusNoContent)
		c.Writer.WriteHeaderNow()
		return
	}
	s.respondWrite(c, r.Status, r.Version, r.Message)
}

func (s *Server) read(c *gin.Context) {
	typ, id := c.Param("type"), c.Param("id")
	v, err := s.opts.Store.Read(c.Request.Context(), s.access(c), typ, id)
	if err == nil && !s.readable(c, v) {
		err = store.ErrNotFound // what the caller may not see does not exist for it
	}
	if errors.Is(err, store.ErrNotFound) {
		err = fhir.NotFound(typ, id)
	}
	if err != nil {
		s.fail(c, err)
		return
	}
	versionHeaders(c, v)
	if v.Deleted {
		s.fail(c, fhir.Gone(typ, id))
		return
	}
	if inm := c.GetHeader("If-None-Match"); inm != "" {
		if n, ok := bundle.ParseETag(inm); ok && n == v.VersionID {
			c.Status(http.StatusNotModified)
			c.Writer.WriteHeaderNow()
			return
		}
	}
	body, err := s.view(c, v)
	if err != nil {
		s.fail(c, err)
		return
	}
	if sum, els := param(c, "_summary"), param(c, "_elements"); sum != "" || els != "" {
		var elements []string
		if els != "" {
			elements = strings.Split(els, ",")
		}
		if body, err = shape(typ, body, search.SummaryMode(sum), elements); err != nil {
			s.fail(c, err)
			return
		}
	}
	s.writeJSON(c, http.StatusOK, body)
}

func (s *Server) vread(c *gin.Context) {
	typ, id, vs := c.Param("type"), c.Param("id"), c.Param("vid")
	vid, err := strconv.ParseInt(vs, 10, 64)
	if err != nil || vid < 1 {
		s.fail(c, fhir.VersionNotFound(typ, id, vs))
		return
	}
	v, err := s.opts.Store.ReadVersion(c.Request.Context(), s.access(c), typ, id, vid)
	if err == nil && !s.readable(c, v) {
		err = store.ErrNotFound
	}
	if errors.Is(err, store.ErrNotFound) {
		err = fhir.VersionNotFound(typ, id, vs)
	}
	if err != nil {
		s.fail(c, err)
		return
	}
	versionHeaders(c, v)
	if v.Deleted {
		s.fail(c, fhir.Gone(typ, id))
		return
	}
	body, err := s.view(c, v)
	if err != nil {
		s.fail(c, err)
		return
	}
	s.writeJSON(c, http.StatusOK, body)
}
