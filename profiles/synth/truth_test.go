package synth_test

import (
	"strconv"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/fmtbank/cmts/profiles/synth"
)

// procRow is a procedure as read from its JSON.
type procRow struct {
	key, patient, tenant, route, indication, year string
	course                                        int
	at                                            time.Time
}

type eventRow struct {
	suspects                                        []string
	relatedness, severity, grade, seriousness, term string
}

// recount computes $ae-report from the resources, after wmt-ig.md's
// definitions, over the procedures keep selects; it shares no code with
// the generator.
func recount(procs map[string]procRow, events []eventRow, keep func(procRow) bool) synth.AEReport {
	type set map[string]bool
	type strata map[string]map[string]set
	den, num := [3]set{{}, {}, {}}, [3]set{{}, {}, {}}
	sden, snum := [3]strata{{}, {}, {}}, [3]strata{{}, {}, {}}
	add := func(s strata, by, value, unit string) {
		if s[by] == nil {
			s[by] = map[string]set{}
		}
		if s[by][value] == nil {
			s[by][value] = set{}
		}
		s[by][value][unit] = true
	}
	units := func(p procRow) [3]string {
		return [3]string{p.patient, p.patient + "|" + strconv.Itoa(p.course), p.key}
	}
	for _, p := range procs {
		if !keep(p) {
			continue
		}
		for g, u := range units(p) {
			den[g][u] = true
			add(sden[g], "route", p.route, u)
			add(sden[g], "indication", p.indication, u)
		}
	}
	ev := synth.Events{Strata: map[string]map[string]int{"relatedness": {}, "severity": {}, "ctcae-grade": {}, "seriousness": {}, "ae-term": {}}}
	for _, e := range events {
		counted := false
		for _, s := range e.suspects {
			p := procs[s]
			if !keep(p) {
				continue
			}
			counted = true
			for g, u := range units(p) {
				num[g][u] = true
				add(snum[g], "relatedness", e.relatedness, u)
				add(snum[g], "severity", e.severity, u)
				add(snum[g], "route", p.route, u)
				add(snum[g], "indication", p.indication, u)
			}
		}
		if counted {
			ev.Count++
			for by, v := range map[string]string{"relatedness": e.relatedness, "severity": e.severity, "ctcae-grade": e.grade, "seriousness": e.seriousness, "ae-term": e.term} {
				ev.Strata[by][v]++
			}
		}
	}
	var groups [3]synth.Group
	for g := range groups {
		groups[g] = synth.Group{Count: synth.Count{Denominator: len(den[g]), Numerator: len(num[g])}, Strata: map[string]map[string]synth.Count{}}
		for _, by := range []string{"relatedness", "severity", "route", "indication"} {
			out := map[string]synth.Count{}
			for v, s := range sden[g][by] {
				out[v] = synth.Count{Denominator: len(s), Numerator: len(snum[g][by][v])}
			}
			for v, s := range snum[g][by] {
				if by == "relatedness" || by == "severity" {
					out[v] = synth.Count{Denominator: len(den[g]), Numerator: len(s)}
				}
			}
			groups[g].Strata[by] = out
		}
	}
	return synth.AEReport{Patients: groups[0], Courses: groups[1], Procedures: groups[2], Events: ev}
}

