package profiles

import (
	"fmt"
	"strings"
	"time"

	"github.com/fmtbank/cmts/fhir"
)

// rules are the checks of wmt-ig.md that a StructureDefinition cannot say,
// by the profile they belong to. Each adds its issues to the walker; the
// error is for a failing Resolver.
var rules = map[string]func(w *walker, res map[string]any) error{
	Canonical + "/StructureDefinition/cmts-adverse-event": adverseEventRules,
}

const (
	outcomeSystem     = "http://terminology.hl7.org/CodeSystem/adverse-event-outcome"
	severitySystem    = "http://terminology.hl7.org/CodeSystem/adverse-event-severity"
	seriousnessSystem = "http://terminology.hl7.org/CodeSystem/adverse-event-seriousness"
)

// codeIn returns the code of the first coding of a CodeableConcept element
// in system ("" if none).
func codeIn(res map[string]any, name, system string) string {
	for _, c := range codings(res[name], "CodeableConcept") {
		if c[0] == system {
			return c[1]
		}
	}
	return ""
}

// adverseEventRules: the CTCAE grade agrees with outcome, seriousness and
// severity; the event is not before its suspect procedures.
func adverseEventRules(w *walker, res map[string]any) error {
	grade := 0
	exts, _ := res["extension"].([]any)
	for _, x := range exts {
		m, _ := x.(map[string]any)
		if m["url"] == Canonical+"/StructureDefinition/ctcae-grade" {
			if n, ok := m["valueInteger"].(interface{ Int64() (int64, error) }); ok {
				g, _ := n.Int64()
				grade = int(g)
			}
		}
	}
	outcome := codeIn(res, "outcome", outcomeSystem)
	severity := codeIn(res, "severity", severitySystem)
	seriousness := codeIn(res, "seriousness", seriousnessSystem)
	if grade == 5 {
		if outcome != "fatal" {
			w.add("error", fhir.IssueInvariant, "AdverseEvent.outcome",
				"CTCAE grade 5 (death) requires outcome 'fatal'", "CTCAE 5 级（死亡）要求转归为 'fatal'（死亡）")
		}
		if !strings.HasPrefix(seriousness, "Serious") {
			w.add("error", fhir.IssueInvariant, "AdverseEvent.seriousness",
				"CTCAE grade 5 (death) requires a serious event", "CTCAE 5 级（死亡）要求严重性为严重")
		}
	}
	switch {
	case grade == 1 && severity == "severe":
		w.add("error", fhir.IssueInvariant, "AdverseEvent.severity",
			"CTCAE grade 1 cannot be severe", "CTCAE 1 级不良事件的严重程度不能为重度")
	case grade >= 3 && grade <= 5 && severity == "mild":
		w.add("error", fhir.IssueInvariant, "AdverseEvent.severity",
			fmt.Sprintf("CTCAE grade %d cannot be mild", grade), fmt.Sprintf("CTCAE %d 级不良事件的严重程度不能为轻度", grade))
	}
	date, _ := res["date"].(string)
	if date == "" || w.v.resolve == nil {
		return nil
	}
	ses, _ := res["suspectEntity"].([]any)
	for _, s := range ses {
		m, _ := s.(map[string]any)
		inst, _ := m["instance"].(map[string]any)
		ref, _ := inst["reference"].(string)
		typ, id, contained := referenceTarget(ref)
		if typ != "Procedure" || contained {
			continue
		}
		proc, err := w.v.resolve.Resolve(w.ctx, typ, id)
		if err != nil {
			return err
		}
		performed, _ := proc["performedDateTime"].(string)
		if p, ok := proc["performedPeriod"].(map[string]any); ok && performed == "" {
			performed, _ = p["start"].(string)
		}
		if performed != "" && before(date, performed) {
			w.add("error", fhir.IssueInvariant, "AdverseEvent.date",
				"The adverse event ("+date+") is before its suspect procedure "+ref+" ("+performed+")",
				"不良事件发生时间（"+date+"）早于可疑操作 "+ref+"（"+performed+"）")
		}
	}
	return nil
}

// before reports whether FHIR dateTime a is certainly before b: compared as
// instants when both have a time, else by the calendar date both give.
func before(a, b string) bool {
	if len(a) > 10 && len(b) > 10 {
		ta, err1 := time.Parse(time.RFC3339, a)
		tb, err2 := time.Parse(time.RFC3339, b)
		if err1 == nil && err2 == nil {
			return ta.Before(tb)
		}
	}
	n := min(len(a), len(b), 10)
	return a[:n] < b[:n]
}
