// Package bundle processes batch and transaction Bundles (R4 http.html
// "batch/transaction"): it reads the request Bundle, orders its entries,
// resolves fullUrls and conditional references, and answers the response
// Bundle. A transaction is stored through one atomic store write.
package bundle

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/fmtbank/cmts/fhir"
	"github.com/fmtbank/cmts/fhir/jsonscan"
)

// Types of Bundle this package processes.
const (
	Batch       = "batch"
	Transaction = "transaction"
)

// Entry is one request entry of a batch or transaction.
type Entry struct {
	// Index is the entry's position in the request Bundle (from 0); the
	// response has its answer at the same position.
	Index   int
	FullURL string
	// Resource is the entry's resource as sent (nil for GET, HEAD, DELETE).
	Resource json.RawMessage
	// Patch is a REST PATCH's JSON Patch body (in a Bundle, the patch is a
	// Binary in Resource).
	Patch  []byte
	Method string
	// URL is request.url, relative to the base: "Patient", "Patient/1",
	// "Patient?identifier=...", "Patient/1/_history/2".
	URL                                                string
	IfNoneExist, IfMatch, IfNoneMatch, IfModifiedSince string
	// Type, ID and Query are URL read: the resource type, the id (if any)
	// and the search parameters (if any).
	Type, ID string
	Query    url.Values
	// Operation is set for an operation entry ("ValueSet/$expand?...").
	Operation bool
	// KeepUnchanged makes a PUT whose resource equals the current version
	// (apart from meta) answer 200 with that version and store nothing, so
	// that a rerun of an import writes no new versions.
	KeepUnchanged bool
	// validJSON: Resource is part of a body json.Valid accepted (Parse),
	// so the codec need not check its syntax again (Codec.ParseValid);
	// scanned: part of one Limits.Scan accepted, which read it as a
	// resource of its own, so the codec need not scan it again either
	// (Codec.ParseScanned).
	validJSON, scanned bool
}

// Request is a parsed batch or transaction.
type Request struct {
	Type    string
	Entries []*Entry
}

// wireEntry is an entry as read, before its request is checked;
// resource is the entry's resource as it sits in the request body.
type wireEntry struct {
	fullURL  string
	resource []byte
	request  *wireRequest
}

type wireRequest struct {
	method, url, ifNoneExist, ifMatch, ifNoneMatch, ifModifiedSince string
}

// entryError is a 400 about one entry, located as an element path.
func entryError(i int, elem, en, zh string) *fhir.Error {
	path := "Bundle.entry[" + strconv.Itoa(i) + "]"
	if elem != "" {
		path += "." + elem
	}
	return fhir.Invalid(fhir.IssueInvalid, "Bundle.entry["+strconv.Itoa(i)+"]: "+en, "Bundle.entry["+strconv.Itoa(i)+"]："+zh).WithExpression(path)
}

// Parse reads a batch or transaction Bundle and checks what R4 asks of its
// entries: a request on each, a method the server knows, a resource where
// the method needs one, fullUrls unique. More than maxEntries entries is a
// 413. isType reports whether a name is a resource type. body must have
// passed the codec's Limits.Scan (the REST handler's first check); each
// entry's resource is left unparsed, as a slice of body (not a copy, so a
// large Bundle is held once), for the writer to parse and validate.
func Parse(body []byte, maxEntries int, isType func(string) bool) (*Request, error) {
	typ, entries, typedFirst, err := readBundle(body)
	if err != nil {
		return nil, fhir.Invalid(fhir.IssueStructure, "The Bundle cannot be read", "无法读取该 Bundle")
	}
	if typ != Batch && typ != Transaction {
		return nil, fhir.Invalid(fhir.IssueInvalid, "POST to the base takes a Bundle of type batch or transaction",
			"向服务根地址 POST 的必须是 batch 或 transaction 类型的 Bundle").WithExpression("Bundle.type")
	}
	if len(entries) > maxEntries {
		return nil, fhir.TooManyEntries(maxEntries)
	}
	req := &Request{Type: typ, Entries: make([]*Entry, 0, len(entries))}
	fullURLs := map[string]int{}
	for i, w := range entries {
		e, err := readEntry(i, w, isType)
		if err != nil {
			return nil, err
		}
		// Limits.Scan reads an entry's resource as a resource (its own
		// budget, dom-2) once it has read the Bundle's resourceType.
		e.scanned = typedFirst
		if e.FullURL != "" {
			if j, dup := fullURLs[e.FullURL]; dup {
				return nil, entryError(i, "fullUrl", "the fullUrl '"+e.FullURL+"' is also that of entry "+strconv.Itoa(j),
					"fullUrl '"+e.FullURL+"' 与第 "+strconv.Itoa(j)+" 项重复").WithStatus(http.StatusBadRequest)
			}
			fullURLs[e.FullURL] = i
		}
		req.Entries = append(req.Entries, e)
	}
	return req, nil
}

