package synth

import (
	"time"
)

// The truth of the follow-up operations ($efficacy-report, $follow-up-due,
// $aid-eligibility) on Now, by the definitions of docs/safety.md, counted
// from the generator's model: each course is followed from the date
// (Beijing, as its performedDateTime is written) of its last procedure; a
// time point's window is target ± window days; it is due on the day On
// when its last day is before On and the recipient's next course did not
// begin on or before that last day.

// EfficacyFigures are one row of $efficacy-report: a follow-up time point,
// overall (Indication "") or for one indication, its denominator (courses
// due), the courses with clinical-response true (Response) and
// clinical-remission true (Remission) at it, and those due with no
// assessment at it.
type EfficacyFigures struct {
	FollowUp       string `json:"followUp"`
	Indication     string `json:"indication,omitempty"`
	Denominator    int    `json:"denominator"`
	Response       int    `json:"response"`
	Remission      int    `json:"remission"`
	DueNotAssessed int    `json:"dueNotAssessed"`
}

// FollowUpDueTruth is what $follow-up-due lists on Now: the recipients
// with a visit missed, and the visits whose window is open on that day
// and those overdue.
type FollowUpDueTruth struct {
	Recipients int `json:"recipients"`
	Open       int `json:"open"`
	Overdue    int `json:"overdue"`
}

// calendarDay is t's date in Beijing time as a UTC midnight.
func calendarDay(t time.Time) time.Time {
	b := t.In(beijing)
	return time.Date(b.Year(), b.Month(), b.Day(), 0, 0, 0, 0, time.UTC)
}

// followedCourse is one course of a recipient as the follow-up sees it.
type followedCourse struct {
	last    int       // index of its last procedure in procs
	lastDay time.Time // date of that procedure
	next    time.Time // date of the next course's first procedure (zero: none)
}

func (rc *recipient) courses() []followedCourse {
	var out []followedCourse
	for j, p := range rc.procs {
		if j+1 < len(rc.procs) && rc.procs[j+1].course == p.course {
			continue
		}
		c := followedCourse{last: j, lastDay: calendarDay(p.at)}
		if j+1 < len(rc.procs) {
			c.next = calendarDay(rc.procs[j+1].at)
		}
		out = append(out, c)
	}
	return out
}

// window is the first and last day of time point f of c.
func (c followedCourse) window(f int) (start, end time.Time) {
	fu := followUps[f]
	return c.lastDay.AddDate(0, 0, fu.day-fu.win), c.lastDay.AddDate(0, 0, fu.day+fu.win)
}

func (c followedCourse) superseded(f int, on time.Time) bool {
	_, end := c.window(f)
	return !c.next.IsZero() && !c.next.After(end) && !c.next.After(on)
}

// visit is what a recipient's course recorded at one time point.
type visit struct{ assessed, response, remission bool }

func (rc *recipient) visit(c followedCourse, f int) visit {
	var v visit
	for _, e := range rc.efficacy {
		if e.focus != c.last || e.followUp != f {
			continue
		}
		v.assessed = true
		v.response = v.response || (e.measure == "clinical-response" && e.boolean)
		v.remission = v.remission || (e.measure == "clinical-remission" && e.boolean)
	}
	return v
}

// efficacyReport is $efficacy-report on day on over the recipients keep
// returns true for.
func (g *Registry) efficacyReport(on time.Time, keep func(i int) bool) []EfficacyFigures {
	var out []EfficacyFigures
	for f, fu := range followUps {
		all := EfficacyFigures{FollowUp: fu.code}
		by := map[string]*EfficacyFigures{}
		for i := range g.recipients {
			if !keep(i) {
				continue
			}
			rc := &g.recipients[i]
			ind := indications[rc.indication].code
			for _, c := range rc.courses() {
				if _, end := c.window(f); !end.Before(on) || c.superseded(f, on) {
					continue
				}
				v := rc.visit(c, f)
				if by[ind] == nil {
					by[ind] = &EfficacyFigures{FollowUp: fu.code, Indication: ind}
				}
				for _, x := range []*EfficacyFigures{&all, by[ind]} {
					x.Denominator++
					if v.response {
						x.Response++
					}
					if v.remission {
						x.Remission++
					}
					if !v.assessed {
						x.DueNotAssessed++
					}
				}
			}
		}
		out = append(out, all)
		for _, ind := range indications {
			if x := by[ind.code]; x != nil {
				out = append(out, *x)
			}
		}
	}
	return out
}

// followUpDue is $follow-up-due on day on over the recipients keep
// returns true for.
func (g *Registry) followUpDue(on time.Time, keep func(i int) bool) FollowUpDueTruth {
	var t FollowUpDueTruth
	for i := range g.recipients {
		if !keep(i) {
			continue
		}
		rc := &g.recipients[i]
		listed := false
		for _, c := range rc.courses() {
			for f := range followUps {
				start, end := c.window(f)
				if start.After(on) || c.superseded(f, on) || rc.visit(c, f).assessed {
					continue
				}
				listed = true
				if end.Before(on) {
					t.Overdue++
				} else {
					t.Open++
				}
			}
		}
		if listed {
			t.Recipients++
		}
	}
	return t
}

// ageOn is the age in whole years on day on of someone born on birth (a
// year completes on the birthday; 29 February on 1 March in common years).
func ageOn(birth, on time.Time) int {
	age := on.Year() - birth.Year()
	if on.Month() < birth.Month() || (on.Month() == birth.Month() && on.Day() < birth.Day()) {
		age--
	}
	return age
}

// aidEligible reports whether recipient i may apply for free WMT on day
// on: under 16 or over 60 in whole years, with financial hardship.
func (g *Registry) aidEligible(i int, on time.Time) bool {
	rc := &g.recipients[i]
	age := ageOn(calendarDay(rc.birth), on)
	return rc.hardship && (age < 16 || age > 60)
}
