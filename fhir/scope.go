package fhir

import (
	"net/url"
	"strings"
)

// ScopeContext is the first part of a SMART resource scope: whose data.
type ScopeContext string

// The SMART scope contexts.
const (
	ScopePatient ScopeContext = "patient" // the patient in context only
	ScopeUser    ScopeContext = "user"    // what the user may see
	ScopeSystem  ScopeContext = "system"  // a backend service
)

// Interaction is one SMART v2 permission letter.
type Interaction byte

// The SMART v2 permissions (create, read, update, delete, search).
const (
	Create Interaction = 'c'
	Read   Interaction = 'r'
	Update Interaction = 'u'
	Delete Interaction = 'd'
	Search Interaction = 's'
)

// Scope is one SMART resource scope, v1 or v2, in v2 terms: v1 `read` is
// "rs", `write` is "cud" and `*` is "cruds".
type Scope struct {
	Context ScopeContext
	// ResourceType is a resource type or "*".
	ResourceType string
	// Permissions is a subset of "cruds", in that order.
	Permissions string
	// Params narrows the scope to resources matching these search parameters
	// (v2 `?param=value`); nil for none.
	Params url.Values
}

// ParseScope parses a SMART resource scope such as "patient/Observation.rs",
// "user/*.read" or "system/Observation.rs?category=laboratory". ok is false
// for anything else (openid, launch, fhirUser, malformed text), which grants
// no resource access.
func ParseScope(s string) (sc Scope, ok bool) {
	ctx, rest, found := strings.Cut(s, "/")
	if !found {
		return Scope{}, false
	}
	switch ScopeContext(ctx) {
	case ScopePatient, ScopeUser, ScopeSystem:
	default:
		return Scope{}, false
	}
	rest, query, hasQuery := strings.Cut(rest, "?")
	typ, perm, found := strings.Cut(rest, ".")
	if !found || typ == "" || (typ != "*" && !isTypeName(typ)) {
		return Scope{}, false
	}
	switch perm {
	case "read":
		perm = "rs"
	case "write":
		perm = "cud"
	case "*":
		perm = "cruds"
	default:
		if !isV2Permissions(perm) {
			return Scope{}, false
		}
	}
	sc = Scope{Context: ScopeContext(ctx), ResourceType: typ, Permissions: perm}
	if hasQuery {
		q, err := url.ParseQuery(query)
		if err != nil || len(q) == 0 {
			return Scope{}, false
		}
		sc.Params = q
	}
	return sc, true
}

// isV2Permissions reports whether p is a non-empty subsequence of "cruds".
func isV2Permissions(p string) bool {
	if p == "" {
		return false
	}
	i := 0
	for _, c := range []byte(p) {
		j := strings.IndexByte("cruds"[i:], c)
		if j < 0 {
			return false
		}
		i += j + 1
	}
	return true
}

func isTypeName(t string) bool {
	if t[0] < 'A' || t[0] > 'Z' {
		return false
	}
	for _, c := range []byte(t) {
		if !(c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9') {
			return false
		}
	}
	return true
}

// Allows reports whether the scope grants the interaction on the resource
// type, before any Params narrowing (which the caller applies to the
// resources themselves).
func (s Scope) Allows(i Interaction, resourceType string) bool {
	return (s.ResourceType == "*" || s.ResourceType == resourceType) &&
		strings.IndexByte(s.Permissions, byte(i)) >= 0
}

// ParseScopes parses a list of granted scopes, keeping the resource scopes.
func ParseScopes(scopes []string) []Scope {
	var out []Scope
	for _, s := range scopes {
		if sc, ok := ParseScope(s); ok {
			out = append(out, sc)
		}
	}
	return out
}
