package rest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"

	jsonpatch "github.com/evanphx/json-patch/v5"
	"github.com/fmtbank/cmts/fhir"
	"github.com/fmtbank/cmts/fhir/search"
	"github.com/fmtbank/cmts/store"
	"github.com/gin-gonic/gin"
)

// idPattern is the R4 id datatype.
var idPattern = regexp.MustCompile(`^[A-Za-z0-9\-.]{1,64}$`)

func checkID(id string) error {
	if !idPattern.MatchString(id) {
		return fhir.Invalid(fhir.IssueValue, "The id '"+id+"' is not a valid FHIR id (A-Z a-z 0-9 - . up to 64)",
			"id '"+id+"' 不是合法的 FHIR id（仅限 A-Z a-z 0-9 - .，最长 64 位）").WithExpression("id")
	}
	return nil
}

// newID makes a server-assigned id: 128 random bits, hex.
func newID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// parseResource reads and validates the body as a resource of the URL's type.
func (s *Server) parseResource(c *gin.Context, typ string) (*fhir.Resource, error) {
	body, err := s.readBody(c, mimeFHIRJSON, mimeJSON)
	if err != nil {
		return nil, err
	}
	res, err := s.opts.Codec.Parse(body)
	if err != nil {
		return nil, err
	}
	if res.Type != typ {
		return nil, fhir.Invalid(fhir.IssueInvalid, "The resource is a "+res.Type+" but the URL is for "+typ,
			"资源类型 "+res.Type+" 与 URL 中的类型 "+typ+" 不一致").WithExpression("resourceType")
	}
	return res, nil
}

// save stores res as the next version of typ/id after cur (nil: none yet).
func (s *Server) save(ctx context.Context, p *fhir.Principal, res *fhir.Resource, id string, cur *store.Version) (*store.Version, error) {
	var prev int64
	if cur != nil {
		prev = cur.VersionID
	}
	v := store.Version{Tenant: p.Tenant, Type: res.Type, ID: id, VersionID: prev + 1, LastUpdated: s.now()}
	res.SetID(id)
	res.SetMeta(strconv.FormatInt(v.VersionID, 10), v.LastUpdated)
	body, err := s.opts.Codec.Marshal(res)
	if err != nil {
		return nil, err
	}
	v.Resource = body
	if err := s.checkProfiles(ctx, p, res.Type, body); err != nil {
		return nil, err
	}
	if v.Index, err = s.opts.Indexer.Entries(res.Type, body); err != nil {
		return nil, err
	}
	if err := s.opts.Store.Put(ctx, store.Write{PrevVersion: prev, Version: v}); err != nil {
		return nil, err
	}
	return &v, nil
}

// current reads the current version; nil (no error) when there is none.
func (s *Server) current(ctx context.Context, p *fhir.Principal, typ, id string) (*store.Version, error) {
	v, err := s.opts.Store.Read(ctx, p.Tenant, typ, id)
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil
	}
	return v, err
}

// checkIfMatch enforces If-Match against the current version (412 on mismatch).
func checkIfMatch(c *gin.Context, cur *store.Version) error {
	h := c.GetHeader("If-Match")
	if h == "" {
		return nil
	}
	want, ok := parseETag(h)
	if !ok {
		return fhir.Invalid(fhir.IssueValue, "If-Match must be an ETag like W/\"3\"", "If-Match 必须是形如 W/\"3\" 的 ETag")
	}
	if cur == nil || cur.Deleted || cur.VersionID != want {
		have := "none"
		if cur != nil {
			have = strconv.FormatInt(cur.VersionID, 10)
		}
		return fhir.PreconditionFailed("If-Match "+h+" does not match the current version ("+have+")",
			"If-Match "+h+" 与当前版本（"+have+"）不一致")
	}
	return nil
}

var (
	msgCreated = fhir.Message{EN: "Created", ZH: "已创建"}
	msgUpdated = fhir.Message{EN: "Updated", ZH: "已更新"}
	msgExists  = fhir.Message{EN: "A matching resource exists already; nothing was created", ZH: "已存在匹配的资源，未新建"}
)

