package fhir

import (
	"net/http"
)

// Principal is who a request acts for: the tenant (contributing unit) whose
// data it reads and writes, and what it may do there.
type Principal struct {
	// Tenant scopes every store call the request makes.
	Tenant string
	// Subject identifies the caller in audit records; never a patient's name.
	Subject string
	// Scopes are the SMART scopes granted (e.g. "user/*.read").
	Scopes []string
}

// Authenticator turns a request's credentials into a Principal, or returns an
// *Error (401 without valid credentials, 403 when they do not allow access).
type Authenticator interface {
	Authenticate(r *http.Request) (*Principal, error)
}
