package rest

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/fmtbank/cmts/fhir"
	"github.com/fmtbank/cmts/fhir/bundle"
	"github.com/fmtbank/cmts/store"
	"github.com/gin-gonic/gin"
)

type bundleLink struct {
	Relation string `json:"relation"`
	URL      string `json:"url"`
}

type bundleEntry struct {
	FullURL  string          `json:"fullUrl,omitempty"`
	Resource json.RawMessage `json:"resource,omitempty"`
	Search   *struct {
		Mode string `json:"mode"`
	} `json:"search,omitempty"`
	Request *struct {
		Method string `json:"method"`
		URL    string `json:"url"`
	} `json:"request,omitempty"`
	Response *struct {
		Status       string `json:"status"`
		Etag         string `json:"etag,omitempty"`
		LastModified string `json:"lastModified,omitempty"`
	} `json:"response,omitempty"`
}

type bundleJSON struct {
	ResourceType string `json:"resourceType"`
	ID           string `json:"id"`
	Meta         struct {
		LastUpdated string `json:"lastUpdated"`
	} `json:"meta"`
	Type  string        `json:"type"`
	Total *int          `json:"total,omitempty"`
	Link  []bundleLink  `json:"link,omitempty"`
	Entry []bundleEntry `json:"entry,omitempty"`
}

func (s *Server) newBundle(typ string) *bundleJSON {
	b := &bundleJSON{ResourceType: "Bundle", ID: bundle.NewID(), Type: typ}
	b.Meta.LastUpdated = s.now().Format(time.RFC3339Nano)
	return b
}

// pageSize reads _count: default 50, at most 1000. _count=0 asks only for a total.
func pageSize(c *gin.Context, params url.Values) (int, error) {
	v := params.Get("_count")
	if v == "" {
		return 50, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 0 {
		return 0, fhir.Invalid(fhir.IssueValue, "_count must be a whole number", "_count 必须是非负整数").WithExpression("_count")
	}
	return min(n, 1000), nil
}

// historyCursor is the opaque _page token of a history page.
func encodeCursor(h *store.HistoryCursor) string {
	raw := fmt.Sprintf("%d|%s|%s|%d", h.LastUpdated.UnixMicro(), h.Type, h.ID, h.VersionID)
	return base64.RawURLEncoding.EncodeToString([]byte(raw))
}

func decodeCursor(tok string) (*store.HistoryCursor, error) {
	raw, err := base64.RawURLEncoding.DecodeString(tok)
	parts := strings.Split(string(raw), "|")
	if err != nil || len(parts) != 4 {
		return nil, fhir.Invalid(fhir.IssueValue, "The page token is not valid", "分页标记无效").WithExpression("_page")
	}
	lu, err1 := strconv.ParseInt(parts[0], 10, 64)
	vid, err2 := strconv.ParseInt(parts[3], 10, 64)
	if err1 != nil || err2 != nil {
		return nil, fhir.Invalid(fhir.IssueValue, "The page token is not valid", "分页标记无效").WithExpression("_page")
	}
	return &store.HistoryCursor{LastUpdated: time.UnixMicro(lu).UTC(), Type: parts[1], ID: parts[2], VersionID: vid}, nil
}

// parseInstant reads a FHIR instant or dateTime (date alone allowed).
func parseInstant(v string) (time.Time, error) {
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05", "2006-01-02", "2006-01", "2006"} {
		if t, err := time.Parse(layout, v); err == nil {
			return t.UTC(), nil
		}
	}
	return time.Time{}, fhir.Invalid(fhir.IssueValue, "'"+v+"' is not a valid instant", "'"+v+"' 不是合法的时间").WithExpression("_since")
}

func (s *Server) historySystem(c *gin.Context) { s.history(c, "", "") }
func (s *Server) historyType(c *gin.Context)   { s.history(c, c.Param("type"), "") }
func (s *Server) historyInstance(c *gin.Context) {
	s.history(c, c.Param("type"), c.Param("id"))
}