// readBundle reads a Bundle's type ("" unless it is a Bundle) and entries,
// walking body in place: only the strings of the entries' requests are
// copied. A member of the wrong JSON type is an error, as it is to
// encoding/json; members this package does not use are skipped.
// typedFirst reports that resourceType came before entry.
func readBundle(body []byte) (typ string, entries []wireEntry, typedFirst bool, err error) {
	i := jsonscan.SkipWS(body, 0)
	if i >= len(body) || body[i] != '{' {
		return "", nil, false, jsonscan.ErrSyntax
	}
	var resourceType string
	end, err := jsonscan.Object(body, i, func(key []byte, at int) (int, error) {
		switch string(key) {
		case "resourceType":
			return stringAt(body, at, &resourceType)
		case "type":
			return stringAt(body, at, &typ)
		case "entry":
			typedFirst = resourceType == "Bundle"
			return arrayAt(body, at, func(at int) (int, error) {
				var w wireEntry
				next, err := readWireEntry(body, at, &w)
				entries = append(entries, w)
				return next, err
			})
		}
		return jsonscan.SkipValue(body, at)
	})
	if err != nil {
		return "", nil, false, err
	}
	if jsonscan.SkipWS(body, end) != len(body) {
		return "", nil, false, jsonscan.ErrSyntax
	}
	if resourceType != "Bundle" {
		typ = ""
	}
	return typ, entries, typedFirst, nil
}

// readWireEntry reads the entry at body[at] (null: an empty one) into w.
func readWireEntry(body []byte, at int, w *wireEntry) (int, error) {
	return objectAt(body, at, func(key []byte, at int) (int, error) {
		switch string(key) {
		case "fullUrl":
			return stringAt(body, at, &w.fullURL)
		case "resource":
			next, err := jsonscan.SkipValue(body, at)
			if err == nil && string(body[at:next]) != "null" {
				w.resource = body[at:next:next]
			}
			return next, err
		case "request":
			if isNull(body, at) {
				return jsonscan.SkipValue(body, at)
			}
			r := &wireRequest{}
			w.request = r
			return objectAt(body, at, func(key []byte, at int) (int, error) {
				var dst *string
				switch string(key) {
				case "method":
					dst = &r.method
				case "url":
					dst = &r.url
				case "ifNoneExist":
					dst = &r.ifNoneExist
				case "ifMatch":
					dst = &r.ifMatch
				case "ifNoneMatch":
					dst = &r.ifNoneMatch
				case "ifModifiedSince":
					dst = &r.ifModifiedSince
				default:
					return jsonscan.SkipValue(body, at)
				}
				return stringAt(body, at, dst)
			})
		}
		return jsonscan.SkipValue(body, at)
	})
}

// isNull reports whether the value at b[at] is null.
func isNull(b []byte, at int) bool { return len(b)-at >= 4 && string(b[at:at+4]) == "null" }

// stringAt reads the string (or null, leaving dst alone) at b[at].
func stringAt(b []byte, at int, dst *string) (int, error) {
	if isNull(b, at) {
		return jsonscan.SkipValue(b, at)
	}
	if at >= len(b) || b[at] != '"' {
		return 0, jsonscan.ErrSyntax
	}
	s, next, err := jsonscan.String(b, at)
	*dst = s
	return next, err
}

// objectAt walks the object (or null) at b[at].
func objectAt(b []byte, at int, member func(key []byte, at int) (int, error)) (int, error) {
	if isNull(b, at) {
		return jsonscan.SkipValue(b, at)
	}
	if at >= len(b) || b[at] != '{' {
		return 0, jsonscan.ErrSyntax
	}
	return jsonscan.Object(b, at, func(key []byte, at int) (int, error) {
		if bytes.IndexByte(key, '\\') >= 0 {
			// A key written with escapes is read as the key it spells.
			var k string
			if err := json.Unmarshal(append(append([]byte{'"'}, key...), '"'), &k); err != nil {
				return 0, err
			}
			key = []byte(k)
		}
		return member(key, at)
	})
}

// arrayAt walks the array (or null) at b[at].
func arrayAt(b []byte, at int, item func(at int) (int, error)) (int, error) {
	if isNull(b, at) {
		return jsonscan.SkipValue(b, at)
	}
	if at >= len(b) || b[at] != '[' {
		return 0, jsonscan.ErrSyntax
	}
	return jsonscan.Array(b, at, item)
}

