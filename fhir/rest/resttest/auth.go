package resttest

import (
	"net/http"

	"github.com/fmtbank/cmts/fhir"
)

// fixedTenant authenticates every request as one tenant.
type fixedTenant string

func (f fixedTenant) Authenticate(*http.Request) (*fhir.Principal, error) {
	return &fhir.Principal{Tenant: string(f), Subject: "test"}, nil
}
