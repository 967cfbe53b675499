package main

// The WMT implementation guide as data: what /work/shared/wmt-ig.md names,
// written once here, from which the generator writes the JSON resources.

const base = "http://fmtbank.org/fhir"

func sdURL(name string) string { return base + "/StructureDefinition/" + name }
func csURL(name string) string { return base + "/CodeSystem/" + name }
func vsURL(name string) string { return base + "/ValueSet/" + name }

const (
	sidDonor     = base + "/sid/donor-code"
	sidRecipient = base + "/sid/recipient-code"
	sidDonation  = base + "/sid/donation-id"
	sidLot       = base + "/sid/product-lot"
	icd10        = "http://hl7.org/fhir/sid/icd-10"
	r4Causality  = "http://terminology.hl7.org/CodeSystem/adverse-event-causality-assess"
)

// concept is one code of a code system: English display, Chinese display and
// concept properties (name -> integer value).
type concept struct {
	code, en, zh string
	props        []prop
}

type prop struct {
	name  string
	value int
}

type codeSystem struct {
	id, name, title, titleZh, description string
	concepts                              []concept
	// properties declares the concept properties (code -> description).
	properties [][2]string
}

var codeSystems = []codeSystem{
	{id: "transplant-type", name: "TransplantType", title: "Microbiota transplantation type", titleZh: "菌群移植类型",
		description: "The kind of microbiota transplantation performed.",
		concepts: []concept{
			{code: "wmt", en: "Washed microbiota transplantation", zh: "洗涤菌群移植"},
			{code: "fmt-manual", en: "Manual FMT", zh: "手工粪菌移植"},
			{code: "smt", en: "Selective microbiota transplantation", zh: "选择性菌群移植"},
		}},
	{id: "route", name: "TransplantRoute", title: "Delivery route", titleZh: "移植途径",
		description: "How the microbiota reaches the gut.",
		concepts: []concept{
			{code: "mid-gut-tet", en: "Mid-gut transendoscopic enteral tubing (TET)", zh: "中消化道经内镜肠道植管"},
			{code: "colonic-tet", en: "Colonic transendoscopic enteral tubing (TET)", zh: "结肠经内镜肠道植管"},
			{code: "colonoscopy", en: "Colonoscopy", zh: "结肠镜"},
			{code: "gastroscopy", en: "Gastroscopy", zh: "胃镜"},
			{code: "nasojejunal", en: "Nasojejunal tube", zh: "鼻空肠管"},
			{code: "capsule", en: "Capsule", zh: "胶囊"},
			{code: "enema", en: "Enema", zh: "灌肠"},
		}},
	{id: "release-status", name: "ReleaseStatus", title: "Product lot release status", titleZh: "菌液批次放行状态",
		description: "Where a microbiota product lot stands in quality release.",
		concepts: []concept{
			{code: "quarantined", en: "Quarantined", zh: "隔离待检"},
			{code: "released", en: "Released", zh: "放行"},
			{code: "recalled", en: "Recalled", zh: "召回"},
			{code: "discarded", en: "Discarded", zh: "销毁"},
			{code: "expired", en: "Expired", zh: "过期"},
		}},
	{id: "donor-status", name: "DonorStatus", title: "Donor status", titleZh: "供体状态",
		description: "A stool donor's standing in screening.",
		concepts: []concept{
			{code: "candidate", en: "Candidate", zh: "候选"},
			{code: "qualified", en: "Qualified", zh: "合格"},
			{code: "suspended", en: "Suspended", zh: "暂停"},
			{code: "excluded", en: "Excluded", zh: "淘汰"},
		}},
	{id: "product-type", name: "ProductType", title: "Microbiota product type", titleZh: "菌群制剂类型",
		description: "The form of a microbiota product.",
		concepts: []concept{
			{code: "wmt-suspension", en: "Washed microbiota suspension", zh: "洗涤菌液"},
			{code: "wmt-capsule", en: "Washed microbiota capsule", zh: "菌群胶囊"},
			{code: "fmt-suspension", en: "Manual faecal suspension", zh: "手工粪菌液"},
		}},
	{id: "processing-step", name: "ProcessingStep", title: "Processing step", titleZh: "制备步骤",
		description: "A step in making a microbiota product from a donation.",
		concepts: []concept{
			{code: "microfiltration", en: "Microfiltration", zh: "微滤"},
			{code: "centrifuge-wash", en: "Centrifugation and wash", zh: "离心洗涤"},
			{code: "resuspension", en: "Resuspension", zh: "重悬"},
			{code: "freeze", en: "Freeze", zh: "冻存"},
			{code: "thaw", en: "Thaw", zh: "复温"},
		}},
	{id: "relatedness", name: "Relatedness", title: "Relatedness to the transplantation", titleZh: "与移植的相关性",
		description: "How likely an adverse event was caused by the transplantation or the product.",
		concepts: []concept{
			{code: "definitely", en: "Definitely related", zh: "肯定有关"},
			{code: "probably", en: "Probably related", zh: "很可能有关"},
			{code: "possibly", en: "Possibly related", zh: "可能有关"},
			{code: "unlikely", en: "Unlikely related", zh: "可能无关"},
			{code: "unrelated", en: "Unrelated", zh: "无关"},
		}},
	{id: "ae-term", name: "AdverseEventTerm", title: "Adverse event term", titleZh: "不良事件术语",
		description: "Adverse events seen after microbiota transplantation.",
		concepts: []concept{
			{code: "fever", en: "Fever", zh: "发热"},
			{code: "diarrhoea", en: "Diarrhoea", zh: "腹泻"},
			{code: "abdominal-pain", en: "Abdominal pain", zh: "腹痛"},
			{code: "bloating", en: "Bloating", zh: "腹胀"},
			{code: "nausea", en: "Nausea", zh: "恶心"},
			{code: "vomiting", en: "Vomiting", zh: "呕吐"},
			{code: "flatulence", en: "Flatulence", zh: "排气增多"},
			{code: "haematochezia", en: "Haematochezia", zh: "便血"},
			{code: "infection", en: "Infection", zh: "感染"},
			{code: "other", en: "Other", zh: "其他"},
		}},
	{id: "efficacy-measure", name: "EfficacyMeasure", title: "Efficacy measure", titleZh: "疗效指标",
		description: "What an efficacy assessment measures.",
		concepts: []concept{
			{code: "clinical-response", en: "Clinical response", zh: "临床应答"},
			{code: "clinical-remission", en: "Clinical remission", zh: "临床缓解"},
			{code: "cdi-cure", en: "C. difficile cure without recurrence at 8 weeks", zh: "艰难梭菌感染治愈"},
			{code: "mayo-score", en: "Mayo score", zh: "Mayo 评分"},
			{code: "partial-mayo", en: "Partial Mayo score", zh: "部分 Mayo 评分"},
			{code: "hbi", en: "Harvey-Bradshaw index", zh: "Harvey-Bradshaw 指数"},
			{code: "ibs-sss", en: "IBS symptom severity score", zh: "肠易激综合征症状严重程度评分"},
			{code: "csbm-per-week", en: "Complete spontaneous bowel movements per week", zh: "每周完全自发排便次数"},
		}},
	{id: "follow-up", name: "FollowUp", title: "Follow-up time point", titleZh: "随访时间点",
		description: "A follow-up visit after a course's last procedure, with its target day and window (concept properties).",
		properties: [][2]string{
			{"target-day", "Days after the course's last procedure when the visit is due"},
			{"window-days", "How many days before or after the target day the visit still counts"},
		},
		concepts: []concept{
			{code: "w1", en: "Week 1", zh: "第1周", props: []prop{{"target-day", 7}, {"window-days", 3}}},
			{code: "w4", en: "Week 4", zh: "第4周", props: []prop{{"target-day", 28}, {"window-days", 3}}},
			{code: "w8", en: "Week 8", zh: "第8周", props: []prop{{"target-day", 56}, {"window-days", 7}}},
			{code: "w12", en: "Week 12", zh: "第12周", props: []prop{{"target-day", 84}, {"window-days", 7}}},
			{code: "m6", en: "Month 6", zh: "第6个月", props: []prop{{"target-day", 182}, {"window-days", 30}}},
			{code: "m12", en: "Month 12", zh: "第12个月", props: []prop{{"target-day", 365}, {"window-days", 30}}},
			{code: "m24", en: "Month 24", zh: "第24个月", props: []prop{{"target-day", 730}, {"window-days", 30}}},
		}},
	{id: "consultation", name: "Consultation", title: "Consultation request", titleZh: "会诊申请",
		description: "What a consultation task asks for.",
		concepts: []concept{
			{code: "expert-consultation", en: "Expert consultation", zh: "专家会诊"},
			{code: "free-wmt-application", en: "Application for free WMT", zh: "免费WMT申请"},
		}},
	{id: "other-indication", name: "OtherIndication", title: "Other indications", titleZh: "其他适应证",
		description: "Local codes for indications not listed in ICD-10 terms of the indication value set.",
		concepts: []concept{
			{code: "radiation-enteritis", en: "Radiation enteritis", zh: "放射性肠炎"},
			{code: "hepatic-encephalopathy", en: "Hepatic encephalopathy", zh: "肝性脑病"},
			{code: "autism", en: "Autism spectrum disorder", zh: "孤独症谱系障碍"},
			{code: "other", en: "Other indication", zh: "其他适应证"},
		}},
	{id: "research-relatedness", name: "ResearchRelatedness", title: "Clinical research relatedness", titleZh: "临床研究相关性",
		description: "The four relatedness levels of clinical research adverse-event reporting.",
		concepts: []concept{
			{code: "related", en: "Related", zh: "相关"},
			{code: "possibly-related", en: "Possibly Related", zh: "可能相关"},
			{code: "unlikely-related", en: "Unlikely Related", zh: "不太可能相关"},
			{code: "not-related", en: "Not Related", zh: "不相关"},
		}},
}

