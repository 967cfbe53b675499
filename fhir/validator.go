package fhir

import (
	"context"
	"net/url"
)

// Validator checks resources against the profiles (StructureDefinitions)
// the server knows, beyond what the R4 codec checks. The REST layer asks
// for it through this interface so that package fhir never imports the
// implementation (package profiles).
type Validator interface {
	// CheckWrite validates a resource about to be stored (body: valid R4
	// JSON of type typ) against every profile it claims in meta.profile
	// (a claimed profile the validator does not know is a warning), and
	// against the server's own requirements (e.g. that the type claim one
	// of the guide's profiles). It returns every issue found; any issue of
	// severity "error" refuses the write. The error is for failures of the
	// validator itself (such as the store being unreachable).
	CheckWrite(ctx context.Context, p *Principal, typ string, body []byte) ([]Issue, error)
	// Validate is $validate: it checks body against profile (a canonical
	// url; "" means the base definition and the profiles it claims) and
	// returns every issue, stores nothing.
	Validate(ctx context.Context, p *Principal, typ string, body []byte, profile string) ([]Issue, error)
}

// Conformance serves a fixed set of conformance resources (the server's
// implementation guide) read-only, and the terminology operations over
// them.
type Conformance interface {
	// Serves reports whether resources of type typ are served from here
	// rather than from the store (writes to them are refused with 405).
	Serves(typ string) bool
	// Read returns a resource's JSON, or false if there is none.
	Read(typ, id string) ([]byte, bool)
	// Search returns the resources of typ whose parameters match (url,
	// name, type, base, and _id; a parameter it does not support is an
	// *Error 400).
	Search(typ string, params url.Values) ([][]byte, error)
	// Operation runs the named operation ("$lookup", "$expand", ...) at
	// type level (id "") or on an instance, with the request's parameters
	// (from the query string or a Parameters body) and the language asked
	// for, and returns the result resource. ok is false if the operation
	// is not one it offers on typ.
	Operation(ctx context.Context, typ, id, op string, params url.Values) (body []byte, ok bool, err error)
}
