package ops

import (
	"context"
	"encoding/json"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/fmtbank/cmts/fhir"
	"github.com/fmtbank/cmts/store"
)

// Names of the guide (wmt-ig.md, "Operations") the adverse-event report
// relies on.
const (
	// AEMeasure is the canonical of the Measure every $ae-report cites.
	AEMeasure          = "http://fmtbank.org/fhir/Measure/ae-report"
	csBase             = "http://fmtbank.org/fhir/CodeSystem/"
	measurePopulation  = "http://terminology.hl7.org/CodeSystem/measure-population"
	dataAbsentReason   = "http://hl7.org/fhir/StructureDefinition/data-absent-reason"
	aeSeveritySystem   = "http://terminology.hl7.org/CodeSystem/adverse-event-severity"
	aeSeriousSystem    = "http://terminology.hl7.org/CodeSystem/adverse-event-seriousness"
	wmtProcedure       = "cmts-wmt-procedure"
	courseURL          = profileBase + "course"
	routeURL           = profileBase + "route"
	ctcaeURL           = profileBase + "ctcae-grade"
	maskBelow          = 5
	reportPageCount    = 2000
	icd10System        = "http://hl7.org/fhir/sid/icd-10"
	otherIndicationSys = csBase + "other-indication"
)

// Unit groups and their stratifiers, in the order the report lists them.
var (
	unitGroups       = [3]string{"patients", "courses", "procedures"}
	unitStratifiers  = []string{"relatedness", "severity", "route", "indication"}
	eventStratifiers = []string{"relatedness", "severity", "ctcae-grade", "seriousness", "ae-term"}
	// stratumSystem is the code system of each stratifier's values
	// (indication: the Condition's own coding system).
	stratumSystem = map[string]string{"relatedness": csBase + "relatedness", "severity": aeSeveritySystem,
		"route": csBase + "route", "seriousness": aeSeriousSystem, "ae-term": csBase + "ae-term"}
	// rank orders the strata of ordinal stratifiers as their code systems
	// do; others are in code order.
	rank = map[string]int{"definitely": 1, "probably": 2, "possibly": 3, "unlikely": 4, "unrelated": 5,
		"mild": 1, "moderate": 2, "severe": 3}
)

// AEQuery is what an $ae-report asks: the procedures performed in
// [From, To) (zero: open), optionally of one indication, route and
// transplant type (each "code" or "system|code"), and Interval ("month",
// "quarter", "year" or "" for a single report).
type AEQuery struct {
	From, To                      time.Time
	Indication, Route, Transplant string
	Interval                      string
}

// ParseAEQuery reads the parameters of wmt-ig.md's $ae-report. start and
// end are FHIR dates or dateTimes; end includes its whole precision
// (end=2023 runs to the end of 2023). A date without a time is a UTC day.
func ParseAEQuery(params url.Values) (AEQuery, error) {
	var q AEQuery
	if s := params.Get("start"); s != "" {
		lo, _, err := dateBounds(s)
		if err != nil {
			return q, fhir.Invalid(fhir.IssueValue, "start must be a date: "+s, "start 必须是日期："+s)
		}
		q.From = lo
	}
	if s := params.Get("end"); s != "" {
		_, hi, err := dateBounds(s)
		if err != nil {
			return q, fhir.Invalid(fhir.IssueValue, "end must be a date: "+s, "end 必须是日期："+s)
		}
		q.To = hi
	}
	if !q.From.IsZero() && !q.To.IsZero() && !q.From.Before(q.To) {
		return q, fhir.Invalid(fhir.IssueValue, "end must not precede start", "end 不能早于 start")
	}
	q.Indication, q.Route, q.Transplant = params.Get("indication"), params.Get("route"), params.Get("transplant-type")
	switch q.Interval = params.Get("interval"); q.Interval {
	case "", "month", "quarter", "year":
	default:
		return q, fhir.Invalid(fhir.IssueValue, "interval must be month, quarter or year: "+q.Interval,
			"interval 必须是 month、quarter 或 year："+q.Interval)
	}
	return q, nil
}

