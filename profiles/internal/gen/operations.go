package main

// The OperationDefinitions of every operation the server runs (wmt-ig.md,
// "Operations": each an OperationDefinition served under
// /fhir/OperationDefinition), at http://fmtbank.org/fhir/OperationDefinition/{id}.
// Operations that follow a published definition (Bulk Data $export, the R4
// $validate and terminology operations) name it as their base and list the
// parameters this server honours.

// opParam is one parameter of an operation.
type opParam struct {
	name, use, min, max, typ, doc string
	// search is the searchType of a string parameter used as a search
	// value (token, date), "" for none.
	search string
	// parts are the parts of a tuple parameter (typ "").
	parts []opParam
}

// operation is one OperationDefinition.
type operation struct {
	id, code, name, title, titleZh, description string
	resource                                    []string
	system, typ, instance, affectsState         bool
	base                                        string
	params                                      []opParam
}

func in(name, min, max, typ, doc string) opParam {
	return opParam{name: name, use: "in", min: min, max: max, typ: typ, doc: doc}
}

func out(name, min, max, typ, doc string) opParam {
	return opParam{name: name, use: "out", min: min, max: max, typ: typ, doc: doc}
}

// inSearch is an optional string parameter read as a search value (R4
// allows searchType on strings only).
func inSearch(name, search, doc string) opParam {
	return opParam{name: name, use: "in", min: "0", max: "1", typ: "string", doc: doc, search: search}
}

// tuple is an output parameter made of parts.
func tuple(name, min, max, doc string, parts ...opParam) opParam {
	return opParam{name: name, use: "out", min: min, max: max, doc: doc, parts: parts}
}

const (
	bulkDataOp = "http://hl7.org/fhir/uv/bulkdata/OperationDefinition/"
	r4Op       = "http://hl7.org/fhir/OperationDefinition/"
)

// reportFilters are the parameters $ae-report and $efficacy-report share.
var reportFilters = []opParam{
	in("start", "0", "1", "date", "First day of the period: procedures performed on or after it."),
	in("end", "0", "1", "date", "Last day of the period: procedures performed on or before it."),
	inSearch("indication", "token", "Only recipients treated for this indication (ICD-10 code, or a code of CodeSystem other-indication)."),
	inSearch("route", "token", "Only procedures of this route (CodeSystem route)."),
	inSearch("transplant-type", "token", "Only procedures of this transplant type (CodeSystem transplant-type)."),
}

var exportParams = []opParam{
	in("_outputFormat", "0", "1", "string", "application/fhir+ndjson (the default; application/ndjson and ndjson are read as the same)."),
	in("_since", "0", "1", "instant", "Only resources changed after this instant."),
	in("_type", "0", "*", "string", "Comma-separated resource types to export."),
	in("_typeFilter", "0", "*", "string", "Search queries (Type?params) narrowing a type's resources."),
	in("_elements", "0", "*", "string", "Elements to keep (Type.element or element), as _elements in a search."),
}

