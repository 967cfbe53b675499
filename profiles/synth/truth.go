package synth

import (
	"strconv"
	"time"
)

// Truth is what the registry holds, counted from the generator's own model:
// the figures every report over it must find. Its JSON is what
// `cmts gen --truth` writes (docs/gen.md).
type Truth struct {
	Seed     uint64 `json:"seed"`
	Patients int    `json:"patients"`
	// Now is the business time the registry stands at (2026-07-01T00:00:00+08:00).
	Now string `json:"now"`
	// Versions counts the resource versions written; Resources the
	// resources by type.
	Versions  int            `json:"versions"`
	Resources map[string]int `json:"resources"`
	Donors    DonorTruth     `json:"donors"`
	Lots      LotTruth       `json:"lots"`
	// AEReport is $ae-report over every procedure; ByYear over those
	// performed in each calendar year (Beijing time: every procedure is
	// performed between 08:30 and 15:30 there, so the UTC date is the same);
	// ByHospital over each hospital's own (what that hospital gets).
	AEReport   AEReport            `json:"aeReport"`
	ByYear     map[string]AEReport `json:"aeReportByYear"`
	ByHospital map[string]AEReport `json:"aeReportByHospital"`
	// Efficacy is per indication code, follow-up code and boolean
	// measure.
	Efficacy []EfficacyTruth `json:"efficacy"`
	// AidEligible counts recipients who may apply for free WMT on Now
	// (under 16 or over 60 then, in whole years, and financial hardship);
	// AidEligibleByHospital per hospital.
	AidEligible           int            `json:"aidEligible"`
	AidEligibleByHospital map[string]int `json:"aidEligibleByHospital"`
	// On is the day the follow-up figures are counted on: Now's date in
	// Beijing (2026-07-01).
	On string `json:"on"`
	// EfficacyReport is $efficacy-report on On over every course (each
	// time point, then its indications); EfficacyReportByHospital what each
	// hospital gets for its own.
	EfficacyReport           []EfficacyFigures            `json:"efficacyReport"`
	EfficacyReportByHospital map[string][]EfficacyFigures `json:"efficacyReportByHospital"`
	// FollowUpDue is $follow-up-due on On, per hospital.
	FollowUpDue map[string]FollowUpDueTruth `json:"followUpDue"`
}

// DonorTruth counts donor candidates and those who qualified.
type DonorTruth struct {
	Candidates int `json:"candidates"`
	Qualified  int `json:"qualified"`
}

// LotTruth counts product lots by their final release status.
type LotTruth struct {
	Total     int `json:"total"`
	Released  int `json:"released"`
	Recalled  int `json:"recalled"`
	Discarded int `json:"discarded"`
	// RecalledRecipients counts the recipients who received a recalled
	// lot before its recall (look-back).
	RecalledRecipients int `json:"recalledRecipients"`
}

// AEReport holds the four groups of wmt-ig.md's $ae-report.
type AEReport struct {
	Patients   Group  `json:"patients"`
	Courses    Group  `json:"courses"`
	Procedures Group  `json:"procedures"`
	Events     Events `json:"events"`
}

// Group is one of patients, courses, procedures: its denominator and
// numerator, and per stratifier (relatedness, severity, route, indication)
// and stratum code, the same two figures. For relatedness and severity the
// stratum denominator is the group's, and the numerator counts only
// events of that level; for route and indication both count only
// procedures of that route or indication.
type Group struct {
	Count
	Strata map[string]map[string]Count `json:"strata"`
}

// Count is a numerator over a denominator.
type Count struct {
	Denominator int `json:"denominator"`
	Numerator   int `json:"numerator"`
}

// Events is the events group: the count and its strata (relatedness,
// severity, ctcae-grade, seriousness, ae-term).
type Events struct {
	Count  int                       `json:"count"`
	Strata map[string]map[string]int `json:"strata"`
}

