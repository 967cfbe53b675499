package profiles

import (
	"context"
	"strconv"

	"github.com/fmtbank/cmts/fhir"
	"github.com/fmtbank/cmts/store"
)

// maxLotVersions bounds how much of a lot's history the release check
// reads.
const maxLotVersions = 1000

// lotState is one version of a lot as the release rule sees it.
type lotState struct {
	version            int64
	status, since, exp string
}

// lotStates reads a lot's versions in a tenant (none if it is not visible
// there).
func (s *Service) lotStates(ctx context.Context, tenant, id string) ([]lotState, error) {
	var out []lotState
	q := store.HistoryQuery{Access: store.Tenant(tenant), Type: "Specimen", ID: id, Count: 100}
	for len(out) < maxLotVersions {
		page, err := s.store.History(ctx, q)
		if err != nil {
			return nil, err
		}
		for _, v := range page.Versions {
			if v.Deleted || len(v.Resource) == 0 {
				continue
			}
			res, err := Decode(v.Resource)
			if err != nil {
				return nil, err
			}
			st := lotState{version: v.VersionID}
			st.status, _ = releaseStatus(res)
			exts, _ := res["extension"].([]any)
			for _, x := range exts {
				m, _ := x.(map[string]any)
				switch m["url"] {
				case Canonical + "/StructureDefinition/status-date":
					st.since, _ = m["valueDateTime"].(string)
				case Canonical + "/StructureDefinition/expiry":
					st.exp, _ = m["valueDateTime"].(string)
				}
			}
			out = append(out, st)
		}
		if page.Next == nil {
			break
		}
		q.After = page.Next
	}
	return out, nil
}

// lotsReleased is the rule of wmt-ig.md that a procedure uses only lots
// that were released when it was performed: the status at that time is the
// one of the lot's version with the latest status-date not after it
// (business time, so records entered late count), and a lot past its expiry
// counts as not released. A lot the writer's tenant cannot read is not
// checked here.
func (s *Service) lotsReleased(ctx context.Context, tenant string, res map[string]any) ([]fhir.Issue, error) {
	performed, _ := res["performedDateTime"].(string)
	if performed == "" {
		return nil, nil
	}
	var issues []fhir.Issue
	exts, _ := res["extension"].([]any)
	for i, x := range exts {
		m, _ := x.(map[string]any)
		if m["url"] != Canonical+"/StructureDefinition/product-lot" {
			continue
		}
		ref, _ := m["valueReference"].(map[string]any)
		r, _ := ref["reference"].(string)
		typ, id, contained := referenceTarget(r)
		if typ != "Specimen" || contained {
			continue
		}
		states, err := s.lotStates(ctx, tenant, id)
		if err != nil {
			return nil, err
		}
		if len(states) == 0 {
			continue
		}
		var then *lotState
		for k := range states {
			st := &states[k]
			if st.since == "" || before(performed, st.since) {
				continue
			}
			if then == nil || before(then.since, st.since) || !before(st.since, then.since) && st.version > then.version {
				then = st
			}
		}
		status := "none"
		switch {
		case then == nil:
		case then.exp != "" && !before(performed, then.exp):
			status = "expired"
		default:
			status = then.status
		}
		if status == "released" {
			continue
		}
		issues = append(issues, fhir.Issue{Severity: "error", Code: fhir.IssueBusinessRule,
			Message: fhir.Message{
				EN: "Lot Specimen/" + id + " was not released at " + performed + " (status then: " + status + ")",
				ZH: "批次 Specimen/" + id + " 在 " + performed + " 时未放行（当时状态：" + status + "）"},
			Expression: []string{"Procedure.extension[" + strconv.Itoa(i) + "].value"}})
	}
	return issues, nil
}
