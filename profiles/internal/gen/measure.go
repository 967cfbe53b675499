package main

import "strconv"

// The Measure that GET /fhir/AdverseEvent/$ae-report cites (wmt-ig.md,
// "Operations"): its groups, populations and stratifiers as the report
// answers them, each with the definition of its figure.

const measurePopulation = "http://terminology.hl7.org/CodeSystem/measure-population"

func plainWord(w string) obj { return obj{{"coding", []any{obj{{"code", w}}}}, {"text", w}} }

// measurePop is a population; its criteria (required by R4) are the
// definition in words: the server computes it, no CQL is run.
func measurePop(code, description string) obj {
	return obj{{"code", obj{{"coding", []any{obj{{"system", measurePopulation}, {"code", code}}}}}}, {"description", description},
		{"criteria", obj{{"language", "text/plain"}, {"expression", description}}}}
}

func measureStratifier(code, description string) obj {
	return obj{{"code", plainWord(code)}, {"description", description}}
}

func unitStratifiers(units string) []any {
	return []any{
		measureStratifier("relatedness", "Numerator: only the "+units+" with an adverse event of that relatedness, as assessed for the suspect procedure; denominator: the group's."),
		measureStratifier("severity", "Numerator: only the "+units+" with an adverse event of that severity; denominator: the group's."),
		measureStratifier("route", "Both populations count only procedures of that route (CodeSystem route)."),
		measureStratifier("indication", "Both populations count only procedures whose reasonReference Condition has that code (ICD-10 or CodeSystem other-indication)."),
	}
}

func aeReportMeasure() obj {
	m := header("Measure", "ae-report", base+"/Measure/ae-report", "AeReport", "WMT adverse-event incidence and relatedness",
		"What GET /fhir/AdverseEvent/$ae-report answers (wmt-ig.md, Operations): over the WMT procedures performed in the period "+
			"(cmts-wmt-procedure, status neither not-done nor entered-in-error), the recipients, courses and procedures with at least "+
			"one actual adverse event whose suspect procedure is among them, and those events. A caller who reads every tenant "+
			"(the regulator) gets counts from 1 to 4 masked (data-absent-reason masked).")
	m = titleZh(m, "WMT 不良事件发生率及相关性报告")
	return append(m,
		field{"scoring", obj{{"coding", []any{obj{{"system", "http://terminology.hl7.org/CodeSystem/measure-scoring"}, {"code", "proportion"}}}}}},
		field{"type", []any{obj{{"coding", []any{obj{{"system", "http://terminology.hl7.org/CodeSystem/measure-type"}, {"code", "outcome"}}}}}}},
		field{"group", []any{
			obj{{"code", plainWord("patients")}, {"population", []any{
				measurePop("denominator", "Recipients with at least one WMT procedure in the period."),
				measurePop("numerator", "Those of them with at least one adverse event whose suspect procedure is among those procedures."),
			}}, {"stratifier", unitStratifiers("recipients")}},
			obj{{"code", plainWord("courses")}, {"population", []any{
				measurePop("denominator", "Distinct (recipient, course extension) pairs among those procedures."),
				measurePop("numerator", "The pairs with at least one such adverse event."),
			}}, {"stratifier", unitStratifiers("courses")}},
			obj{{"code", plainWord("procedures")}, {"population", []any{
				measurePop("denominator", "The WMT procedures performed in the period."),
				measurePop("numerator", "Those that are a suspect of at least one adverse event."),
			}}, {"stratifier", unitStratifiers("procedures")}},
			obj{{"code", plainWord("events")}, {"population", []any{
				measurePop("numerator", "Adverse events (actuality actual) with at least one suspect procedure among those procedures."),
			}}, {"stratifier", []any{
				measureStratifier("relatedness", "The closest relatedness assessed for the event's suspect procedures in the period."),
				measureStratifier("severity", "AdverseEvent.severity."),
				measureStratifier("ctcae-grade", "The ctcae-grade extension (1-5)."),
				measureStratifier("seriousness", "AdverseEvent.seriousness (Serious, Non-serious)."),
				measureStratifier("ae-term", "The event's code from CodeSystem ae-term."),
			}}},
		}})
}