// dateBounds is the instant a FHIR date or dateTime starts at and the one
// just after its precision ends.
func dateBounds(s string) (lo, hi time.Time, err error) {
	for _, f := range []struct {
		layout string
		next   func(time.Time) time.Time
	}{
		{time.RFC3339Nano, func(t time.Time) time.Time { return t.Add(time.Nanosecond) }},
		{"2006-01-02T15:04:05", func(t time.Time) time.Time { return t.Add(time.Second) }},
		{"2006-01-02", func(t time.Time) time.Time { return t.AddDate(0, 0, 1) }},
		{"2006-01", func(t time.Time) time.Time { return t.AddDate(0, 1, 0) }},
		{"2006", func(t time.Time) time.Time { return t.AddDate(1, 0, 0) }},
	} {
		if lo, err = time.Parse(f.layout, s); err == nil {
			return lo, f.next(lo), nil
		}
	}
	return lo, hi, err
}

// aeProc is a WMT procedure as the report reads it.
type aeProc struct {
	// course is the unit key of the (recipient, course) pair.
	id, patient, course string
	route, indication   string
	at                  time.Time
	// unit numbers the patient and the course among the report's, so that
	// counting sets numbers, not strings (with the procedure's own index).
	unit [2]int
}

// aeSuspect is one suspect procedure of an event and the relatedness
// assessed for it.
type aeSuspect struct {
	proc, relatedness string
}

// aeEvent is an adverse event as the report reads it.
type aeEvent struct {
	suspects                           []aeSuspect
	severity, grade, seriousness, term string
}

// aeData is what one report is computed from, read once per request.
type aeData struct {
	procs  []aeProc
	byID   map[string]int
	events []aeEvent
	// indicationSystem is the coding system of each indication code seen.
	indicationSystem map[string]string
}

// AEReport computes $ae-report for p: over p's own tenant, or every tenant
// for a caller who reads them all (the regulator), whose counts from 1 to 4
// are then masked. It answers a MeasureReport, or with q.Interval a Bundle
// of one per interval; csv answers the same figures as CSV instead.
func (o *Ops) AEReport(ctx context.Context, p *fhir.Principal, q AEQuery, csv bool) ([]byte, error) {
	a := o.policy.Access(p)
	d, err := o.aeRead(ctx, p, a, q)
	if err != nil {
		return nil, err
	}
	periods := q.periods(d)
	reports := make([]*aeCounts, len(periods))
	for i, pr := range periods {
		reports[i] = d.count(pr[0], pr[1])
	}
	mask := a.Everyone
	if csv {
		return aeCSV(periods, reports, mask, d), nil
	}
	now := o.now().UTC().Format(time.RFC3339)
	if q.Interval == "" {
		return json.Marshal(reports[0].measureReport(periods[0], mask, d, now))
	}
	type entry struct {
		Resource any `json:"resource"`
	}
	b := struct {
		ResourceType string  `json:"resourceType"`
		Type         string  `json:"type"`
		Entry        []entry `json:"entry"`
	}{ResourceType: "Bundle", Type: "collection", Entry: []entry{}}
	for i, r := range reports {
		b.Entry = append(b.Entry, entry{Resource: r.measureReport(periods[i], mask, d, now)})
	}
	return json.Marshal(b)
}

