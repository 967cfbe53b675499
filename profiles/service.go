package profiles

import (
	"bytes"
	"context"
	"errors"
	"net/url"
	"strconv"
	"strings"

	"github.com/fmtbank/cmts/fhir"
	"github.com/fmtbank/cmts/store"
)

// requiredTypes are the resource types --require-profiles makes claim one
// of the guide's profiles.
var requiredTypes = map[string]bool{"Patient": true, "Procedure": true, "Specimen": true, "AdverseEvent": true}

// Service is the guide as the server uses it: it validates writes
// (fhir.Validator) and serves the guide's conformance resources and
// terminology (fhir.Conformance).
type Service struct {
	defs    *Definitions
	store   store.Store
	require bool
	guide   []Resource
	byType  map[string][]Resource
}

var (
	_ fhir.Validator   = (*Service)(nil)
	_ fhir.Conformance = (*Service)(nil)
)

// NewService builds the service over defs (normally Embedded()) and the
// store references are resolved in (within the writer's tenant). With
// requireProfiles, Patient, Procedure, Specimen and AdverseEvent must claim
// one of the guide's profiles.
func NewService(defs *Definitions, st store.Store, requireProfiles bool) (*Service, error) {
	if defs == nil || st == nil {
		return nil, errors.New("profiles: NewService needs definitions and a store")
	}
	guide, err := Guide()
	if err != nil {
		return nil, err
	}
	s := &Service{defs: defs, store: st, require: requireProfiles, guide: guide, byType: map[string][]Resource{}}
	for _, r := range guide {
		s.byType[r.Type] = append(s.byType[r.Type], r)
	}
	return s, nil
}

// storeResolver reads references with one access.
type storeResolver struct {
	st     store.Store
	access store.Access
}

func (r storeResolver) Resolve(ctx context.Context, typ, id string) (map[string]any, error) {
	v, err := r.st.Read(ctx, r.access, typ, id)
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	if v.Deleted || len(v.Resource) == 0 {
		return nil, nil
	}
	return Decode(v.Resource)
}

func (s *Service) validator(p *fhir.Principal) *Validator {
	var r Resolver
	if p != nil {
		r = storeResolver{st: s.store, access: store.Tenant(p.Tenant)}
	}
	return NewValidator(s.defs, r)
}

// claimed lists meta.profile.
func claimed(res map[string]any) []string {
	meta, _ := res["meta"].(map[string]any)
	ps, _ := meta["profile"].([]any)
	var out []string
	for _, p := range ps {
		if s, ok := p.(string); ok {
			out = append(out, s)
		}
	}
	return out
}

// mayCheck reports whether CheckWrite may find anything in body: whether
// it may claim a profile, or is of a type with a rule of its own or one
// that must claim a profile. Most writes are none of these, and decoding
// each to find that out was a tenth of the work of building a write
// beside the R4 parse (an import's every resource). A key of the claim
// written with an escape (profil\u0065) holds \u00 for the ASCII letter.
func (s *Service) mayCheck(typ string, body []byte) bool {
	return typ == "Specimen" || (s.require && requiredTypes[typ]) ||
		bytes.Contains(body, []byte(`"profile"`)) || bytes.Contains(body, []byte(`\u00`))
}

// CheckWrite implements fhir.Validator.
func (s *Service) CheckWrite(ctx context.Context, p *fhir.Principal, typ string, body []byte) ([]fhir.Issue, error) {
	if !s.mayCheck(typ, body) {
		return nil, nil
	}
	res, err := Decode(body)
	if err != nil {
		return nil, err
	}
	v := s.validator(p)
	var issues []fhir.Issue
	ours := false
	for _, profile := range claimed(res) {
		url := strings.SplitN(profile, "|", 2)[0]
		if _, known := s.defs.Profile(url); !known {
			issues = append(issues, fhir.Issue{Severity: "warning", Code: fhir.IssueNotSupported,
				Message:    fhir.Message{EN: "Profile " + profile + " is not known here; the resource was not checked against it", ZH: "本服务器不认识 profile " + profile + "，未按其校验"},
				Expression: []string{typ + ".meta.profile"}})
			continue
		}
		if strings.HasPrefix(url, Canonical+"/") {
			ours = true
		}
		found, err := v.Validate(ctx, res, url)
		if err != nil {
			return nil, err
		}
		issues = append(issues, found...)
	}
	if typ == "Procedure" && p != nil && claimsProfile(res, Canonical+"/StructureDefinition/cmts-wmt-procedure") {
		lots, err := s.lotsReleased(ctx, p.Tenant, res)
		if err != nil {
			return nil, err
		}
		issues = append(issues, lots...)
	}
	if typ == "Specimen" && p != nil {
		back, err := s.lotGoesBack(ctx, p.Tenant, res)
		if err != nil {
			return nil, err
		}
		issues = append(issues, back...)
	}
	if typ == "Task" && p != nil && claimsProfile(res, Canonical+"/StructureDefinition/cmts-consultation") {
		steps, err := s.consultationRules(ctx, p.Tenant, res)
		if err != nil {
			return nil, err
		}
		issues = append(issues, steps...)
	}
	if s.require && requiredTypes[typ] && !ours {
		issues = append(issues, fhir.Issue{Severity: "error", Code: fhir.IssueRequired,
			Message:    fhir.Message{EN: "A " + typ + " must claim one of the WMT profiles in meta.profile", ZH: typ + " 必须在 meta.profile 中声明一个 WMT profile"},
			Expression: []string{typ + ".meta.profile"}})
	}
	return issues, nil
}