// indications are the ICD-10 codes of ValueSet indication.
var indications = []concept{
	{code: "A04.7", en: "Enterocolitis due to Clostridium difficile", zh: "艰难梭菌性小肠结肠炎"},
	{code: "K51", en: "Ulcerative colitis", zh: "溃疡性结肠炎"},
	{code: "K50", en: "Crohn's disease", zh: "克罗恩病"},
	{code: "K58", en: "Irritable bowel syndrome", zh: "肠易激综合征"},
	{code: "K59.0", en: "Constipation", zh: "便秘"},
}

// mapping is one ConceptMap: from our relatedness to another code system.
type mapping struct {
	id, name, title, target, targetVS string
	// rows: source code, target code ("" unmatched), target display, equivalence
	rows [][4]string
}

var conceptMaps = []mapping{
	{id: "relatedness-to-who-umc", name: "RelatednessToWhoUmc", title: "Relatedness to WHO-UMC causality",
		target: r4Causality, targetVS: "http://hl7.org/fhir/ValueSet/adverse-event-causality-assess",
		rows: [][4]string{
			{"definitely", "Certain", "Certain", "equivalent"},
			{"probably", "Probably-Likely", "Probably/Likely", "equivalent"},
			{"possibly", "Possible", "Possible", "equivalent"},
			{"unlikely", "Unlikely", "Unlikely", "equivalent"},
			{"unrelated", "", "", "unmatched"},
		}},
	{id: "relatedness-to-research", name: "RelatednessToResearch", title: "Relatedness to clinical research relatedness",
		target: csURL("research-relatedness"), targetVS: vsURL("research-relatedness"),
		rows: [][4]string{
			{"definitely", "related", "Related", "wider"},
			{"probably", "related", "Related", "wider"},
			{"possibly", "possibly-related", "Possibly Related", "equivalent"},
			{"unlikely", "unlikely-related", "Unlikely Related", "equivalent"},
			{"unrelated", "not-related", "Not Related", "equivalent"},
		}},
}