// TestTruth recounts every figure of the truth from the generated
// resources' JSON and compares.
func TestTruth(t *testing.T) {
	t.Parallel()
	reg := generate(t, 2000, 3)
	truth := reg.Truth()
	p := parse(t, reg)

	indication := map[string]string{}
	for _, k := range p.ofProfile("cmts-indication") {
		indication[k] = code(p.current[k]["code"])
	}
	procs := map[string]procRow{}
	last := map[string]time.Time{}
	for _, k := range p.ofProfile("cmts-wmt-procedure") {
		m := p.current[k]
		at := when(t, m["performedDateTime"].(string))
		course := int(extValue(m, "course")[0].(float64))
		pr := procRow{key: k, patient: refOf(m["subject"]), tenant: p.tenant[k], route: extValue(m, "route")[0].(string),
			indication: indication[refOf(m["reasonReference"].([]any)[0])], year: m["performedDateTime"].(string)[:4], course: course, at: at}
		procs[k] = pr
		if at.After(last[pr.patient]) {
			last[pr.patient] = at
		}
	}
	var events []eventRow
	for _, k := range p.ofProfile("cmts-adverse-event") {
		m := p.current[k]
		e := eventRow{severity: code(m["severity"]), seriousness: code(m["seriousness"]), term: code(m["event"]),
			grade: strconv.Itoa(int(extValue(m, "ctcae-grade")[0].(float64)))}
		for _, s := range m["suspectEntity"].([]any) {
			se := s.(map[string]any)
			e.suspects = append(e.suspects, refOf(se["instance"]))
			e.relatedness = code(se["causality"].([]any)[0].(map[string]any)["assessment"])
		}
		events = append(events, e)
	}

	t.Run("ae-report", func(t *testing.T) {
		if diff := cmp.Diff(recount(procs, events, func(procRow) bool { return true }), truth.AEReport); diff != "" {
			t.Errorf("(-recounted +truth):\n%s", diff)
		}
		if truth.AEReport.Patients.Numerator == 0 || truth.AEReport.Courses.Denominator <= truth.AEReport.Patients.Denominator {
			t.Errorf("a degenerate registry: %+v", truth.AEReport.Patients.Count)
		}
	})
	t.Run("by year", func(t *testing.T) {
		if len(truth.ByYear) != 5 {
			t.Errorf("years %d, want 2022-2026", len(truth.ByYear))
		}
		for y, got := range truth.ByYear {
			if diff := cmp.Diff(recount(procs, events, func(p procRow) bool { return p.year == y }), got); diff != "" {
				t.Errorf("%s (-recounted +truth):\n%s", y, diff)
			}
		}
	})
	t.Run("by hospital", func(t *testing.T) {
		for _, h := range []string{"hospital-a", "hospital-b", "hospital-c"} {
			if diff := cmp.Diff(recount(procs, events, func(p procRow) bool { return p.tenant == h }), truth.ByHospital[h]); diff != "" {
				t.Errorf("%s (-recounted +truth):\n%s", h, diff)
			}
		}
	})
	t.Run("efficacy", func(t *testing.T) {
		type key struct{ ind, fu, measure string }
		got := map[key]synth.EfficacyTruth{}
		for _, e := range truth.Efficacy {
			got[key{e.Indication, e.FollowUp, e.Measure}] = e
		}
		if len(got) != len(truth.Efficacy) {
			t.Fatal("an indication, follow-up and measure appears twice")
		}
		want := map[key]synth.EfficacyTruth{}
		assessed := map[[2]string]bool{} // patient, follow-up
		patientInd := map[string]string{}
		for _, k := range p.ofProfile("cmts-indication") {
			patientInd[refOf(p.current[k]["subject"])] = indication[k]
		}
		for _, k := range p.ofProfile("cmts-efficacy") {
			m := p.current[k]
			fu := extValue(m, "follow-up")[0].(string)
			subj := refOf(m["subject"])
			assessed[[2]string{subj, fu}] = true
			v, ok := m["valueBoolean"].(bool)
			if !ok {
				continue
			}
			kk := key{patientInd[subj], fu, code(m["code"])}
			e := want[kk]
			e.Indication, e.FollowUp, e.Measure = kk.ind, kk.fu, kk.measure
			e.Denominator++
			if v {
				e.Numerator++
			}
			want[kk] = e
		}
		windows := map[string][2]int{"w1": {7, 3}, "w4": {28, 3}, "w8": {56, 7}, "w12": {84, 7}, "m6": {182, 30}, "m12": {365, 30}, "m24": {730, 30}}
		now := when(t, synthNow)
		for kk, e := range got {
			w := want[kk]
			w.Indication, w.FollowUp, w.Measure = kk.ind, kk.fu, kk.measure
			for patient, at := range last {
				if patientInd[patient] == kk.ind && at.AddDate(0, 0, windows[kk.fu][0]+windows[kk.fu][1]).Before(now) && !assessed[[2]string{patient, kk.fu}] {
					w.DueNotAssessed++
				}
			}
			if diff := cmp.Diff(w, e); diff != "" {
				t.Errorf("(-recounted +truth):\n%s", diff)
			}
			delete(want, kk)
		}
		for kk := range want {
			t.Errorf("the truth lacks %v", kk)
		}
	})
	t.Run("counts", func(t *testing.T) {
		types := map[string]int{}
		for k := range p.current {
			types[k[:len(k)-len(k[indexByte(k, '/'):])]]++
		}
		if diff := cmp.Diff(types, truth.Resources); diff != "" {
			t.Errorf("resources by type (-recounted +truth):\n%s", diff)
		}
		lots := synth.LotTruth{}
		for _, k := range p.ofProfile("cmts-microbiota-product") {
			lots.Total++
			switch extValue(p.current[k], "release-status")[0] {
			case "released":
				lots.Released++
			case "recalled":
				lots.Recalled++
			case "discarded":
				lots.Discarded++
			}
		}
		reached := map[string]bool{}
		for _, k := range p.ofProfile("cmts-wmt-procedure") {
			for _, l := range extValue(p.current[k], "product-lot") {
				if extValue(p.current[refOf(l)], "release-status")[0] == "recalled" {
					reached[refOf(p.current[k]["subject"])] = true
				}
			}
		}
		lots.RecalledRecipients = len(reached)
		if diff := cmp.Diff(lots, truth.Lots); diff != "" {
			t.Errorf("lots (-recounted +truth):\n%s", diff)
		}
		eligible := 0
		for _, k := range p.ofProfile("cmts-recipient") {
			m := p.current[k]
			birth := when(t, m["birthDate"].(string))
			// Whole years on 2026-07-01 (a year completes on the birthday).
			age := 2026 - birth.Year()
			if birth.Month() > time.July || (birth.Month() == time.July && birth.Day() > 1) {
				age--
			}
			if extValue(m, "financial-hardship")[0] == true && (age < 16 || age > 60) {
				eligible++
			}
		}
		if eligible != truth.AidEligible {
			t.Errorf("aid eligible: recounted %d, truth %d", eligible, truth.AidEligible)
		}
	})
}

func indexByte(s string, c byte) int {
	for i := range len(s) {
		if s[i] == c {
			return i
		}
	}
	return -1
}