// Validate implements fhir.Validator.
func (s *Service) Validate(ctx context.Context, p *fhir.Principal, typ string, body []byte, profile string) ([]fhir.Issue, error) {
	res, err := Decode(body)
	if err != nil {
		return nil, err
	}
	v := s.validator(p)
	if profile != "" {
		return v.Validate(ctx, res, profile)
	}
	var issues []fhir.Issue
	if _, ok := s.defs.byType[typ]; ok {
		found, err := v.Validate(ctx, res, "")
		if err != nil {
			return nil, err
		}
		issues = append(issues, found...)
	}
	claims, err := s.CheckWrite(ctx, p, typ, body)
	if err != nil {
		return nil, err
	}
	return dedupe(append(issues, claims...)), nil
}

// dedupe drops an issue reported twice (by the base definition and by a
// profile on it).
func dedupe(issues []fhir.Issue) []fhir.Issue {
	seen := map[string]bool{}
	out := issues[:0]
	for _, is := range issues {
		k := is.Severity + "\x00" + strings.Join(is.Expression, ",") + "\x00" + is.Message.EN
		if !seen[k] {
			seen[k] = true
			out = append(out, is)
		}
	}
	return out
}

// Serves implements fhir.Conformance.
func (s *Service) Serves(typ string) bool {
	switch typ {
	case "StructureDefinition", "CodeSystem", "ValueSet", "ConceptMap", "SearchParameter", "ImplementationGuide", "Measure",
		"OperationDefinition":
		return true
	}
	return false
}

// Read implements fhir.Conformance.
func (s *Service) Read(typ, id string) ([]byte, bool) {
	for _, r := range s.byType[typ] {
		if r.ID == id {
			return r.JSON, true
		}
	}
	return nil, false
}

// Search implements fhir.Conformance: url, name, type, base and _id, each
// matched exactly (name case-insensitively, as a string parameter's start).
func (s *Service) Search(typ string, params url.Values) ([][]byte, error) {
	var out [][]byte
	for k := range params {
		switch k {
		case "url", "name", "type", "base", "_id", "_count", "_format", "_pretty", "_summary", "_elements":
		default:
			return nil, fhir.Invalid(fhir.IssueNotSupported, "Search parameter '"+k+"' is not supported on "+typ,
				"不支持在 "+typ+" 上使用检索参数 '"+k+"'")
		}
	}
	for _, r := range s.byType[typ] {
		if match(params["url"], func(v string) bool { return strings.SplitN(v, "|", 2)[0] == r.URL }) &&
			match(params["_id"], func(v string) bool { return v == r.ID }) &&
			match(params["name"], func(v string) bool { return strings.HasPrefix(strings.ToLower(r.Name), strings.ToLower(v)) }) &&
			match(params["type"], func(v string) bool { return v == r.DefinedType }) &&
			match(params["base"], func(v string) bool {
				for _, b := range r.Base {
					if b == v || strings.HasSuffix(b, "/"+v) {
						return true
					}
				}
				return false
			}) {
			out = append(out, r.JSON)
		}
	}
	return out, nil
}

// match: every repetition of a parameter must hold, each a comma-separated
// list of alternatives.
func match(values []string, ok func(string) bool) bool {
	for _, v := range values {
		any := false
		for _, alt := range strings.Split(v, ",") {
			any = any || ok(alt)
		}
		if !any {
			return false
		}
	}
	return true
}

// releaseStatus returns a lot's release-status code and the index of its
// extension (-1 if none).
func releaseStatus(res map[string]any) (string, int) {
	exts, _ := res["extension"].([]any)
	for i, x := range exts {
		m, _ := x.(map[string]any)
		if m["url"] == Canonical+"/StructureDefinition/release-status" {
			code, _ := m["valueCode"].(string)
			return code, i
		}
	}
	return "", -1
}

// lotGoesBack is the rule of wmt-ig.md that a recalled or discarded lot
// cannot become released again: it compares the new version with the
// stored one.
func (s *Service) lotGoesBack(ctx context.Context, tenant string, res map[string]any) ([]fhir.Issue, error) {
	now, at := releaseStatus(res)
	id, _ := res["id"].(string)
	if now != "released" || id == "" {
		return nil, nil
	}
	old, err := storeResolver{st: s.store, access: store.Tenant(tenant)}.Resolve(ctx, "Specimen", id)
	if err != nil || old == nil {
		return nil, err
	}
	was, _ := releaseStatus(old)
	if was != "recalled" && was != "discarded" {
		return nil, nil
	}
	return []fhir.Issue{{Severity: "error", Code: fhir.IssueBusinessRule,
		Message: fhir.Message{EN: "Lot Specimen/" + id + " is " + was + " and cannot be released again",
			ZH: "批次 Specimen/" + id + " 已" + map[string]string{"recalled": "召回", "discarded": "销毁"}[was] + "，不能再放行"},
		Expression: []string{"Specimen.extension[" + strconv.Itoa(at) + "].value"}}}, nil
}

func claimsProfile(res map[string]any, url string) bool { return claims(res, []string{url}) }
