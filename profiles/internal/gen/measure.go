package main

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
