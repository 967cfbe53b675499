package synth

import (
	"fmt"
	"time"
)

// Resource is one version of one resource of the registry.
type Resource struct {
	Tenant, Type, ID string
	Version          int64
	// LastUpdated is when the version was recorded (UTC, microseconds):
	// shortly after the business time it records.
	LastUpdated time.Time
	// Profile is the guide profile it claims (last url segment), "" none.
	Profile string
	// Body is the FHIR JSON with id and meta (versionId, lastUpdated,
	// profile) set.
	Body []byte
}

func ids(prefix string, n int) string { return fmt.Sprintf("%s%06d", prefix, n+1) }

func donorID(i int) string       { return ids("donor-d", i) }
func donorCode(i int) string     { return ids("D-", i) }
func screenID(i int) string      { return ids("screening-s", i) }
func donationID(i int) string    { return ids("donation-dn", i) }
func lotID(i int) string         { return ids("lot-l", i) }
func qcID(i int) string          { return ids("qc-q", i) }
func recipientID(i int) string   { return ids("recipient-r", i) }
func conditionID(i int) string   { return ids("indication-r", i) }
func riskID(i int) string        { return ids("risk-r", i) }
func procID(i, j int) string     { return fmt.Sprintf("procedure-r%06d-%d", i+1, j+1) }
func efficacyID(i, j int) string { return fmt.Sprintf("efficacy-r%06d-%d", i+1, j+1) }
func eventID(i, j int) string    { return fmt.Sprintf("ae-r%06d-%d", i+1, j+1) }

func orgID(t Tenant) string { return "org-" + t.ID }

// Tenants lists the units every registry has data of: the banks, the
// hospitals and the authority, in that order (a new slice each call).
func Tenants() []Tenant {
	out := append([]Tenant{}, banks...)
	out = append(out, hospitals...)
	return append(out, authority)
}

func coding(system, code, display string) obj {
	c := obj{{"system", system}, {"code", code}}
	if display != "" {
		c = append(c, member{"display", display})
	}
	return c
}

func concept(system, code, display string) obj {
	return obj{{"coding", arr{coding(system, code, display)}}}
}

func reference(typ, id string) obj { return obj{{"reference", typ + "/" + id}} }

func ext(name string, valueKey string, v any) obj {
	return obj{{"url", sd + name}, {valueKey, v}}
}

func (n name) fhir() arr {
	return arr{
		obj{{"use", "official"}, {"text", n.zhFamily + n.zhGiven}, {"family", n.zhFamily}, {"given", arr{n.zhGiven}}},
		obj{{"use", "usual"}, {"text", n.enGiven + " " + n.enFamily}, {"family", n.enFamily}, {"given", arr{n.enGiven}}},
	}
}

// lotNumber is the lot's number: L-yyyy-mmdd-nn with its place that day.
func (g *Registry) lotNumber(i int) string {
	l := &g.lots[i]
	return fmt.Sprintf("L-%s-%02d", l.made.In(beijing).Format("2006-0102"), i%100)
}

