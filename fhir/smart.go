package fhir

import "context"

// SMARTConfiguration is the SMART App Launch discovery document
// (/.well-known/smart-configuration): where clients get tokens that this
// server accepts, and what it honours.
type SMARTConfiguration struct {
	Issuer                            string   `json:"issuer,omitempty"`
	JWKSURI                           string   `json:"jwks_uri,omitempty"`
	AuthorizationEndpoint             string   `json:"authorization_endpoint,omitempty"`
	TokenEndpoint                     string   `json:"token_endpoint"`
	TokenEndpointAuthMethodsSupported []string `json:"token_endpoint_auth_methods_supported,omitempty"`
	GrantTypesSupported               []string `json:"grant_types_supported,omitempty"`
	RegistrationEndpoint              string   `json:"registration_endpoint,omitempty"`
	ScopesSupported                   []string `json:"scopes_supported,omitempty"`
	ResponseTypesSupported            []string `json:"response_types_supported,omitempty"`
	IntrospectionEndpoint             string   `json:"introspection_endpoint,omitempty"`
	RevocationEndpoint                string   `json:"revocation_endpoint,omitempty"`
	CodeChallengeMethodsSupported     []string `json:"code_challenge_methods_supported"`
	Capabilities                      []string `json:"capabilities"`
}

// SMARTConfigurer describes the identity provider SMART clients should use.
// It returns an *Error (or an error mapped by AsError) when the provider's
// own discovery document cannot be had.
type SMARTConfigurer interface {
	SMARTConfiguration(ctx context.Context) (*SMARTConfiguration, error)
}
