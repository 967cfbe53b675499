// Package ops runs the WMT safety operations of wmt-ig.md ("Operations") on
// stored data: look-back and recall ($trace, $recall), the adverse-event
// and efficacy reports ($ae-report, $efficacy-report), the follow-up list
// ($follow-up-due) and free-WMT eligibility ($aid-eligibility). It reads
// the store through the search index and, for the reports, through views
// of decoded resources kept up to date from the store's history (facts.go);
// it decides nothing about access itself: every resource it answers goes
// through the access policy (fhir.Policy), and the REST layer reaches it
// through fhir.Operations.
package ops

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/fmtbank/cmts/fhir"
	"github.com/fmtbank/cmts/fhir/bundle"
	"github.com/fmtbank/cmts/store"
)

// Ops runs the operations; it implements fhir.Operations.
type Ops struct {
	store  store.Store
	policy fhir.Policy
	writer *bundle.Writer
	now    func() time.Time
	// views are the reports' decoded resources (facts.go).
	views views
}

var _ fhir.Operations = (*Ops)(nil)

// Options configure the operations. Store and Policy are required; without
// Writer the operations that write ($recall) are not offered.
type Options struct {
	Store store.Store
	// Policy shows every resource answered (fhir.Policy.TraceView).
	Policy fhir.Policy
	// Writer stores what an operation changes, as a transaction with the
	// server's validation, access policy and audit.
	Writer *bundle.Writer
	// Now is the clock (default time.Now).
	Now func() time.Time
}

// New returns the operations.
func New(opts Options) *Ops {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	return &Ops{store: opts.Store, policy: opts.Policy, writer: opts.Writer, now: opts.Now}
}

// Offers implements fhir.Operations.
func (o *Ops) Offers(typ, name string, instance bool) bool {
	switch name {
	case "$trace":
		return instance && (typ == "Specimen" || typ == "Patient")
	case "$recall":
		return o.writer != nil && instance && (typ == "Specimen" || typ == "Patient")
	case "$ae-report":
		return !instance && typ == "AdverseEvent"
	case "$efficacy-report":
		return !instance && typ == "Observation"
	case "$follow-up-due":
		return !instance && typ == "Patient"
	case "$aid-eligibility":
		return instance && typ == "Patient"
	}
	return false
}

// Operation implements fhir.Operations.
func (o *Ops) Operation(ctx context.Context, p *fhir.Principal, typ, id, name string, params url.Values, body []byte) (int, []byte, string, bool, error) {
	if !o.Offers(typ, name, id != "") {
		return 0, nil, "", false, nil
	}
	csv := wantsCSV(params.Get("_format"))
	if csv && name != "$ae-report" && name != "$efficacy-report" && name != "$follow-up-due" {
		return 0, nil, "", true, fhir.NotAcceptable(params.Get("_format"))
	}
	switch name {
	case "$ae-report":
		q, err := ParseAEQuery(params)
		if err != nil {
			return 0, nil, "", true, err
		}
		out, err := o.AEReport(ctx, p, q, csv)
		if err != nil {
			return 0, nil, "", true, err
		}
		if csv {
			return http.StatusOK, out, "text/csv; charset=utf-8", true, nil
		}
		return http.StatusOK, out, "", true, nil
	case "$efficacy-report":
		q, err := o.ParseEfficacyQuery(params)
		if err != nil {
			return 0, nil, "", true, err
		}
		out, err := o.EfficacyReport(ctx, p, q, csv)
		return answer(out, csv, err)
	case "$follow-up-due":
		on, err := o.onParam(params)
		if err != nil {
			return 0, nil, "", true, err
		}
		out, err := o.FollowUpDue(ctx, p, on, csv)
		return answer(out, csv, err)
	case "$aid-eligibility":
		on, err := o.onParam(params)
		if err != nil {
			return 0, nil, "", true, err
		}
		e, err := o.AidEligibility(ctx, p, id, on)
		if err != nil {
			return 0, nil, "", true, err
		}
		out, err := e.parameters()
		return answer(out, false, err)
	case "$trace":
		t, err := o.Trace(ctx, p, typ, id)
		if err != nil {
			return 0, nil, "", true, err
		}
		out, err := o.Bundle(p, t)
		return http.StatusOK, out, "", true, err
	case "$recall":
		var since time.Time
		if s := params.Get("since"); s != "" {
			var err error
			if since, err = parseDate(s); err != nil {
				return 0, nil, "", true, fhir.Invalid(fhir.IssueValue, "since must be a date: "+s, "since 必须是日期："+s)
			}
		}
		t, err := o.Recall(ctx, p, typ, id, params.Get("reason"), since)
		if err != nil {
			return 0, nil, "", true, err
		}
		out, err := o.Bundle(p, t)
		return http.StatusOK, out, "", true, err
	}
	return 0, nil, "", false, nil
}

// answer is an operation's successful answer (JSON, or CSV when csv), or
// its error.
func answer(out []byte, csv bool, err error) (int, []byte, string, bool, error) {
	switch {
	case err != nil:
		return 0, nil, "", true, err
	case csv:
		return http.StatusOK, out, "text/csv; charset=utf-8", true, nil
	}
	return http.StatusOK, out, "", true, nil
}

// wantsCSV reports whether a _format (the REST layer sets it from an Accept
// of text/csv) asks for CSV.
func wantsCSV(format string) bool {
	f := strings.ToLower(strings.TrimSpace(strings.SplitN(format, ";", 2)[0]))
	return f == "csv" || f == "text/csv"
}

// parseDate reads a FHIR date or dateTime.
func parseDate(s string) (time.Time, error) {
	var err error
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02", "2006-01", "2006"} {
		var t time.Time
		if t, err = time.Parse(layout, s); err == nil {
			return t, nil
		}
	}
	return time.Time{}, err
}
