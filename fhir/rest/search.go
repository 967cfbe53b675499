package rest

import (
	"context"
	"encoding/base64"
	"errors"
	"io"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/fmtbank/cmts/fhir"
	"github.com/fmtbank/cmts/fhir/search"
	"github.com/fmtbank/cmts/fhir/subset"
	"github.com/fmtbank/cmts/store"
	"github.com/gin-gonic/gin"
)

const (
	defaultPageSize = 50
	maxPageSize     = 1000
	// maxIncluded bounds _include/_revinclude results per page, as HAPI does.
	maxIncluded = 1000
	// maxIterate bounds :iterate rounds.
	maxIterate = 4
)

// preferHandling reads Prefer: handling=strict|lenient (lenient by default,
// as the spec allows); the value is case-insensitive.
func preferHandling(c *gin.Context) string {
	for _, p := range strings.Split(c.GetHeader("Prefer"), ",") {
		if k, v, ok := strings.Cut(strings.TrimSpace(p), "="); ok && strings.EqualFold(strings.TrimSpace(k), "handling") {
			return strings.ToLower(strings.Trim(strings.TrimSpace(v), `"`))
		}
	}
	return "lenient"
}

// searchQuery is the search's query: the URL's, plus a form body for POST
// _search.
func (s *Server) searchQuery(c *gin.Context) (search.Query, error) {
	q := queryOf(c)
	if c.Request.Method != http.MethodPost {
		return q, nil
	}
	ct := c.GetHeader("Content-Type")
	if ct != "" && !strings.HasPrefix(ct, "application/x-www-form-urlencoded") {
		return search.Query{}, fhir.UnsupportedMediaType(ct, "application/x-www-form-urlencoded")
	}
	body, err := io.ReadAll(http.MaxBytesReader(c.Writer, c.Request.Body, s.opts.MaxBody))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return search.Query{}, fhir.TooLarge(s.opts.MaxBody)
		}
		return search.Query{}, fhir.Invalid(fhir.IssueStructure, "The search form cannot be read", "无法读取检索表单")
	}
	return q.Merge(search.ParseQuery(string(body))), nil
}

// A _page token marks the edge of a page a next or previous link continues
// from: the last resource of the page (next) or the first (previous), by type,
// id and version. The server reads that version back and computes its sort
// values, so the token carries no data of its own (no names or dates in
// URLs), and pages stay stable while resources are created, changed or
// deleted: a version, once written, does not change.
type pageToken struct {
	back      bool
	typ, id   string
	versionID int64
}

func (t pageToken) String() string {
	dir := "n"
	if t.back {
		dir = "p"
	}
	return base64.RawURLEncoding.EncodeToString([]byte(dir + "|" + t.typ + "|" + t.id + "|" + strconv.FormatInt(t.versionID, 10)))
}

func edge(v *store.Version, back bool) string {
	return pageToken{back: back, typ: v.Type, id: v.ID, versionID: v.VersionID}.String()
}

func badPageToken() error {
	return fhir.Invalid(fhir.IssueValue, "The page token is not valid", "分页标记无效").WithExpression("_page")
}

// cursor turns a _page token into a store cursor for the search's sort.
func (s *Server) cursor(ctx context.Context, a store.Access, token string, sp *search.Search) (*store.SearchCursor, bool, error) {
	raw, err := base64.RawURLEncoding.DecodeString(token)
	parts := strings.Split(string(raw), "|")
	if err != nil || len(parts) != 4 || (parts[0] != "n" && parts[0] != "p") {
		return nil, false, badPageToken()
	}
	// The edge must be a resource this search could return: a token made
	// for another search is not a position in this one.
	switch {
	case sp.Type != "" && parts[1] != sp.Type,
		sp.Type == "" && len(sp.Types) > 0 && !slices.Contains(sp.Types, parts[1]),
		!s.opts.Codec.IsResourceType(parts[1]):
		return nil, false, badPageToken()
	}
	sort := sp.Sort
	vid, err := strconv.ParseInt(parts[3], 10, 64)
	if err != nil || vid < 1 {
		return nil, false, badPageToken()
	}
	v, err := s.opts.Store.ReadVersion(ctx, a, parts[1], parts[2], vid)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return nil, false, badPageToken()
	case err != nil:
		return nil, false, err
	case v.Deleted:
		return nil, false, badPageToken() // never an edge of a page
	}
	if len(sort) > 0 {
		if v.Index, err = s.opts.Indexer.Entries(v.Type, v.Resource); err != nil {
			return nil, false, err
		}
	}
	return store.PositionOf(v, sort), parts[0] == "p", nil
}

