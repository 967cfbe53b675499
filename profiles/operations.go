package profiles

import (
	"context"
	"encoding/json"
	"net/url"
	"strconv"
	"strings"

	"github.com/fmtbank/cmts/fhir"
)

// Operation implements fhir.Conformance: CodeSystem $lookup, ValueSet
// $validate-code and $expand, ConceptMap $translate, over the loaded
// terminology (the guide's and the R4 subset).
func (s *Service) Operation(_ context.Context, typ, id, op string, params url.Values) ([]byte, bool, error) {
	var (
		out any
		err error
	)
	switch typ + "/" + op {
	case "CodeSystem/$lookup":
		out, err = s.lookup(id, params)
	case "ValueSet/$validate-code":
		out, err = s.validateCode(id, params)
	case "ValueSet/$expand":
		out, err = s.expand(id, params)
	case "ConceptMap/$translate":
		out, err = s.translate(id, params)
	default:
		return nil, false, nil
	}
	if err != nil {
		return nil, true, err
	}
	b, err := json.Marshal(out)
	return b, true, err
}

// canonicalOf is the url of the instance id of typ, or the url parameter.
func (s *Service) canonicalOf(typ, id string, params url.Values, param string) (string, error) {
	if id != "" {
		b, ok := s.Read(typ, id)
		if !ok {
			return "", fhir.NotFound(typ, id)
		}
		r, err := describe(b)
		if err != nil {
			return "", err
		}
		return r.URL, nil
	}
	u := strings.SplitN(params.Get(param), "|", 2)[0]
	if u == "" {
		return "", fhir.Invalid(fhir.IssueRequired, "Parameter '"+param+"' is required", "缺少参数 '"+param+"'")
	}
	return u, nil
}

// display picks the concept's display in lang (a BCP-47 tag; "zh" matches
// "zh-CN"), else its own display.
func display(c *Concept, lang string) string {
	if lang == "" || strings.HasPrefix(strings.ToLower(lang), "en") {
		return c.Display
	}
	for tag, v := range c.Displays {
		if strings.EqualFold(tag, lang) {
			return v
		}
	}
	for tag, v := range c.Displays {
		if strings.HasPrefix(strings.ToLower(tag), strings.ToLower(strings.SplitN(lang, "-", 2)[0])) {
			return v
		}
	}
	return c.Display
}

type param map[string]any

func parameters(ps ...param) map[string]any {
	arr := make([]any, len(ps))
	for i, p := range ps {
		arr[i] = map[string]any(p)
	}
	return map[string]any{"resourceType": "Parameters", "parameter": arr}
}

// codeParams reads system and code from system/code or a coding parameter
// ("system|code" in a query string).
func codeParams(params url.Values) (system, code string) {
	system, code = params.Get("system"), params.Get("code")
	if c := params.Get("coding"); c != "" && code == "" {
		system, code, _ = strings.Cut(c, "|")
	}
	return system, code
}

func (s *Service) lookup(id string, params url.Values) (any, error) {
	system, code := codeParams(params)
	if id != "" {
		u, err := s.canonicalOf("CodeSystem", id, params, "system")
		if err != nil {
			return nil, err
		}
		system = u
	}
	if system == "" || code == "" {
		return nil, fhir.Invalid(fhir.IssueRequired, "$lookup needs system and code", "$lookup 需要 system 与 code 参数")
	}
	t := s.defs.Terminology
	c := t.Lookup(system, code)
	if c == nil {
		return nil, fhir.NotFound("CodeSystem", system+"#"+code).WithDiagnostics("unknown code")
	}
	lang := params.Get("displayLanguage")
	ps := []param{
		{"name": "name", "valueString": t.systems[system].name},
		{"name": "display", "valueString": display(c, lang)},
	}
	for _, tag := range sortedKeys(c.Displays) {
		ps = append(ps, param{"name": "designation", "part": []any{
			map[string]any{"name": "language", "valueCode": tag},
			map[string]any{"name": "value", "valueString": c.Displays[tag]},
		}})
	}
	for _, k := range sortedKeys(c.Properties) {
		ps = append(ps, param{"name": "property", "part": []any{
			map[string]any{"name": "code", "valueCode": k},
			propertyValue(c.Properties[k]),
		}})
	}
	if c.Parent != "" {
		ps = append(ps, param{"name": "property", "part": []any{
			map[string]any{"name": "code", "valueCode": "parent"},
			map[string]any{"name": "value", "valueCode": c.Parent},
		}})
	}
	return parameters(ps...), nil
}