// periods are the report periods: [From, To), cut into calendar intervals
// (UTC) with an Interval, the first and last clipped. An open end is the
// day of the first (last) procedure read.
func (q AEQuery) periods(d *aeData) [][2]time.Time {
	lo, hi := q.From, q.To
	if lo.IsZero() || hi.IsZero() {
		var first, last time.Time
		for _, pr := range d.procs {
			if first.IsZero() || pr.at.Before(first) {
				first = pr.at
			}
			if last.IsZero() || pr.at.After(last) {
				last = pr.at
			}
		}
		if first.IsZero() {
			first, last = time.Now().UTC(), time.Now().UTC()
		}
		if lo.IsZero() {
			lo = day(first)
		}
		if hi.IsZero() {
			hi = day(last).AddDate(0, 0, 1)
		}
		if !lo.Before(hi) {
			hi = day(lo).AddDate(0, 0, 1)
		}
	}
	if q.Interval == "" {
		return [][2]time.Time{{lo, hi}}
	}
	var out [][2]time.Time
	u := lo.UTC()
	cur := time.Date(u.Year(), u.Month(), 1, 0, 0, 0, 0, time.UTC)
	step := func(t time.Time) time.Time { return t.AddDate(0, 1, 0) }
	switch q.Interval {
	case "quarter":
		cur = time.Date(u.Year(), (u.Month()-1)/3*3+1, 1, 0, 0, 0, 0, time.UTC)
		step = func(t time.Time) time.Time { return t.AddDate(0, 3, 0) }
	case "year":
		cur = time.Date(u.Year(), 1, 1, 0, 0, 0, 0, time.UTC)
		step = func(t time.Time) time.Time { return t.AddDate(1, 0, 0) }
	}
	for cur.Before(hi) {
		next := step(cur)
		out = append(out, [2]time.Time{later(cur, lo), earlier(next, hi)})
		cur = next
	}
	return out
}

func day(t time.Time) time.Time {
	t = t.UTC()
	return time.Date(t.Year(), t.Month(), t.Day(), 0, 0, 0, 0, time.UTC)
}

func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

func earlier(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}

// matches reports whether coding (system, code) is what a parameter value
// ("code" or "system|code") asks for; an empty value asks for anything.
func matches(param, system, code string) bool {
	if param == "" {
		return true
	}
	if s, c, ok := strings.Cut(param, "|"); ok {
		return (s == "" || s == system) && c == code
	}
	return param == code
}

type coding struct {
	System string `json:"system,omitempty"`
	Code   string `json:"code"`
}

type concept struct {
	Coding []coding `json:"coding"`
}

// code is the first code of c in system (any system when "").
func (c concept) code(system string) string {
	for _, cd := range c.Coding {
		if system == "" || cd.System == system {
			return cd.Code
		}
	}
	return ""
}

type reference struct {
	Reference string `json:"reference"`
}

// id is the id of a "Type/id" reference to typ ("" otherwise).
func (r reference) id(typ string) string {
	t, id, ok := strings.Cut(r.Reference, "/")
	if !ok || t != typ {
		return ""
	}
	return id
}

