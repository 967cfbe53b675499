package search

import (
	"errors"
	"math"
	"net/url"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/fmtbank/cmts/fhir"
	"github.com/fmtbank/cmts/store"
)

// Search is a parsed search request.
type Search struct {
	// Type is the resource type searched ("" for a whole-system search).
	Type string
	// Filter selects the matches; nil matches everything.
	Filter store.Expr
	// Sort orders the matches (_sort); empty leaves the store's order.
	Sort []store.SortKey
	// Include and RevInclude are the _include and _revinclude requests, in
	// the order given.
	Include    []Include
	RevInclude []Include
	// Count is the page size asked for with _count; 0 when not given.
	// _count=0 asks for no entries at all: it sets Summary to "count"
	// (whatever _summary says) and leaves Count 0.
	Count int
	// Offset is the number of matches to skip (_offset).
	Offset int
	// Page is the opaque paging token (_page) of a next or previous link,
	// passed through as given.
	Page string
	// Total is the _total mode ("" when not given).
	Total TotalMode
	// Summary is the _summary mode ("" when not given).
	Summary SummaryMode
	// Elements are the element names of _elements.
	Elements []string
	// Types restricts a whole-system search to these types (_type).
	Types []string
	// Unknown lists the parameters ignored under lenient handling (unknown
	// parameters, modifiers the server does not know, parameters it does
	// not support), sorted, so that the self link can leave them out.
	Unknown []string
}

// Include is one _include or _revinclude: the resources that SourceType
// resources point to through Param (_include), or the SourceType resources
// that point through Param to the matches (_revinclude).
type Include struct {
	SourceType string
	// Param is a reference parameter of SourceType, or "*" for all of them.
	Param string
	// TargetType restricts the referenced type; "" allows any.
	TargetType string
	// Iterate applies the include to included resources as well (:iterate).
	Iterate bool
}

// TotalMode is how the total number of matches is reported (_total).
type TotalMode string

// The _total modes.
const (
	TotalNone     TotalMode = "none"
	TotalEstimate TotalMode = "estimate"
	TotalAccurate TotalMode = "accurate"
)

// SummaryMode is the _summary mode.
type SummaryMode string

// The _summary modes.
const (
	SummaryTrue  SummaryMode = "true"
	SummaryText  SummaryMode = "text"
	SummaryData  SummaryMode = "data"
	SummaryCount SummaryMode = "count"
	SummaryFalse SummaryMode = "false"
)

// maxChain bounds the depth of chained and reverse-chained parameters.
const maxChain = 4

// ignored are parameters that shape the response format and do not concern
// search at all.
var ignored = map[string]bool{"_format": true, "_pretty": true}

// notSupported are R4 search parameters (and result parameters) that the
// server does not offer.
var notSupported = map[string]bool{
	"_text": true, "_content": true, "_list": true, "_query": true, "_filter": true,
	"_contained": true, "_containedType": true, "_graph": true,
}

// Compile turns query parameters into a filter with strict handling: an
// unknown parameter is an error, as a conditional interaction must never act
// on a filter that ignored part of its condition. Result parameters (_sort,
// _count, ...) are checked but do not change the filter.
func (e Engine) Compile(resourceType string, params url.Values) (store.Expr, error) {
	s, err := e.Parse(resourceType, params, true)
	if err != nil {
		return nil, err
	}
	return s.Filter, nil
}