// EfficacyTruth is one indication and follow-up time point of a boolean
// measure: Denominator recipients assessed, Numerator with a true value;
// DueNotAssessed counts the recipients whose window for the time point
// closed before Now without any efficacy assessment at it (the same for
// every measure of the time point).
type EfficacyTruth struct {
	Indication     string `json:"indication"`
	FollowUp       string `json:"followUp"`
	Measure        string `json:"measure"`
	Denominator    int    `json:"denominator"`
	Numerator      int    `json:"numerator"`
	DueNotAssessed int    `json:"dueNotAssessed"`
}

// Truth counts the registry's figures.
func (g *Registry) Truth() Truth {
	t := Truth{Seed: g.opts.Seed, Patients: len(g.recipients), Now: dateTime(now), Versions: g.Len(), Resources: map[string]int{},
		ByYear: map[string]AEReport{}, ByHospital: map[string]AEReport{}}
	for _, w := range g.writes {
		if w.version == 1 {
			t.Resources[g.typeOf(w.kind)]++
		}
	}
	t.Donors.Candidates = len(g.donors)
	for _, d := range g.donors {
		if d.qualified {
			t.Donors.Qualified++
		}
	}
	t.Lots.Total = len(g.lots)
	for _, l := range g.lots {
		switch {
		case !l.recalled.IsZero():
			t.Lots.Recalled++
		case !l.discarded.IsZero():
			t.Lots.Discarded++
		default:
			t.Lots.Released++
		}
	}
	for _, rc := range g.recipients {
	found:
		for _, p := range rc.procs {
			for _, l := range p.lots {
				if !g.lots[l].recalled.IsZero() {
					t.Lots.RecalledRecipients++
					break found
				}
			}
		}
	}
	t.AEReport = g.aeReport(func(int, *proc) bool { return true })
	for y := epoch.Year(); y <= now.Year(); y++ {
		t.ByYear[strconv.Itoa(y)] = g.aeReport(func(_ int, p *proc) bool { return p.at.In(beijing).Year() == y })
	}
	for h, hosp := range hospitals {
		t.ByHospital[hosp.ID] = g.aeReport(func(i int, _ *proc) bool { return g.recipients[i].hospital == h })
	}
	t.Efficacy = g.efficacyTruth()
	on := calendarDay(now)
	t.On = on.Format(time.DateOnly)
	t.AidEligibleByHospital = map[string]int{}
	t.EfficacyReportByHospital = map[string][]EfficacyFigures{}
	t.FollowUpDue = map[string]FollowUpDueTruth{}
	for i, rc := range g.recipients {
		if g.aidEligible(i, on) {
			t.AidEligible++
			t.AidEligibleByHospital[hospitals[rc.hospital].ID]++
		}
	}
	t.EfficacyReport = g.efficacyReport(on, func(int) bool { return true })
	for h, hosp := range hospitals {
		mine := func(i int) bool { return g.recipients[i].hospital == h }
		t.EfficacyReportByHospital[hosp.ID] = g.efficacyReport(on, mine)
		t.FollowUpDue[hosp.ID] = g.followUpDue(on, mine)
	}
	return t
}

func (g *Registry) typeOf(k kind) string {
	switch k {
	case kOrg:
		return "Organization"
	case kDonor, kRecipient:
		return "Patient"
	case kScreen, kQC, kEfficacy:
		return "Observation"
	case kDonation, kLot:
		return "Specimen"
	case kCondition:
		return "Condition"
	case kRisk:
		return "RiskAssessment"
	case kProc:
		return "Procedure"
	}
	return "AdverseEvent"
}

// unitSet counts distinct units (patients, courses, procedures) overall
// and per stratum.
type unitSet struct {
	den, num map[string]bool
	sden     map[string]map[string]map[string]bool // stratifier -> stratum -> units
	snum     map[string]map[string]map[string]bool
}

func newUnitSet() *unitSet {
	return &unitSet{den: map[string]bool{}, num: map[string]bool{}, sden: map[string]map[string]map[string]bool{}, snum: map[string]map[string]map[string]bool{}}
}

func addTo(m map[string]map[string]map[string]bool, strat, stratum, unit string) {
	if m[strat] == nil {
		m[strat] = map[string]map[string]bool{}
	}
	if m[strat][stratum] == nil {
		m[strat][stratum] = map[string]bool{}
	}
	m[strat][stratum][unit] = true
}