func (s *Server) create(c *gin.Context) {
	typ, p := c.Param("type"), principal(c)
	res, err := s.parseResource(c, typ)
	if err != nil {
		s.fail(c, err)
		return
	}
	if cond := c.GetHeader("If-None-Exist"); cond != "" {
		matches, err := s.matchCondition(c, typ, cond)
		if err != nil {
			s.fail(c, err)
			return
		}
		switch len(matches) {
		case 0:
		case 1:
			s.respondWrite(c, http.StatusOK, matches[0], msgExists)
			return
		default:
			s.fail(c, fhir.PreconditionFailed("If-None-Exist matches more than one resource", "If-None-Exist 条件匹配到多个资源"))
			return
		}
	}
	// The spec has the server ignore a client id on create.
	v, err := s.save(c.Request.Context(), p, res, newID(), nil)
	if err != nil {
		s.fail(c, err)
		return
	}
	s.respondWrite(c, http.StatusCreated, v, msgCreated)
}

// matchCondition finds the resources a conditional interaction's query names
// (at most two: enough to tell none, one or many).
func (s *Server) matchCondition(c *gin.Context, typ, query string) ([]*store.Version, error) {
	params, err := url.ParseQuery(query)
	if err != nil {
		return nil, fhir.Invalid(fhir.IssueInvalid, "The condition is not a valid query string", "条件不是合法的查询字符串")
	}
	return s.matchParams(c, typ, params)
}

func (s *Server) matchParams(c *gin.Context, typ string, params url.Values) ([]*store.Version, error) {
	filter, err := s.opts.Indexer.Compile(typ, params)
	if err != nil {
		return nil, err
	}
	if filter == nil {
		return nil, fhir.PreconditionFailed("A conditional interaction needs search criteria", "条件操作必须提供检索条件")
	}
	page, err := s.opts.Store.Search(c.Request.Context(), store.Query{Tenant: principal(c).Tenant, Type: typ, Filter: filter, Count: 2})
	if err != nil {
		return nil, err
	}
	return page.Versions, nil
}

func (s *Server) read(c *gin.Context) {
	typ, id := c.Param("type"), c.Param("id")
	v, err := s.opts.Store.Read(c.Request.Context(), principal(c).Tenant, typ, id)
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
		if n, ok := parseETag(inm); ok && n == v.VersionID {
			c.Status(http.StatusNotModified)
			c.Writer.WriteHeaderNow()
			return
		}
	}
	body := v.Resource
	if sum, els := c.Query("_summary"), c.Query("_elements"); sum != "" || els != "" {
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
	v, err := s.opts.Store.ReadVersion(c.Request.Context(), principal(c).Tenant, typ, id, vid)
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
	s.writeJSON(c, http.StatusOK, v.Resource)
}

func (s *Server) update(c *gin.Context) {
	typ, id, p := c.Param("type"), c.Param("id"), principal(c)
	res, err := s.parseResource(c, typ)
	if err != nil {
		s.fail(c, err)
		return
	}
	if rid := res.ID(); rid != id {
		s.fail(c, fhir.Invalid(fhir.IssueInvalid, "The resource id '"+rid+"' does not match the URL id '"+id+"'",
			"资源 id '"+rid+"' 与 URL 中的 id '"+id+"' 不一致").WithExpression(typ+".id"))
		return
	}
	s.updateTo(c, p, res, id)
}

// updateTo writes res as typ/id after checking If-Match: 200 on update, 201
// when it creates (or re-creates after a delete).
func (s *Server) updateTo(c *gin.Context, p *fhir.Principal, res *fhir.Resource, id string) {
	cur, err := s.current(c.Request.Context(), p, res.Type, id)
	if err == nil {
		err = checkIfMatch(c, cur)
	}
	if err != nil {
		s.fail(c, err)
		return
	}
	v, err := s.save(c.Request.Context(), p, res, id, cur)
	if err != nil {
		s.fail(c, err)
		return
	}
	if cur == nil || cur.Deleted {
		s.respondWrite(c, http.StatusCreated, v, msgCreated)
		return
	}
	s.respondWrite(c, http.StatusOK, v, msgUpdated)
}

func (s *Server) conditionalUpdate(c *gin.Context) {
	typ, p := c.Param("type"), principal(c)
	if len(c.Request.URL.Query()) == 0 {
		s.fail(c, fhir.MethodNotAllowed(http.MethodPut, c.Request.URL.Path).
			WithDiagnostics("PUT on a type needs search criteria (conditional update) or an id in the URL"))
		return
	}
	res, err := s.parseResource(c, typ)
	if err != nil {
		s.fail(c, err)
		return
	}
	matches, err := s.matchParams(c, typ, c.Request.URL.Query())
	if err != nil {
		s.fail(c, err)
		return
	}
	switch len(matches) {
	case 0:
		id := res.ID()
		if id == "" {
			id = newID()
		}
		s.updateTo(c, p, res, id)
	case 1:
		if rid := res.ID(); rid != "" && rid != matches[0].ID {
			s.fail(c, fhir.Invalid(fhir.IssueInvalid, "The resource id does not match the resource the criteria found",
				"资源 id 与条件匹配到的资源不一致").WithExpression(typ+".id"))
			return
		}
		s.updateTo(c, p, res, matches[0].ID)
	default:
		s.fail(c, fhir.PreconditionFailed("The criteria match more than one resource", "检索条件匹配到多个资源"))
	}
}

