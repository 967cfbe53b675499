package mongo_test

import (
	"testing"

	"github.com/fmtbank/cmts/fhir/ops/opstest"
	"github.com/fmtbank/cmts/store"
	"github.com/fmtbank/cmts/store/mongo/mongotest"
)

// TestOps runs the WMT operations suite (look-back and recall on small
// hand-worked cohorts), the same as on the embedded store.
func TestOps(t *testing.T) {
	t.Parallel()
	srv := mongotest.Start(t)
	opstest.Run(t, func(t testing.TB) store.Store { return open(t, srv) })
}

// TestAEReportTruth: $ae-report on a synthetic registry of 300 patients
// (what the report reads of it) equals the generator's truth on FerretDB
// too.
func TestAEReportTruth(t *testing.T) {
	t.Parallel()
	srv := mongotest.Start(t)
	r := opstest.NewRegistry(t, open(t, srv))
	r.CheckTruth(t, r.SynthReport(300, 5))
}

// TestFollowUpTruth: $efficacy-report, $follow-up-due and $aid-eligibility
// on a synthetic registry of 300 patients (what they read of it, the
// recipients written first) equal the generator's truth on FerretDB too.
func TestFollowUpTruth(t *testing.T) {
	t.Parallel()
	srv := mongotest.Start(t)
	r := opstest.NewRegistry(t, open(t, srv))
	r.CheckFollowUpTruthTogether(t, r.SynthFollowUp(300, 5))
}
