package auth

import (
	"context"

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

// SMARTConfiguration describes the trust file's smart.issuer from its own
// discovery document. Without a smart.issuer it answers 404.
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
	return &fhir.SMARTConfiguration{
		Issuer:                            d.Issuer,
		JWKSURI:                           d.JWKSURI,
		AuthorizationEndpoint:             d.AuthorizationEndpoint,
		TokenEndpoint:                     d.TokenEndpoint,
		TokenEndpointAuthMethodsSupported: d.TokenEndpointAuthMethodsSupported,
		GrantTypesSupported:               d.GrantTypesSupported,
		RegistrationEndpoint:              d.RegistrationEndpoint,
		ScopesSupported:                   SMARTScopes,
		ResponseTypesSupported:            d.ResponseTypesSupported,
		IntrospectionEndpoint:             d.IntrospectionEndpoint,
		RevocationEndpoint:                d.RevocationEndpoint,
		CodeChallengeMethodsSupported:     []string{"S256"},
		Capabilities:                      SMARTCapabilities,
	}, nil
}
