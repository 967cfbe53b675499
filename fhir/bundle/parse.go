// Package bundle processes batch and transaction Bundles (R4 http.html
// "batch/transaction"): it reads the request Bundle, orders its entries,
// resolves fullUrls and conditional references, and answers the response
// Bundle. A transaction is stored through one atomic store write.
package bundle

import (
	"encoding/json"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/fmtbank/cmts/fhir"
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
}

// Request is a parsed batch or transaction.
type Request struct {
	Type    string
	Entries []*Entry
}

type wireBundle struct {
	ResourceType string      `json:"resourceType"`
	Type         string      `json:"type"`
	Entry        []wireEntry `json:"entry"`
}

type wireEntry struct {
	FullURL  string          `json:"fullUrl"`
	Resource json.RawMessage `json:"resource"`
	Request  *struct {
		Method          string `json:"method"`
		URL             string `json:"url"`
		IfNoneExist     string `json:"ifNoneExist"`
		IfMatch         string `json:"ifMatch"`
		IfNoneMatch     string `json:"ifNoneMatch"`
		IfModifiedSince string `json:"ifModifiedSince"`
	} `json:"request"`
}

// entryError is a 400 about one entry, located as an element path.
func entryError(i int, elem, en, zh string) *fhir.Error {
	path := "Bundle.entry[" + strconv.Itoa(i) + "]"
	if elem != "" {
		path += "." + elem
	}
	return fhir.Invalid(fhir.IssueInvalid, "Bundle.entry["+strconv.Itoa(i)+"]: "+en, "Bundle.entry["+strconv.Itoa(i)+"]："+zh).WithExpression(path)
}

// Parse reads a batch or transaction Bundle (already validated as R4 by the
// codec) and checks what R4 asks of its entries: a request on each, a method
// the server knows, a resource where the method needs one, fullUrls unique.
// More than maxEntries entries is a 413. isType reports whether a name is a
// resource type.
func Parse(body []byte, maxEntries int, isType func(string) bool) (*Request, error) {
	var b wireBundle
	if err := json.Unmarshal(body, &b); err != nil {
		return nil, fhir.Invalid(fhir.IssueStructure, "The Bundle cannot be read", "无法读取该 Bundle")
	}
	if b.ResourceType != "Bundle" || (b.Type != Batch && b.Type != Transaction) {
		return nil, fhir.Invalid(fhir.IssueInvalid, "POST to the base takes a Bundle of type batch or transaction",
			"向服务根地址 POST 的必须是 batch 或 transaction 类型的 Bundle").WithExpression("Bundle.type")
	}
	if len(b.Entry) > maxEntries {
		return nil, fhir.TooManyEntries(maxEntries)
	}
	req := &Request{Type: b.Type}
	fullURLs := map[string]int{}
	for i, w := range b.Entry {
		e, err := readEntry(i, w, isType)
		if err != nil {
			return nil, err
		}
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

func readEntry(i int, w wireEntry, isType func(string) bool) (*Entry, error) {
	if w.Request == nil || w.Request.Method == "" || w.Request.URL == "" {
		return nil, entryError(i, "request", "each entry needs request.method and request.url", "每一项都必须有 request.method 与 request.url")
	}
	r := w.Request
	e := &Entry{Index: i, FullURL: w.FullURL, Method: strings.ToUpper(r.Method), URL: r.URL,
		IfNoneExist: r.IfNoneExist, IfMatch: r.IfMatch, IfNoneMatch: r.IfNoneMatch, IfModifiedSince: r.IfModifiedSince}
	if len(w.Resource) > 0 && string(w.Resource) != "null" {
		e.Resource = w.Resource
	}
	path, rawQuery, hasQuery := strings.Cut(strings.TrimPrefix(r.URL, "/"), "?")
	if hasQuery {
		q, err := url.ParseQuery(rawQuery)
		if err != nil {
			return nil, entryError(i, "request.url", "the URL's query cannot be read", "request.url 中的查询参数无法解析")
		}
		e.Query = q
	}
	parts := strings.Split(path, "/")
	if parts[0] == "" || !isType(parts[0]) {
		return nil, entryError(i, "request.url", "'"+r.URL+"' does not start with a resource type", "'"+r.URL+"' 不是以资源类型开头")
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
		return nil, entryError(i, "request.method", "unknown method '"+r.Method+"'", "未知的方法 '"+r.Method+"'")
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
		return nil, entryError(i, "request.url", "'"+r.URL+"' is not Type/id", "'"+r.URL+"' 不是 类型/id 形式")
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
