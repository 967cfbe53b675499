package auth

import (
	"context"
	"slices"

	"github.com/fmtbank/cmts/fhir"
)

// SMARTCapabilities are the SMART App Launch capabilities this server
// honours: standalone launch against the trusted issuer, public and
// confidential clients, SMART scopes v1 and v2 in the patient and user
// contexts.
var SMARTCapabilities = []string{
	"launch-standalone",
	"client-public",
	"client-confidential-symmetric",
	"context-standalone-patient",
	"permission-patient",
	"permission-user",
	"permission-v1",
	"permission-v2",
}

// SMARTScopes are the scopes_supported advertised (examples of each form;
// any resource type may stand in for `*`).
var SMARTScopes = []string{
	"openid", "fhirUser", "launch/patient", "offline_access",
	"patient/*.rs", "patient/*.cruds", "user/*.rs", "user/*.cruds",
	"system/*.rs", "system/*.cruds",
	"patient/*.read", "user/*.read", "user/*.write", "system/*.read", "system/*.*",
}

// smartGrantTypes are the token-endpoint grants SMART App Launch 2.x names
// for grant_types_supported: authorization_code for app launches,
// client_credentials for Backend Services.
var smartGrantTypes = []string{"authorization_code", "client_credentials"}

// SMARTConfiguration describes the trust file's smart.issuer from its own
// discovery document: its endpoints, and of its grant and response types those
// a SMART client uses (implicit and hybrid flows are not SMART's); the
// capabilities are SMARTCapabilities, and sso-openid-connect with the issuer
// when the provider supports the fhirUser claim. Without a smart.issuer it
// answers 404.
func (v *Verifier) SMARTConfiguration(ctx context.Context) (*fhir.SMARTConfiguration, error) {
	st, ok := v.issuers[v.trust.SMART.Issuer]
	if !ok {
		return nil, fhir.Invalid(fhir.IssueNotFound, "No SMART authorization server is configured (smart.issuer)",
			"未配置 SMART 授权服务（smart.issuer）").WithStatus(404)
	}
	_, d, err := st.get(ctx)
	if err != nil {
		v.opts.Logger.Warn("SMART identity provider unavailable", "issuer", st.cfg.Issuer, "err", err)
		e := fhir.Unavailable()
		e.Issues[0].Message = fhir.Message{
			EN: "The authorization server cannot be reached; try again later",
			ZH: "授权服务暂时无法访问，请稍后重试",
		}
		e.Cause = err
		return nil, e
	}
	grantTypes := d.GrantTypesSupported
	if len(grantTypes) == 0 {
		// OpenID Connect Discovery 1.0: the default when the provider omits it.
		grantTypes = []string{"authorization_code", "implicit"}
	}
	caps, issuer := SMARTCapabilities, ""
	if slices.Contains(d.ClaimsSupported, "fhirUser") {
		// SMART's OpenID Connect profile needs fhirUser in the id_token; the
		// issuer is published only with that capability (SMART App Launch 2.x).
		caps, issuer = slices.Concat(caps, []string{"sso-openid-connect"}), d.Issuer
	}
	return &fhir.SMARTConfiguration{
		Issuer:                            issuer,
		JWKSURI:                           d.JWKSURI,
		AuthorizationEndpoint:             d.AuthorizationEndpoint,
		TokenEndpoint:                     d.TokenEndpoint,
		TokenEndpointAuthMethodsSupported: d.TokenEndpointAuthMethodsSupported,
		GrantTypesSupported:               offered(smartGrantTypes, grantTypes),
		RegistrationEndpoint:              d.RegistrationEndpoint,
		ScopesSupported:                   SMARTScopes,
		ResponseTypesSupported:            offered([]string{"code"}, d.ResponseTypesSupported),
		IntrospectionEndpoint:             d.IntrospectionEndpoint,
		RevocationEndpoint:                d.RevocationEndpoint,
		CodeChallengeMethodsSupported:     []string{"S256"},
		Capabilities:                      caps,
	}, nil
}

// offered returns the values of want that the provider lists in have, in
// want's order.
func offered(want, have []string) []string {
	var out []string
	for _, w := range want {
		if slices.Contains(have, w) {
			out = append(out, w)
		}
	}
	return out
}