// Resource renders version k of the registry (0 <= k < Len). Safe for
// concurrent use.
func (g *Registry) Resource(k int) Resource {
	w := g.writes[k]
	i, j := int(w.i), int(w.j)
	var res Resource
	var body obj
	var at time.Time
	res.Version = int64(w.version)
	switch w.kind {
	case kOrg:
		t := Tenants()[i]
		res.Tenant, res.Type, res.ID = t.ID, "Organization", orgID(t)
		at = epoch.Add(-days(365))
		typ := map[string]string{"bank": "Stool bank / 菌群库", "hospital": "Hospital / 医院", "authority": "Health authority / 卫生主管部门"}[t.Kind]
		body = obj{{"identifier", arr{obj{{"system", sid + "tenant"}, {"value", t.ID}}}}, {"active", true},
			{"type", arr{obj{{"text", typ}}}}, {"name", t.Name}, {"alias", arr{t.NameZh}}}
	case kDonor:
		d := &g.donors[i]
		res.Tenant, res.Type, res.ID, res.Profile = banks[d.bank].ID, "Patient", donorID(i), "cmts-donor"
		status := "candidate"
		at = d.candidate
		if w.version == 2 {
			at = d.decided
			status = "excluded"
			if d.qualified {
				status = "qualified"
			}
		}
		body = obj{{"extension", arr{ext("donor-status", "valueCode", status)}},
			{"identifier", arr{obj{{"system", sid + "donor-code"}, {"value", donorCode(i)}}}},
			{"active", true}, {"name", d.name.fhir()}, {"gender", d.gender}, {"birthDate", date(d.birth)}}
	case kScreen:
		d := &g.donors[i]
		s := d.screens[j]
		t := screenStages[s.stage].tests[s.test]
		res.Tenant, res.Type, res.ID, res.Profile = banks[d.bank].ID, "Observation", screenID(d.firstScreenID+j), "cmts-donor-screening"
		at = s.at.Add(8 * time.Hour)
		code := obj{{"text", t.en + " / " + t.zh}}
		if t.loinc != "" {
			code = obj{{"coding", arr{coding(loinc, t.loinc, t.en)}}, {"text", t.en + " / " + t.zh}}
		}
		interp, value := coding(v3Interp, "N", "Normal"), concept(snomed, "260385009", "Negative")
		if !s.pass {
			interp, value = coding(v3Interp, "A", "Abnormal"), concept(snomed, "10828004", "Positive")
		}
		body = obj{{"status", "final"},
			{"category", arr{concept(obsCategory, "laboratory", "Laboratory")}},
			{"code", code}, {"subject", reference("Patient", donorID(i))}, {"effectiveDateTime", dateTime(s.at)}}
		if s.stage == 0 {
			text := "Passed / 通过"
			if !s.pass {
				text = "Excluded: risk factors reported / 淘汰：存在危险因素"
			}
			body = append(body, member{"valueString", text})
		} else {
			body = append(body, member{"valueCodeableConcept", value})
		}
		body = append(body, member{"interpretation", arr{obj{{"coding", arr{interp}}}}})
	case kDonation:
		dn := &g.donations[i]
		res.Tenant, res.Type, res.ID, res.Profile = banks[g.donors[dn.donor].bank].ID, "Specimen", donationID(i), "cmts-stool-donation"
		at = dn.at.Add(time.Hour)
		body = obj{{"accessionIdentifier", obj{{"system", sid + "donation-id"}, {"value", fmt.Sprintf("DN-%s-%06d", dn.at.In(beijing).Format("2006-0102"), i+1)}}},
			{"status", "unavailable"},
			{"type", obj{{"coding", arr{coding(snomed, "119339001", "Stool specimen")}}, {"text", "Stool / 粪便"}}},
			{"subject", reference("Patient", donorID(dn.donor))},
			{"collection", obj{{"collectedDateTime", dateTime(dn.at)}}}}
	case kLot:
		res.Tenant, res.Type, res.ID, res.Profile = banks[g.lots[i].bank].ID, "Specimen", lotID(i), "cmts-microbiota-product"
		body, at = g.lotBody(i, int(w.version))
	case kQC:
		body, at = g.qcBody(i, j)
		res.Tenant, res.Type, res.ID, res.Profile = banks[g.lots[i].bank].ID, "Observation", qcID(g.lots[i].firstQC+j), "cmts-product-qc"
	default:
		rc := &g.recipients[i]
		res.Tenant = hospitals[rc.hospital].ID
		body, at = g.recipientPart(&res, w.kind, i, j)
	}
	res.LastUpdated = at.UTC().Truncate(time.Microsecond)
	meta := obj{{"versionId", fmt.Sprint(res.Version)}, {"lastUpdated", instant(res.LastUpdated)}}
	if res.Profile != "" {
		meta = append(meta, member{"profile", arr{sd + res.Profile}})
	}
	full := make(obj, 0, len(body)+3)
	full = append(full, member{"resourceType", res.Type}, member{"id", res.ID}, member{"meta", meta})
	full = append(full, body...)
	res.Body = appendJSON(make([]byte, 0, 1024), full)
	return res
}

var steps = map[string][2]string{
	"microfiltration": {"Microfiltration", "微滤"}, "centrifuge-wash": {"Centrifugation and wash", "离心洗涤"},
	"resuspension": {"Resuspension", "重悬"}, "freeze": {"Freeze", "冻存"},
}