func (s *Server) search(c *gin.Context) {
	typ, p := c.Param("type"), principal(c)
	qs, err := s.searchQuery(c)
	if err != nil {
		s.fail(c, err)
		return
	}
	strict := preferHandling(c) == "strict"
	if strict && len(qs.Unreadable) > 0 {
		s.fail(c, qs.UnreadableError())
		return
	}
	params := qs.Values
	sp, err := s.opts.Indexer.Parse(typ, params, strict)
	if err != nil {
		s.fail(c, err)
		return
	}
	if err := s.opts.Policy.CheckSearch(p, typ, params, sp.Touched()); err != nil {
		s.fail(c, err)
		return
	}
	narrow, err := s.opts.Policy.Narrow(p, typ)
	if err != nil {
		s.fail(c, err)
		return
	}
	if narrow != nil {
		// The caller's scopes limit what it may find: the store counts and
		// pages only that.
		if sp.Filter == nil {
			sp.Filter = narrow
		} else {
			sp.Filter = store.And{sp.Filter, narrow}
		}
	}
	count := sp.Count
	switch {
	case sp.Summary == search.SummaryCount:
		count = 0
	case count <= 0:
		count = defaultPageSize
	}
	count = min(count, maxPageSize)
	q := store.Query{Access: s.access(c), Type: typ, Types: sp.Types, Filter: sp.Filter, Sort: sp.Sort, Count: max(count, 1),
		Offset: sp.Offset, WantTotal: sp.Total != search.TotalNone || sp.Summary == search.SummaryCount}
	if sp.Page != "" {
		cur, back, err := s.cursor(c.Request.Context(), q.Access, sp.Page, sp)
		if err != nil {
			s.fail(c, err)
			return
		}
		if back {
			q.Before = cur
		} else {
			q.After = cur
		}
	}
	page, err := s.opts.Store.Search(c.Request.Context(), q)
	if err != nil {
		s.fail(c, err)
		return
	}
	base := s.base(c)
	b := s.newBundle("searchset")
	if page.Total >= 0 && q.WantTotal {
		b.Total = &page.Total
	}
	// The self link shows the search as performed: parameters ignored under
	// lenient handling are left out, so a client can tell.
	self := cloneValues(params)
	for _, k := range append(sp.Unknown, "_format", "_pretty") {
		self.Del(k)
	}
	path := base // a search across types: [base]?_type=...
	if typ != "" {
		path += "/" + typ
	}
	link := func(rel string, v url.Values) {
		b.Link = append(b.Link, bundleLink{rel, path + queryString(v)})
	}
	link("self", self)
	if count > 0 {
		// Links: next from the page's last resource, previous from its
		// first; the token says which way (see pageToken).
		vs := page.Versions
		paged := sp.Page != "" || sp.Offset > 0
		if paged {
			first := cloneValues(self)
			first.Del("_page")
			first.Del("_offset")
			link("first", first)
		}
		at := func(rel string, v *store.Version, back bool) {
			l := cloneValues(self)
			l.Del("_offset") // the token holds the position
			l.Set("_page", edge(v, back))
			link(rel, l)
		}
		hasNext := page.More
		hasPrev := (q.After != nil || sp.Offset > 0) && q.Before == nil
		if q.Before != nil {
			hasNext, hasPrev = true, page.More
		}
		if len(vs) > 0 && hasNext {
			at("next", vs[len(vs)-1], false)
		}
		switch {
		case len(vs) > 0 && hasPrev:
			at("previous", vs[0], true)
		case len(vs) == 0 && sp.Offset > 0 && sp.Page == "":
			// Past the end by offset: step back by offset.
			prev := cloneValues(self)
			prev.Set("_offset", strconv.Itoa(max(sp.Offset-count, 0)))
			link("previous", prev)
		}
		for _, v := range page.Versions {
			if !s.readable(c, v) {
				// Narrow and the store's access scope leave nothing
				// unreadable; this is the last line of defence.
				continue
			}
			if err := s.addEntry(c, b, base, v, "match", sp); err != nil {
				s.fail(c, err)
				return
			}
		}
		included, err := s.includes(c.Request.Context(), q.Access, page.Versions, sp)
		if err != nil {
			s.fail(c, err)
			return
		}
		for _, v := range included {
			if !s.readable(c, v) {
				// What an include may bring is checked resource by resource.
				continue
			}
			if err := s.addEntry(c, b, base, v, "include", sp); err != nil {
				s.fail(c, err)
				return
			}
		}
	}
	if issues := ignoredIssues(qs, sp); len(issues) > 0 {
		// Lenient handling says what it ignored, as R4 search.html asks: an
		// OperationOutcome entry with search mode "outcome".
		oo := fhir.OperationOutcome(issues, fhir.NegotiateLanguage(c.GetHeader("Accept-Language")))
		b.Entry = append(b.Entry, bundleEntry{Resource: oo, Search: &struct {
			Mode string `json:"mode"`
		}{Mode: "outcome"}})
	}
	s.writeBundle(c, b)
}