// Parse reads the parameters of a search on resourceType ("" for a
// whole-system search). Comma-separated values are alternatives (OR) and a
// repeated parameter must hold each time (AND). Under strict handling an
// unknown or unsupported parameter or modifier is an error; otherwise it is
// ignored and listed in Search.Unknown. Errors are *fhir.Error (400) naming
// the parameter in their expression.
func (e Engine) Parse(resourceType string, params url.Values, strict bool) (*Search, error) {
	reg := e.registry()
	t := reg.system
	if resourceType != "" {
		if t = reg.types[resourceType]; t == nil {
			return nil, fhir.UnknownType(resourceType)
		}
	}
	p := parser{reg: reg, now: e.now(), limits: e.Limits.orDefault()}
	s := &Search{Type: resourceType}
	keys := make([]string, 0, len(params))
	for k := range params {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var and store.And
	countOnly := false
	for _, key := range keys {
		values := params[key]
		name, mod, _ := strings.Cut(key, ":")
		var err error
		switch name {
		case "_sort":
			err = p.sort(s, t, key, values)
		case "_include", "_revinclude":
			err = p.include(s, t, key, name, mod, values)
		case "_count", "_offset":
			var n int
			if n, err = single(key, values, intValue); err == nil {
				if name == "_offset" {
					s.Offset = n
				} else {
					s.Count = n
					countOnly = n == 0
				}
			}
		case "_page":
			s.Page, err = single(key, values, func(v string) (string, bool) { return v, true })
		case "_total":
			s.Total, err = single(key, values, func(v string) (TotalMode, bool) {
				m := TotalMode(v)
				return m, m == TotalNone || m == TotalEstimate || m == TotalAccurate
			})
		case "_summary":
			var m SummaryMode
			if m, err = single(key, values, func(v string) (SummaryMode, bool) {
				m := SummaryMode(v)
				return m, m == SummaryTrue || m == SummaryText || m == SummaryData || m == SummaryCount || m == SummaryFalse
			}); err == nil {
				s.Summary = m
			}
		case "_elements":
			err = p.elements(s, key, values)
		case "_type":
			if resourceType != "" {
				err = unknownParam(key, t)
				break
			}
			err = p.types(s, key, values)
		default:
			if ignored[key] {
				continue
			}
			for _, v := range values {
				if perr := p.count(key, len(splitEscaped(v, ','))); perr != nil {
					err = perr
					break
				}
				x, perr := p.param(t, key, v, 0)
				if perr != nil {
					err = perr
					break
				}
				if x != nil {
					and = append(and, x)
				}
			}
		}
		if err != nil {
			var u *unknownError
			if errors.As(err, &u) {
				if strict {
					return nil, u.err
				}
				s.Unknown = append(s.Unknown, key)
				continue
			}
			return nil, err
		}
	}
	if countOnly {
		// _count=0 asks for the total alone, whatever _summary says.
		s.Summary = SummaryCount
	}
	switch len(and) {
	case 0:
	case 1:
		s.Filter = and[0]
	default:
		s.Filter = and
	}
	return s, nil
}

// single reads a parameter that may appear once with one value.
func single[T any](key string, values []string, read func(string) (T, bool)) (T, error) {
	var zero T
	if len(values) != 1 {
		return zero, invalid(key, "The parameter '"+key+"' may appear only once",
			"参数 '"+key+"' 只能出现一次")
	}
	v, ok := read(values[0])
	if !ok {
		return zero, invalid(key, "The value '"+values[0]+"' of '"+key+"' is not valid",
			"参数 '"+key+"' 的取值 '"+values[0]+"' 无效")
	}
	return v, nil
}

func intValue(v string) (int, bool) {
	n, err := strconv.Atoi(v)
	return n, err == nil && n >= 0
}

// unknownError marks a parameter that lenient handling ignores.
type unknownError struct{ err *fhir.Error }

func (u *unknownError) Error() string { return u.err.Error() }

func unknownParam(key string, t *typeParams) error {
	on, zh := "", ""
	if t.name != "" {
		on, zh = " for "+t.name, t.name+" "
	}
	return &unknownError{fhir.Invalid(fhir.IssueNotSupported,
		"Unknown search parameter '"+key+"'"+on, zh+"未知的检索参数 '"+key+"'").WithExpression(key)}
}

func unsupportedParam(key string) error {
	return &unknownError{fhir.Invalid(fhir.IssueNotSupported,
		"The search parameter '"+key+"' is not supported by this server", "本服务器不支持检索参数 '"+key+"'").WithExpression(key)}
}

// unknownModifier is a 400 whatever the handling: ignoring a modifier would
// change what the parameter means, not only drop a filter.
func unknownModifier(key, mod string, p *param) error {
	return fhir.Invalid(fhir.IssueNotSupported,
		"The modifier ':"+mod+"' is not allowed on the "+string(p.kind)+" parameter '"+p.code+"'",
		string(p.kind)+" 类型的检索参数 '"+p.code+"' 不允许使用修饰符 ':"+mod+"'").WithExpression(key)
}

// invalid is a 400 that lenient handling does not excuse.
func invalid(key, en, zh string) *fhir.Error {
	return fhir.Invalid(fhir.IssueInvalid, en, zh).WithExpression(key)
}

func badValue(key, value, en, zh string) *fhir.Error {
	return fhir.Invalid(fhir.IssueValue, "Invalid value '"+value+"' for '"+key+"': "+en,
		"检索参数 '"+key+"' 的取值 '"+value+"' 无效："+zh).WithExpression(key)
}

func notImplemented(key, en, zh string) *fhir.Error {
	return fhir.Invalid(fhir.IssueNotSupported, en, zh).WithExpression(key)
}

// parser holds what one Parse call needs.
type parser struct {
	reg    *registry
	now    time.Time
	limits Limits
	// params and terms count the filter parameters and their alternatives
	// so far, against limits.
	params, terms int
}

// tooCostly is the 400 for a search over one of its limits.
func tooCostly(key, en, zh string, limit int) error {
	n := strconv.Itoa(limit)
	return fhir.Invalid(fhir.IssueTooCostly, en+" (the limit is "+n+")", zh+"（上限为 "+n+"）").WithExpression(key)
}

// count charges one parameter occurrence with n alternatives.
func (p *parser) count(key string, n int) error {
	p.params++
	p.terms += n
	switch {
	case n > p.limits.MaxValues:
		return tooCostly(key, "Too many comma-separated values in '"+key+"'", "参数 '"+key+"' 的逗号分隔取值过多", p.limits.MaxValues)
	case p.params > p.limits.MaxParams:
		return tooCostly(key, "Too many search parameters", "检索参数过多", p.limits.MaxParams)
	case p.terms > p.limits.MaxTerms:
		return tooCostly(key, "Too many search values in all", "检索取值总数过多", p.limits.MaxTerms)
	}
	return nil
}

// param parses one occurrence (one value) of a filter parameter key on t.
// It returns nil when the value is empty (the spec ignores empty values).
func (p *parser) param(t *typeParams, key, value string, depth int) (store.Expr, error) {
	if depth > maxChain {
		return nil, invalid(key, "Chains are limited to "+strconv.Itoa(maxChain)+" levels", "链式检索最多 "+strconv.Itoa(maxChain)+" 级")
	}
	if rest, ok := strings.CutPrefix(key, "_has:"); ok {
		return p.has(t, key, rest, value, depth)
	}
	head, chain, chained := strings.Cut(key, ".")
	name, mod, hasMod := strings.Cut(head, ":")
	if notSupported[name] {
		return nil, unsupportedParam(key)
	}
	par := t.params[name]
	if par == nil {
		return nil, unknownParam(key, t)
	}
	if !par.supported() {
		return nil, unsupportedParam(key)
	}
	if chained {
		return p.chain(t, par, key, mod, chain, value, depth)
	}
	if hasMod && mod == "missing" {
		switch value {
		case "true", "false":
		default:
			return nil, badValue(key, value, "use true or false", "应为 true 或 false")
		}
		param := par.entries()
		if par.kind == KindComposite {
			param += "$0"
		}
		return store.Missing{Param: param, Missing: value == "true"}, nil
	}
	if hasMod {
		if err := checkModifier(key, mod, par); err != nil {
			return nil, err
		}
	}
	parts := splitEscaped(value, ',')
	if par.def.ID == "Resource-id" {
		// _id is matched by the resource's logical id.
		if hasMod && mod != "not" {
			return nil, unknownModifier(key, mod, par)
		}
		var ids []string
		for _, v := range parts {
			if v != "" {
				ids = append(ids, unescape(v))
			}
		}
		if len(ids) == 0 {
			return nil, nil
		}
		if mod == "not" {
			return store.Not{Expr: store.ID{IDs: ids}}, nil
		}
		return store.ID{IDs: ids}, nil
	}
	var or store.Or
	for _, v := range parts {
		if v == "" {
			continue
		}
		x, err := p.value(par, key, mod, v, false)
		if err != nil {
			return nil, err
		}
		or = append(or, x)
	}
	if len(or) == 0 {
		return nil, nil
	}
	var x store.Expr = or
	if len(or) == 1 {
		x = or[0]
	}
	if mod == "not" {
		return store.Not{Expr: x}, nil
	}
	return x, nil
}

// specUnsupported are modifiers R4 defines that the server does not
// implement: they are an error whatever the handling, as ignoring them would
// widen the result silently.
var specUnsupported = map[store.IndexKind]map[string]string{
	store.KindToken: {
		"above": "needs a code system hierarchy", "below": "needs a code system hierarchy",
		"in": "needs value set expansion", "not-in": "needs value set expansion",
	},
	store.KindReference: {"above": "is not supported on references", "below": "is not supported on references"},
}

func checkModifier(key, mod string, par *param) error {
	if par.modifiers[mod] {
		return nil
	}
	if par.kind == store.KindReference && isTarget(par, mod) {
		return nil
	}
	if why, ok := specUnsupported[par.kind][mod]; ok {
		return notImplemented(key, "The modifier ':"+mod+"' "+why+", which this server does not support",
			"本服务器不支持修饰符 ':"+mod+"'")
	}
	return unknownModifier(key, mod, par)
}

// isTarget reports whether name is a resource type the reference parameter
// may point to.
func isTarget(par *param, name string) bool {
	if name == "" || name[0] < 'A' || name[0] > 'Z' {
		return false
	}
	for _, t := range par.targets {
		if t == name {
			return true
		}
	}
	return false
}

// value parses one alternative (between commas) of a parameter value; raw
// still holds its escapes. inComposite asks for forms that test one entry
// (ne as the complement of eq on the same entry, not Not).
func (p *parser) value(par *param, key, mod, raw string, inComposite bool) (store.Expr, error) {
	switch par.kind {
	case store.KindToken:
		return p.token(par.entries(), key, mod, raw)
	case store.KindString:
		v := unescape(raw)
		switch mod {
		case "exact":
			return store.String{Param: par.entries(), Mode: store.Exact, Text: v, Folded: Normalize(v)}, nil
		case "contains":
			return store.String{Param: par.entries(), Mode: store.Contains, Text: Normalize(v)}, nil
		}
		return store.String{Param: par.entries(), Mode: store.Prefix, Text: Normalize(v)}, nil
	case store.KindURI:
		v := unescape(raw)
		switch mod {
		case "above":
			return store.String{Param: par.entries(), Mode: store.Above, Text: v}, nil
		case "below":
			return store.String{Param: par.entries(), Mode: store.Below, Text: v}, nil
		}
		return store.String{Param: par.entries(), Mode: store.Equal, Text: v}, nil
	case store.KindDate:
		return p.date(par, key, unescape(raw), inComposite)
	case store.KindNumber, store.KindQuantity:
		return p.number(par, key, raw, inComposite)
	case store.KindReference:
		return p.reference(par, key, mod, raw)
	case KindComposite:
		return p.composite(par, key, raw)
	}
	return nil, unsupportedParam(key)
}

func (p *parser) token(code, key, mod, raw string) (store.Expr, error) {
	switch mod {
	case "text":
		return store.String{Param: code, Mode: store.Prefix, Text: Normalize(unescape(raw))}, nil
	case "of-type":
		parts := splitEscaped(raw, '|')
		if len(parts) != 3 || parts[1] == "" || parts[2] == "" {
			return nil, badValue(key, raw, "use system|code|value (the identifier type, then the value)",
				"应为 system|code|value（标识符类型及其值）")
		}
		sys := unescape(parts[0])
		return store.Token{Param: code + ofTypeSuffix, System: &sys, Code: unescape(parts[1]) + "|" + unescape(parts[2])}, nil
	}
	sysRaw, codeRaw, hasSystem := cutEscaped(raw, '|')
	if !hasSystem {
		return store.Token{Param: code, Code: unescape(raw)}, nil
	}
	sys, c := unescape(sysRaw), unescape(codeRaw)
	// An empty code (system|) matches any code of the system.
	return store.Token{Param: code, System: &sys, Code: c}, nil
}

// prefixes are the R4 comparison prefixes.
var prefixes = map[string]bool{"eq": true, "ne": true, "gt": true, "lt": true, "ge": true, "le": true, "sa": true, "eb": true, "ap": true}

// cutPrefix splits a leading comparison prefix from a date, number or
// quantity value; an unknown one is an error.
func cutPrefix(par *param, key, v string) (string, string, error) {
	if len(v) >= 2 && isLetter(v[0]) && isLetter(v[1]) {
		pre := v[:2]
		if !prefixes[pre] {
			return "", "", badValue(key, v, "unknown prefix '"+pre+"' (use eq, ne, gt, lt, ge, le, sa, eb or ap)",
				"未知的前缀 '"+pre+"'（可用 eq、ne、gt、lt、ge、le、sa、eb、ap）")
		}
		allowed := len(par.def.Comparators) == 0
		for _, c := range par.def.Comparators {
			allowed = allowed || c == pre
		}
		if !allowed {
			return "", "", badValue(key, v, "the prefix '"+pre+"' is not allowed here", "此处不允许使用前缀 '"+pre+"'")
		}
		return pre, v[2:], nil
	}
	return "eq", v, nil
}

func isLetter(c byte) bool { return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' }

func bound(high bool, op store.CompareOp, v string) store.Bound {
	return store.Bound{High: high, Op: op, Value: v}
}

func (p *parser) date(par *param, key, v string, inComposite bool) (store.Expr, error) {
	pre, d, err := cutPrefix(par, key, v)
	if err != nil {
		return nil, err
	}
	lo, hi, ok := parseDateRange(d)
	if !ok {
		return nil, badValue(key, v, "not a date (use YYYY, YYYY-MM, YYYY-MM-DD or YYYY-MM-DDThh:mm[:ss][zone])",
			"不是合法的日期（格式 YYYY、YYYY-MM、YYYY-MM-DD 或 YYYY-MM-DDThh:mm[:ss][时区]）")
	}
	s, e := store.EncodeTime(lo), store.EncodeTime(hi)
	rng := func(b ...store.Bound) store.Range { return store.Range{Param: par.entries(), Bounds: b} }
	switch pre {
	case "eq":
		return rng(bound(false, store.GE, s), bound(true, store.LE, e)), nil
	case "ne":
		// A value outside the search range; a resource without a value does
		// not match (it has nothing that is not equal).
		return store.Or{rng(bound(false, store.LT, s)), rng(bound(true, store.GT, e))}, nil
	case "gt":
		return rng(bound(true, store.GT, e)), nil
	case "lt":
		return rng(bound(false, store.LT, s)), nil
	case "ge":
		return store.Or{rng(bound(true, store.GT, e)), rng(bound(false, store.GE, s), bound(true, store.LE, e))}, nil
	case "le":
		return store.Or{rng(bound(false, store.LT, s)), rng(bound(false, store.GE, s), bound(true, store.LE, e))}, nil
	case "sa":
		return rng(bound(false, store.GT, e)), nil
	case "eb":
		return rng(bound(true, store.LT, s)), nil
	}
	// ap: the value's range widened either side by 10% of the time
	// between its start and now (as HAPI does); a match overlaps it.
	gap := p.now.Sub(lo)
	if gap < 0 {
		gap = -gap
	}
	gap /= 10
	ws, we := lo.Add(-gap), hi.Add(gap)
	return rng(bound(false, store.LE, store.EncodeTime(we)), bound(true, store.GE, store.EncodeTime(ws))), nil
}

func (p *parser) number(par *param, key, raw string, inComposite bool) (store.Expr, error) {
	var system, code *string
	numRaw := raw
	if par.kind == store.KindQuantity {
		parts := splitEscaped(raw, '|')
		switch len(parts) {
		case 1:
		case 3:
			numRaw = parts[0]
			if s := unescape(parts[1]); s != "" {
				system = &s
			}
			if c := unescape(parts[2]); c != "" {
				code = &c
			}
		default:
			return nil, badValue(key, raw, "use [prefix]number or [prefix]number|system|code",
				"应为 [前缀]数值 或 [前缀]数值|system|code")
		}
	}
	v := unescape(numRaw)
	pre, n, err := cutPrefix(par, key, v)
	if err != nil {
		return nil, err
	}
	d, ok := parseDecimal(n)
	if !ok {
		return nil, badValue(key, raw, "not a number", "不是合法的数值")
	}
	enc := store.EncodeNumber
	rng := func(b ...store.Bound) store.Range {
		return store.Range{Param: par.entries(), Bounds: b, System: system, Code: code}
	}
	val := enc(d.value)
	switch pre {
	case "eq":
		return rng(bound(false, store.GE, enc(d.lo)), bound(true, store.LT, enc(d.hi))), nil
	case "ne":
		// As for dates: a value outside the range; no value, no match.
		return store.Or{rng(bound(false, store.LT, enc(d.lo))), rng(bound(true, store.GE, enc(d.hi)))}, nil
	case "gt":
		return rng(bound(true, store.GT, val)), nil
	case "lt":
		return rng(bound(false, store.LT, val)), nil
	case "ge":
		return rng(bound(true, store.GE, val)), nil
	case "le":
		return rng(bound(false, store.LE, val)), nil
	case "sa":
		return rng(bound(false, store.GT, val)), nil
	case "eb":
		return rng(bound(true, store.LT, val)), nil
	}
	lo, hi := d.approx()
	if math.IsInf(lo, 0) || math.IsInf(hi, 0) {
		return nil, badValue(key, raw, "out of range", "超出范围")
	}
	return rng(bound(false, store.LE, enc(hi)), bound(true, store.GE, enc(lo))), nil
}

// refValue matches a relative reference in a search value.
var refValue = regexp.MustCompile(`^([A-Z][A-Za-z]+)/([A-Za-z0-9\-.]{1,64})(?:/_history/[A-Za-z0-9\-.]{1,64})?$`)

func (p *parser) reference(par *param, key, mod, raw string) (store.Expr, error) {
	if mod == "identifier" {
		return p.token(par.code+identifierSuffix, key, "", raw)
	}
	v := unescape(raw)
	switch {
	case strings.Contains(v, "://") || strings.HasPrefix(v, "urn:"):
		return store.Reference{Param: par.code, URL: v}, nil
	case strings.Contains(v, "/"):
		m := refValue.FindStringSubmatch(v)
		if m == nil {
			return nil, badValue(key, v, "use id, Type/id or an absolute URL", "应为 id、类型/id 或绝对 URL")
		}
		if mod != "" && m[1] != mod {
			return nil, badValue(key, v, "the type does not match the modifier :"+mod, "类型与修饰符 :"+mod+" 不一致")
		}
		return store.Reference{Param: par.code, Type: m[1], ID: m[2]}, nil
	}
	typ := mod
	if typ == "" && len(par.targets) == 1 {
		typ = par.targets[0]
	}
	return store.Reference{Param: par.code, Type: typ, ID: v}, nil
}

func (p *parser) composite(par *param, key, raw string) (store.Expr, error) {
	parts := splitEscaped(raw, '$')
	if len(parts) != len(par.components) {
		return nil, badValue(key, raw, "give "+strconv.Itoa(len(par.components))+" values separated by $",
			"应为以 $ 分隔的 "+strconv.Itoa(len(par.components))+" 个值")
	}
	comps := make([]store.Expr, len(parts))
	for i, part := range parts {
		c := par.def.Components[i]
		cp := &param{code: par.code + "$" + strconv.Itoa(i), kind: store.IndexKind(c.Type), def: &paramDef{}}
		x, err := p.value(cp, key, "", part, true)
		if err != nil {
			return nil, err
		}
		comps[i] = x
	}
	return store.Composite{Param: par.code, Components: comps}, nil
}

// chain parses subject:Patient.name=x (mod is the type modifier, if any).
// sameKind reports whether the parameter name has one type on every
// candidate type (a _has is the same everywhere).
func sameKind(reg *registry, candidates []string, name string) bool {
	if strings.HasPrefix(name, "_has") {
		return true
	}
	var kind store.IndexKind
	for i, tt := range candidates {
		k := reg.types[tt].params[name].kind
		if i > 0 && k != kind {
			return false
		}
		kind = k
	}
	return true
}

// unionChain is a chain through par to any of the candidate types.
func (p *parser) unionChain(par *param, key, chain, value string, depth int, candidates []string) (store.Expr, error) {
	var or store.Or
	for _, tt := range candidates {
		inner, err := p.param(p.reg.types[tt], chain, value, depth+1)
		if err != nil {
			return nil, rekey(err, key)
		}
		if inner == nil {
			return nil, nil
		}
		or = append(or, store.Chain{Param: par.code, TargetType: tt, Filter: inner})
	}
	return or, nil
}

func (p *parser) chain(t *typeParams, par *param, key, mod, chain, value string, depth int) (store.Expr, error) {
	if par.kind != store.KindReference {
		return nil, invalid(key, "Only reference parameters can be chained; '"+par.code+"' is a "+string(par.kind)+" parameter",
			"只有引用类型的检索参数可以链式检索，'"+par.code+"' 是 "+string(par.kind)+" 类型")
	}
	next, _, _ := strings.Cut(chain, ".")
	next, _, _ = strings.Cut(next, ":")
	var target string
	switch {
	case mod != "":
		if !isTarget(par, mod) {
			if _, known := p.reg.types[mod]; !known {
				return nil, unknownModifier(key, mod, par)
			}
			return nil, invalid(key, "'"+par.code+"' cannot refer to "+mod, "检索参数 '"+par.code+"' 不能引用 "+mod)
		}
		target = mod
	case len(par.targets) == 1:
		target = par.targets[0]
	default:
		var candidates []string
		for _, tt := range par.targets {
			if tp := p.reg.types[tt]; tp != nil && (strings.HasPrefix(next, "_has") || tp.params[next] != nil) {
				candidates = append(candidates, tt)
			}
		}
		switch {
		case len(candidates) == 0:
			return nil, unknownParam(key, t)
		case len(candidates) == 1:
			target = candidates[0]
		case sameKind(p.reg, candidates, next):
			// The chained parameter means the same on every target type
			// (identifier on Specimen.subject's Patient, Group, Device,
			// Substance and Location): the chain is their union, as HAPI
			// FHIR searches it.
			return p.unionChain(par, key, chain, value, depth, candidates)
		default:
			return nil, invalid(key, "The chain '"+key+"' is ambiguous: '"+par.code+"' may refer to "+strings.Join(candidates, ", ")+
				"; name the type, e.g. "+par.code+":"+candidates[0]+"."+chain,
				"链式检索 '"+key+"' 有歧义：'"+par.code+"' 可引用 "+strings.Join(candidates, "、")+
					"，请指明类型，例如 "+par.code+":"+candidates[0]+"."+chain)
		}
	}
	tp := p.reg.types[target]
	if tp == nil {
		return nil, unknownParam(key, t)
	}
	inner, err := p.param(tp, chain, value, depth+1)
	if err != nil {
		return nil, rekey(err, key)
	}
	if inner == nil {
		return nil, nil
	}
	return store.Chain{Param: par.code, TargetType: target, Filter: inner}, nil
}

// has parses _has:Type:param:rest=value.
func (p *parser) has(t *typeParams, key, spec, value string, depth int) (store.Expr, error) {
	parts := strings.SplitN(spec, ":", 3)
	if len(parts) != 3 || parts[0] == "" || parts[1] == "" || parts[2] == "" {
		return nil, invalid(key, "Use _has:Type:parameter:filter", "应为 _has:类型:参数:条件")
	}
	src := p.reg.types[parts[0]]
	if src == nil {
		return nil, invalid(key, "Unknown resource type '"+parts[0]+"' in _has", "_has 中的资源类型 '"+parts[0]+"' 未知")
	}
	ref := src.params[parts[1]]
	if ref == nil || !ref.supported() || ref.kind != store.KindReference {
		return nil, invalid(key, "'"+parts[1]+"' is not a reference parameter of "+parts[0], "'"+parts[1]+"' 不是 "+parts[0]+" 的引用检索参数")
	}
	if t.name != "" && !ref.hasTarget(t.name) {
		return nil, invalid(key, parts[0]+"."+parts[1]+" cannot refer to "+t.name, parts[0]+" 的参数 "+parts[1]+" 不能引用 "+t.name)
	}
	inner, err := p.param(src, parts[2], value, depth+1)
	if err != nil {
		return nil, rekey(err, key)
	}
	if inner == nil {
		return nil, nil
	}
	return store.Has{Type: parts[0], Param: ref.code, Filter: inner}, nil
}

// rekey names the whole parameter (not its chained tail) in an error.
func rekey(err error, key string) error {
	var u *unknownError
	if errors.As(err, &u) {
		u.err.WithExpression(key)
		return u
	}
	var fe *fhir.Error
	if errors.As(err, &fe) {
		fe.WithExpression(key)
	}
	return err
}

func (p *parser) sort(s *Search, t *typeParams, key string, values []string) error {
	if key != "_sort" {
		return unknownParam(key, t)
	}
	for _, v := range values {
		for _, k := range strings.Split(v, ",") {
			k = strings.TrimSpace(k)
			if k == "" {
				continue
			}
			desc := strings.HasPrefix(k, "-")
			name := strings.TrimPrefix(k, "-")
			par := t.params[name]
			if par == nil || !par.supported() {
				return invalid(key, "Cannot sort by '"+name+"': not a search parameter of "+typeName(t),
					"无法按 '"+name+"' 排序："+typeName(t)+" 没有该检索参数")
			}
			if par.kind == KindComposite {
				return notImplemented(key, "Sorting by the composite parameter '"+name+"' is not supported",
					"不支持按组合检索参数 '"+name+"' 排序")
			}
			if len(s.Sort) == p.limits.MaxSortKeys {
				return tooCostly(key, "Too many sort keys", "排序键过多", p.limits.MaxSortKeys)
			}
			s.Sort = append(s.Sort, store.SortKey{Param: par.entries(), Desc: desc})
		}
	}
	return nil
}

func typeName(t *typeParams) string {
	if t.name == "" {
		return "all resources"
	}
	return t.name
}

func (p *parser) include(s *Search, t *typeParams, key, name, mod string, values []string) error {
	iterate := false
	switch mod {
	case "":
	case "iterate", "recurse":
		iterate = true
	default:
		return unknownParam(key, t)
	}
	for _, v := range values {
		if len(s.Include)+len(s.RevInclude) == p.limits.MaxIncludes {
			return tooCostly(key, "Too many _include and _revinclude values", "_include 与 _revinclude 取值过多", p.limits.MaxIncludes)
		}
		inc, err := p.includeValue(t, key, name == "_revinclude", v, iterate)
		if err != nil {
			return err
		}
		if name == "_revinclude" {
			s.RevInclude = append(s.RevInclude, inc)
		} else {
			s.Include = append(s.Include, inc)
		}
	}
	return nil
}

func (p *parser) includeValue(t *typeParams, key string, rev bool, v string, iterate bool) (Include, error) {
	bad := func(en, zh string) (Include, error) {
		return Include{}, invalid(key, "Invalid "+key+" '"+v+"': "+en, key+" 的取值 '"+v+"' 无效："+zh)
	}
	if v == "*" && !rev {
		if t.name == "" {
			return bad("name the source type", "请指明源资源类型")
		}
		return Include{SourceType: t.name, Param: "*", Iterate: iterate}, nil
	}
	parts := strings.Split(v, ":")
	if len(parts) < 2 || len(parts) > 3 {
		return bad("use SourceType:parameter[:TargetType]", "应为 源类型:参数[:目标类型]")
	}
	src := p.reg.types[parts[0]]
	if src == nil {
		return bad("unknown resource type "+parts[0], "未知的资源类型 "+parts[0])
	}
	inc := Include{SourceType: parts[0], Param: parts[1], Iterate: iterate}
	if len(parts) == 3 {
		if p.reg.types[parts[2]] == nil {
			return bad("unknown resource type "+parts[2], "未知的资源类型 "+parts[2])
		}
		inc.TargetType = parts[2]
	}
	// An _include whose source type is not the searched type is allowed:
	// without :iterate it applies to no match and yields nothing.
	if inc.Param == "*" {
		return inc, nil
	}
	par := src.params[inc.Param]
	if par == nil || !par.supported() || par.kind != store.KindReference {
		return bad(inc.Param+" is not a reference parameter of "+src.name, inc.Param+" 不是 "+src.name+" 的引用检索参数")
	}
	if inc.TargetType != "" && !par.hasTarget(inc.TargetType) {
		return bad(inc.Param+" cannot refer to "+inc.TargetType, inc.Param+" 不能引用 "+inc.TargetType)
	}
	if rev && !iterate && t.name != "" && !par.hasTarget(t.name) {
		return bad(src.name+"."+inc.Param+" cannot refer to "+t.name, src.name+" 的参数 "+inc.Param+" 不能引用 "+t.name)
	}
	return inc, nil
}

var elementName = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9_]*(\[x\])?$`)

func (p *parser) elements(s *Search, key string, values []string) error {
	if key != "_elements" {
		return unknownParam(key, p.reg.system)
	}
	for _, v := range values {
		for _, el := range strings.Split(v, ",") {
			el = strings.TrimSpace(el)
			if el == "" {
				continue
			}
			// Type-qualified names (Patient.name) are allowed in R4.
			if _, n, ok := strings.Cut(el, "."); ok && p.reg.types[el[:strings.IndexByte(el, '.')]] != nil {
				el = n
			}
			if !elementName.MatchString(el) {
				return invalid(key, "'"+el+"' is not an element name", "'"+el+"' 不是元素名")
			}
			s.Elements = append(s.Elements, el)
		}
	}
	return nil
}

func (p *parser) types(s *Search, key string, values []string) error {
	for _, v := range values {
		for _, typ := range strings.Split(v, ",") {
			if typ == "" {
				continue
			}
			if p.reg.types[typ] == nil {
				return invalid(key, "Unknown resource type '"+typ+"'", "未知的资源类型 '"+typ+"'")
			}
			s.Types = append(s.Types, typ)
		}
	}
	return nil
}

// splitEscaped splits s at each sep not escaped by a backslash; the parts
// keep their escapes.
func splitEscaped(s string, sep byte) []string {
	if strings.IndexByte(s, sep) < 0 {
		return []string{s}
	}
	var parts []string
	start := 0
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '\\':
			i++
		case sep:
			parts = append(parts, s[start:i])
			start = i + 1
		}
	}
	return append(parts, s[start:])
}

// cutEscaped cuts s at the first sep not escaped by a backslash.
func cutEscaped(s string, sep byte) (before, after string, found bool) {
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '\\':
			i++
		case sep:
			return s[:i], s[i+1:], true
		}
	}
	return s, "", false
}

// unescape removes the search escapes \, \| \$ and \\; other backslashes
// stay.
func unescape(s string) string {
	if strings.IndexByte(s, '\\') < 0 {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+1 < len(s) {
			switch s[i+1] {
			case ',', '|', '$', '\\':
				b.WriteByte(s[i+1])
				i++
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}