// lotBody is version v of lot i: 1 quarantined, 2 released or discarded,
// 3 recalled.
func (g *Registry) lotBody(i, v int) (obj, time.Time) {
	l := &g.lots[i]
	status, since := "quarantined", l.made
	switch {
	case v == 2 && !l.released.IsZero():
		status, since = "released", l.released
	case v == 2:
		status, since = "discarded", l.discarded
	case v == 3:
		status, since = "recalled", l.recalled
	}
	typ := concept(cs+"product-type", "wmt-suspension", "Washed microbiota suspension")
	if l.capsule {
		typ = concept(cs+"product-type", "wmt-capsule", "Washed microbiota capsule")
	}
	parents := arr{}
	for _, d := range l.donations {
		parents = append(parents, reference("Specimen", donationID(d)))
	}
	var proc arr
	for _, s := range []string{"microfiltration", "centrifuge-wash", "centrifuge-wash", "centrifuge-wash", "resuspension", "freeze"} {
		proc = append(proc, obj{{"description", steps[s][0] + " / " + steps[s][1]}, {"procedure", concept(cs+"processing-step", s, steps[s][0])}})
	}
	container := obj{{"specimenQuantity", obj{{"value", 100}, {"unit", "mL"}, {"system", "http://unitsofmeasure.org"}, {"code", "mL"}}}}
	if l.capsule {
		container = obj{{"specimenQuantity", obj{{"value", 60}, {"unit", "capsules"}}}}
	}
	specStatus := "available"
	if status != "released" && status != "quarantined" {
		specStatus = "unavailable"
	}
	body := obj{{"extension", arr{ext("release-status", "valueCode", status), ext("status-date", "valueDateTime", dateTime(since)),
		ext("expiry", "valueDateTime", dateTime(l.expiry))}},
		{"identifier", arr{obj{{"system", sid + "product-lot"}, {"value", g.lotNumber(i)}}}},
		{"status", specStatus}, {"type", typ}, {"subject", reference("Patient", donorID(l.donor))},
		{"receivedTime", dateTime(l.made)}, {"parent", parents}, {"processing", proc},
		{"container", arr{container}}}
	switch status {
	case "discarded":
		body = append(body, member{"note", arr{obj{{"text", "Discarded: failed quality control / 销毁：质控不合格"}}}})
	case "recalled":
		body = append(body, member{"note", arr{obj{{"text", "Recalled: retained aliquot re-test positive for Shiga toxin-producing E. coli / 召回：留样复检检出产志贺毒素大肠埃希菌"}}}})
	}
	return body, since.Add(30 * time.Minute)
}

// qcBody is QC result j of lot i: 0 viable count, 1 pathogen screen, 2 the
// re-test that recalled it.
func (g *Registry) qcBody(i, j int) (obj, time.Time) {
	l := &g.lots[i]
	done := l.released
	if done.IsZero() {
		done = l.discarded
	}
	at := done.Add(-2 * time.Hour)
	body := obj{{"status", "final"}, {"category", arr{concept(obsCategory, "laboratory", "Laboratory")}}}
	switch j {
	case 0:
		v := l.viable
		if !l.discarded.IsZero() {
			v = 0.2
		}
		body = append(body, member{"code", obj{{"text", "Viable bacteria count per unit / 每单位活菌数"}}},
			member{"specimen", reference("Specimen", lotID(i))}, member{"effectiveDateTime", dateTime(at)},
			member{"valueQuantity", obj{{"value", float64(int(v*100)) * 1e11}, {"unit", "cells/U"}}})
	case 1:
		pass := l.discarded.IsZero()
		interp := coding(v3Interp, "N", "Normal")
		if !pass {
			interp = coding(v3Interp, "A", "Abnormal")
		}
		body = append(body, member{"code", obj{{"text", "Pathogen screen of the lot / 批次病原体筛查"}}},
			member{"specimen", reference("Specimen", lotID(i))}, member{"effectiveDateTime", dateTime(at)},
			member{"interpretation", arr{obj{{"coding", arr{interp}}}}})
	default:
		at = l.recalled.Add(-3 * time.Hour)
		body = append(body, member{"code", obj{{"text", "Retained aliquot re-test: Shiga toxin-producing E. coli / 留样复检：产志贺毒素大肠埃希菌"}}},
			member{"specimen", reference("Specimen", lotID(i))}, member{"effectiveDateTime", dateTime(at)},
			member{"valueCodeableConcept", concept(snomed, "10828004", "Positive")},
			member{"interpretation", arr{obj{{"coding", arr{coding(v3Interp, "A", "Abnormal")}}}}})
	}
	return body, at.Add(time.Hour)
}

var riskDisplay = map[string][2]string{"low": {"Low likelihood", "低"}, "moderate": {"Moderate likelihood", "中"}, "high": {"High likelihood", "高"}}

