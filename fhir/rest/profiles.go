package rest

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"github.com/fmtbank/cmts/fhir"
	"github.com/fmtbank/cmts/store"
	"github.com/gin-gonic/gin"
)

// profileRoutes runs before the route's handler: it serves the resources of
// the Conformance types read-only (405 on writes), the terminology
// operations, and $validate; anything else goes on to the route.
func (s *Server) profileRoutes(c *gin.Context) {
	typ, id, op := c.Param("type"), c.Param("id"), c.Param("op")
	instance := ""
	switch {
	case strings.HasPrefix(op, "$"):
		instance = id
	case op == "" && strings.HasPrefix(id, "$"):
		op = id
	case op == "" && id == "" && strings.HasPrefix(typ, "$") && c.FullPath() == "/fhir/:type":
		// A system-level operation (/fhir/$export): the router sees a type.
		op, typ = typ, ""
	default:
		op = ""
	}
	if op != "" && typ != "" && !s.opts.Codec.IsResourceType(typ) {
		s.fail(c, fhir.UnknownType(typ))
		return
	}
	if op != "" {
		if err := s.opts.Policy.Allow(principal(c), fhir.ActionOperation, typ); err != nil {
			s.fail(c, err)
			return
		}
	}
	if op == "$export" && s.opts.Export != nil && (typ == "" && instance == "" || typ == "Patient" && instance == "" || typ == "Group" && instance != "") {
		s.exportKickoff(c, typ, instance)
		c.Abort()
		return
	}
	stored := op != "" && s.opts.Operations != nil && s.opts.Operations.Offers(typ, op, instance != "")
	if wantsCSV(c) && !stored {
		s.fail(c, fhir.NotAcceptable(mimeCSV))
		return
	}
	if op == "$validate" && s.opts.Validator != nil {
		s.validateOp(c, typ, instance)
		c.Abort()
		return
	}
	if stored {
		s.storedOperation(c, typ, instance, op)
		c.Abort()
		return
	}
	conf := s.opts.Conformance
	if conf == nil || !conf.Serves(typ) {
		c.Next()
		return
	}
	switch {
	case op != "":
		params, err := s.operationParams(c)
		if err != nil {
			s.fail(c, err)
			return
		}
		body, ok, err := conf.Operation(c.Request.Context(), typ, instance, op, params)
		switch {
		case err != nil:
			s.fail(c, err)
			return
		case !ok:
			c.Next()
			return
		}
		s.writeJSON(c, http.StatusOK, body)
	case c.Request.Method == http.MethodGet && c.FullPath() == "/fhir/:type",
		c.Request.Method == http.MethodPost && c.FullPath() == "/fhir/:type/_search":
		qs, err := s.searchQuery(c)
		var params url.Values
		if err == nil {
			// Unreadable pairs are refused: the guide has few resources, and
			// a search that dropped part of itself would mislead.
			params, err = qs.Condition()
		}
		if err != nil {
			s.fail(c, err)
			return
		}
		found, err := conf.Search(typ, params)
		if err != nil {
			s.fail(c, err)
			return
		}
		s.writeJSON(c, http.StatusOK, conformanceBundle(s.base(c), typ, found))
	case c.Request.Method == http.MethodGet && c.FullPath() == "/fhir/:type/:id":
		body, ok := conf.Read(typ, id)
		if !ok {
			s.fail(c, fhir.NotFound(typ, id))
			return
		}
		s.writeJSON(c, http.StatusOK, body)
	default:
		s.fail(c, fhir.MethodNotAllowed(c.Request.Method, c.Request.URL.Path).
			WithDiagnostics(typ+" resources are the server's implementation guide, served read-only"))
		return
	}
	c.Abort()
}