// extension is one extension definition: a single value of one type.
type extension struct {
	id, name, title, description string
	valueType                    string // R4 type code
	targetProfiles               []string
	valueSet                     string // required binding of a code value
	pattern                      map[string]any
	contexts                     []string
	constraint                   *constraint
}

type constraint struct {
	key, human, expression string
}

var extensions = []extension{
	{id: "donor-status", name: "DonorStatus", title: "Donor status", description: "The donor's current standing (candidate, qualified, suspended, excluded).",
		valueType: "code", valueSet: vsURL("donor-status"), contexts: []string{"Patient"}},
	{id: "financial-hardship", name: "FinancialHardship", title: "Financial hardship", description: "Whether the recipient's family is in financial hardship (for free WMT).",
		valueType: "boolean", contexts: []string{"Patient"}},
	{id: "release-status", name: "ReleaseStatus", title: "Release status", description: "The product lot's release status.",
		valueType: "code", valueSet: vsURL("release-status"), contexts: []string{"Specimen"}},
	{id: "status-date", name: "StatusDate", title: "Status date", description: "When the current release status took effect, in business time.",
		valueType: "dateTime", contexts: []string{"Specimen"}},
	{id: "expiry", name: "Expiry", title: "Expiry", description: "When the product lot expires.",
		valueType: "dateTime", contexts: []string{"Specimen"}},
	{id: "route", name: "Route", title: "Delivery route", description: "How the microbiota was delivered.",
		valueType: "code", valueSet: vsURL("route"), contexts: []string{"Procedure"}},
	{id: "product-lot", name: "ProductLot", title: "Product lot", description: "The microbiota product lot used (on a Procedure) or suspected (on an AdverseEvent.suspectEntity).",
		valueType: "Reference", targetProfiles: []string{sdURL("cmts-microbiota-product")}, contexts: []string{"Procedure", "AdverseEvent.suspectEntity"}},
	{id: "dose", name: "Dose", title: "Dose", description: "The dose given, in units (one unit: 10 cm3 of microbiota precipitate).",
		valueType: "Quantity", pattern: map[string]any{"patternQuantity": map[string]any{"unit": "U"}}, contexts: []string{"Procedure"}},
	{id: "course", name: "Course", title: "Course number", description: "Which treatment course this procedure belongs to (1, 2, ...).",
		valueType: "positiveInt", contexts: []string{"Procedure"}},
	{id: "session", name: "Session", title: "Session number", description: "Which session of its course this procedure is (1, 2, ...).",
		valueType: "positiveInt", contexts: []string{"Procedure"}},
	{id: "follow-up", name: "FollowUp", title: "Follow-up time point", description: "The follow-up time point an efficacy assessment belongs to.",
		valueType: "code", valueSet: vsURL("follow-up"), contexts: []string{"Observation"}},
	{id: "ctcae-grade", name: "CtcaeGrade", title: "CTCAE grade", description: "The CTCAE v5 grade of the adverse event (1-5).",
		valueType: "integer", contexts: []string{"AdverseEvent"},
		constraint: &constraint{"cmts-ctcae-1", "The CTCAE grade is 1 to 5", "value.exists() implies (value >= 1 and value <= 5)"}},
}

