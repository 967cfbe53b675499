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

	"github.com/fmtbank/cmts/fhir"
	"github.com/fmtbank/cmts/fhir/search"
	"github.com/fmtbank/cmts/store"
	"github.com/gin-gonic/gin"
)

// idPattern is the R4 id datatype.
var idPattern = regexp.MustCompile(`^[A-Za-z0-9\-.]{1,64}$`)

func checkID(id string) error {
	// "." and ".." are valid by the pattern but are path segments: a
	// Location such as Patient/../_history/3 would point elsewhere.
	if !idPattern.MatchString(id) || strings.Trim(id, ".") == "" {
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

// save stores res as the next version of typ/id after cur (nil: none yet),
// made by the interaction method (POST, PUT, PATCH).
func (s *Server) save(ctx context.Context, p *fhir.Principal, res *fhir.Resource, id string, cur *store.Version, method string) (*store.Version, error) {
	w, err := s.newWrite(p, res, id, cur, method)
	if err != nil {
		return nil, err
	}
	if err := s.opts.Store.Put(ctx, *w); err != nil {
		return nil, idTaken(err, w)
	}
	return &w.Version, nil
}

// idTaken turns the conflict of a create whose id is taken into an answer
// that says to choose another id.
func idTaken(err error, w *store.Write) error {
	if w.PrevVersion == 0 && errors.Is(err, store.ErrConflict) {
		// The id is taken where this caller cannot see it (another
		// tenant) or was just taken: retrying the same create fails
		// again, so the answer says to choose another id.
		v := w.Version
		return fhir.Conflict("The id '"+v.ID+"' is not available for a new "+v.Type+"; use another id",
			"id '"+v.ID+"' 不可用于新建 "+v.Type+"，请使用其他 id").WithExpression(v.Type + ".id")
	}
	return err
}

// newWrite is the write that stores res as the next version of typ/id
// after cur (nil: none yet), its id and meta set, made by the interaction
// method.
func (s *Server) newWrite(p *fhir.Principal, res *fhir.Resource, id string, cur *store.Version, method string) (*store.Write, error) {
	var prev int64
	if cur != nil {
		prev = cur.VersionID
	}
	if err := checkID(id); err != nil {
		return nil, err
	}
	v := store.Version{Tenant: p.Tenant, Type: res.Type, ID: id, VersionID: prev + 1, LastUpdated: s.now(), Method: method}
	res.SetID(id)
	res.SetMeta(strconv.FormatInt(v.VersionID, 10), v.LastUpdated)
	body, err := s.opts.Codec.Marshal(res)
	if err != nil {
		return nil, err
	}
	v.Resource = body
	if v.Index, err = s.opts.Indexer.Entries(res.Type, body); err != nil {
		return nil, err
	}
	return &store.Write{PrevVersion: prev, Version: v}, nil
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
		q, err := s.matchCondition(c, typ, cond)
		if err != nil {
			s.fail(c, err)
			return
		}
		// The search and the create are one step (PutIf): two racing
		// requests with one condition cannot both find nothing.
		var v *store.Version
		status, msg := http.StatusCreated, msgCreated
		err = s.opts.Store.PutIf(c.Request.Context(), q, func(matches []*store.Version) (*store.Write, error) {
			switch len(matches) {
			case 0:
				// The spec has the server ignore a client id on create.
				w, err := s.newWrite(p, res, newID(), nil, http.MethodPost)
				if err == nil {
					v = &w.Version
				}
				return w, err
			case 1:
				v, status, msg = matches[0], http.StatusOK, msgExists
				return nil, nil
			}
			return nil, fhir.PreconditionFailed("If-None-Exist matches more than one resource", "If-None-Exist 条件匹配到多个资源")
		})
		if err != nil {
			s.fail(c, err)
			return
		}
		s.respondWrite(c, status, v, msg)
		return
	}
	// The spec has the server ignore a client id on create.
	v, err := s.save(c.Request.Context(), p, res, newID(), nil, http.MethodPost)
	if err != nil {
		s.fail(c, err)
		return
	}
	s.respondWrite(c, http.StatusCreated, v, msgCreated)
}

// matchCondition compiles a conditional interaction's query string into the
// store query that finds its matches (see matchParams); every pair must be
// readable.
func (s *Server) matchCondition(c *gin.Context, typ, query string) (store.Query, error) {
	params, err := conditionQuery(parseQuery(query))
	if err != nil {
		return store.Query{}, err
	}
	return s.matchParams(c, typ, params)
}

// matchParams compiles a conditional interaction's criteria into the store
// query that finds its matches (at most two: enough to tell none, one or
// many), for Store.PutIf to evaluate and act on in one step.
func (s *Server) matchParams(c *gin.Context, typ string, params url.Values) (store.Query, error) {
	filter, err := s.opts.Indexer.Compile(typ, params)
	if err != nil {
		return store.Query{}, err
	}
	if filter == nil {
		return store.Query{}, fhir.PreconditionFailed("A conditional interaction needs search criteria", "条件操作必须提供检索条件")
	}
	return store.Query{Tenant: principal(c).Tenant, Type: typ, Filter: filter, Count: 2}, nil
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
	v, err := s.save(c.Request.Context(), p, res, id, cur, http.MethodPut)
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
	cond, err := conditionQuery(queryOf(c))
	if err != nil {
		s.fail(c, err)
		return
	}
	if len(cond) == 0 {
		s.fail(c, fhir.MethodNotAllowed(http.MethodPut, c.Request.URL.Path).
			WithDiagnostics("PUT on a type needs search criteria (conditional update) or an id in the URL"))
		return
	}
	res, err := s.parseResource(c, typ)
	if err != nil {
		s.fail(c, err)
		return
	}
	q, err := s.matchParams(c, typ, cond)
	if err != nil {
		s.fail(c, err)
		return
	}
	// The search and the write are one step (PutIf), so racing updates
	// with one condition create one resource and then update it in turn.
	ctx := c.Request.Context()
	var cur, v *store.Version
	var w *store.Write
	err = s.opts.Store.PutIf(ctx, q, func(matches []*store.Version) (*store.Write, error) {
		var id string
		switch len(matches) {
		case 0:
			// Update as create: the body's id, if any, else a new one.
			if id = res.ID(); id == "" {
				id = newID()
			}
			var err error
			if cur, err = s.current(ctx, p, typ, id); err != nil {
				return nil, err
			}
		case 1:
			if rid := res.ID(); rid != "" && rid != matches[0].ID {
				return nil, fhir.Invalid(fhir.IssueInvalid, "The resource id does not match the resource the criteria found",
					"资源 id 与条件匹配到的资源不一致").WithExpression(typ + ".id")
			}
			id, cur = matches[0].ID, matches[0]
		default:
			return nil, fhir.PreconditionFailed("The criteria match more than one resource", "检索条件匹配到多个资源")
		}
		if err := checkIfMatch(c, cur); err != nil {
			return nil, err
		}
		var err error
		if w, err = s.newWrite(p, res, id, cur, http.MethodPut); err == nil {
			v = &w.Version
		}
		return w, err
	})
	if err != nil {
		if w != nil {
			err = idTaken(err, w)
		}
		s.fail(c, err)
		return
	}
	if cur == nil || cur.Deleted {
		s.respondWrite(c, http.StatusCreated, v, msgCreated)
		return
	}
	s.respondWrite(c, http.StatusOK, v, msgUpdated)
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
	v := store.Version{Tenant: cur.Tenant, Type: cur.Type, ID: cur.ID, VersionID: cur.VersionID + 1, LastUpdated: s.now(), Deleted: true, Method: http.MethodDelete}
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
	cond, err := conditionQuery(queryOf(c))
	if err != nil {
		s.fail(c, err)
		return
	}
	if len(cond) == 0 {
		s.fail(c, fhir.MethodNotAllowed(http.MethodDelete, c.Request.URL.Path).
			WithDiagnostics("DELETE on a type needs search criteria (conditional delete) or an id in the URL"))
		return
	}
	q, err := s.matchParams(c, typ, cond)
	if err != nil {
		s.fail(c, err)
		return
	}
	// The search and the tombstone are one step (PutIf): of racing deletes
	// with one condition, the first deletes and the others find nothing.
	var tomb *store.Version
	err = s.opts.Store.PutIf(c.Request.Context(), q, func(matches []*store.Version) (*store.Write, error) {
		switch len(matches) {
		case 0:
			return nil, nil
		case 1:
			cur := matches[0] // current and not deleted: a search returns no tombstone
			if err := checkIfMatch(c, cur); err != nil {
				return nil, err
			}
			tomb = &store.Version{Tenant: cur.Tenant, Type: cur.Type, ID: cur.ID, VersionID: cur.VersionID + 1, LastUpdated: s.now(), Deleted: true, Method: http.MethodDelete}
			return &store.Write{PrevVersion: cur.VersionID, Version: *tomb}, nil
		}
		return nil, fhir.PreconditionFailed("The criteria match more than one resource", "检索条件匹配到多个资源")
	})
	if err != nil {
		s.fail(c, err)
		return
	}
	if tomb != nil {
		versionHeaders(c, tomb)
	}
	c.Status(http.StatusNoContent)
	c.Writer.WriteHeaderNow()
}

// patch applies a JSON Patch. The body must be a non-empty array of at most
// Limits.PatchOps operations; the bytes copied and the result are bounded by
// MaxBody, and the result passes the codec's scan and validation like any
// PUT. A patch that leaves the resource as it was (after the server sets id
// and meta) makes no new version, as HAPI does: 200 with the current one.
func (s *Server) patch(c *gin.Context) {
	typ, id, p := c.Param("type"), c.Param("id"), principal(c)
	body, err := s.readBody(c, mimeJSONPatch)
	if err != nil {
		s.fail(c, err)
		return
	}
	ops, err := decodePatch(body, s.opts.Limits.PatchOps)
	if err != nil {
		s.fail(c, err)
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
	patched, err := applyPatch(ops, cur.Resource, s.opts.MaxBody)
	if err != nil {
		s.fail(c, err)
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
	same, err := s.unchanged(res, cur)
	if err != nil {
		s.fail(c, err)
		return
	}
	if same {
		s.respondWrite(c, http.StatusOK, cur, fhir.Message{EN: "The patch changes nothing; no new version was made", ZH: "补丁未改变资源，未生成新版本"})
		return
	}
	v, err := s.save(c.Request.Context(), p, res, id, cur, http.MethodPatch)
	if err != nil {
		s.fail(c, err)
		return
	}
	s.respondWrite(c, http.StatusOK, v, msgUpdated)
}