// ignoredIssues are the warnings for what a lenient search left out: pairs it
// could not read and parameters it does not know or support.
func ignoredIssues(qs search.Query, sp *search.Search) []fhir.Issue {
	issues := qs.UnreadableWarnings()
	for _, k := range sp.Unknown {
		issues = append(issues, fhir.Issue{Severity: "warning", Code: fhir.IssueNotSupported, Expression: []string{k}, Message: fhir.Message{
			EN: "The parameter '" + k + "' is unknown or not supported and was ignored",
			ZH: "检索参数 '" + k + "' 未知或不受支持，已忽略"}})
	}
	return issues
}

// addEntry adds a resource to a searchset, shaped by _summary/_elements.
func (s *Server) addEntry(c *gin.Context, b *bundleJSON, base string, v *store.Version, mode string, sp *search.Search) error {
	body, err := s.view(c, v)
	if err != nil {
		return err
	}
	if body, err = shape(v.Type, body, sp.Summary, sp.Elements); err != nil {
		return err
	}
	e := bundleEntry{FullURL: base + "/" + v.Type + "/" + v.ID, Resource: body}
	e.Search = &struct {
		Mode string `json:"mode"`
	}{Mode: mode}
	b.Entry = append(b.Entry, e)
	return nil
}

// shape applies _summary and _elements to one resource.
func shape(typ string, body []byte, summary search.SummaryMode, elements []string) ([]byte, error) {
	switch {
	case len(elements) > 0:
		return subset.Elements(typ, body, elements)
	case summary != "" && summary != search.SummaryFalse && summary != search.SummaryCount:
		return subset.Summary(typ, body, string(summary))
	}
	return body, nil
}