// diff is one differential element of a profile.
type diff struct {
	path        string
	slice       string // slice name (with a pattern for identifiers, or an extension id)
	min         *int
	max         string
	types       []elemType
	binding     *binding
	fixed       map[string]any // e.g. {"fixedCode": "actual"}
	pattern     map[string]any // e.g. {"patternIdentifier": {...}}
	short       string
	mustSupport bool
	constraints []constraint
}

type elemType struct {
	code           string
	profiles       []string
	targetProfiles []string
}

type binding struct {
	strength, valueSet, description string
}

type profile struct {
	id, name, title, titleZh, base, description string
	diffs                                       []diff
}

func n(i int) *int { return &i }

func ref(profiles ...string) []elemType {
	var tp []string
	for _, p := range profiles {
		if p[0] >= 'A' && p[0] <= 'Z' {
			tp = append(tp, "http://hl7.org/fhir/StructureDefinition/"+p)
		} else {
			tp = append(tp, sdURL(p))
		}
	}
	return []elemType{{code: "Reference", targetProfiles: tp}}
}

func ext(path, id string, min int, max string) diff {
	return diff{path: path + ".extension", slice: id, min: n(min), max: max,
		types: []elemType{{code: "Extension", profiles: []string{sdURL(id)}}}, mustSupport: true}
}