func (g *Registry) recipientPart(res *Resource, k kind, i, j int) (obj, time.Time) {
	rc := &g.recipients[i]
	ind := &indications[rc.indication]
	subject := reference("Patient", recipientID(i))
	switch k {
	case kRecipient:
		res.Type, res.ID, res.Profile = "Patient", recipientID(i), "cmts-recipient"
		body := obj{}
		body = append(body, member{"extension", arr{ext("financial-hardship", "valueBoolean", rc.hardship)}})
		body = append(body, member{"identifier", arr{obj{{"system", sid + "recipient-code"}, {"value", ids("R-", i)}}}},
			member{"active", true}, member{"name", rc.name.fhir()}, member{"gender", rc.gender}, member{"birthDate", date(rc.birth)},
			member{"managingOrganization", reference("Organization", orgID(hospitals[rc.hospital]))})
		return body, rc.risk.Add(-time.Hour)
	case kCondition:
		res.Type, res.ID, res.Profile = "Condition", conditionID(i), "cmts-indication"
		return obj{{"clinicalStatus", concept(condClin, "active", "Active")},
			{"verificationStatus", concept(condVer, "confirmed", "Confirmed")},
			{"code", obj{{"coding", arr{coding(ind.system, ind.code, ind.en)}}, {"text", ind.zh + " / " + ind.en}}},
			{"subject", subject}, {"recordedDate", dateTime(rc.risk)}}, rc.risk.Add(-30 * time.Minute)
	case kRisk:
		res.Type, res.ID, res.Profile = "RiskAssessment", riskID(i), "cmts-pretreatment-risk"
		d := riskDisplay[rc.riskLevel]
		return obj{{"status", "final"}, {"subject", subject}, {"occurrenceDateTime", dateTime(rc.risk)},
			{"basis", arr{reference("Condition", conditionID(i))}},
			{"prediction", arr{obj{{"outcome", obj{{"text", "Procedure-related complication / 操作相关并发症"}}},
				{"qualitativeRisk", obj{{"coding", arr{coding(riskProb, rc.riskLevel, d[0])}}, {"text", d[1]}}}}}}}, rc.risk.Add(time.Hour)
	case kProc:
		pr := &rc.procs[j]
		rt := routes[rc.route]
		res.Type, res.ID, res.Profile = "Procedure", procID(i, j), "cmts-wmt-procedure"
		exts := arr{ext("route", "valueCode", rc.route)}
		for _, l := range pr.lots {
			exts = append(exts, ext("product-lot", "valueReference", reference("Specimen", lotID(l))))
		}
		exts = append(exts, ext("dose", "valueQuantity", obj{{"value", pr.dose}, {"unit", "U"}}),
			ext("course", "valuePositiveInt", pr.course), ext("session", "valuePositiveInt", pr.session))
		return obj{{"extension", exts}, {"status", "completed"},
			{"code", concept(cs+"transplant-type", "wmt", "Washed microbiota transplantation")},
			{"subject", subject}, {"performedDateTime", dateTime(pr.at)},
			{"reasonReference", arr{reference("Condition", conditionID(i))}},
			{"note", arr{obj{{"text", fmt.Sprintf("Course %d, session %d: %d U by %s / 第%d疗程第%d次：经%s移植%d单位",
				pr.course, pr.session, pr.dose, rt.en, pr.course, pr.session, rt.zh, pr.dose)}}}}}, pr.at.Add(3 * time.Hour)
	case kEfficacy:
		e := &rc.efficacy[j]
		fu := followUps[e.followUp]
		res.Type, res.ID, res.Profile = "Observation", efficacyID(i, j), "cmts-efficacy"
		body := obj{{"extension", arr{ext("follow-up", "valueCode", fu.code)}}, {"status", "final"},
			{"code", concept(cs+"efficacy-measure", e.measure, "")}, {"subject", subject},
			{"focus", arr{reference("Procedure", procID(i, e.focus))}}, {"effectiveDateTime", dateTime(e.at)}}
		if e.isBool {
			body = append(body, member{"valueBoolean", e.boolean})
		} else {
			body = append(body, member{"valueInteger", e.value})
		}
		if score := indications[rc.indication].score; e.measure == "clinical-response" && score != "" {
			body = append(body, member{"component", arr{obj{{"code", concept(cs+"efficacy-measure", score, "")}, {"valueInteger", e.value}}}})
		}
		return body, e.at.Add(2 * time.Hour)
	}
	e := &rc.events[j]
	t := aeTerms[e.term]
	res.Type, res.ID, res.Profile = "AdverseEvent", eventID(i, j), "cmts-adverse-event"
	serious := "Non-serious"
	if e.serious {
		serious = "Serious"
	}
	rd := relatednessDisplay[e.relatedness]
	var suspects arr
	for _, s := range e.suspects {
		suspects = append(suspects, obj{{"instance", reference("Procedure", procID(i, s))},
			{"causality", arr{obj{{"assessment", obj{{"coding", arr{coding(cs+"relatedness", e.relatedness, rd[0])}}, {"text", rd[1]}}}}}}})
	}
	return obj{{"extension", arr{ext("ctcae-grade", "valueInteger", e.grade)}}, {"actuality", "actual"},
		{"event", obj{{"coding", arr{coding(cs+"ae-term", t.code, t.en)}}, {"text", t.zh + " / " + t.en}}},
		{"subject", subject}, {"date", dateTime(e.at)}, {"recordedDate", dateTime(e.at.Add(2 * time.Hour))},
		{"seriousness", concept(aeSerious, serious, serious)},
		{"severity", concept(aeSeverity, e.severity, "")},
		{"outcome", concept(aeOutcome, e.outcome, "")},
		{"suspectEntity", suspects}}, e.at.Add(2 * time.Hour)
}
