package ops

import (
	"context"
	"encoding/json"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/fmtbank/cmts/fhir"
)

// EfficacyMeasure is the canonical of the Measure every $efficacy-report
// cites.
const EfficacyMeasure = "http://fmtbank.org/fhir/Measure/efficacy-report"

// Populations of the efficacy report: the denominator is the guide's
// (measure-population); the others are plain words (no system), defined
// by the Measure.
const (
	popDenominator = "denominator"
	popResponse    = "numerator-response"
	popRemission   = "numerator-remission"
	popNotAssessed = "due-not-assessed"
	// remissionMeasure is the efficacy-measure numerator-remission counts.
	remissionMeasure = "clinical-remission"
	// defaultResponse is the efficacy-measure numerator-response counts
	// unless the measure parameter names another.
	defaultResponse = "clinical-response"
)

// booleanMeasures are the efficacy-measure codes valued by valueBoolean
// (the others are scores).
var booleanMeasures = map[string]bool{"clinical-response": true, "clinical-remission": true, "cdi-cure": true}

// efficacyPopulations in report order.
var efficacyPopulations = [4]string{popDenominator, popResponse, popRemission, popNotAssessed}

// EfficacyQuery is what an $efficacy-report asks: the courses whose last
// procedure was performed in [From, To) (zero: open), optionally of one
// indication, route and transplant type (each "code" or "system|code"),
// counted as they stood on day On (a UTC midnight), with Measure the
// boolean efficacy-measure of numerator-response.
type EfficacyQuery struct {
	From, To                      time.Time
	Indication, Route, Transplant string
	Measure                       string
	On                            time.Time
}

// ParseEfficacyQuery reads $efficacy-report's parameters: start and end as
// $ae-report's, on as $follow-up-due's (default today), measure an
// efficacy-measure code (default clinical-response).
func (o *Ops) ParseEfficacyQuery(params url.Values) (EfficacyQuery, error) {
	ae, err := ParseAEQuery(url.Values{"start": params["start"], "end": params["end"]})
	if err != nil {
		return EfficacyQuery{}, err
	}
	q := EfficacyQuery{From: ae.From, To: ae.To, Indication: params.Get("indication"), Route: params.Get("route"),
		Transplant: params.Get("transplant-type"), Measure: defaultResponse}
	if m := params.Get("measure"); m != "" {
		if s, c, ok := strings.Cut(m, "|"); ok {
			if s != "" && s != measureSystem {
				return q, fhir.Invalid(fhir.IssueValue, "measure must be a code of "+measureSystem+": "+m,
					"measure 必须是 "+measureSystem+" 的代码："+m)
			}
			m = c
		}
		if !booleanMeasures[m] {
			return q, fhir.Invalid(fhir.IssueValue, "measure must be a boolean efficacy-measure (clinical-response, clinical-remission, cdi-cure): "+m,
				"measure 必须是布尔型疗效指标（clinical-response、clinical-remission、cdi-cure）："+m)
		}
		q.Measure = m
	}
	if q.On, err = o.onParam(params); err != nil {
		return q, err
	}
	return q, nil
}

// effCounts are the figures of one time point: overall and per indication.
type effCounts struct {
	all    [4]int
	strata map[string]*[4]int
}

