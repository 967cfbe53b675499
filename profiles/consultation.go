package profiles

import (
	"context"
	"slices"

	"github.com/fmtbank/cmts/fhir"
	"github.com/fmtbank/cmts/store"
)

// tenantSystem names, on an Organization or a logical reference to one, the
// tenant it stands for (wmt-ig.md, identifier systems).
const tenantSystem = Canonical + "/sid/tenant"

// consultationSteps is the life cycle of a cmts-consultation Task (the
// FHIR Task state machine, as a consultation uses it): for each status,
// the statuses the next version may have. A request starts as draft or
// requested; completed, rejected, cancelled, failed and entered-in-error
// end it (entered-in-error is reachable from every status, to undo a
// mistake).
var consultationSteps = map[string][]string{
	"draft":       {"requested", "cancelled"},
	"requested":   {"received", "accepted", "rejected", "cancelled"},
	"received":    {"accepted", "rejected", "cancelled"},
	"accepted":    {"in-progress", "completed", "cancelled"},
	"ready":       {"in-progress", "cancelled"},
	"in-progress": {"on-hold", "completed", "failed", "cancelled"},
	"on-hold":     {"in-progress", "failed", "cancelled"},
}

// consultationStarts are the statuses a consultation is created with.
var consultationStarts = []string{"draft", "requested"}

// consultationRules are the rules of a cmts-consultation Task beyond its
// StructureDefinition, each an error issue at its element: the owner names
// the expert centre's tenant by an identifier in the tenant system (the
// server routes the request by it), a completed consultation carries its
// advice in output, and the status follows consultationSteps from the
// stored version (none: a start status).
func (s *Service) consultationRules(ctx context.Context, tenant string, res map[string]any) ([]fhir.Issue, error) {
	var issues []fhir.Issue
	add := func(path string, m fhir.Message) {
		issues = append(issues, fhir.Issue{Severity: "error", Code: fhir.IssueBusinessRule, Message: m, Expression: []string{path}})
	}
	owner, _ := res["owner"].(map[string]any)
	ident, _ := owner["identifier"].(map[string]any)
	if sys, _ := ident["system"].(string); sys != tenantSystem || ident["value"] == nil || ident["value"] == "" {
		add("Task.owner.identifier", fhir.Message{
			EN: "A consultation's owner must name the expert centre's tenant: an identifier with system " + tenantSystem,
			ZH: "会诊申请的 owner 必须标明专家中心所属单位：system 为 " + tenantSystem + " 的标识符"})
	}
	status, _ := res["status"].(string)
	if out, _ := res["output"].([]any); status == "completed" && len(out) == 0 {
		add("Task.output", fhir.Message{
			EN: "A completed consultation carries the expert centre's advice in output",
			ZH: "已完成的会诊必须在 output 中给出专家中心的意见"})
	}
	id, _ := res["id"].(string)
	var old map[string]any
	if id != "" {
		var err error
		if old, err = (storeResolver{st: s.store, access: store.Tenant(tenant)}).Resolve(ctx, "Task", id); err != nil {
			return nil, err
		}
	}
	if old == nil {
		if !slices.Contains(consultationStarts, status) {
			add("Task.status", fhir.Message{
				EN: "A consultation starts as draft or requested, not " + status,
				ZH: "会诊申请只能以 draft 或 requested 状态创建，不能是 " + status})
		}
		return issues, nil
	}
	was, _ := old["status"].(string)
	if status != was && status != "entered-in-error" && !slices.Contains(consultationSteps[was], status) {
		add("Task.status", fhir.Message{
			EN: "A consultation cannot go from " + was + " to " + status,
			ZH: "会诊申请的状态不能从 " + was + " 变为 " + status})
	}
	return issues, nil
}