func bound(strength, vs string) *binding { return &binding{strength: strength, valueSet: vs} }

func identifierSlice(path, slice, system string, min int) diff {
	return diff{path: path, slice: slice, min: n(min), max: "*",
		pattern: map[string]any{"patternIdentifier": map[string]any{"system": system}}, mustSupport: true}
}

var profiles = []profile{
	{id: "cmts-donor", name: "CmtsDonor", title: "Stool donor", titleZh: "粪菌供体", base: "Patient",
		description: "A stool donor, pseudonymous: the donor code identifies them outside the collecting bank.",
		diffs: []diff{
			ext("Patient", "donor-status", 1, "1"),
			{path: "Patient.identifier", min: n(1)},
			identifierSlice("Patient.identifier", "donorCode", sidDonor, 1),
		}},
	{id: "cmts-recipient", name: "CmtsRecipient", title: "Transplant recipient", titleZh: "移植受者", base: "Patient",
		description: "A patient treated with microbiota transplantation.",
		diffs: []diff{
			ext("Patient", "financial-hardship", 0, "1"),
			{path: "Patient.identifier", min: n(1)},
			identifierSlice("Patient.identifier", "recipientCode", sidRecipient, 1),
			{path: "Patient.gender", min: n(1), mustSupport: true},
			{path: "Patient.birthDate", min: n(1), mustSupport: true},
		}},
	{id: "cmts-stool-donation", name: "CmtsStoolDonation", title: "Stool donation", titleZh: "粪便捐献", base: "Specimen",
		description: "One stool donation from a donor.",
		diffs: []diff{
			{path: "Specimen.accessionIdentifier", min: n(1), pattern: map[string]any{"patternIdentifier": map[string]any{"system": sidDonation}}, mustSupport: true},
			{path: "Specimen.subject", min: n(1), types: ref("cmts-donor"), mustSupport: true},
			{path: "Specimen.collection", min: n(1)},
			{path: "Specimen.collection.collected[x]", min: n(1), types: []elemType{{code: "dateTime"}}, mustSupport: true},
		}},
	{id: "cmts-microbiota-product", name: "CmtsMicrobiotaProduct", title: "Microbiota product lot", titleZh: "菌群制剂批次", base: "Specimen",
		description: "A washed microbiota suspension or capsule lot made from one or more donations.",
		diffs: []diff{
			ext("Specimen", "release-status", 1, "1"),
			ext("Specimen", "status-date", 1, "1"),
			ext("Specimen", "expiry", 0, "1"),
			{path: "Specimen.identifier", min: n(1)},
			identifierSlice("Specimen.identifier", "productLot", sidLot, 1),
			{path: "Specimen.type", min: n(1), binding: bound("required", vsURL("product-type")), mustSupport: true},
			{path: "Specimen.subject", min: n(1), types: ref("cmts-donor"), mustSupport: true},
			{path: "Specimen.parent", min: n(1), types: ref("cmts-stool-donation"), mustSupport: true},
			{path: "Specimen.processing", min: n(1), mustSupport: true},
			{path: "Specimen.processing.procedure", min: n(1), binding: bound("required", vsURL("processing-step"))},
		}},
	{id: "cmts-donor-screening", name: "CmtsDonorScreening", title: "Donor screening test", titleZh: "供体筛查", base: "Observation",
		description: "A donor screening test (blood or stool) and its result.",
		diffs: []diff{
			{path: "Observation.subject", min: n(1), types: ref("cmts-donor"), mustSupport: true},
			{path: "Observation.effective[x]", min: n(1), types: []elemType{{code: "dateTime"}}, mustSupport: true},
			{path: "Observation.interpretation", min: n(1), mustSupport: true},
		}},
	{id: "cmts-product-qc", name: "CmtsProductQc", title: "Product quality control", titleZh: "制剂质控", base: "Observation",
		description: "A laboratory quality-control result on a product lot or a donation.",
		diffs: []diff{
			{path: "Observation", constraints: []constraint{{"cmts-qc-1", "A QC result has a value or an interpretation", "value.exists() or interpretation.exists()"}}},
			{path: "Observation.specimen", min: n(1), types: ref("cmts-microbiota-product", "cmts-stool-donation"), mustSupport: true},
		}},
	{id: "cmts-pretreatment-risk", name: "CmtsPretreatmentRisk", title: "Pre-treatment risk assessment", titleZh: "移植前风险评估", base: "RiskAssessment",
		description: "The risk assessment before a transplantation.",
		diffs: []diff{
			{path: "RiskAssessment.subject", types: ref("cmts-recipient"), mustSupport: true},
			{path: "RiskAssessment.occurrence[x]", min: n(1), types: []elemType{{code: "dateTime"}}, mustSupport: true},
		}},
	{id: "cmts-indication", name: "CmtsIndication", title: "Indication", titleZh: "适应证", base: "Condition",
		description: "The disease treated with microbiota transplantation.",
		diffs: []diff{
			{path: "Condition.code", min: n(1), binding: bound("extensible", vsURL("indication")), mustSupport: true},
			{path: "Condition.subject", types: ref("cmts-recipient"), mustSupport: true},
		}},
	{id: "cmts-wmt-procedure", name: "CmtsWmtProcedure", title: "Microbiota transplantation procedure", titleZh: "菌群移植操作", base: "Procedure",
		description: "One transplantation session: route, dose, course and session, the product lots used.",
		diffs: []diff{
			ext("Procedure", "route", 1, "1"),
			ext("Procedure", "product-lot", 1, "*"),
			ext("Procedure", "dose", 1, "1"),
			ext("Procedure", "course", 1, "1"),
			ext("Procedure", "session", 1, "1"),
			{path: "Procedure.code", min: n(1), binding: bound("required", vsURL("transplant-type")), mustSupport: true},
			{path: "Procedure.subject", types: ref("cmts-recipient"), mustSupport: true},
			{path: "Procedure.performed[x]", min: n(1), types: []elemType{{code: "dateTime"}}, mustSupport: true},
			{path: "Procedure.reasonReference", min: n(1), types: ref("cmts-indication"), mustSupport: true},
		}},
	{id: "cmts-efficacy", name: "CmtsEfficacy", title: "Efficacy assessment", titleZh: "疗效评估", base: "Observation",
		description: "An efficacy assessment at a follow-up time point.",
		diffs: []diff{
			ext("Observation", "follow-up", 1, "1"),
			{path: "Observation.code", binding: bound("required", vsURL("efficacy-measure")), mustSupport: true},
			{path: "Observation.subject", min: n(1), types: ref("cmts-recipient"), mustSupport: true},
			{path: "Observation.focus", min: n(1), types: ref("cmts-wmt-procedure"), mustSupport: true},
			{path: "Observation.effective[x]", min: n(1), types: []elemType{{code: "dateTime"}}, mustSupport: true},
			{path: "Observation.value[x]", min: n(1), mustSupport: true},
		}},
	{id: "cmts-adverse-event", name: "CmtsAdverseEvent", title: "Adverse event after WMT", titleZh: "移植后不良事件", base: "AdverseEvent",
		description: "An adverse event after a transplantation, with its seriousness, severity, CTCAE grade, outcome and relatedness.",
		diffs: []diff{
			ext("AdverseEvent", "ctcae-grade", 1, "1"),
			{path: "AdverseEvent.actuality", fixed: map[string]any{"fixedCode": "actual"}},
			{path: "AdverseEvent.event", min: n(1), mustSupport: true},
			{path: "AdverseEvent.event.coding", min: n(1)},
			{path: "AdverseEvent.event.coding", slice: "aeTerm", min: n(1), max: "1",
				pattern: map[string]any{"patternCoding": map[string]any{"system": csURL("ae-term")}},
				binding: bound("required", vsURL("ae-term"))},
			{path: "AdverseEvent.subject", types: ref("cmts-recipient"), mustSupport: true},
			{path: "AdverseEvent.date", min: n(1), short: "Onset of the event", mustSupport: true},
			{path: "AdverseEvent.seriousness", min: n(1), mustSupport: true},
			{path: "AdverseEvent.severity", min: n(1), mustSupport: true},
			{path: "AdverseEvent.outcome", min: n(1), mustSupport: true},
			{path: "AdverseEvent.suspectEntity", min: n(1), mustSupport: true},
			{path: "AdverseEvent.suspectEntity.instance", types: ref("cmts-wmt-procedure")},
			{path: "AdverseEvent.suspectEntity.causality", min: n(1)},
			{path: "AdverseEvent.suspectEntity.causality.assessment", min: n(1), binding: bound("required", vsURL("relatedness"))},
		}},
	{id: "cmts-consultation", name: "CmtsConsultation", title: "Consultation request", titleZh: "会诊申请", base: "Task",
		description: "A request to an expert centre: an expert consultation or an application for free WMT.",
		diffs: []diff{
			{path: "Task.code", min: n(1), binding: bound("required", vsURL("consultation")), mustSupport: true},
			{path: "Task.intent", fixed: map[string]any{"fixedCode": "order"}},
			{path: "Task.for", min: n(1), types: ref("cmts-recipient"), mustSupport: true},
			{path: "Task.owner", min: n(1), types: ref("Organization"), mustSupport: true},
			{path: "Task.input", min: n(1), mustSupport: true},
		}},
}

// searchParam is one custom search parameter of wmt-ig.md.
type searchParam struct {
	base, code, typ, expression, description string
	target                                   []string
}

var searchParams = []searchParam{
	{"Procedure", "product-lot", "reference", "Procedure.extension('" + base + "/StructureDefinition/product-lot').value", "The product lot used", []string{"Specimen"}},
	{"Procedure", "route", "token", "Procedure.extension('" + base + "/StructureDefinition/route').value", "The delivery route", nil},
	{"Procedure", "course", "number", "Procedure.extension('" + base + "/StructureDefinition/course').value", "The course number", nil},
	{"AdverseEvent", "relatedness", "token", "AdverseEvent.suspectEntity.causality.assessment", "Relatedness to the suspect procedure", nil},
	{"AdverseEvent", "ctcae-grade", "number", "AdverseEvent.extension('" + base + "/StructureDefinition/ctcae-grade').value", "The CTCAE grade", nil},
	{"Specimen", "release-status", "token", "Specimen.extension('" + base + "/StructureDefinition/release-status').value", "The lot's release status", nil},
	{"Observation", "follow-up", "token", "Observation.extension('" + base + "/StructureDefinition/follow-up').value", "The follow-up time point", nil},
}