// storedOperation answers op through Options.Operations.
func (s *Server) storedOperation(c *gin.Context, typ, id, op string) {
	params := c.Request.URL.Query()
	if params.Get("_format") == "" && wantsCSV(c) {
		// The operation sees what was asked for as _format.
		params.Set("_format", mimeCSV)
	}
	var body []byte
	if c.Request.Method == http.MethodPost {
		b, err := s.readBody(c, mimeFHIRJSON, mimeJSON)
		if err != nil {
			s.fail(c, err)
			return
		}
		body = b
		if len(bytes.TrimSpace(b)) > 0 {
			ps, _, err := parametersOf(b)
			if err != nil {
				s.fail(c, err)
				return
			}
			for k, vs := range ps {
				params[k] = append(params[k], vs...)
			}
		}
	}
	status, out, ctype, ok, err := s.opts.Operations.Operation(c.Request.Context(), principal(c), typ, id, op, params, body)
	switch {
	case err != nil:
		s.fail(c, err)
	case !ok:
		s.unknownOperation(c)
	case ctype == "" || strings.HasPrefix(ctype, mimeFHIRJSON):
		s.writeJSON(c, status, out)
	default:
		c.Data(status, ctype, out)
	}
}

// conformanceBundle is a searchset of the conformance resources found.
func conformanceBundle(base, typ string, found [][]byte) []byte {
	type entry struct {
		FullURL  string          `json:"fullUrl"`
		Resource json.RawMessage `json:"resource"`
		Search   struct {
			Mode string `json:"mode"`
		} `json:"search"`
	}
	b := struct {
		ResourceType string  `json:"resourceType"`
		Type         string  `json:"type"`
		Total        int     `json:"total"`
		Entry        []entry `json:"entry,omitempty"`
	}{ResourceType: "Bundle", Type: "searchset", Total: len(found)}
	for _, r := range found {
		var head struct {
			ID string `json:"id"`
		}
		_ = json.Unmarshal(r, &head)
		e := entry{FullURL: base + "/" + typ + "/" + head.ID, Resource: r}
		e.Search.Mode = "match"
		b.Entry = append(b.Entry, e)
	}
	out, _ := json.Marshal(b)
	return out
}

// operationParams are an operation's parameters: the query string, and for
// a POST the Parameters resource in the body, each value as text (a Coding
// as system|code).
func (s *Server) operationParams(c *gin.Context) (url.Values, error) {
	params := c.Request.URL.Query()
	if c.Request.Method != http.MethodPost {
		return params, nil
	}
	body, err := s.readBody(c, mimeFHIRJSON, mimeJSON)
	if err != nil {
		return nil, err
	}
	ps, _, err := parametersOf(body)
	if err != nil {
		return nil, err
	}
	for k, vs := range ps {
		params[k] = append(params[k], vs...)
	}
	return params, nil
}

// parametersOf reads a Parameters resource: its values as text by name,
// and the resource of its "resource" parameter if any.
func parametersOf(body []byte) (url.Values, json.RawMessage, error) {
	var p struct {
		ResourceType string `json:"resourceType"`
		Parameter    []map[string]json.RawMessage
	}
	if err := json.Unmarshal(body, &p); err != nil || p.ResourceType != "Parameters" {
		return nil, nil, fhir.Invalid(fhir.IssueStructure, "The body must be a Parameters resource", "请求体必须是 Parameters 资源")
	}
	out := url.Values{}
	var resource json.RawMessage
	for _, prm := range p.Parameter {
		var name string
		_ = json.Unmarshal(prm["name"], &name)
		for k, raw := range prm {
			switch {
			case k == "resource":
				resource = raw
			case strings.HasPrefix(k, "value"):
				var coding struct{ System, Code string }
				if k == "valueCoding" && json.Unmarshal(raw, &coding) == nil {
					out.Add(name, coding.System+"|"+coding.Code)
					continue
				}
				var v any
				if json.Unmarshal(raw, &v) == nil {
					out.Add(name, fmt.Sprint(v))
				}
			}
		}
	}
	return out, resource, nil
}