func (u *unitSet) group() Group {
	gr := Group{Count: Count{Denominator: len(u.den), Numerator: len(u.num)}, Strata: map[string]map[string]Count{}}
	for _, s := range []string{"relatedness", "severity", "route", "indication"} {
		gr.Strata[s] = map[string]Count{}
		for stratum, units := range u.sden[s] {
			c := gr.Strata[s][stratum]
			c.Denominator = len(units)
			gr.Strata[s][stratum] = c
		}
		for stratum, units := range u.snum[s] {
			c := gr.Strata[s][stratum]
			c.Numerator = len(units)
			if s == "relatedness" || s == "severity" {
				c.Denominator = len(u.den)
			}
			gr.Strata[s][stratum] = c
		}
	}
	return gr
}

// aeReport computes $ae-report over the procedures in (recipient index,
// procedure) that keep returns true for, following wmt-ig.md's
// definitions.
func (g *Registry) aeReport(keep func(int, *proc) bool) AEReport {
	units := [3]*unitSet{newUnitSet(), newUnitSet(), newUnitSet()}
	ev := Events{Strata: map[string]map[string]int{}}
	for _, s := range []string{"relatedness", "severity", "ctcae-grade", "seriousness", "ae-term"} {
		ev.Strata[s] = map[string]int{}
	}
	for i := range g.recipients {
		rc := &g.recipients[i]
		ind := indications[rc.indication].code
		in := make([]bool, len(rc.procs))
		keys := func(j int) [3]string {
			p := rc.procs[j]
			return [3]string{recipientID(i), recipientID(i) + "#" + strconv.Itoa(p.course), procID(i, j)}
		}
		for j := range rc.procs {
			if in[j] = keep(i, &rc.procs[j]); !in[j] {
				continue
			}
			for u, k := range keys(j) {
				units[u].den[k] = true
				addTo(units[u].sden, "route", rc.route, k)
				addTo(units[u].sden, "indication", ind, k)
			}
		}
		for _, e := range rc.events {
			hit := false
			for _, s := range e.suspects {
				if !in[s] {
					continue
				}
				hit = true
				for u, k := range keys(s) {
					units[u].num[k] = true
					addTo(units[u].snum, "relatedness", e.relatedness, k)
					addTo(units[u].snum, "severity", e.severity, k)
					addTo(units[u].snum, "route", rc.route, k)
					addTo(units[u].snum, "indication", ind, k)
				}
			}
			if !hit {
				continue
			}
			ev.Count++
			ev.Strata["relatedness"][e.relatedness]++
			ev.Strata["severity"][e.severity]++
			ev.Strata["ctcae-grade"][strconv.Itoa(e.grade)]++
			serious := "Non-serious"
			if e.serious {
				serious = "Serious"
			}
			ev.Strata["seriousness"][serious]++
			ev.Strata["ae-term"][aeTerms[e.term].code]++
		}
	}
	return AEReport{Patients: units[0].group(), Courses: units[1].group(), Procedures: units[2].group(), Events: ev}
}

func (g *Registry) efficacyTruth() []EfficacyTruth {
	var out []EfficacyTruth
	for x, ind := range indications {
		for f, fu := range followUps {
			measures := []string{"clinical-response"}
			if ind.remission && fu.day >= 84 {
				measures = append(measures, "clinical-remission")
			}
			if ind.code == "A04.7" && fu.code == "w8" {
				measures = append(measures, "cdi-cure")
			}
			for _, m := range measures {
				et := EfficacyTruth{Indication: ind.code, FollowUp: fu.code, Measure: m}
				for i := range g.recipients {
					rc := &g.recipients[i]
					if rc.indication != x || len(rc.procs) == 0 {
						continue
					}
					seen := false
					for _, e := range rc.efficacy {
						if e.followUp != f {
							continue
						}
						seen = true
						if e.measure == m {
							et.Denominator++
							if e.boolean {
								et.Numerator++
							}
						}
					}
					closes := rc.procs[len(rc.procs)-1].at.AddDate(0, 0, fu.day+fu.win)
					if !seen && closes.Before(now) {
						et.DueNotAssessed++
					}
				}
				out = append(out, et)
			}
		}
	}
	return out
}