func (s *Server) history(c *gin.Context, typ, id string) {
	qs := queryOf(c)
	if len(qs.Unreadable) > 0 {
		s.fail(c, qs.UnreadableError())
		return
	}
	params := qs.Values
	q := store.HistoryQuery{Access: s.access(c), Type: typ, ID: id}
	var err error
	if q.Count, err = pageSize(c, params); err != nil {
		s.fail(c, err)
		return
	}
	q.Count = max(q.Count, 1)
	if v := params.Get("_since"); v != "" {
		if q.Since, err = parseInstant(v); err != nil {
			s.fail(c, err)
			return
		}
	}
	if v := params.Get("_page"); v != "" {
		if q.After, err = decodeCursor(v); err != nil {
			s.fail(c, err)
			return
		}
	}
	if id != "" {
		// An unknown instance is a 404, not an empty history.
		cur, err := s.opts.Store.Read(c.Request.Context(), q.Access, typ, id)
		if err == nil && !s.readable(c, cur) {
			err = store.ErrNotFound
		}
		if err != nil {
			if errors.Is(err, store.ErrNotFound) {
				err = fhir.NotFound(typ, id)
			}
			s.fail(c, err)
			return
		}
	}
	page, err := s.opts.Store.History(c.Request.Context(), q)
	if err != nil {
		s.fail(c, err)
		return
	}
	base := s.base(c)
	path := base
	if typ != "" {
		path += "/" + typ
	}
	if id != "" {
		path += "/" + id
	}
	path += "/_history"
	b := s.newBundle("history")
	b.Link = append(b.Link, bundleLink{"self", path + queryString(params)})
	if page.Next != nil {
		next := cloneValues(params)
		next.Set("_page", encodeCursor(page.Next))
		b.Link = append(b.Link, bundleLink{"next", path + queryString(next)})
	}
	for _, v := range page.Versions {
		if !s.readable(c, v) {
			// Left out, not refused: a history page holds what the caller
			// may see (a page may come out shorter than _count).
			continue
		}
		e := bundleEntry{FullURL: base + "/" + v.Type + "/" + v.ID}
		e.Request = &struct {
			Method string `json:"method"`
			URL    string `json:"url"`
		}{Method: http.MethodPut, URL: v.Type + "/" + v.ID}
		status := "200 OK"
		// The interaction the store recorded; versions written before it
		// did were a POST when first, a PUT after.
		method := v.Method
		switch {
		case v.Deleted:
			method = http.MethodDelete
		case method == "" && v.VersionID == 1:
			method = http.MethodPost
		case method == "":
			method = http.MethodPut
		}
		e.Request.Method = method
		switch {
		case method == http.MethodDelete:
			status = "204 No Content"
		case method == http.MethodPost:
			e.Request.URL, status = v.Type, "201 Created"
		case v.VersionID == 1:
			status = "201 Created" // created by PUT
		}
		if !v.Deleted {
			if e.Resource, err = s.view(c, v); err != nil {
				s.fail(c, err)
				return
			}
		}
		e.Response = &struct {
			Status       string `json:"status"`
			Etag         string `json:"etag,omitempty"`
			LastModified string `json:"lastModified,omitempty"`
		}{Status: status, Etag: etag(v.VersionID), LastModified: v.LastUpdated.Format(time.RFC3339Nano)}
		b.Entry = append(b.Entry, e)
	}
	s.writeBundle(c, b)
}

func (s *Server) writeBundle(c *gin.Context, b *bundleJSON) {
	body, err := json.Marshal(b)
	if err != nil {
		s.fail(c, err)
		return
	}
	s.writeJSON(c, http.StatusOK, body)
}

func cloneValues(v url.Values) url.Values {
	out := url.Values{}
	for k, vs := range v {
		out[k] = append([]string(nil), vs...)
	}
	return out
}

func queryString(v url.Values) string {
	if len(v) == 0 {
		return ""
	}
	return "?" + v.Encode()
}