// validateOp is $validate at type level (the resource in the body, or in a
// Parameters body's resource parameter) and instance level (the same, or
// the stored current version): an OperationOutcome of every issue, 200
// whatever it finds; nothing is stored.
func (s *Server) validateOp(c *gin.Context, typ, id string) {
	p := principal(c)
	params := c.Request.URL.Query()
	var body []byte
	if c.Request.Method == http.MethodPost {
		b, err := s.readBody(c, mimeFHIRJSON, mimeJSON)
		if err != nil {
			s.fail(c, err)
			return
		}
		body = b
		var head struct {
			ResourceType string `json:"resourceType"`
		}
		if json.Unmarshal(b, &head) == nil && head.ResourceType == "Parameters" && typ != "Parameters" {
			ps, res, err := parametersOf(b)
			if err != nil {
				s.fail(c, err)
				return
			}
			for k, vs := range ps {
				params[k] = append(params[k], vs...)
			}
			body = res
		}
	}
	if params.Get("mode") == "delete" {
		s.writeOutcome(c, nil)
		return
	}
	if len(body) == 0 && id != "" {
		cur, err := s.opts.Store.Read(c.Request.Context(), s.access(c), typ, id)
		switch {
		case errors.Is(err, store.ErrNotFound) || err == nil && (cur.Deleted || !s.readable(c, cur)):
			s.fail(c, fhir.NotFound(typ, id))
			return
		case err != nil:
			s.fail(c, err)
			return
		}
		body = cur.Resource
	}
	if len(body) == 0 {
		s.fail(c, fhir.Invalid(fhir.IssueRequired, "$validate needs a resource", "$validate 需要一个资源"))
		return
	}
	res, err := s.opts.Codec.Parse(body)
	if err != nil {
		fe, ok := err.(*fhir.Error)
		if !ok || fe.Status >= 500 {
			s.fail(c, err)
			return
		}
		// Not valid R4: the profile validator, which reads any JSON, names
		// the elements; the codec's issues stand when it finds nothing.
		issues, verr := s.opts.Validator.Validate(c.Request.Context(), p, typ, body, params.Get("profile"))
		if verr != nil || !hasError(issues) {
			issues = append(issues, fe.Issues...)
		}
		s.writeOutcome(c, issues)
		return
	}
	if res.Type != typ {
		s.writeOutcome(c, []fhir.Issue{{Severity: "error", Code: fhir.IssueInvalid, Expression: []string{"resourceType"},
			Message: fhir.Message{EN: "The resource is a " + res.Type + " but the URL is for " + typ, ZH: "资源类型 " + res.Type + " 与 URL 中的类型 " + typ + " 不一致"}}})
		return
	}
	issues, err := s.opts.Validator.Validate(c.Request.Context(), p, typ, body, params.Get("profile"))
	if err != nil {
		s.fail(c, err)
		return
	}
	s.writeOutcome(c, issues)
}

func hasError(issues []fhir.Issue) bool {
	for _, is := range issues {
		if is.Severity == "" || is.Severity == "error" || is.Severity == "fatal" {
			return true
		}
	}
	return false
}

// writeOutcome answers 200 with an OperationOutcome of the issues, or one
// informational issue when there are none.
func (s *Server) writeOutcome(c *gin.Context, issues []fhir.Issue) {
	if len(issues) == 0 {
		issues = []fhir.Issue{{Severity: "information", Code: fhir.IssueInformation,
			Message: fhir.Message{EN: "No issues found", ZH: "未发现问题"}}}
	}
	s.writeJSON(c, http.StatusOK, fhir.OperationOutcome(issues, fhir.NegotiateLanguage(c.GetHeader("Accept-Language"))))
}

// unknownOperation answers an operation no one offers; on a path that
// names no operation (POST /Patient/p1) the method is not allowed.
func (s *Server) unknownOperation(c *gin.Context) {
	op := c.Param("op")
	if op == "" {
		op = c.Param("id")
	}
	if !strings.HasPrefix(op, "$") {
		s.fail(c, fhir.MethodNotAllowed(c.Request.Method, c.Request.URL.Path))
		return
	}
	s.fail(c, fhir.Invalid(fhir.IssueNotSupported, "Unknown operation '"+op+"'", "未知的操作 '"+op+"'").WithStatus(http.StatusNotFound))
}