var operations = []operation{
	{id: "trace", code: "trace", name: "Trace", title: "Look-back and trace-forward", titleZh: "追溯",
		description: "From a product lot or donation (Specimen) or a donor (Patient): every procedure that used its material, every " +
			"recipient and every adverse event after it; from a recipient (Patient): every lot, donation and donor. Answers a " +
			"collection Bundle of what the caller may see; resources of other tenants are de-identified and tagged with their owning " +
			"tenant in meta.source.",
		resource: []string{"Specimen", "Patient"}, instance: true,
		params: []opParam{out("return", "1", "1", "Bundle", "A collection Bundle of the resources reached.")}},
	{id: "recall", code: "recall", name: "Recall", title: "Recall a lot or a donor's lots", titleZh: "召回",
		description: "Every lot affected (the lot and the lots made from it, or every lot of the donor) becomes recalled: a new version " +
			"each, status-date now, the reason in a note, in one transaction. Only the owning stool bank may call it. Answers the " +
			"$trace of what was recalled.",
		resource: []string{"Specimen", "Patient"}, instance: true, affectsState: true,
		params: []opParam{
			in("reason", "1", "1", "string", "Why the material is recalled."),
			in("since", "0", "1", "date", "For a donor: only lots made from donations collected on or after this date."),
			out("return", "1", "1", "Bundle", "The $trace of the recalled lots."),
		}},
	{id: "ae-report", code: "ae-report", name: "AeReport", title: "Adverse-event incidence and relatedness report", titleZh: "不良事件发生率及相关性报告",
		description: "The MeasureReport (type summary) of Measure ae-report: groups patients, courses, procedures and events over the WMT " +
			"procedures performed in the period. Accept: text/csv answers the same figures as CSV. A hospital gets its own data; the " +
			"regulator gets every tenant, counts from 1 to 4 masked.",
		resource: []string{"AdverseEvent"}, typ: true,
		params: append(append([]opParam{}, reportFilters...),
			in("interval", "0", "1", "code", "month, quarter or year: one MeasureReport per interval, in a Bundle."),
			out("return", "1", "1", "Resource", "A MeasureReport, or a collection Bundle of MeasureReports when interval is given.")),
	},
	{id: "efficacy-report", code: "efficacy-report", name: "EfficacyReport", title: "Efficacy report", titleZh: "疗效报告",
		description: "Response and remission rates by indication and follow-up time point: numerator, denominator, and the recipients " +
			"due but not assessed.",
		resource: []string{"Observation"}, typ: true,
		params: append(append([]opParam{}, reportFilters...),
			inSearch("measure", "token", "Only this efficacy measure (CodeSystem efficacy-measure)."),
			out("return", "1", "1", "Resource", "The efficacy report.")),
	},
	{id: "follow-up-due", code: "follow-up-due", name: "FollowUpDue", title: "Follow-up visits due", titleZh: "待随访",
		description: "The recipients whose follow-up window (CodeSystem follow-up) is open or overdue on the date, with the visit missed.",
		resource:    []string{"Patient"}, typ: true,
		params: []opParam{
			in("on", "0", "1", "date", "The date (default: today)."),
			out("return", "1", "1", "Resource", "The recipients due, each with the visit due or missed."),
		}},
	{id: "aid-eligibility", code: "aid-eligibility", name: "AidEligibility", title: "Free WMT eligibility", titleZh: "免费WMT资格",
		description: "Whether a recipient may apply for free WMT: under 16 or over 60 years old on the date, and financial-hardship true.",
		resource:    []string{"Patient"}, instance: true,
		params: []opParam{
			in("on", "0", "1", "date", "The date the age is taken on (default: today)."),
			out("eligible", "1", "1", "boolean", "Whether the recipient may apply."),
			out("reason", "1", "1", "string", "Why, in English and Chinese."),
		}},
	{id: "export", code: "export", name: "Export", title: "Bulk Data export of the system", titleZh: "全量导出",
		description: "FHIR Bulk Data Access (v2) system-level export: an asynchronous job (202 and a status URL) writing NDJSON files " +
			"of every type the caller may read, de-identified as the caller's view is.",
		system: true, base: bulkDataOp + "export", params: exportParams},
	{id: "patient-export", code: "export", name: "PatientExport", title: "Bulk Data export of patients", titleZh: "患者数据导出",
		description: "FHIR Bulk Data Access (v2) Patient-level export: the resources in the compartments of every patient the caller may read.",
		resource:    []string{"Patient"}, typ: true, base: bulkDataOp + "patient-export", params: exportParams},
	{id: "group-export", code: "export", name: "GroupExport", title: "Bulk Data export of a group", titleZh: "患者组数据导出",
		description: "FHIR Bulk Data Access (v2) Group-level export: the resources in the compartments of the group's members.",
		resource:    []string{"Group"}, instance: true, base: bulkDataOp + "group-export", params: exportParams},
	{id: "validate", code: "validate", name: "Validate", title: "Validate a resource", titleZh: "校验资源",
		description: "Checks a resource against the R4 definitions, the profiles it claims (or the one named) and the rules checked on " +
			"write (wmt-ig.md); stores nothing.",
		resource: []string{"Resource"}, typ: true, instance: true, base: r4Op + "Resource-validate",
		params: []opParam{
			in("resource", "0", "1", "Resource", "The resource to check (the body, or a Parameters with it)."),
			in("mode", "0", "1", "code", "create, update or delete."),
			in("profile", "0", "1", "uri", "The profile to check against, instead of those the resource claims."),
			out("return", "1", "1", "OperationOutcome", "Every issue found."),
		}},
	{id: "lookup", code: "lookup", name: "Lookup", title: "Concept look-up", titleZh: "概念查询",
		description: "The display (English, or zh-CN by displayLanguage) and designations of a code of the guide's code systems.",
		resource:    []string{"CodeSystem"}, typ: true, instance: true, base: r4Op + "CodeSystem-lookup",
		params: []opParam{
			in("code", "0", "1", "code", "The code."),
			in("system", "0", "1", "uri", "The code system's url."),
			in("coding", "0", "1", "Coding", "The code as a Coding (system|code in a query string)."),
			in("displayLanguage", "0", "1", "code", "en or zh-CN."),
			out("name", "1", "1", "string", "The code system's name."),
			out("display", "0", "1", "string", "The display in the language asked for."),
			tuple("designation", "0", "*", "Every designation of the concept.",
				out("language", "0", "1", "code", "Its language (zh-CN)."),
				out("value", "1", "1", "string", "The text.")),
		}},
	{id: "validate-code", code: "validate-code", name: "ValidateCode", title: "Code validation", titleZh: "代码校验",
		description: "Whether a code is in a value set of the guide.",
		resource:    []string{"ValueSet"}, typ: true, instance: true, base: r4Op + "ValueSet-validate-code",
		params: []opParam{
			in("url", "0", "1", "uri", "The value set's url."),
			in("code", "0", "1", "code", "The code."),
			in("system", "0", "1", "uri", "The code's system."),
			in("coding", "0", "1", "Coding", "The code as a Coding."),
			in("display", "0", "1", "string", "A display to check."),
			in("displayLanguage", "0", "1", "code", "en or zh-CN."),
			out("result", "1", "1", "boolean", "Whether the code is valid."),
			out("message", "0", "1", "string", "Why not."),
			out("display", "0", "1", "string", "The code's display."),
		}},
	{id: "expand", code: "expand", name: "Expand", title: "Value set expansion", titleZh: "值集展开",
		description: "The codes of a value set of the guide, optionally filtered and paged.",
		resource:    []string{"ValueSet"}, typ: true, instance: true, base: r4Op + "ValueSet-expand",
		params: []opParam{
			in("url", "0", "1", "uri", "The value set's url."),
			in("filter", "0", "1", "string", "Text the codes or displays contain."),
			in("count", "0", "1", "integer", "Page size."),
			in("offset", "0", "1", "integer", "Codes to skip."),
			in("displayLanguage", "0", "1", "code", "en or zh-CN."),
			out("return", "1", "1", "ValueSet", "The expanded value set."),
		}},
	{id: "translate", code: "translate", name: "Translate", title: "Concept translation", titleZh: "概念映射",
		description: "Translates a relatedness code to the R4 causality or the research relatedness value set (the guide's ConceptMaps).",
		resource:    []string{"ConceptMap"}, typ: true, instance: true, base: r4Op + "ConceptMap-translate",
		params: []opParam{
			in("url", "0", "1", "uri", "The concept map's url."),
			in("code", "0", "1", "code", "The code."),
			in("system", "0", "1", "uri", "The code's system."),
			in("coding", "0", "1", "Coding", "The code as a Coding."),
			in("target", "0", "1", "uri", "The target value set."),
			in("targetsystem", "0", "1", "uri", "The target code system."),
			out("result", "1", "1", "boolean", "Whether a match was found."),
			out("message", "0", "1", "string", "Why not."),
			tuple("match", "0", "*", "Each match.",
				out("equivalence", "0", "1", "code", "How the target relates to the code."),
				out("concept", "0", "1", "Coding", "The target code.")),
		}},
}

