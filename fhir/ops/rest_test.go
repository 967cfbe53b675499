package ops_test

import (
	"net/http"
	"testing"

	"github.com/fmtbank/cmts/fhir"
	"github.com/fmtbank/cmts/fhir/ops"
	"github.com/fmtbank/cmts/fhir/rest"
	"github.com/fmtbank/cmts/fhir/rest/resttest"
)

// as authenticates every request as one principal.
type as struct{ p *fhir.Principal }

func (a as) Authenticate(*http.Request) (*fhir.Principal, error) { return a.p, nil }

// TestTraceOverREST: the router dispatches $trace to the operations and
// leaves the operations they do not offer to the rest of the server.
func TestTraceOverREST(t *testing.T) {
	t.Parallel()
	r := cohort(t)
	c := resttest.Serve(t, r.st, func(o *rest.Options) {
		o.Auth = as{hosp1}
		o.Policy = r.pol
		o.Operations = ops.New(ops.Options{Store: r.st, Policy: r.pol})
	})
	res := c.Do(http.MethodGet, "/Specimen/l2/$trace", nil)
	if res.Status != http.StatusOK {
		t.Fatalf("GET $trace: %d %s", res.Status, res.Body)
	}
	if b := res.JSON(t); b["type"] != "collection" || len(b["entry"].([]any)) != 4 {
		t.Errorf("GET $trace: want a collection of 4 entries, got %s", res.Body)
	}
	for _, tc := range []struct {
		method, path string
		want         int
	}{
		{http.MethodGet, "/Patient/d1/$trace", http.StatusNotFound},
		{http.MethodGet, "/Observation/o1/$trace", http.StatusNotFound},
		{http.MethodGet, "/Specimen/l2/$nothing", http.StatusNotFound},
	} {
		if res := c.Do(tc.method, tc.path, nil); res.Status != tc.want {
			t.Errorf("%s %s: want %d, got %d %s", tc.method, tc.path, tc.want, res.Status, res.Body)
		}
	}
}
