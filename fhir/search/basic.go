// Package search knows the search parameters: which index entries a resource
// yields at write time, and how a query string becomes the store's query AST.
package search

import (
	"encoding/json"
	"fmt"
	"net/url"
	"sort"
	"strings"

	"github.com/fmtbank/cmts/fhir"
	"github.com/fmtbank/cmts/store"
)

// Param describes a search parameter the server supports.
type Param struct {
	Code string
	Type store.IndexKind
	// Doc is the CapabilityStatement documentation.
	Doc string
}

// Engine extracts index entries and compiles queries. The zero value is
// ready; it holds no state.
type Engine struct{}

// Params lists the parameters supported on a resource type, sorted by code.
func (Engine) Params(resourceType string) []Param {
	ps := []Param{
		{Code: "_id", Type: store.KindToken, Doc: "Logical id of the resource"},
		{Code: "identifier", Type: store.KindToken, Doc: "Business identifier (system|value)"},
	}
	sort.Slice(ps, func(i, j int) bool { return ps[i].Code < ps[j].Code })
	return ps
}

// Entries computes the index entries of a resource (its FHIR JSON).
func (Engine) Entries(resourceType string, body []byte) ([]store.IndexEntry, error) {
	var res struct {
		Identifier json.RawMessage `json:"identifier"`
	}
	if err := json.Unmarshal(body, &res); err != nil {
		return nil, fmt.Errorf("search: index %s: %w", resourceType, err)
	}
	type ident struct {
		System string `json:"system"`
		Value  string `json:"value"`
	}
	var ids []ident
	if len(res.Identifier) > 0 {
		// identifier is 0..* on most types, 0..1 on a few (e.g. Bundle).
		if res.Identifier[0] == '[' {
			_ = json.Unmarshal(res.Identifier, &ids)
		} else {
			var one ident
			if json.Unmarshal(res.Identifier, &one) == nil {
				ids = append(ids, one)
			}
		}
	}
	var out []store.IndexEntry
	for _, id := range ids {
		if id.Value == "" {
			continue
		}
		out = append(out, store.IndexEntry{Param: "identifier", Kind: store.KindToken, System: id.System, Code: id.Value})
	}
	return out, nil
}

// control parameters are not filters; they shape the result.
var control = map[string]bool{
	"_count": true, "_offset": true, "_format": true, "_pretty": true, "_total": true,
	"_summary": true, "_elements": true, "_sort": true,
}

// Compile turns query parameters into a filter. Unknown parameters are an
// error: a conditional interaction must never act on a filter it ignored.
func (e Engine) Compile(resourceType string, params url.Values) (store.Expr, error) {
	var and store.And
	keys := make([]string, 0, len(params))
	for k := range params {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if control[k] {
			continue
		}
		for _, v := range params[k] {
			values := strings.Split(v, ",")
			switch k {
			case "_id":
				and = append(and, store.ID{IDs: values})
			case "identifier":
				var or store.Or
				for _, tv := range values {
					or = append(or, parseToken("identifier", tv))
				}
				and = append(and, or)
			default:
				return nil, fhir.Invalid(fhir.IssueNotSupported,
					"Unknown or unsupported search parameter '"+k+"'", "未知或不支持的检索参数 '"+k+"'").WithExpression(k)
			}
		}
	}
	if len(and) == 0 {
		return nil, nil
	}
	return and, nil
}

// parseToken reads code, system|code, or |code (no system).
func parseToken(param, v string) store.Token {
	sys, code, ok := strings.Cut(v, "|")
	if !ok {
		return store.Token{Param: param, Code: v}
	}
	return store.Token{Param: param, System: &sys, Code: code}
}
