package policy

import (
	"encoding/json"
	"reflect"
	"slices"
	"sort"
	"strings"

	"github.com/fmtbank/cmts/fhir"
	"github.com/fmtbank/cmts/store"
)

// TenantSystem is the identifier system that names, on an Organization or
// on a logical reference to one, the tenant it stands for (wmt-ig.md,
// identifier systems).
const TenantSystem = "http://fmtbank.org/fhir/sid/tenant"

// consultationProfile is the profile whose Tasks are routed to the expert
// centre they are addressed to.
const consultationProfile = "cmts-consultation"

// addresseeElements are the elements of a consultation Task the expert
// centre it is addressed to may change: what a performer reports (FHIR
// Task: status, statusReason, businessStatus, output, note, lastModified).
// meta is compared without versionId and lastUpdated, which every write
// sets.
var addresseeElements = []string{"status", "statusReason", "businessStatus", "output", "note", "lastModified"}

// performerStatuses are the Task statuses the addressee may set: it
// receives, accepts or rejects a request, works on it and completes it (or
// fails). Drafting, requesting, cancelling and entering in error are the
// requester's.
var performerStatuses = []string{"received", "accepted", "rejected", "in-progress", "on-hold", "completed", "failed"}

// Addressee is the tenant besides its own that reads v as written
// (store.Version.Addressee): for a Task claiming cmts-consultation, the
// tenant its owner names by an identifier in TenantSystem (the expert
// centre), unless that is v's own tenant; "" otherwise.
func Addressee(v *store.Version) string {
	if v.Type != "Task" || v.Deleted || !slices.Contains(profilesOf(v), consultationProfile) {
		return ""
	}
	var task struct {
		Owner struct {
			Identifier struct{ System, Value string }
		}
	}
	if json.Unmarshal(v.Resource, &task) != nil {
		return ""
	}
	id := task.Owner.Identifier
	if id.System != TenantSystem || id.Value == "" || id.Value == v.Tenant {
		return ""
	}
	return id.Value
}

// addressed reports whether p works for the tenant v is addressed to (and
// not for its owner).
func addressed(p *fhir.Principal, v *store.Version) bool {
	return v != nil && v.Addressee != "" && v.Addressee == p.Tenant && v.Tenant != p.Tenant
}

var (
	msgAddresseeDeletes = fhir.Message{EN: "The expert centre a consultation is addressed to may not delete it; the requesting hospital owns it",
		ZH: "会诊受理的专家中心不能删除该会诊申请；申请由发起医院所有"}
	msgAddresseeStatus = fhir.Message{EN: "The expert centre may set the status of a consultation to received, accepted, rejected, in-progress, on-hold, completed or failed only; drafting, requesting and cancelling are the requesting hospital's",
		ZH: "专家中心只能将会诊状态设为 received、accepted、rejected、in-progress、on-hold、completed 或 failed；起草、申请和取消由发起医院执行"}
)

// addresseeWrites decides an update of a consultation Task by the expert
// centre it is addressed to: it reports on the request (status, output,
// notes) and changes nothing the hospital wrote; the version stays the
// hospital's, still addressed to the centre.
func (pol *Policy) addresseeWrites(p *fhir.Principal, cur, next *store.Version) error {
	if next.Deleted {
		return forbidden(msgAddresseeDeletes)
	}
	gs := grants(p, next.Type, string(fhir.Update))
	if len(gs) == 0 {
		return noScope(fhir.Update, next.Type)
	}
	if !pol.matches(p, cur, gs) || !pol.matches(p, next, gs) {
		return fhir.Forbidden("The resource is outside what the token's scopes allow", "该资源超出令牌授权范围")
	}
	changed, status, err := addresseeChanges(cur.Resource, next.Resource)
	if err != nil {
		return err
	}
	if len(changed) > 0 {
		list := strings.Join(changed, ", ")
		return &fhir.Error{Status: 403, Issues: []fhir.Issue{{Severity: "error", Code: fhir.IssueForbidden,
			Message: fhir.Message{EN: "The expert centre a consultation is addressed to may change only its status, statusReason, businessStatus, output, note and lastModified; it changed " + list,
				ZH: "会诊受理的专家中心只能修改 status、statusReason、businessStatus、output、note 和 lastModified；本次修改了 " + list},
			Expression: taskPaths(changed)}}}
	}
	if status.changed && !slices.Contains(performerStatuses, status.next) {
		return &fhir.Error{Status: 403, Issues: []fhir.Issue{{Severity: "error", Code: fhir.IssueForbidden,
			Message: msgAddresseeStatus, Expression: []string{"Task.status"}}}}
	}
	next.Tenant, next.Reach, next.Addressee = cur.Tenant, cur.Reach, cur.Addressee
	return nil
}

// statusChange is the Task.status before and after a write.
type statusChange struct {
	next    string
	changed bool
}

// addresseeChanges lists the top-level elements of a Task that differ
// between two bodies, beyond those the addressee may change, and the
// status change.
func addresseeChanges(cur, next []byte) ([]string, statusChange, error) {
	var a, b map[string]any
	if err := json.Unmarshal(cur, &a); err != nil {
		return nil, statusChange{}, err
	}
	if err := json.Unmarshal(next, &b); err != nil {
		return nil, statusChange{}, err
	}
	sa, _ := a["status"].(string)
	sb, _ := b["status"].(string)
	st := statusChange{next: sb, changed: sa != sb}
	for _, m := range []map[string]any{a, b} {
		for _, k := range addresseeElements {
			delete(m, k)
		}
		if meta, ok := m["meta"].(map[string]any); ok {
			delete(meta, "versionId")
			delete(meta, "lastUpdated")
			if len(meta) == 0 {
				delete(m, "meta")
			}
		}
	}
	var changed []string
	for k, v := range a {
		if !reflect.DeepEqual(v, b[k]) {
			changed = append(changed, k)
		}
	}
	for k := range b {
		if _, ok := a[k]; !ok {
			changed = append(changed, k)
		}
	}
	sort.Strings(changed)
	return changed, st, nil
}

// taskPaths are the FHIRPath locations of Task elements.
func taskPaths(names []string) []string {
	out := make([]string, len(names))
	for i, n := range names {
		out[i] = "Task." + n
	}
	return out
}

var msgRequesterStatus = fhir.Message{EN: "A consultation addressed to an expert centre is received, accepted, rejected, worked on and completed by that centre, not by the requesting hospital",
	ZH: "发给专家中心的会诊申请由该中心接收、受理、拒绝、处理和完成，发起医院不能代为设置这些状态"}

// requesterWrites decides the status a requesting hospital gives a
// consultation addressed to another tenant: the performer's statuses are
// the centre's to set (the hospital may keep the one the centre set).
func requesterWrites(cur, next *store.Version) error {
	if next.Deleted || next.Addressee == "" {
		return nil
	}
	was := ""
	if cur != nil && !cur.Deleted {
		was = taskStatus(cur.Resource)
	}
	now := taskStatus(next.Resource)
	if now != was && slices.Contains(performerStatuses, now) {
		return &fhir.Error{Status: 403, Issues: []fhir.Issue{{Severity: "error", Code: fhir.IssueForbidden,
			Message: msgRequesterStatus, Expression: []string{"Task.status"}}}}
	}
	return nil
}

// taskStatus is a Task body's status ("" when it has none).
func taskStatus(body []byte) string {
	var t struct{ Status string }
	_ = json.Unmarshal(body, &t)
	return t.Status
}
