package fhir

import (
	"net/http"
)

// Principal is who a request acts for: the tenant (contributing unit) whose
// data it reads and writes, and what it may do there. It is plain data, made
// by an Authenticator and read by the access policy.
type Principal struct {
	// Tenant scopes every store call the request makes.
	Tenant string
	// TenantKind is the kind of unit the tenant is.
	TenantKind TenantKind
	// Subject identifies the caller in audit records (the token's `sub`);
	// never a patient's name.
	Subject string
	// Issuer is the token's `iss` ("" when there is no token): a subject is
	// unique only within its issuer, so audit records name both.
	Issuer string
	// ClientID is the OAuth client the token was issued to ("" when unknown).
	ClientID string
	// Roles are the caller's roles; a client_credentials token without roles
	// has the one role RoleSystem.
	Roles []Role
	// Scopes are the SMART scopes granted, as written in the token (e.g.
	// "user/*.read"); Grants are the resource scopes among them, parsed.
	Scopes []string
	Grants []Scope
	// Patient is the patient in context (a Patient id, the token's `patient`
	// claim), which a patient/ scope is limited to; "" for none.
	Patient string
}

// HasRole reports whether the principal has the role.
func (p *Principal) HasRole(r Role) bool {
	for _, have := range p.Roles {
		if have == r {
			return true
		}
	}
	return false
}

// TenantKind is the kind of a contributing unit.
type TenantKind string

// The tenant kinds of the --trust file.
const (
	TenantHospital  TenantKind = "hospital"
	TenantBank      TenantKind = "bank"
	TenantAuthority TenantKind = "authority" // a regulator's unit
)

// Role is what a caller does in the registry.
type Role string

// The roles a token can carry (design.md, "Authentication and access
// contract"), and RoleSystem for a client acting on its own behalf.
const (
	RoleClinician  Role = "clinician"
	RoleResearcher Role = "researcher"
	RoleRegulator  Role = "regulator"
	RoleBankStaff  Role = "bank-staff"
	RoleAdmin      Role = "admin"
	RoleSystem     Role = "system"
)

// Authenticator turns a request's credentials into a Principal, or returns an
// *Error (401 without valid credentials, 403 when they do not allow access).
type Authenticator interface {
	Authenticate(r *http.Request) (*Principal, error)
}