func propertyValue(v any) map[string]any {
	switch x := v.(type) {
	case bool:
		return map[string]any{"name": "value", "valueBoolean": x}
	case float64:
		if x == float64(int64(x)) {
			return map[string]any{"name": "value", "valueInteger": int64(x)}
		}
		return map[string]any{"name": "value", "valueDecimal": x}
	case json.Number:
		if i, err := x.Int64(); err == nil {
			return map[string]any{"name": "value", "valueInteger": i}
		}
		return map[string]any{"name": "value", "valueDecimal": x}
	}
	s, _ := v.(string)
	return map[string]any{"name": "value", "valueString": s}
}

func sortedKeys[V any](m map[string]V) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	for i := 1; i < len(out); i++ {
		for j := i; j > 0 && out[j] < out[j-1]; j-- {
			out[j], out[j-1] = out[j-1], out[j]
		}
	}
	return out
}

func (s *Service) expansion(id string, params url.Values) (string, *Expansion, error) {
	u, err := s.canonicalOf("ValueSet", id, params, "url")
	if err != nil {
		return "", nil, err
	}
	exp, ok := s.defs.Terminology.Expand(u)
	if !ok {
		return "", nil, fhir.NotFound("ValueSet", u)
	}
	return u, exp, nil
}

func (s *Service) validateCode(id string, params url.Values) (any, error) {
	u, exp, err := s.expansion(id, params)
	if err != nil {
		return nil, err
	}
	system, code := codeParams(params)
	if code == "" {
		return nil, fhir.Invalid(fhir.IssueRequired, "$validate-code needs code (and system) or coding", "$validate-code 需要 code（及 system）或 coding 参数")
	}
	in, known := exp.Has(system, code)
	if !known {
		return nil, fhir.NotSupported("The value set "+u+" draws on a code system this server cannot enumerate", "值集 "+u+" 引用了本服务器无法枚举的代码系统")
	}
	if !in {
		return parameters(
			param{"name": "result", "valueBoolean": false},
			param{"name": "message", "valueString": "The code " + strings.TrimPrefix(system+"#"+code, "#") + " is not in the value set " + u},
		), nil
	}
	c := exp.find(system, code)
	out := []param{{"name": "result", "valueBoolean": true}, {"name": "display", "valueString": display(c, params.Get("displayLanguage"))}}
	if d := params.Get("display"); d != "" && d != c.Display && !containsValue(c.Displays, d) {
		out[0] = param{"name": "result", "valueBoolean": false}
		out = append(out, param{"name": "message", "valueString": "The display '" + d + "' is not a display of " + code})
	}
	return parameters(out...), nil
}

func containsValue(m map[string]string, v string) bool {
	for _, x := range m {
		if x == v {
			return true
		}
	}
	return false
}

// find returns the concept of the expansion (system "" matches any).
func (e *Expansion) find(system, code string) *Concept {
	for _, c := range e.Concepts {
		if c.Code == code && (system == "" || c.System == system) {
			return c
		}
	}
	return nil
}