// plainPop is a population coded by a plain word (no system): the
// efficacy report's populations beyond the denominator.
func plainPop(code, description string) obj {
	return obj{{"code", plainWord(code)}, {"description", description},
		{"criteria", obj{{"language", "text/plain"}, {"expression", description}}}}
}

// followUpPoints are CodeSystem follow-up's time points (ig.go): target day
// after the course's last procedure and window.
var followUpPoints = []struct {
	code     string
	day, win int
}{{"w1", 7, 3}, {"w4", 28, 3}, {"w8", 56, 7}, {"w12", 84, 7}, {"m6", 182, 30}, {"m12", 365, 30}, {"m24", 730, 30}}

// efficacyReportMeasure is the Measure GET /fhir/Observation/$efficacy-report
// cites: a group per follow-up time point, stratified by indication.
func efficacyReportMeasure() obj {
	m := header("Measure", "efficacy-report", base+"/Measure/efficacy-report", "EfficacyReport", "WMT response and remission at follow-up",
		"What GET /fhir/Observation/$efficacy-report answers (docs/safety.md): per follow-up time point, the WMT courses due at it "+
			"on the day `on` (default today), those with a clinical response and a clinical remission recorded at it, and those due "+
			"but not assessed. A course is a recipient's WMT procedures with one `course` number; it is followed from the date of its "+
			"last procedure, each time point's window running target - window to target + window days (CodeSystem follow-up). "+
			"Filters (start, end, indication, route, transplant-type) apply to the course's last procedure. A cmts-efficacy "+
			"Observation assesses the course of its focus procedure at the time point of its follow-up extension, counted when "+
			"its effectiveDateTime is on or before `on` (status neither entered-in-error nor cancelled). A caller who reads every "+
			"tenant (the regulator) gets counts from 1 to 4 masked (data-absent-reason masked).")
	m = titleZh(m, "WMT 随访时点临床应答与缓解")
	var groups []any
	for _, fp := range followUpPoints {
		groups = append(groups, obj{
			{"code", obj{{"coding", []any{obj{{"system", base + "/CodeSystem/follow-up"}, {"code", fp.code}}}}, {"text", fp.code}}},
			{"description", "Follow-up time point " + fp.code + ": target day " + strconv.Itoa(fp.day) + " after the course's last procedure, window ± " + strconv.Itoa(fp.win) + " days."},
			{"population", []any{
				measurePop("denominator", "Courses due at "+fp.code+" on `on`: the window's last day is before `on`, and the recipient's next "+
					"course (the earliest procedure of another course performed after this course's last) did not begin on or before that "+
					"day (a later course supersedes the time points it overlaps)."),
				plainPop("numerator-response", "Those of them with an assessment at "+fp.code+" of the response measure (parameter `measure`, "+
					"default clinical-response) whose valueBoolean is true; a course not assessed counts as no response."),
				plainPop("numerator-remission", "Those of them with a clinical-remission assessment at "+fp.code+" whose valueBoolean is true."),
				plainPop("due-not-assessed", "Those of them with no assessment at "+fp.code+" at all (a missed visit)."),
			}},
			{"stratifier", []any{measureStratifier("indication", "All four populations count only courses whose last procedure's "+
				"reasonReference Condition has that code (ICD-10 or CodeSystem other-indication).")}},
		})
	}
	return append(m,
		field{"scoring", obj{{"coding", []any{obj{{"system", "http://terminology.hl7.org/CodeSystem/measure-scoring"}, {"code", "proportion"}}}}}},
		field{"type", []any{obj{{"coding", []any{obj{{"system", "http://terminology.hl7.org/CodeSystem/measure-type"}, {"code", "outcome"}}}}}}},
		field{"improvementNotation", obj{{"coding", []any{obj{{"system", "http://terminology.hl7.org/CodeSystem/measure-improvement-notation"}, {"code", "increase"}}}}}},
		field{"group", groups})
}
