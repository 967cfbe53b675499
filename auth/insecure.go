// Package auth authenticates callers and decides what they may do: OIDC token
// verification, issuer-to-tenant mapping, SMART scopes.
package auth

import (
	"net/http"

	"github.com/fmtbank/cmts/fhir"
)

// Insecure grants every request full access to one tenant, with no
// credentials. It exists for local development (`serve --insecure-no-auth`,
// which refuses non-loopback addresses) and tests.
type Insecure struct {
	Tenant string
}

var _ fhir.Authenticator = Insecure{}

// Authenticate returns the fixed principal.
func (a Insecure) Authenticate(*http.Request) (*fhir.Principal, error) {
	scopes := []string{"system/*.*"}
	return &fhir.Principal{Tenant: a.Tenant, Subject: "insecure-no-auth", Roles: []fhir.Role{fhir.RoleSystem, fhir.RoleAdmin},
		Scopes: scopes, Grants: fhir.ParseScopes(scopes)}, nil
}

// None refuses every request: the server has no identity provider configured
// and was not told to run without authentication.
type None struct{}

var _ fhir.Authenticator = None{}

// Authenticate always answers 401.
func (None) Authenticate(*http.Request) (*fhir.Principal, error) {
	return nil, fhir.Unauthorized("No identity provider is configured; for local development start the server with --insecure-no-auth",
		"未配置身份认证服务；本地开发可使用 --insecure-no-auth 启动")
}