// buildOperation makes the OperationDefinition of op.
func buildOperation(op operation) obj {
	o := header("OperationDefinition", op.id, base+"/OperationDefinition/"+op.id, op.name, op.title, op.description)
	o = titleZh(o, op.titleZh)
	o = append(o, field{"kind", "operation"}, field{"affectsState", op.affectsState}, field{"code", op.code})
	if op.base != "" {
		o = append(o, field{"base", op.base})
	}
	if len(op.resource) > 0 {
		o = append(o, field{"resource", op.resource})
	}
	o = append(o, field{"system", op.system}, field{"type", op.typ}, field{"instance", op.instance})
	if ps := opParams(op.params); len(ps) > 0 {
		o = append(o, field{"parameter", ps})
	}
	return o
}

// opParams are OperationDefinition.parameter (or .part) elements.
func opParams(params []opParam) []any {
	var ps []any
	for _, p := range params {
		po := obj{{"name", p.name}, {"use", p.use}, {"min", atoi(p.min)}, {"max", p.max}, {"documentation", p.doc}}
		if p.typ != "" {
			po = append(po, field{"type", p.typ})
		}
		if p.search != "" {
			po = append(po, field{"searchType", p.search})
		}
		if len(p.parts) > 0 {
			po = append(po, field{"part", opParams(p.parts)})
		}
		ps = append(ps, po)
	}
	return ps
}

func atoi(s string) int {
	n := 0
	for _, c := range s {
		n = n*10 + int(c-'0')
	}
	return n
}