// includes resolves _include and _revinclude (with :iterate) for a page of
// matches; what is already on the page is not repeated.
func (s *Server) includes(ctx context.Context, a store.Access, matches []*store.Version, sp *search.Search) ([]*store.Version, error) {
	if len(sp.Include) == 0 && len(sp.RevInclude) == 0 {
		return nil, nil
	}
	seen := map[string]bool{}
	for _, v := range matches {
		seen[v.Type+"/"+v.ID] = true
	}
	var out []*store.Version
	frontier := matches
	for round := 0; round <= maxIterate && len(frontier) > 0 && len(out) < maxIncluded; round++ {
		var found []*store.Version
		add := func(vs []*store.Version) {
			for _, v := range vs {
				if k := v.Type + "/" + v.ID; !seen[k] && len(out)+len(found) < maxIncluded {
					seen[k] = true
					found = append(found, v)
				}
			}
		}
		for _, inc := range sp.Include {
			if round > 0 && !inc.Iterate {
				continue
			}
			vs, err := s.forwardInclude(ctx, a, frontier, inc)
			if err != nil {
				return nil, err
			}
			add(vs)
		}
		for _, inc := range sp.RevInclude {
			if round > 0 && !inc.Iterate {
				continue
			}
			vs, err := s.reverseInclude(ctx, a, frontier, inc)
			if err != nil {
				return nil, err
			}
			add(vs)
		}
		out = append(out, found...)
		frontier = found
	}
	return out, nil
}

// forwardInclude fetches what the frontier's resources refer to through inc.
func (s *Server) forwardInclude(ctx context.Context, a store.Access, frontier []*store.Version, inc search.Include) ([]*store.Version, error) {
	byType := map[string][]string{}
	for _, v := range frontier {
		if v.Type != inc.SourceType {
			continue
		}
		entries, err := s.opts.Indexer.References(v.Type, v.Resource, inc.Param)
		if err != nil {
			return nil, err
		}
		for _, e := range entries {
			if e.Kind != store.KindReference || e.System == "" || e.Code == "" {
				continue
			}
			if inc.TargetType != "" && e.System != inc.TargetType {
				continue
			}
			byType[e.System] = append(byType[e.System], e.Code)
		}
	}
	types := make([]string, 0, len(byType))
	for t := range byType {
		types = append(types, t)
	}
	sort.Strings(types)
	var out []*store.Version
	for _, t := range types {
		for ids := range slices.Chunk(dedupe(byType[t]), includeBatch) {
			page, err := s.opts.Store.Search(ctx, store.Query{Access: a, Type: t, Filter: store.ID{IDs: ids}, Count: len(ids)})
			if err != nil {
				return nil, err
			}
			out = append(out, page.Versions...)
			if len(out) >= maxIncluded {
				return out, nil
			}
		}
	}
	return out, nil
}

// includeBatch bounds the references one include query names, so that a page
// of 1,000 resources with many reference parameters stays within what a
// backend evaluates in one query (SQLite: 500 terms in a compound SELECT).
const includeBatch = 100

// reverseInclude fetches resources of inc.SourceType that refer to the
// frontier through inc.Param.
func (s *Server) reverseInclude(ctx context.Context, a store.Access, frontier []*store.Version, inc search.Include) ([]*store.Version, error) {
	params := []string{inc.Param}
	if inc.Param == "*" {
		params = nil
		for _, p := range s.opts.Indexer.Params(inc.SourceType) {
			if p.Type == store.KindReference {
				params = append(params, p.Code)
			}
		}
	}
	var or store.Or
	for _, v := range frontier {
		if inc.TargetType != "" && v.Type != inc.TargetType {
			continue
		}
		for _, p := range params {
			or = append(or, store.Reference{Param: p, Type: v.Type, ID: v.ID})
		}
	}
	var out []*store.Version
	seen := map[string]bool{}
	for batch := range slices.Chunk(or, includeBatch) {
		var filter store.Expr = store.Or(batch)
		page, err := s.opts.Store.Search(ctx, store.Query{Access: a, Type: inc.SourceType, Filter: filter, Count: maxIncluded - len(out)})
		if err != nil {
			return nil, err
		}
		for _, v := range page.Versions {
			// A resource can refer to resources of several batches.
			if !seen[v.ID] {
				seen[v.ID] = true
				out = append(out, v)
			}
		}
		if len(out) >= maxIncluded {
			break
		}
	}
	return out, nil
}

func dedupe(xs []string) []string {
	sort.Strings(xs)
	out := xs[:0]
	for i, x := range xs {
		if i == 0 || x != xs[i-1] {
			out = append(out, x)
		}
	}
	return out
}
