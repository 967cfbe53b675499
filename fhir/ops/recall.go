package ops

import (
	"context"
	"encoding/json"
	"net/http"
	"strconv"
	"time"

	"github.com/fmtbank/cmts/fhir"
	"github.com/fmtbank/cmts/fhir/bundle"
	"github.com/fmtbank/cmts/store"
)

// Extensions of a product lot's release status (wmt-ig.md).
const (
	releaseStatusURL = profileBase + "release-status"
	statusDateURL    = profileBase + "status-date"
)

var msgRecallOwner = fhir.Message{
	EN: "Only the stool bank that owns the lot or the donor may recall it",
	ZH: "只有拥有该批次或供体的粪菌库可以发起召回",
}

// Recall makes every lot the trace from typ/id reaches, of p's own bank and
// not already recalled or discarded, recalled: a new version each, its
// status-date now and the reason in a note, all in one transaction of the
// Writer (validation, access policy and audit apply; any refusal stores
// nothing). With since set (a donor's recall), only lots made from donations
// collected on or after it are recalled. Only the bank that owns the start
// may call it (403 otherwise). It answers the trace from the start, as it
// stands after the recall.
func (o *Ops) Recall(ctx context.Context, p *fhir.Principal, typ, id, reason string, since time.Time) (*Trace, error) {
	if o.writer == nil {
		return nil, fhir.Invalid(fhir.IssueNotSupported, "$recall is not available on this server", "本服务器不提供 $recall")
	}
	if reason == "" {
		return nil, fhir.Invalid(fhir.IssueRequired, "$recall needs a reason", "$recall 需要 reason 参数")
	}
	t, err := o.Trace(ctx, p, typ, id)
	if err != nil {
		return nil, err
	}
	if t.Start.Tenant != p.Tenant || p.TenantKind != fhir.TenantBank {
		return nil, fhir.Forbidden(msgRecallOwner.EN, msgRecallOwner.ZH)
	}
	excluded := map[string]bool{}
	if !since.IsZero() {
		excluded = o.before(t, since)
	}
	now := o.now().UTC()
	var entries []*bundle.Entry
	for _, lot := range t.Lots {
		if lot.Tenant != p.Tenant || excluded[lot.ID] {
			continue
		}
		switch releaseStatus(lot.Resource) {
		case "recalled", "discarded":
			continue
		}
		body, err := recalled(lot.Resource, reason, now)
		if err != nil {
			return nil, err
		}
		entries = append(entries, &bundle.Entry{Index: len(entries), Method: http.MethodPut, URL: "Specimen/" + lot.ID,
			Type: "Specimen", ID: lot.ID, Resource: body, IfMatch: `W/"` + strconv.FormatInt(lot.VersionID, 10) + `"`})
	}
	if len(entries) > 0 {
		if _, err := o.writer.Write(ctx, p, entries); err != nil {
			return nil, err
		}
	}
	return o.Trace(ctx, p, typ, id)
}

// before lists the lots made only from donations collected before since:
// a lot recalled from a donor's later donations keeps those made earlier.
func (o *Ops) before(t *Trace, since time.Time) map[string]bool {
	byID := map[string]*store.Version{}
	for _, v := range t.Found {
		if v.Type == "Specimen" {
			byID[v.ID] = v
		}
	}
	// recent reports whether a specimen comes from a donation collected on
	// or after since (through any of its parents).
	memo := map[string]bool{}
	var recent func(id string, depth int) bool
	recent = func(id string, depth int) bool {
		if r, ok := memo[id]; ok {
			return r
		}
		v := byID[id]
		if v == nil || depth > 64 {
			return false
		}
		parents, _ := specimenLinks(v.Resource)
		r := false
		if len(parents) == 0 {
			r = !collected(v.Resource).Before(since)
		}
		for _, pid := range parents {
			r = r || recent(pid, depth+1)
		}
		memo[id] = r
		return r
	}
	out := map[string]bool{}
	for _, l := range t.Lots {
		if !recent(l.ID, 0) {
			out[l.ID] = true
		}
	}
	return out
}

// collected is a donation's collection.collectedDateTime (zero: unknown,
// which counts as before any since).
func collected(body []byte) time.Time {
	var b struct {
		Collection struct {
			CollectedDateTime string `json:"collectedDateTime"`
		} `json:"collection"`
	}
	_ = json.Unmarshal(body, &b)
	t, _ := parseDate(b.Collection.CollectedDateTime)
	return t
}

// releaseStatus is a lot's release-status code.
func releaseStatus(body []byte) string {
	var b struct {
		Extension []struct {
			URL       string `json:"url"`
			ValueCode string `json:"valueCode"`
		} `json:"extension"`
	}
	_ = json.Unmarshal(body, &b)
	for _, e := range b.Extension {
		if e.URL == releaseStatusURL {
			return e.ValueCode
		}
	}
	return ""
}

// recalled is the lot's next version: release-status recalled, status-date
// at, the reason as a note.
func recalled(body []byte, reason string, at time.Time) ([]byte, error) {
	var res map[string]any
	if err := json.Unmarshal(body, &res); err != nil {
		return nil, err
	}
	when := at.Format(time.RFC3339)
	exts, _ := res["extension"].([]any)
	var kept []any
	for _, e := range exts {
		if m, ok := e.(map[string]any); ok && (m["url"] == releaseStatusURL || m["url"] == statusDateURL) {
			continue
		}
		kept = append(kept, e)
	}
	kept = append(kept, map[string]any{"url": releaseStatusURL, "valueCode": "recalled"},
		map[string]any{"url": statusDateURL, "valueDateTime": when})
	res["extension"] = kept
	notes, _ := res["note"].([]any)
	res["note"] = append(notes, map[string]any{"time": when, "text": "Recalled: " + reason})
	return json.Marshal(res)
}
