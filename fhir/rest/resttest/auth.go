package resttest

import (
	"github.com/fmtbank/cmts/auth"
	"net/http"

	"github.com/fmtbank/cmts/fhir"
)

// fixedTenant authenticates every request as one tenant.
type fixedTenant string

func (f fixedTenant) Authenticate(*http.Request) (*fhir.Principal, error) {
	return auth.Insecure{Tenant: string(f)}.Authenticate(nil)
}