func (s *Service) expand(id string, params url.Values) (any, error) {
	u, exp, err := s.expansion(id, params)
	if err != nil {
		return nil, err
	}
	if !exp.Complete() {
		return nil, fhir.NotSupported("The value set "+u+" draws on a code system this server cannot enumerate", "值集 "+u+" 引用了本服务器无法枚举的代码系统")
	}
	lang := params.Get("displayLanguage")
	filter := strings.ToLower(params.Get("filter"))
	var hits []any
	for _, c := range exp.Concepts {
		d := display(c, lang)
		if filter != "" && !strings.Contains(strings.ToLower(c.Code), filter) && !strings.Contains(strings.ToLower(d), filter) &&
			!strings.Contains(strings.ToLower(c.Display), filter) && !containsSubstring(c.Displays, filter) {
			continue
		}
		e := map[string]any{"system": c.System, "code": c.Code}
		if d != "" {
			e["display"] = d
		}
		hits = append(hits, e)
	}
	total := len(hits)
	offset, err := intParam(params, "offset", 0)
	if err != nil {
		return nil, err
	}
	count, err := intParam(params, "count", total)
	if err != nil {
		return nil, err
	}
	if offset > len(hits) {
		offset = len(hits)
	}
	hits = hits[offset:]
	if count < len(hits) {
		hits = hits[:count]
	}
	expansion := map[string]any{"identifier": "urn:cmts:expansion:" + u, "timestamp": "2026-11-30T00:00:00Z", "total": total, "offset": offset}
	if lang != "" || filter != "" {
		var ps []any
		if filter != "" {
			ps = append(ps, map[string]any{"name": "filter", "valueString": params.Get("filter")})
		}
		if lang != "" {
			ps = append(ps, map[string]any{"name": "displayLanguage", "valueCode": lang})
		}
		expansion["parameter"] = ps
	}
	if len(hits) > 0 {
		expansion["contains"] = hits
	}
	vs := map[string]any{"resourceType": "ValueSet", "url": u, "status": "active", "expansion": expansion}
	if id != "" {
		vs["id"] = id
	}
	return vs, nil
}

func containsSubstring(m map[string]string, sub string) bool {
	for _, v := range m {
		if strings.Contains(strings.ToLower(v), sub) {
			return true
		}
	}
	return false
}

func intParam(params url.Values, name string, def int) (int, error) {
	v := params.Get(name)
	if v == "" {
		return def, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 0 {
		return 0, fhir.Invalid(fhir.IssueValue, "Parameter '"+name+"' must be a whole number", "参数 '"+name+"' 必须是非负整数")
	}
	return n, nil
}

func (s *Service) translate(id string, params url.Values) (any, error) {
	system, code := codeParams(params)
	if code == "" || system == "" {
		return nil, fhir.Invalid(fhir.IssueRequired, "$translate needs system and code (or coding)", "$translate 需要 system 与 code（或 coding）参数")
	}
	t := s.defs.Terminology
	var maps []*conceptMap
	if id != "" {
		u, err := s.canonicalOf("ConceptMap", id, params, "url")
		if err != nil {
			return nil, err
		}
		if m := t.maps[u]; m != nil {
			maps = append(maps, m)
		}
	} else if u := params.Get("url"); u != "" {
		if m := t.maps[u]; m != nil {
			maps = append(maps, m)
		}
	} else {
		for _, u := range sortedKeys(t.maps) {
			maps = append(maps, t.maps[u])
		}
	}
	targetSystem := params.Get("targetsystem")
	target := params.Get("target")
	var matches []param
	for _, m := range maps {
		if target != "" && m.target != target {
			continue
		}
		for _, g := range m.groups {
			if g.Source != system || targetSystem != "" && g.Target != targetSystem {
				continue
			}
			for _, e := range g.Element {
				if e.Code != code {
					continue
				}
				for _, tg := range e.Target {
					part := []any{map[string]any{"name": "equivalence", "valueCode": tg.Equivalence}}
					if tg.Code != "" {
						coding := map[string]any{"system": g.Target, "code": tg.Code}
						if tg.Display != "" {
							coding["display"] = tg.Display
						}
						part = append(part, map[string]any{"name": "concept", "valueCoding": coding})
					}
					part = append(part, map[string]any{"name": "source", "valueUri": m.url})
					matches = append(matches, param{"name": "match", "part": part})
				}
			}
		}
	}
	result := false
	for _, mt := range matches {
		for _, p := range mt["part"].([]any) {
			if p.(map[string]any)["name"] == "equivalence" {
				eq := p.(map[string]any)["valueCode"]
				if eq != "unmatched" && eq != "disjoint" {
					result = true
				}
			}
		}
	}
	msg := "No mapping found"
	if result {
		msg = "Mappings found"
	}
	out := append([]param{{"name": "result", "valueBoolean": result}, {"name": "message", "valueString": msg}}, matches...)
	return parameters(out...), nil
}
