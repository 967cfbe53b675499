package ops_test

import (
	"testing"

	"github.com/fmtbank/cmts/fhir/ops/opstest"
)

// TestAEReportTruth: on a synthetic registry of 300 patients every figure
// of $ae-report equals the generator's truth, for each hospital and for
// the regulator (whole and by year, counts under 5 masked).
func TestAEReportTruth(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("writes a registry of 300 patients")
	}
	r := opstest.NewRegistry(t, newStore(t))
	r.CheckTruth(t, r.Synth(300, 3))
}

// TestFollowUpTruth: on a synthetic registry of 300 patients every figure
// of $efficacy-report (each hospital, and the regulator masked), the
// visits $follow-up-due lists and the recipients $aid-eligibility admits
// equal the generator's truth.
func TestFollowUpTruth(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("writes a registry of 300 patients")
	}
	r := opstest.NewRegistry(t, newStore(t))
	r.CheckFollowUpTruth(t, r.Synth(300, 3))
}