func (s *Server) delete(c *gin.Context) {
	typ, id := c.Param("type"), c.Param("id")
	cur, err := s.current(c.Request.Context(), principal(c), typ, id)
	if err != nil {
		s.fail(c, err)
		return
	}
	if cur == nil {
		s.fail(c, fhir.NotFound(typ, id))
		return
	}
	s.deleteVersion(c, cur)
}

// deleteVersion writes a tombstone over cur; deleting a deleted resource
// changes nothing.
func (s *Server) deleteVersion(c *gin.Context, cur *store.Version) {
	if err := checkIfMatch(c, cur); err != nil && !cur.Deleted {
		s.fail(c, err)
		return
	}
	if cur.Deleted {
		versionHeaders(c, cur)
		c.Status(http.StatusNoContent)
		c.Writer.WriteHeaderNow()
		return
	}
	v := store.Version{Tenant: cur.Tenant, Type: cur.Type, ID: cur.ID, VersionID: cur.VersionID + 1, LastUpdated: s.now(), Deleted: true}
	if err := s.opts.Store.Put(c.Request.Context(), store.Write{PrevVersion: cur.VersionID, Version: v}); err != nil {
		s.fail(c, err)
		return
	}
	versionHeaders(c, &v)
	c.Status(http.StatusNoContent)
	c.Writer.WriteHeaderNow()
}

func (s *Server) conditionalDelete(c *gin.Context) {
	typ := c.Param("type")
	if len(c.Request.URL.Query()) == 0 {
		s.fail(c, fhir.MethodNotAllowed(http.MethodDelete, c.Request.URL.Path).
			WithDiagnostics("DELETE on a type needs search criteria (conditional delete) or an id in the URL"))
		return
	}
	matches, err := s.matchParams(c, typ, c.Request.URL.Query())
	if err != nil {
		s.fail(c, err)
		return
	}
	switch len(matches) {
	case 0:
		c.Status(http.StatusNoContent)
		c.Writer.WriteHeaderNow()
	case 1:
		s.deleteVersion(c, matches[0])
	default:
		s.fail(c, fhir.PreconditionFailed("The criteria match more than one resource", "检索条件匹配到多个资源"))
	}
}

func (s *Server) patch(c *gin.Context) {
	typ, id, p := c.Param("type"), c.Param("id"), principal(c)
	body, err := s.readBody(c, mimeJSONPatch)
	if err != nil {
		s.fail(c, err)
		return
	}
	ops, err := jsonpatch.DecodePatch(body)
	if err != nil {
		s.fail(c, fhir.Invalid(fhir.IssueStructure, "The body is not a valid JSON Patch document", "请求体不是合法的 JSON Patch 文档").
			WithDiagnostics(err.Error()))
		return
	}
	cur, err := s.current(c.Request.Context(), p, typ, id)
	if err != nil {
		s.fail(c, err)
		return
	}
	switch {
	case cur == nil:
		s.fail(c, fhir.NotFound(typ, id))
		return
	case cur.Deleted:
		s.fail(c, fhir.Gone(typ, id))
		return
	}
	if err := checkIfMatch(c, cur); err != nil {
		s.fail(c, err)
		return
	}
	patched, err := ops.Apply(cur.Resource)
	if err != nil {
		s.fail(c, fhir.Unprocessable(fhir.IssueProcessing, "The patch cannot be applied to the resource", "补丁无法应用于该资源").
			WithDiagnostics(err.Error()))
		return
	}
	res, err := s.opts.Codec.Parse(patched)
	if err != nil {
		// The patch produced an invalid resource: the request is well-formed
		// but cannot be processed.
		s.fail(c, fhir.AsError(err).WithStatus(http.StatusUnprocessableEntity))
		return
	}
	if res.Type != typ || res.ID() != id {
		s.fail(c, fhir.Unprocessable(fhir.IssueInvalid, "A patch may not change resourceType or id", "补丁不能修改 resourceType 或 id"))
		return
	}
	v, err := s.save(c.Request.Context(), p, res, id, cur)
	if err != nil {
		s.fail(c, err)
		return
	}
	s.respondWrite(c, http.StatusOK, v, msgUpdated)
}