func readEntry(i int, w wireEntry, isType func(string) bool) (*Entry, error) {
	r := w.request
	if r == nil || r.method == "" || r.url == "" {
		return nil, entryError(i, "request", "each entry needs request.method and request.url", "每一项都必须有 request.method 与 request.url")
	}
	e := &Entry{Index: i, FullURL: w.fullURL, Method: strings.ToUpper(r.method), URL: r.url, Resource: w.resource, validJSON: true,
		IfNoneExist: r.ifNoneExist, IfMatch: r.ifMatch, IfNoneMatch: r.ifNoneMatch, IfModifiedSince: r.ifModifiedSince}
	path, rawQuery, hasQuery := strings.Cut(strings.TrimPrefix(r.url, "/"), "?")
	if hasQuery {
		q, err := url.ParseQuery(rawQuery)
		if err != nil {
			return nil, entryError(i, "request.url", "the URL's query cannot be read", "request.url 中的查询参数无法解析")
		}
		e.Query = q
	}
	parts := strings.Split(path, "/")
	if parts[0] == "" || !isType(parts[0]) {
		return nil, entryError(i, "request.url", "'"+r.url+"' does not start with a resource type", "'"+r.url+"' 不是以资源类型开头")
	}
	e.Type = parts[0]
	if len(parts) > 1 {
		e.ID = parts[1]
	}
	needResource, needID, allowQuery := false, false, false
	if e.Operation = isOperation(path); e.Operation {
		// An operation ($lookup, $validate, ...) is served as the REST API
		// serves it, resource or not.
		if e.Method != http.MethodPost && e.Method != http.MethodGet {
			return nil, entryError(i, "request.method", "an operation takes GET or POST", "操作只能使用 GET 或 POST")
		}
		return e, nil
	}
	switch e.Method {
	case http.MethodPost:
		needResource = true
		if len(parts) != 1 || hasQuery {
			return nil, entryError(i, "request.url", "POST takes a resource type as its URL (conditions go in ifNoneExist)", "POST 的 URL 应只含资源类型（条件请写在 ifNoneExist）")
		}
	case http.MethodPut, http.MethodPatch:
		needResource = true
		needID, allowQuery = !hasQuery, true
	case http.MethodDelete:
		needID, allowQuery = !hasQuery, true
	case http.MethodGet, http.MethodHead:
		allowQuery = true
	default:
		return nil, entryError(i, "request.method", "unknown method '"+r.method+"'", "未知的方法 '"+r.method+"'")
	}
	if needResource && e.Resource == nil {
		return nil, entryError(i, "resource", e.Method+" needs a resource", e.Method+" 必须带资源")
	}
	if !needResource && e.Resource != nil {
		return nil, entryError(i, "resource", e.Method+" takes no resource", e.Method+" 不能带资源")
	}
	if needID && (len(parts) < 2 || parts[1] == "") {
		return nil, entryError(i, "request.url", e.Method+" needs Type/id or a search URL", e.Method+" 需要 类型/id 或检索条件")
	}
	if hasQuery && !allowQuery {
		return nil, entryError(i, "request.url", "a query is not allowed here", "此处不允许查询参数")
	}
	if (e.Method == http.MethodPut || e.Method == http.MethodPatch || e.Method == http.MethodDelete) && len(parts) > 2 {
		return nil, entryError(i, "request.url", "'"+r.url+"' is not Type/id", "'"+r.url+"' 不是 类型/id 形式")
	}
	return e, nil
}

// isOperation reports whether a URL path names an operation.
func isOperation(path string) bool {
	for _, seg := range strings.Split(path, "/") {
		if strings.HasPrefix(seg, "$") {
			return true
		}
	}
	return false
}

// order is the R4 processing order of a transaction: DELETE, then POST,
// then PUT and PATCH, then GET and HEAD; entries of one kind keep their
// order, so the result never depends on how the kinds were interleaved.
func order(e *Entry) int {
	if e.Operation {
		return 3
	}
	switch e.Method {
	case http.MethodDelete:
		return 0
	case http.MethodPost:
		return 1
	case http.MethodPut, http.MethodPatch:
		return 2
	}
	return 3
}

// Ordered returns the entries in processing order.
func (r *Request) Ordered() []*Entry {
	out := slices.Clone(r.Entries)
	slices.SortStableFunc(out, func(a, b *Entry) int { return order(a) - order(b) })
	return out
}
