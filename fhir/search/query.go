package search

import (
	"net/url"
	"strings"

	"github.com/fmtbank/cmts/fhir"
)

// Query is a query string as the server reads it. Go's url.Values
// parsing drops a pair it cannot decode (a bad %-escape, a ';') without a
// word, and a conditional write would then act on less than its condition:
// here nothing is dropped silently, and what could not be read is kept to be
// reported or refused.
type Query struct {
	Values url.Values
	// Unreadable are the raw pairs that could not be decoded, in order.
	Unreadable []string
}

// ParseQuery splits raw at '&' only: ';' is data, as in the WHATWG URL
// standard and in HAPI FHIR. A pair whose name or value has a malformed
// %-escape is unreadable. Empty pairs are skipped.
func ParseQuery(raw string) Query {
	q := Query{Values: url.Values{}}
	for pair := range strings.SplitSeq(raw, "&") {
		if pair == "" {
			continue
		}
		k, v, _ := strings.Cut(pair, "=")
		key, err1 := url.QueryUnescape(k)
		value, err2 := url.QueryUnescape(v)
		if err1 != nil || err2 != nil || key == "" {
			q.Unreadable = append(q.Unreadable, pair)
			continue
		}
		q.Values[key] = append(q.Values[key], value)
	}
	return q
}

// Merge adds o's pairs after q's (a POST _search's form body after its URL).
func (q Query) Merge(o Query) Query {
	out := Query{Values: url.Values{}, Unreadable: append(append([]string(nil), q.Unreadable...), o.Unreadable...)}
	for _, from := range []url.Values{q.Values, o.Values} {
		for k, vs := range from {
			out.Values[k] = append(out.Values[k], vs...)
		}
	}
	return out
}

// UnreadableError is the 400 for a query with pairs that cannot be read.
func (q Query) UnreadableError() error {
	list := strings.Join(q.Unreadable, "', '")
	return fhir.Invalid(fhir.IssueValue,
		"The query part '"+list+"' cannot be read (a malformed %-escape)",
		"查询参数 '"+list+"' 无法解析（%转义格式错误）")
}

// UnreadableWarnings are lenient search's report of what it ignored.
func (q Query) UnreadableWarnings() []fhir.Issue {
	var out []fhir.Issue
	for _, p := range q.Unreadable {
		out = append(out, fhir.Issue{Severity: "warning", Code: fhir.IssueValue, Message: fhir.Message{
			EN: "The query part '" + p + "' cannot be read (a malformed %-escape) and was ignored",
			ZH: "查询参数 '" + p + "' 无法解析（%转义格式错误），已忽略"}})
	}
	return out
}

// Condition reads a conditional interaction's criteria: every pair must be
// readable, as acting on part of a condition would touch resources the
// client did not name.
func (q Query) Condition() (url.Values, error) {
	if len(q.Unreadable) > 0 {
		return nil, q.UnreadableError()
	}
	return q.Values, nil
}
