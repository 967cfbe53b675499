package rest

import (
	"encoding/json"
	"net/http"
	"strings"

	"github.com/fmtbank/cmts/fhir"
	"github.com/gin-gonic/gin"
)

// smartConfigurationPath is the SMART discovery document under the FHIR base.
const smartConfigurationPath = "/.well-known/smart-configuration"

// public reports whether a route answers without credentials: SMART clients
// read the CapabilityStatement and the SMART document to learn how to
// authenticate.
func public(fullPath string) bool {
	return fullPath == "/fhir/metadata" || fullPath == "/fhir"+smartConfigurationPath
}

// smartConfiguration answers /.well-known/smart-configuration; 404 when the
// server has no SMART identity provider configured.
func (s *Server) smartConfiguration(c *gin.Context) {
	if s.opts.SMART == nil {
		s.fail(c, errNoSMART())
		return
	}
	doc, err := s.opts.SMART.SMARTConfiguration(c.Request.Context())
	if err != nil {
		s.fail(c, err)
		return
	}
	body, err := json.Marshal(doc)
	if err != nil {
		s.fail(c, err)
		return
	}
	// The document is plain JSON, not a FHIR resource.
	c.Header("Cache-Control", "public, max-age=300")
	c.Data(http.StatusOK, mimeJSON+"; charset=utf-8", body)
}

// capabilitySecurity is the CapabilityStatement's rest.security: the SMART
// service and its OAuth endpoints. nil when there is no SMART provider, or
// its discovery document cannot be had now (the statement is still served).
func (s *Server) capabilitySecurity(c *gin.Context) map[string]any {
	if s.opts.SMART == nil {
		return nil
	}
	doc, err := s.opts.SMART.SMARTConfiguration(c.Request.Context())
	if err != nil {
		s.opts.Logger.Warn("SMART configuration unavailable for the CapabilityStatement", "err", err)
		return nil
	}
	uris := []map[string]any{{"url": "token", "valueUri": doc.TokenEndpoint}}
	if doc.AuthorizationEndpoint != "" {
		uris = append([]map[string]any{{"url": "authorize", "valueUri": doc.AuthorizationEndpoint}}, uris...)
	}
	if doc.RevocationEndpoint != "" {
		uris = append(uris, map[string]any{"url": "revoke", "valueUri": doc.RevocationEndpoint})
	}
	if doc.IntrospectionEndpoint != "" {
		uris = append(uris, map[string]any{"url": "introspect", "valueUri": doc.IntrospectionEndpoint})
	}
	return map[string]any{
		"extension": []map[string]any{{
			"url":       "http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris",
			"extension": uris,
		}},
		"service": []map[string]any{{
			"coding": []map[string]any{{
				"system": "http://terminology.hl7.org/CodeSystem/restful-security-service",
				"code":   "SMART-on-FHIR",
			}},
			"text": "OAuth2 using SMART-on-FHIR profile (see http://docs.smarthealthit.org)",
		}},
		"description": "Bearer JWT access tokens from the trusted OpenID Providers; SMART scopes v1 and v2.",
	}
}

// bearerChallenge is the WWW-Authenticate value of a 401 (RFC 6750 section
// 3): a request that sent no token is only told how to authenticate; one that
// sent a token that failed is told the token is invalid.
func bearerChallenge(r *http.Request) string {
	const realm = `Bearer realm="cmts"`
	if h := r.Header.Get("Authorization"); h == "" || !strings.HasPrefix(strings.ToLower(h), "bearer ") {
		return realm
	}
	return realm + `, error="invalid_token"`
}

func errNoSMART() error {
	return fhir.Invalid(fhir.IssueNotFound, "This server has no SMART authorization server configured",
		"本服务器未配置 SMART 授权服务").WithStatus(http.StatusNotFound)
}
