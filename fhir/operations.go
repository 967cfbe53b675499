package fhir

import (
	"context"
	"net/url"
)

// Operations runs the server's own operations on stored data (the WMT
// safety operations of wmt-ig.md: $trace, $recall, ...). The REST layer
// dispatches to it through this interface, so it stays generic; the
// implementation (package fhir/ops) decides what the caller may see through
// the Policy.
type Operations interface {
	// Offers reports whether the operation name is one it runs on typ, at
	// instance level (instance) or type level; the REST layer asks before
	// it reads the request's body.
	Offers(typ, name string, instance bool) bool
	// Operation runs the operation name ("$trace") on an instance of typ
	// (id set) or at type level (id ""), for p, with the request's
	// parameters (the query string, and a Parameters body's values as
	// text) and its raw body (nil for a GET). It answers the status, the
	// body and its content type; ok is false when it does not offer the
	// operation on typ. A refusal or a failure is an *Error.
	Operation(ctx context.Context, p *Principal, typ, id, name string, params url.Values, body []byte) (status int, out []byte, contentType string, ok bool, err error)
}
