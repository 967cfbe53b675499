package rest

import (
	"net/url"
	"strings"

	"github.com/fmtbank/cmts/fhir"
	"github.com/gin-gonic/gin"
)

// query is a request's query string as the server read it. Go's url.Values
// parsing drops a pair it cannot decode (a bad %-escape, a ';') without a
// word, and a conditional write would then act on less than its condition:
// here nothing is dropped silently, and what could not be read is kept to be
// reported or refused.
type query struct {
	values url.Values
	// unreadable are the raw pairs that could not be decoded, in order.
	unreadable []string
}

// parseQuery splits raw at '&' only: ';' is data, as in the WHATWG URL
// standard and in HAPI FHIR. A pair whose name or value has a malformed
// %-escape is unreadable. Empty pairs are skipped.
func parseQuery(raw string) query {
	q := query{values: url.Values{}}
	for pair := range strings.SplitSeq(raw, "&") {
		if pair == "" {
			continue
		}
		k, v, _ := strings.Cut(pair, "=")
		key, err1 := url.QueryUnescape(k)
		value, err2 := url.QueryUnescape(v)
		if err1 != nil || err2 != nil || key == "" {
			q.unreadable = append(q.unreadable, pair)
			continue
		}
		q.values[key] = append(q.values[key], value)
	}
	return q
}

// merge adds o's pairs after q's (a POST _search's form body after its URL).
func (q query) merge(o query) query {
	out := query{values: cloneValues(q.values), unreadable: append(append([]string(nil), q.unreadable...), o.unreadable...)}
	for k, vs := range o.values {
		out.values[k] = append(out.values[k], vs...)
	}
	return out
}

// unreadableError is the 400 for a query with pairs that cannot be read.
func (q query) unreadableError() error {
	list := strings.Join(q.unreadable, "', '")
	return fhir.Invalid(fhir.IssueValue,
		"The query part '"+list+"' cannot be read (a malformed %-escape)",
		"查询参数 '"+list+"' 无法解析（%转义格式错误）")
}

// unreadableWarnings are lenient search's report of what it ignored.
func (q query) unreadableWarnings() []fhir.Issue {
	var out []fhir.Issue
	for _, p := range q.unreadable {
		out = append(out, fhir.Issue{Severity: "warning", Code: fhir.IssueValue, Message: fhir.Message{
			EN: "The query part '" + p + "' cannot be read (a malformed %-escape) and was ignored",
			ZH: "查询参数 '" + p + "' 无法解析（%转义格式错误），已忽略"}})
	}
	return out
}

const queryKey = "cmts.query"

// queryOf returns the request's URL query, parsed once per request.
func queryOf(c *gin.Context) query {
	if q, ok := c.Get(queryKey); ok {
		return q.(query)
	}
	q := parseQuery(c.Request.URL.RawQuery)
	c.Set(queryKey, q)
	return q
}

// param is the first value of a URL query parameter ("" when absent).
func param(c *gin.Context, name string) string { return queryOf(c).values.Get(name) }

// conditionQuery reads a conditional interaction's criteria: every pair must
// be readable, as acting on part of a condition would touch resources the
// client did not name.
func conditionQuery(q query) (url.Values, error) {
	if len(q.unreadable) > 0 {
		return nil, q.unreadableError()
	}
	return q.values, nil
}