// aeRead reads the WMT procedures in the period that match q's filters,
// the Conditions they give as reasons, and every adverse event suspecting
// one of them, under a, in pages.
func (o *Ops) aeRead(ctx context.Context, p *fhir.Principal, a store.Access, q AEQuery) (*aeData, error) {
	d := &aeData{byID: map[string]int{}, indicationSystem: map[string]string{}}
	var reasons []string // by procedure index: the Condition id
	err := scanDecoded(ctx, o, p, a, "Procedure", decodeProcedure, func(v *store.Version, pr procFields) error {
		tt := (concept{Coding: pr.code}).code(csBase + "transplant-type")
		// A WMT procedure claims the profile or has a transplant type; one
		// not done or entered in error is no procedure performed.
		if (!pr.wmtProfile && tt == "") || pr.status == "not-done" || pr.status == "entered-in-error" {
			return nil
		}
		if !matches(q.Transplant, csBase+"transplant-type", tt) || !matches(q.Route, csBase+"route", pr.route) {
			return nil
		}
		at, _, err := dateBounds(pr.performed)
		if err != nil || (!q.From.IsZero() && at.Before(q.From)) || (!q.To.IsZero() && !at.Before(q.To)) {
			return nil
		}
		if pr.subject == "" {
			return nil
		}
		rec := aeProc{id: v.ID, patient: pr.subject, at: at, course: pr.subject + "#" + pr.course, route: pr.route}
		d.byID[v.ID] = len(d.procs)
		reasons = append(reasons, pr.reason)
		d.procs = append(d.procs, rec)
		return nil
	})
	if err != nil {
		return nil, err
	}
	codes, err := o.indications(ctx, p, a, reasons)
	if err != nil {
		return nil, err
	}
	for i, id := range reasons {
		cd := codes[id]
		d.procs[i].indication = cd.Code
		if cd.Code != "" {
			d.indicationSystem[cd.Code] = cd.System
		}
	}
	if q.Indication != "" {
		// Filtering drops procedures: index them again.
		kept := d.procs[:0]
		clear(d.byID)
		for _, pr := range d.procs {
			if matches(q.Indication, d.indicationSystem[pr.indication], pr.indication) {
				d.byID[pr.id] = len(kept)
				kept = append(kept, pr)
			}
		}
		d.procs = kept
	}
	d.number()
	err = scanDecoded(ctx, o, p, a, "AdverseEvent", decodeEvent, func(v *store.Version, e eventFields) error {
		if e.actuality != "actual" {
			return nil
		}
		ev := aeEvent{severity: (concept{Coding: e.severity}).code(""), seriousness: (concept{Coding: e.seriousness}).code(""),
			term: (concept{Coding: e.term}).code(csBase + "ae-term"), grade: e.grade}
		for _, s := range e.suspects {
			if _, ok := d.byID[s.proc]; ok {
				ev.suspects = append(ev.suspects, s)
			}
		}
		if len(ev.suspects) > 0 {
			d.events = append(d.events, ev)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return d, nil
}

// number numbers the patients and the courses of the procedures.
func (d *aeData) number() {
	seen := [2]map[string]int{make(map[string]int, len(d.procs)), make(map[string]int, len(d.procs))}
	for i := range d.procs {
		pr := &d.procs[i]
		for g, k := range [2]string{pr.patient, pr.course} {
			n, ok := seen[g][k]
			if !ok {
				n = len(seen[g])
				seen[g][k] = n
			}
			pr.unit[g] = n
		}
	}
}

// indications reads the Conditions of ids, each once, and answers each
// one's indication coding: its ICD-10 or other-indication coding, else its
// first.
func (o *Ops) indications(ctx context.Context, p *fhir.Principal, a store.Access, ids []string) (map[string]coding, error) {
	codes := make(map[string]coding, len(ids))
	wanted := make(map[string]bool, len(ids))
	for _, id := range ids {
		if id != "" {
			wanted[id] = true
		}
	}
	err := scanDecoded(ctx, o, p, a, "Condition", decodeCondition, func(v *store.Version, cs []coding) error {
		if !wanted[v.ID] {
			return nil
		}
		cd := coding{}
		for _, x := range cs {
			if x.System == icd10System || x.System == otherIndicationSys {
				cd = x
				break
			}
		}
		if cd.Code == "" && len(cs) > 0 {
			cd = cs[0]
		}
		codes[v.ID] = cd
		return nil
	})
	return codes, err
}

// scanFilter is scan of the resources matching filter (nil: all).
func (o *Ops) scanFilter(ctx context.Context, p *fhir.Principal, a store.Access, typ string, filter store.Expr, each func(*store.Version) error) error {
	narrow, err := o.policy.Narrow(p, typ)
	if err != nil {
		return err
	}
	switch {
	case narrow != nil && filter != nil:
		filter = store.And{filter, narrow}
	case narrow != nil:
		filter = narrow
	}
	q := store.Query{Access: a, Type: typ, Filter: filter, Count: reportPageCount}
	return o.pages(ctx, q, func(page []*store.Version, _ *store.SearchCursor) error {
		for _, v := range page {
			if v.Deleted || !o.policy.Readable(p, v) {
				continue
			}
			if err := each(v); err != nil {
				return err
			}
		}
		return nil
	})
}

// pages calls each with every page of q in turn and the cursor it was read
// after (nil for the first); the next page is read while one is processed.
func (o *Ops) pages(ctx context.Context, q store.Query, each func(page []*store.Version, after *store.SearchCursor) error) error {
	type result struct {
		page  *store.SearchPage
		after *store.SearchCursor
		err   error
	}
	pages := make(chan result, 1)
	done := make(chan struct{})
	defer close(done)
	go func() {
		defer close(pages)
		for {
			page, err := o.store.Search(ctx, q)
			select {
			case pages <- result{page, q.After, err}:
			case <-done:
				return
			}
			if err != nil || !page.More || len(page.Versions) == 0 {
				return
			}
			last := page.Versions[len(page.Versions)-1]
			q.After = &store.SearchCursor{Type: last.Type, ID: last.ID}
		}
	}()
	for r := range pages {
		if r.err != nil {
			return r.err
		}
		if err := each(r.page.Versions, r.after); err != nil {
			return err
		}
	}
	return nil
}

// bits is a set of unit numbers.
type bits struct {
	w []uint64
	n int
}

func (b *bits) add(i int) {
	if w := i / 64; w >= len(b.w) {
		b.w = append(b.w, make([]uint64, w+1-len(b.w))...)
	}
	if m := uint64(1) << (i % 64); b.w[i/64]&m == 0 {
		b.w[i/64] |= m
		b.n++
	}
}

// size is the number in the set (nil: none).
func (b *bits) size() int {
	if b == nil {
		return 0
	}
	return b.n
}

// unitBits are one unit group's units, overall and per stratum.
type unitBits struct {
	den, num   bits
	sden, snum map[string]map[string]*bits // stratifier -> value -> units
}

func addUnit(m map[string]map[string]*bits, by, value string, unit int) {
	if value == "" {
		return
	}
	vs := m[by]
	if vs == nil {
		vs = map[string]*bits{}
		m[by] = vs
	}
	b := vs[value]
	if b == nil {
		b = &bits{}
		vs[value] = b
	}
	b.add(unit)
}

// aeCounts are one report's figures.
type aeCounts struct {
	units  [3]*unitBits
	events int
	strata map[string]map[string]int
}

// count computes the report over the procedures performed in [lo, hi), by
// wmt-ig.md's definitions: a unit (patient, course, procedure) is in the
// denominator with one procedure in the period, in the numerator with one
// of those a suspect of an event; the relatedness stratum counts a unit
// by the relatedness assessed for that suspect, severity by the event's;
// route and indication strata count only procedures of that route or
// indication. An event counts when one of its suspects is in the period;
// its relatedness is the closest assessed for those suspects.
func (d *aeData) count(lo, hi time.Time) *aeCounts {
	c := &aeCounts{strata: map[string]map[string]int{}}
	for i := range c.units {
		c.units[i] = &unitBits{sden: map[string]map[string]*bits{}, snum: map[string]map[string]*bits{}}
	}
	in := func(pr *aeProc) bool { return !pr.at.Before(lo) && pr.at.Before(hi) }
	keys := func(i int) [3]int {
		pr := &d.procs[i]
		return [3]int{pr.unit[0], pr.unit[1], i}
	}
	for i := range d.procs {
		pr := &d.procs[i]
		if !in(pr) {
			continue
		}
		for g, k := range keys(i) {
			u := c.units[g]
			u.den.add(k)
			addUnit(u.sden, "route", pr.route, k)
			addUnit(u.sden, "indication", pr.indication, k)
		}
	}
	for _, s := range eventStratifiers {
		c.strata[s] = map[string]int{}
	}
	for _, e := range d.events {
		closest := ""
		for _, s := range e.suspects {
			pi := d.byID[s.proc]
			pr := &d.procs[pi]
			if !in(pr) {
				continue
			}
			if closest == "" || (rank[s.relatedness] != 0 && (rank[closest] == 0 || rank[s.relatedness] < rank[closest])) {
				closest = s.relatedness
			}
			if closest == "" {
				closest = "\x00" // counted, relatedness not assessed
			}
			for g, k := range keys(pi) {
				u := c.units[g]
				u.num.add(k)
				addUnit(u.snum, "relatedness", s.relatedness, k)
				addUnit(u.snum, "severity", e.severity, k)
				addUnit(u.snum, "route", pr.route, k)
				addUnit(u.snum, "indication", pr.indication, k)
			}
		}
		if closest == "" {
			continue
		}
		c.events++
		for by, v := range map[string]string{"relatedness": strings.TrimPrefix(closest, "\x00"), "severity": e.severity,
			"ctcae-grade": e.grade, "seriousness": e.seriousness, "ae-term": e.term} {
			if v != "" {
				c.strata[by][v]++
			}
		}
	}
	return c
}

// stratumValues are the values of a stratifier in report order.
func stratumValues[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for v := range m {
		out = append(out, v)
	}
	sort.Slice(out, func(i, j int) bool {
		ri, rj := rank[out[i]], rank[out[j]]
		if ri != rj && ri != 0 && rj != 0 {
			return ri < rj
		}
		if ni, err := strconv.Atoi(out[i]); err == nil {
			if nj, err := strconv.Atoi(out[j]); err == nil {
				return ni < nj
			}
		}
		return out[i] < out[j]
	})
	return out
}

// figure is one count as shown: masked when 0 < n < 5 for a caller who
// reads every tenant.
type figure struct {
	n      int
	masked bool
}

func show(n int, mask bool) figure { return figure{n: n, masked: mask && n > 0 && n < maskBelow} }

// JSON of the MeasureReport.
type (
	mrConcept struct {
		Coding []coding `json:"coding,omitempty"`
		Text   string   `json:"text,omitempty"`
	}
	mrExtension struct {
		URL       string `json:"url"`
		ValueCode string `json:"valueCode"`
	}
	mrElement struct {
		Extension []mrExtension `json:"extension"`
	}
	mrPopulation struct {
		Code   mrConcept  `json:"code"`
		Count  *int       `json:"count,omitempty"`
		XCount *mrElement `json:"_count,omitempty"`
	}
	mrStratum struct {
		Value      mrConcept      `json:"value"`
		Population []mrPopulation `json:"population"`
	}
	mrStratifier struct {
		Code    []mrConcept `json:"code"`
		Stratum []mrStratum `json:"stratum,omitempty"`
	}
	mrGroup struct {
		Code       mrConcept      `json:"code"`
		Population []mrPopulation `json:"population"`
		Stratifier []mrStratifier `json:"stratifier"`
	}
	mrPeriod struct {
		Start string `json:"start"`
		End   string `json:"end"`
	}
	measureReport struct {
		ResourceType string    `json:"resourceType"`
		Status       string    `json:"status"`
		Type         string    `json:"type"`
		Measure      string    `json:"measure"`
		Date         string    `json:"date"`
		Period       mrPeriod  `json:"period"`
		Group        []mrGroup `json:"group"`
	}
)

// word is a plain-word code (groups, stratifiers).
func word(w string) mrConcept { return mrConcept{Coding: []coding{{Code: w}}, Text: w} }

func population(code string, f figure) mrPopulation {
	p := mrPopulation{Code: mrConcept{Coding: []coding{{System: measurePopulation, Code: code}}}}
	if f.masked {
		p.XCount = &mrElement{Extension: []mrExtension{{URL: dataAbsentReason, ValueCode: "masked"}}}
	} else {
		n := f.n
		p.Count = &n
	}
	return p
}

// stratumValue is a stratum's value: the code in its code system.
func (d *aeData) stratumValue(by, value string) mrConcept {
	system := stratumSystem[by]
	if by == "indication" {
		system = d.indicationSystem[value]
	}
	return mrConcept{Coding: []coding{{System: system, Code: value}}, Text: value}
}

// period shows [lo, hi) as a FHIR Period: dates when both are UTC
// midnights (end the last day included), instants otherwise.
func period(pr [2]time.Time) mrPeriod {
	lo, hi := pr[0].UTC(), pr[1].UTC()
	if lo.Equal(day(lo)) && hi.Equal(day(hi)) {
		return mrPeriod{Start: lo.Format(time.DateOnly), End: hi.AddDate(0, 0, -1).Format(time.DateOnly)}
	}
	return mrPeriod{Start: lo.Format(time.RFC3339Nano), End: hi.Add(-time.Nanosecond).Format(time.RFC3339Nano)}
}

// measureReport is c as a summary MeasureReport.
func (c *aeCounts) measureReport(pr [2]time.Time, mask bool, d *aeData, now string) measureReport {
	mr := measureReport{ResourceType: "MeasureReport", Status: "complete", Type: "summary", Measure: AEMeasure,
		Date: now, Period: period(pr)}
	for g, name := range unitGroups {
		u := c.units[g]
		grp := mrGroup{Code: word(name), Population: []mrPopulation{
			population("denominator", show(u.den.size(), mask)), population("numerator", show(u.num.size(), mask))}}
		for _, by := range unitStratifiers {
			st := mrStratifier{Code: []mrConcept{word(by)}}
			values := map[string]bool{}
			for v := range u.sden[by] {
				values[v] = true
			}
			for v := range u.snum[by] {
				values[v] = true
			}
			for _, v := range stratumValues(values) {
				den := u.sden[by][v].size()
				if by == "relatedness" || by == "severity" {
					den = u.den.size()
				}
				st.Stratum = append(st.Stratum, mrStratum{Value: d.stratumValue(by, v), Population: []mrPopulation{
					population("denominator", show(den, mask)), population("numerator", show(u.snum[by][v].size(), mask))}})
			}
			grp.Stratifier = append(grp.Stratifier, st)
		}
		mr.Group = append(mr.Group, grp)
	}
	// The events group is a count: one numerator population.
	grp := mrGroup{Code: word("events"), Population: []mrPopulation{population("numerator", show(c.events, mask))}}
	for _, by := range eventStratifiers {
		st := mrStratifier{Code: []mrConcept{word(by)}}
		for _, v := range stratumValues(c.strata[by]) {
			st.Stratum = append(st.Stratum, mrStratum{Value: d.stratumValue(by, v),
				Population: []mrPopulation{population("numerator", show(c.strata[by][v], mask))}})
		}
		grp.Stratifier = append(grp.Stratifier, st)
	}
	mr.Group = append(mr.Group, grp)
	return mr
}

// aeCSV is the reports as CSV: one row per figure pair, with the period,
// group, stratifier and stratum ("" for the group's own figures); the
// events group has no denominator (""); a masked count is "masked".
func aeCSV(periods [][2]time.Time, reports []*aeCounts, mask bool, d *aeData) []byte {
	var b strings.Builder
	b.WriteString("period_start,period_end,group,stratifier,stratum,denominator,numerator\r\n")
	for i, c := range reports {
		pr := period(periods[i])
		row := func(group, by, stratum, den, num string) {
			b.WriteString(strings.Join([]string{pr.Start, pr.End, group, by, csvField(stratum), den, num}, ","))
			b.WriteString("\r\n")
		}
		mr := c.measureReport(periods[i], mask, d, "")
		for _, g := range mr.Group {
			figs := func(ps []mrPopulation) (den, num string) {
				for _, p := range ps {
					v := "masked"
					if p.Count != nil {
						v = strconv.Itoa(*p.Count)
					}
					if p.Code.Coding[0].Code == "denominator" {
						den = v
					} else {
						num = v
					}
				}
				return den, num
			}
			den, num := figs(g.Population)
			row(g.Code.Text, "", "", den, num)
			for _, st := range g.Stratifier {
				for _, s := range st.Stratum {
					den, num := figs(s.Population)
					row(g.Code.Text, st.Code[0].Text, s.Value.Text, den, num)
				}
			}
		}
	}
	return []byte(b.String())
}

// csvField quotes a field that needs it (RFC 4180).
func csvField(s string) string {
	if strings.ContainsAny(s, ",\"\r\n") {
		return `"` + strings.ReplaceAll(s, `"`, `""`) + `"`
	}
	return s
}