// EfficacyReport computes $efficacy-report for p over p's own tenant, or
// every tenant for a caller who reads them all (the regulator), whose
// counts from 1 to 4 are then masked. For each follow-up time point, over
// the courses q selects:
//   - denominator: the courses due at it on q.On: its window's last day is
//     before q.On and the recipient's next course did not begin on or
//     before that day;
//   - numerator-response: those with an assessment at it of q.Measure
//     whose valueBoolean is true;
//   - numerator-remission: those with a clinical-remission assessment at
//     it whose valueBoolean is true;
//   - due-not-assessed: those with no assessment at it at all;
//
// assessments counting when recorded (effectiveDateTime) on or before
// q.On. Each time point is stratified by indication. csv answers the same
// figures as CSV.
func (o *Ops) EfficacyReport(ctx context.Context, p *fhir.Principal, q EfficacyQuery, csv bool) ([]byte, error) {
	a := o.policy.Access(p)
	d, err := o.readCourses(ctx, p, a)
	if err != nil {
		return nil, err
	}
	counts := make([]effCounts, len(followUpPoints))
	for t := range counts {
		counts[t].strata = map[string]*[4]int{}
	}
	var first, last time.Time
	for _, c := range d.courses {
		if (!q.From.IsZero() && c.lastAt.Before(q.From)) || (!q.To.IsZero() && !c.lastAt.Before(q.To)) ||
			!matches(q.Route, csBase+"route", c.route) || !matches(q.Transplant, csBase+"transplant-type", c.transplant) ||
			!matches(q.Indication, d.indicationSystem[c.indication], c.indication) {
			continue
		}
		if first.IsZero() || c.lastAt.Before(first) {
			first = c.lastAt
		}
		if last.IsZero() || c.lastAt.After(last) {
			last = c.lastAt
		}
		for t := range followUpPoints {
			_, end := c.window(t)
			if !end.Before(q.On) || c.superseded(t, q.On) {
				continue
			}
			row := [4]bool{true, c.positive(t, q.Measure, q.On), c.positive(t, remissionMeasure, q.On), !c.assessed(t, q.On)}
			st := counts[t].strata[c.indication]
			if st == nil && c.indication != "" {
				st = &[4]int{}
				counts[t].strata[c.indication] = st
			}
			for i, in := range row {
				if !in {
					continue
				}
				counts[t].all[i]++
				if st != nil {
					st[i]++
				}
			}
		}
	}
	lo, hi := q.From, q.To
	if lo.IsZero() {
		lo = day(first)
		if first.IsZero() {
			lo = q.On
		}
	}
	if hi.IsZero() {
		hi = day(last).AddDate(0, 0, 1)
		if last.IsZero() {
			hi = q.On.AddDate(0, 0, 1)
		}
	}
	if !lo.Before(hi) {
		hi = day(lo).AddDate(0, 0, 1)
	}
	pr := period([2]time.Time{lo, hi})
	mask := a.Everyone
	mr := efficacyReport(counts, pr, mask, d, o.now().UTC().Format(time.RFC3339))
	if !csv {
		return json.Marshal(mr)
	}
	var b strings.Builder
	b.WriteString("period_start,period_end,on,follow_up,stratifier,stratum,denominator,numerator_response,numerator_remission,due_not_assessed\r\n")
	on := q.On.Format(time.DateOnly)
	for _, g := range mr.Group {
		row := func(by, stratum string, ps []mrPopulation) {
			f := []string{pr.Start, pr.End, on, g.Code.Text, by, csvField(stratum)}
			for _, p := range ps {
				v := "masked"
				if p.Count != nil {
					v = strconv.Itoa(*p.Count)
				}
				f = append(f, v)
			}
			b.WriteString(strings.Join(f, ","))
			b.WriteString("\r\n")
		}
		row("", "", g.Population)
		for _, st := range g.Stratifier {
			for _, s := range st.Stratum {
				row(st.Code[0].Text, s.Value.Text, s.Population)
			}
		}
	}
	return []byte(b.String()), nil
}

// efficacyPopulation is one population of the report: the denominator in
// the measure-population system, the others plain words.
func efficacyPopulation(code string, f figure) mrPopulation {
	p := population(code, f)
	if code != popDenominator {
		p.Code = word(code)
	}
	return p
}

func efficacyFigures(n [4]int, mask bool) []mrPopulation {
	out := make([]mrPopulation, len(efficacyPopulations))
	for i, code := range efficacyPopulations {
		out[i] = efficacyPopulation(code, show(n[i], mask))
	}
	return out
}

// efficacyReport is the figures as a summary MeasureReport: a group per
// time point (its follow-up code), stratified by indication.
func efficacyReport(counts []effCounts, pr mrPeriod, mask bool, d *followUpData, now string) measureReport {
	mr := measureReport{ResourceType: "MeasureReport", Status: "complete", Type: "summary", Measure: EfficacyMeasure,
		Date: now, Period: pr}
	for t, fp := range followUpPoints {
		c := counts[t]
		grp := mrGroup{Code: mrConcept{Coding: []coding{{System: followUpSystem, Code: fp.code}}, Text: fp.code},
			Population: efficacyFigures(c.all, mask)}
		st := mrStratifier{Code: []mrConcept{word("indication")}}
		for _, v := range stratumValues(c.strata) {
			st.Stratum = append(st.Stratum, mrStratum{Value: mrConcept{Coding: []coding{{System: d.indicationSystem[v], Code: v}}, Text: v},
				Population: efficacyFigures(*c.strata[v], mask)})
		}
		grp.Stratifier = []mrStratifier{st}
		mr.Group = append(mr.Group, grp)
	}
	return mr
}
