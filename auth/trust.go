package auth

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"os"

	"github.com/fmtbank/cmts/fhir"
)

// Trust is the --trust file (design.md, "Authentication and access
// contract"): the units the server serves and the identity providers whose
// tokens it accepts.
type Trust struct {
	Tenants []Tenant `json:"tenants"`
	Issuers []Issuer `json:"issuers"`
	// RolesClaim names the token claim (a string array) that carries the
	// caller's roles; "cmts_roles" when empty.
	RolesClaim string `json:"rolesClaim"`
	// SMART names the issuer SMART apps are sent to.
	SMART SMARTIssuer `json:"smart"`
}

// Tenant is one contributing unit.
type Tenant struct {
	ID     string          `json:"id"`
	Kind   fhir.TenantKind `json:"kind"`
	Name   string          `json:"name"`
	NameZh string          `json:"nameZh,omitempty"`
}

// Issuer is one trusted OpenID Provider. Either Tenant fixes the tenant of
// every token it issues, or TenantClaim names the claim that carries it (a
// national IdP serving many units).
type Issuer struct {
	Issuer      string `json:"issuer"`
	Audience    string `json:"audience"`
	Tenant      string `json:"tenant,omitempty"`
	TenantClaim string `json:"tenantClaim,omitempty"`
}

// SMARTIssuer is the "smart" member of the trust file.
type SMARTIssuer struct {
	Issuer string `json:"issuer"`
}

// DefaultRolesClaim is the roles claim when the trust file names none.
const DefaultRolesClaim = "cmts_roles"

// LoadTrust reads and checks a trust file.
func LoadTrust(path string) (*Trust, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("trust file: %w", err)
	}
	t, err := ParseTrust(b)
	if err != nil {
		return nil, fmt.Errorf("trust file %s: %w", path, err)
	}
	return t, nil
}

// ParseTrust parses and checks a trust file's JSON. Unknown members are
// refused, so that a misspelt key does not silently weaken the policy.
func ParseTrust(b []byte) (*Trust, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var t Trust
	if err := dec.Decode(&t); err != nil {
		return nil, err
	}
	if t.RolesClaim == "" {
		t.RolesClaim = DefaultRolesClaim
	}
	return &t, t.check()
}

func (t *Trust) check() error {
	var errs []error
	tenants := map[string]bool{}
	for i, tn := range t.Tenants {
		switch {
		case tn.ID == "":
			errs = append(errs, fmt.Errorf("tenants[%d]: no id", i))
		case tenants[tn.ID]:
			errs = append(errs, fmt.Errorf("tenants[%d]: id %q given twice", i, tn.ID))
		}
		switch tn.Kind {
		case fhir.TenantHospital, fhir.TenantBank, fhir.TenantAuthority:
		default:
			errs = append(errs, fmt.Errorf("tenants[%d] %q: kind %q is not hospital, bank or authority", i, tn.ID, tn.Kind))
		}
		tenants[tn.ID] = true
	}
	if len(t.Issuers) == 0 {
		errs = append(errs, errors.New("no issuers"))
	}
	issuers := map[string]bool{}
	for i, is := range t.Issuers {
		if u, err := url.Parse(is.Issuer); err != nil || !u.IsAbs() || u.Host == "" {
			errs = append(errs, fmt.Errorf("issuers[%d]: issuer %q is not an absolute URL", i, is.Issuer))
		}
		if issuers[is.Issuer] {
			errs = append(errs, fmt.Errorf("issuers[%d]: issuer %q given twice", i, is.Issuer))
		}
		issuers[is.Issuer] = true
		if is.Audience == "" {
			errs = append(errs, fmt.Errorf("issuers[%d] %q: no audience", i, is.Issuer))
		}
		switch {
		case (is.Tenant == "") == (is.TenantClaim == ""):
			errs = append(errs, fmt.Errorf("issuers[%d] %q: give exactly one of tenant and tenantClaim", i, is.Issuer))
		case is.Tenant != "" && !tenants[is.Tenant]:
			errs = append(errs, fmt.Errorf("issuers[%d] %q: tenant %q is not in tenants", i, is.Issuer, is.Tenant))
		}
	}
	if t.SMART.Issuer != "" && !issuers[t.SMART.Issuer] {
		errs = append(errs, fmt.Errorf("smart.issuer %q is not one of the issuers", t.SMART.Issuer))
	}
	return errors.Join(errs...)
}

// tenant returns the tenant with the id.
func (t *Trust) tenant(id string) (Tenant, bool) {
	for _, tn := range t.Tenants {
		if tn.ID == id {
			return tn, true
		}
	}
	return Tenant{}, false
}
