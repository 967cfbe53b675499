package profiles

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math/big"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"github.com/fmtbank/cmts/fhir"
)

// Resolver reads a resource a reference points to, for the checks that look
// at the target (its type and profile, the WMT rules across resources). It
// returns nil, nil when the resource does not exist or is not visible.
type Resolver interface {
	Resolve(ctx context.Context, typ, id string) (map[string]any, error)
}

// Validator checks resources against StructureDefinition snapshots. It is
// safe for concurrent use.
type Validator struct {
	defs    *Definitions
	resolve Resolver
}

// NewValidator validates against defs; resolve may be nil, and then the
// checks that need a reference's target are skipped.
func NewValidator(defs *Definitions, resolve Resolver) *Validator {
	return &Validator{defs: defs, resolve: resolve}
}

// Decode reads a resource's JSON as the validator walks it: objects as
// map[string]any, numbers as json.Number.
func Decode(b []byte) (map[string]any, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var m map[string]any
	if err := dec.Decode(&m); err != nil {
		return nil, err
	}
	return m, nil
}

// Validate checks resource against the StructureDefinition with the given
// canonical url ("" for the base definition of its type), and returns every
// problem found (errors and warnings), each with its location as a FHIRPath
// expression. An unknown profile is an error issue, not a Go error; the
// error is for a failing Resolver only.
func (v *Validator) Validate(ctx context.Context, resource map[string]any, profile string) ([]fhir.Issue, error) {
	rt, _ := resource["resourceType"].(string)
	var st *structure
	if profile == "" {
		st = v.defs.byType[rt]
	} else {
		st = v.defs.byURL[strings.SplitN(profile, "|", 2)[0]]
	}
	if st == nil {
		what := profile
		if what == "" {
			what = rt
		}
		return []fhir.Issue{{Severity: "error", Code: fhir.IssueNotSupported,
			Message:    fhir.Message{EN: "Unknown profile " + what, ZH: "未知的 profile：" + what},
			Expression: []string{rt}}}, nil
	}
	w := &walker{v: v, ctx: ctx, root: resource}
	if st.typ != rt {
		w.add("error", fhir.IssueInvalid, rt+".resourceType",
			"The resource is a "+rt+", the profile "+st.url+" is for "+st.typ,
			"资源类型为 "+rt+"，但 profile "+st.url+" 适用于 "+st.typ)
		return w.issues, nil
	}
	w.resource(resource, st, rt, false)
	if w.err != nil {
		return nil, w.err
	}
	if rule, ok := rules[st.url]; ok {
		if err := rule(w, resource); err != nil {
			return nil, err
		}
	}
	sort.SliceStable(w.issues, func(i, j int) bool { return w.issues[i].Expression[0] < w.issues[j].Expression[0] })
	return w.issues, nil
}

// walker holds the state of one validation.
type walker struct {
	v    *Validator
	ctx  context.Context
	root map[string]any
	// current is the resource being walked (%resource): the root, or a
	// contained or entry resource inside it.
	current map[string]any
	// container is %rootResource: the resource that contains current (a
	// Bundle entry's resource is its own container).
	container map[string]any
	issues    []fhir.Issue
	err       error
}

func (w *walker) add(severity string, code fhir.IssueType, loc, en, zh string) {
	w.issues = append(w.issues, fhir.Issue{Severity: severity, Code: code, Message: fhir.Message{EN: en, ZH: zh}, Expression: []string{loc}})
}

// resource validates a resource (the root, or a contained or entry
// resource) against st; loc is where it is.
func (w *walker) resource(res map[string]any, st *structure, loc string, contained bool) {
	outer, outerRoot := w.current, w.container
	w.current = res
	if !contained {
		w.container = res
	}
	w.object(res, st.root, st, loc, st.typ)
	w.current, w.container = outer, outerRoot
}

// object validates the children of a complex value against el.
func (w *walker) object(obj map[string]any, el *element, st *structure, loc, typ string) {
	kids := w.children(el, typ)
	used := map[string]bool{"resourceType": true, "fhir_comments": true}
	for _, c := range kids {
		w.child(obj, c, loc, used)
	}
	for k := range obj {
		if used[k] || used[strings.TrimPrefix(k, "_")] && strings.HasPrefix(k, "_") {
			continue
		}
		w.add("error", fhir.IssueStructure, loc+"."+k, "Unknown element '"+k+"'", "未知元素 '"+k+"'")
	}
	if len(obj) == 0 {
		w.add("error", fhir.IssueStructure, loc, "An element must have a value or children", "元素必须有值或子元素")
	}
	w.invariants(obj, el, typ, loc)
}

// children returns the element definitions of el's children: from the
// snapshot itself, a content reference, or the definition of the value's
// type (through its profile when the type names one).
func (w *walker) children(el *element, typ string) []*element {
	if len(el.children) > 0 {
		return el.children
	}
	if el.ref != nil {
		return el.ref.children
	}
	if st := w.typeDef(el, typ); st != nil {
		return st.root.children
	}
	return nil
}

// typeDef finds the StructureDefinition for a value of type typ at el: the
// profile its type names, or the base definition of the type.
func (w *walker) typeDef(el *element, typ string) *structure {
	for _, t := range el.types {
		if t.code == typ {
			for _, p := range t.profiles {
				if st := w.v.defs.byURL[p]; st != nil {
					return st
				}
			}
		}
	}
	return w.v.defs.byType[typ]
}

// typeSuffix reports whether s can be the type part of a choice element's
// JSON name (valueQuantity): a capital letter, then letters and digits.
func typeSuffix(s string) bool {
	if s == "" || s[0] < 'A' || s[0] > 'Z' {
		return false
	}
	for i := 1; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9') {
			return false
		}
	}
	return true
}

// child validates the values of one child element of obj.
func (w *walker) child(obj map[string]any, c *element, loc string, used map[string]bool) {
	type item struct {
		v    any
		typ  string
		loc  string
		ext  any // the "_name" sibling of a primitive
		isEx bool
	}
	var items []item
	name := c.name
	if c.choice() {
		prefix := strings.TrimSuffix(name, "[x]")
		name = prefix
		allowed := map[string]string{}
		for _, t := range c.types {
			allowed[strings.ToUpper(t.code[:1])+t.code[1:]] = t.code
		}
		for key, val := range obj {
			k := key
			if strings.HasPrefix(key, "_") {
				// A primitive choice value with only extensions.
				if _, has := obj[key[1:]]; has {
					continue
				}
				k, val = key[1:], nil
			}
			if !strings.HasPrefix(k, prefix) || len(k) == len(prefix) {
				continue
			}
			suffix := k[len(prefix):]
			if !typeSuffix(suffix) {
				continue
			}
			used[k] = true
			t, ok := allowed[suffix]
			if !ok {
				w.add("error", fhir.IssueStructure, loc+"."+prefix,
					"Type "+suffix+" is not allowed for "+c.path, "元素 "+c.path+" 不允许类型 "+suffix)
				continue
			}
			items = append(items, item{v: val, typ: t, loc: loc + "." + prefix, ext: obj["_"+k]})
		}
	} else {
		val, has := obj[name]
		ext, hasExt := obj["_"+name]
		if !has && !hasExt {
			items = nil
		} else {
			used[name] = true
			typ := ""
			if len(c.types) == 1 {
				typ = c.types[0].code
			}
			arr, isArr := val.([]any)
			extArr, _ := ext.([]any)
			if !has {
				arr, isArr = make([]any, len(extArr)), len(extArr) > 0 || ext == nil
				if _, single := ext.(map[string]any); single {
					arr, isArr = nil, false
				}
			}
			if isArr {
				if len(arr) == 0 && len(extArr) == 0 {
					w.add("error", fhir.IssueStructure, loc+"."+name, "An array must not be empty", "数组不能为空")
				}
				if c.max == 1 && c.path != "" && len(arr) > 0 {
					w.add("error", fhir.IssueStructure, loc+"."+name,
						"Element "+c.path+" holds one value, not an array", "元素 "+c.path+" 只能有一个值，不能是数组")
				}
				n := len(arr)
				if len(extArr) > n {
					n = len(extArr)
				}
				for i := 0; i < n; i++ {
					var v, x any
					if i < len(arr) {
						v = arr[i]
					}
					if i < len(extArr) {
						x = extArr[i]
					}
					items = append(items, item{v: v, typ: typ, loc: fmt.Sprintf("%s.%s[%d]", loc, name, i), ext: x, isEx: true})
				}
			} else {
				if c.max != 1 && c.max != 0 {
					w.add("error", fhir.IssueStructure, loc+"."+name,
						"Element "+c.path+" must be an array", "元素 "+c.path+" 必须是数组")
				}
				items = append(items, item{v: val, typ: typ, loc: loc + "." + name, ext: ext})
			}
		}
	}
	count := len(items)
	if count < c.min {
		w.add("error", fhir.IssueRequired, loc+"."+name,
			fmt.Sprintf("%s: minimum required = %d, but only found %d", c.path, c.min, count),
			fmt.Sprintf("%s：至少需要 %d 个，实际 %d 个", c.path, c.min, count))
	}
	if c.max >= 0 && count > c.max {
		w.add("error", fhir.IssueStructure, loc+"."+name,
			fmt.Sprintf("%s: maximum allowed = %d, but found %d", c.path, c.max, count),
			fmt.Sprintf("%s：最多允许 %d 个，实际 %d 个", c.path, c.max, count))
	}
	// Slicing: each value goes to the first slice it matches, or to the
	// base element.
	var assigned [][]int
	if len(c.slices) > 0 {
		assigned = make([][]int, len(c.slices))
	}
	for i, it := range items {
		el := c
		for s, sl := range c.slices {
			if w.matchesSlice(c, sl, it.v, it.typ) {
				el = sl
				assigned[s] = append(assigned[s], i)
				break
			}
		}
		if el == c && c.slicing != nil && c.slicing.rules == "closed" && len(c.slices) > 0 {
			w.add("error", fhir.IssueStructure, it.loc, "The value matches no slice of "+c.path, "该值不属于 "+c.path+" 的任何切片")
		}
		w.value(it.v, it.ext, el, it.typ, it.loc)
	}
	for s, sl := range c.slices {
		n := len(assigned[s])
		sloc := loc + "." + name + sliceSelector(sl)
		if n < sl.min {
			w.add("error", fhir.IssueRequired, sloc,
				fmt.Sprintf("%s:%s: minimum required = %d, but only found %d", sl.path, sl.sliceName, sl.min, n),
				fmt.Sprintf("%s:%s：至少需要 %d 个，实际 %d 个", sl.path, sl.sliceName, sl.min, n))
		}
		if sl.max >= 0 && n > sl.max {
			w.add("error", fhir.IssueStructure, sloc,
				fmt.Sprintf("%s:%s: maximum allowed = %d, but found %d", sl.path, sl.sliceName, sl.max, n),
				fmt.Sprintf("%s:%s：最多允许 %d 个，实际 %d 个", sl.path, sl.sliceName, sl.max, n))
		}
	}
}

// sliceSelector is the FHIRPath that selects a slice's values from the
// sliced element: extension('url') for extensions, a where() on the
// pattern's system otherwise.
func sliceSelector(sl *element) string {
	if u := extensionURL(sl); u != "" {
		return "('" + u + "')"
	}
	if p, ok := sl.pattern.(map[string]any); ok {
		if s, ok := p["system"].(string); ok {
			return ".where(system = '" + s + "')"
		}
	}
	return ""
}

// extensionURL is the url an extension slice's type profile defines.
func extensionURL(sl *element) string {
	for _, t := range sl.types {
		if t.code == "Extension" && len(t.profiles) > 0 {
			return t.profiles[0]
		}
	}
	for _, c := range sl.children {
		if c.name == "url" {
			if s, ok := c.fixed.(string); ok {
				return s
			}
		}
	}
	return ""
}

// matchesSlice reports whether value belongs to slice sl of c by c's
// discriminators (value, pattern, type, exists, profile).
func (w *walker) matchesSlice(c, sl *element, value any, typ string) bool {
	if c.slicing == nil || len(c.slicing.discriminators) == 0 {
		if u := extensionURL(sl); u != "" {
			m, _ := value.(map[string]any)
			return m != nil && m["url"] == u
		}
		return false
	}
	for _, d := range c.slicing.discriminators {
		switch d.typ {
		case "value", "pattern":
			want := w.discriminatorValue(sl, d.path)
			if want == nil {
				if d.path == "url" {
					if u := extensionURL(sl); u != "" {
						want = u
					}
				}
			}
			if want == nil {
				return false
			}
			got := pathValues(value, d.path)
			ok := false
			for _, g := range got {
				if matchPattern(g, want) {
					ok = true
				}
			}
			if !ok {
				return false
			}
		case "type":
			if len(sl.types) > 0 && !strings.EqualFold(sl.types[0].code, typ) {
				if m, ok := value.(map[string]any); !ok || m["resourceType"] != sl.types[0].code {
					return false
				}
			}
		case "exists":
			if len(pathValues(value, d.path)) == 0 == (sl.min > 0) {
				return false
			}
		default:
			// profile: membership is decided by validating; not
			// implemented, so nothing is assigned this way.
			return false
		}
	}
	return true
}

// discriminatorValue is the fixed or pattern value a slice gives the
// discriminator path (relative to the slice; "$this" is the slice itself).
func (w *walker) discriminatorValue(sl *element, path string) any {
	if path == "$this" {
		if sl.fixed != nil {
			return sl.fixed
		}
		return sl.pattern
	}
	el := sl
	for _, seg := range strings.Split(path, ".") {
		var next *element
		for _, c := range el.children {
			if c.name == seg || strings.TrimSuffix(c.name, "[x]") == seg {
				next = c
			}
		}
		if next == nil {
			// The value may be in the slice's own pattern.
			p := sl.pattern
			if p == nil {
				p = sl.fixed
			}
			vals := pathValues(p, path)
			if len(vals) == 1 {
				return vals[0]
			}
			return nil
		}
		el = next
	}
	if el.fixed != nil {
		return el.fixed
	}
	return el.pattern
}

// pathValues follows a simple dotted path through decoded JSON.
func pathValues(v any, path string) []any {
	cur := []any{v}
	if path == "$this" {
		return cur
	}
	for _, seg := range strings.Split(path, ".") {
		var next []any
		for _, c := range cur {
			m, ok := c.(map[string]any)
			if !ok {
				continue
			}
			switch x := m[seg].(type) {
			case nil:
			case []any:
				next = append(next, x...)
			default:
				next = append(next, x)
			}
		}
		cur = next
	}
	return cur
}

// value validates one value of element el.
func (w *walker) value(v, ext any, el *element, typ, loc string) {
	if v == nil {
		if ext == nil {
			w.add("error", fhir.IssueStructure, loc, "A null value is not allowed", "不允许 null 值")
		}
		return
	}
	if typ == "" && len(el.types) == 0 && (len(el.children) > 0 || el.ref != nil) {
		typ = "BackboneElement"
	}
	if isPrimitiveType(typ) {
		w.primitive(v, el, typ, loc)
		return
	}
	m, ok := v.(map[string]any)
	if !ok {
		w.add("error", fhir.IssueStructure, loc, "Element "+el.path+" must be an object", "元素 "+el.path+" 必须是 JSON 对象")
		return
	}
	w.fixedPattern(v, el, loc)
	if typ == "Resource" || (len(el.types) == 1 && el.types[0].code == "Resource") {
		rt, _ := m["resourceType"].(string)
		st := w.v.defs.byType[rt]
		if st == nil {
			w.add("error", fhir.IssueInvalid, loc, "Unknown resource type '"+rt+"'", "未知的资源类型 '"+rt+"'")
			return
		}
		w.resource(m, st, loc, strings.HasSuffix(el.path, ".contained"))
		return
	}
	if typ == "Extension" {
		// An extension with a known definition is checked against it.
		if u, _ := m["url"].(string); u != "" && len(el.children) == 0 {
			if st := w.v.defs.byURL[u]; st != nil && st.typ == "Extension" {
				w.object(m, st.root, st, loc, typ)
				w.binding(m, st.root, typ, loc)
				return
			}
		}
	}
	if typ == "Reference" {
		w.reference(m, el, loc)
	}
	w.binding(v, el, typ, loc)
	w.object(m, el, nil, loc, typ)
	if len(el.children) == 0 && el.ref == nil {
		// The type's own invariants (ref-1, qty-3, ...).
		if st := w.typeDef(el, typ); st != nil && st.root != el {
			w.invariants(m, st.root, typ, loc)
		}
	}
}

// isPrimitiveType reports whether a type code names a primitive type.
func isPrimitiveType(t string) bool {
	return t != "" && (t[0] >= 'a' && t[0] <= 'z' || strings.HasPrefix(t, "http://hl7.org/fhirpath/System."))
}

var primitiveFormat = map[string]*regexp.Regexp{
	"date":        regexp.MustCompile(`^([0-9]([0-9]([0-9][1-9]|[1-9]0)|[1-9]00)|[1-9]000)(-(0[1-9]|1[0-2])(-(0[1-9]|[1-2][0-9]|3[0-1]))?)?$`),
	"dateTime":    regexp.MustCompile(`^([0-9]([0-9]([0-9][1-9]|[1-9]0)|[1-9]00)|[1-9]000)(-(0[1-9]|1[0-2])(-(0[1-9]|[1-2][0-9]|3[0-1])(T([01][0-9]|2[0-3]):[0-5][0-9]:([0-5][0-9]|60)(\.[0-9]+)?(Z|(\+|-)((0[0-9]|1[0-3]):[0-5][0-9]|14:00)))?)?)?$`),
	"instant":     regexp.MustCompile(`^([0-9]([0-9]([0-9][1-9]|[1-9]0)|[1-9]00)|[1-9]000)-(0[1-9]|1[0-2])-(0[1-9]|[1-2][0-9]|3[0-1])T([01][0-9]|2[0-3]):[0-5][0-9]:([0-5][0-9]|60)(\.[0-9]+)?(Z|(\+|-)((0[0-9]|1[0-3]):[0-5][0-9]|14:00))$`),
	"time":        regexp.MustCompile(`^([01][0-9]|2[0-3]):[0-5][0-9]:([0-5][0-9]|60)(\.[0-9]+)?$`),
	"id":          regexp.MustCompile(`^[A-Za-z0-9\-\.]{1,64}$`),
	"code":        regexp.MustCompile(`^[^\s]+(\s[^\s]+)*$`),
	"oid":         regexp.MustCompile(`^urn:oid:[0-2](\.(0|[1-9][0-9]*))+$`),
	"uuid":        regexp.MustCompile(`^urn:uuid:[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$`),
	"positiveInt": regexp.MustCompile(`^\+?[1-9][0-9]*$`),
	"unsignedInt": regexp.MustCompile(`^[0]|([1-9][0-9]*)$`),
	"integer":     regexp.MustCompile(`^-?([0]|([1-9][0-9]*))$`),
	"decimal":     regexp.MustCompile(`^-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?$`),
}

func (w *walker) primitive(v any, el *element, typ, loc string) {
	t := strings.TrimPrefix(typ, "http://hl7.org/fhirpath/System.")
	if t == "String" && strings.Count(el.path, ".") == 1 && strings.HasSuffix(el.path, ".id") &&
		w.v.defs.resourceTypes[strings.TrimSuffix(el.path, ".id")] {
		// A resource's id is typed System.String with the id pattern.
		t = "id"
	}
	var text string
	switch x := v.(type) {
	case bool:
		if t != "boolean" && t != "Boolean" {
			w.add("error", fhir.IssueValue, loc, "A "+t+" value cannot be a boolean", t+" 类型的值不能是布尔值")
			return
		}
		text = strconv.FormatBool(x)
	case json.Number:
		switch t {
		case "integer", "positiveInt", "unsignedInt", "decimal", "Integer", "Decimal":
		default:
			w.add("error", fhir.IssueValue, loc, "A "+t+" value cannot be a number", t+" 类型的值不能是数字")
			return
		}
		text = x.String()
	case string:
		switch t {
		case "boolean", "integer", "positiveInt", "unsignedInt", "decimal", "Boolean", "Integer", "Decimal":
			w.add("error", fhir.IssueValue, loc, "A "+t+" value must not be a string", t+" 类型的值不能是字符串")
			return
		}
		if x == "" {
			w.add("error", fhir.IssueValue, loc, "A value must not be empty", "值不能为空字符串")
			return
		}
		text = x
	default:
		w.add("error", fhir.IssueStructure, loc, "Element "+el.path+" must have a primitive value", "元素 "+el.path+" 必须是基本类型的值")
		return
	}
	if re := primitiveFormat[t]; re != nil && !re.MatchString(text) {
		w.add("error", fhir.IssueValue, loc, "'"+text+"' is not a valid "+t, "'"+text+"' 不是合法的 "+t)
		return
	}
	if (t == "unsignedInt" || t == "positiveInt" || t == "integer") && len(text) > 0 {
		if _, err := strconv.ParseInt(text, 10, 32); err != nil {
			w.add("error", fhir.IssueValue, loc, "'"+text+"' is out of range for "+t, "'"+text+"' 超出 "+t+" 的范围")
			return
		}
	}
	w.fixedPattern(v, el, loc)
	w.binding(v, el, typ, loc)
}

// fixedPattern checks fixed[x] (exactly equal) and pattern[x] (everything
// the pattern says is there).
func (w *walker) fixedPattern(v any, el *element, loc string) {
	if el.fixed != nil && !equalJSON(v, el.fixed) {
		w.add("error", fhir.IssueValue, loc,
			"Value must be exactly "+compact(el.fixed), "值必须为 "+compact(el.fixed))
	}
	if el.pattern != nil && !matchPattern(v, el.pattern) {
		w.add("error", fhir.IssueValue, loc,
			"Value does not match the pattern "+compact(el.pattern), "值不符合模式 "+compact(el.pattern))
	}
}

func compact(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

func equalJSON(a, b any) bool {
	switch x := a.(type) {
	case map[string]any:
		y, ok := b.(map[string]any)
		if !ok || len(x) != len(y) {
			return false
		}
		for k, v := range x {
			if !equalJSON(v, y[k]) {
				return false
			}
		}
		return true
	case []any:
		y, ok := b.([]any)
		if !ok || len(x) != len(y) {
			return false
		}
		for i := range x {
			if !equalJSON(x[i], y[i]) {
				return false
			}
		}
		return true
	case json.Number:
		return numbersEqual(x, b)
	}
	if n, ok := b.(json.Number); ok {
		return numbersEqual(n, a)
	}
	return a == b
}

func numbersEqual(a json.Number, b any) bool {
	var bs string
	switch y := b.(type) {
	case json.Number:
		bs = y.String()
	case float64:
		bs = strconv.FormatFloat(y, 'g', -1, 64)
	default:
		return false
	}
	fa, _, err1 := big.ParseFloat(a.String(), 10, 200, big.ToNearestEven)
	fb, _, err2 := big.ParseFloat(bs, 10, 200, big.ToNearestEven)
	return err1 == nil && err2 == nil && fa.Cmp(fb) == 0
}

// matchPattern reports whether v has everything pattern has: objects key by
// key, arrays element by element (each pattern element in some value
// element), primitives equal.
func matchPattern(v, pattern any) bool {
	switch p := pattern.(type) {
	case map[string]any:
		m, ok := v.(map[string]any)
		if !ok {
			return false
		}
		for k, pv := range p {
			if !matchPattern(m[k], pv) {
				return false
			}
		}
		return true
	case []any:
		arr, ok := v.([]any)
		if !ok {
			return len(p) == 1 && matchPattern(v, p[0])
		}
		for _, pe := range p {
			found := false
			for _, ve := range arr {
				if matchPattern(ve, pe) {
					found = true
					break
				}
			}
			if !found {
				return false
			}
		}
		return true
	}
	if v == nil {
		return false
	}
	return equalJSON(v, pattern)
}

// skippedInvariants are not evaluated: ele-1 (a value or children) is
// checked structurally; dom-3 looks for references typed canonical, uri or
// url among all descendants, which needs a type model fhirpath lacks.
var skippedInvariants = map[string]bool{"ele-1": true, "dom-3": true}

// invariants evaluates el's constraints on a complex value.
func (w *walker) invariants(v any, el *element, typ, loc string) {
	for _, inv := range el.constraints {
		if inv.expr == nil || skippedInvariants[inv.key] {
			continue
		}
		res, err := inv.expr.EvaluateIn(w.container, w.current, v, typ)
		if err != nil {
			continue // an expression beyond what fhirpath evaluates here
		}
		if len(res) == 0 {
			continue
		}
		if b, ok := res[0].Value.(bool); ok && len(res) == 1 && !b {
			sev := "error"
			if inv.severity == "warning" {
				sev = "warning"
			}
			w.add(sev, fhir.IssueInvalid, loc,
				"Constraint failed: "+inv.key+": "+inv.human,
				"不满足约束 "+inv.key+"："+inv.human)
		}
	}
}

// codings lists the system|code pairs of a code, Coding or CodeableConcept
// value (system "" for a bare code).
func codings(v any, typ string) [][2]string {
	switch typ {
	case "Coding":
		m, _ := v.(map[string]any)
		s, _ := m["system"].(string)
		c, _ := m["code"].(string)
		if c == "" {
			return nil
		}
		return [][2]string{{s, c}}
	case "CodeableConcept":
		m, _ := v.(map[string]any)
		arr, _ := m["coding"].([]any)
		var out [][2]string
		for _, x := range arr {
			out = append(out, codings(x, "Coding")...)
		}
		return out
	case "Quantity":
		m, _ := v.(map[string]any)
		s, _ := m["system"].(string)
		c, _ := m["code"].(string)
		if c == "" {
			return nil
		}
		return [][2]string{{s, c}}
	}
	if s, ok := v.(string); ok {
		return [][2]string{{"", s}}
	}
	return nil
}

// binding checks a coded value against its required or extensible binding.
func (w *walker) binding(v any, el *element, typ, loc string) {
	b := el.binding
	if b == nil || (b.strength != "required" && b.strength != "extensible") {
		return
	}
	switch typ {
	case "code", "Coding", "CodeableConcept", "string", "uri", "Quantity":
	default:
		return
	}
	exp, ok := w.v.defs.Terminology.Expand(b.valueSet)
	if !ok {
		return // a value set we do not have: nothing can be said
	}
	cs := codings(v, typ)
	if typ == "Quantity" && len(cs) == 0 {
		return
	}
	unknown := false
	// fits: a coding claims a code system the value set draws on, with a
	// code that system does not define; a code of the value set would
	// have fitted, so even an extensible binding is broken.
	fits := false
	for _, c := range cs {
		in, known := exp.Has(c[0], c[1])
		if in {
			return
		}
		if !known {
			unknown = true
		}
		if c[0] != "" && exp.Systems(c[0]) {
			if loaded, complete := w.v.defs.Terminology.HasSystem(c[0]); loaded && complete && w.v.defs.Terminology.Lookup(c[0], c[1]) == nil {
				fits = true
			}
		}
	}
	if unknown {
		return
	}
	vs := strings.SplitN(b.valueSet, "|", 2)[0]
	codes := make([]string, len(cs))
	for i, c := range cs {
		codes[i] = strings.TrimPrefix(c[0]+"#"+c[1], "#")
	}
	what := strings.Join(codes, ", ")
	switch {
	case b.strength == "required" && len(cs) == 0:
		w.add("error", fhir.IssueCodeInvalid, loc, "No code from the required value set "+vs, "缺少必需值集 "+vs+" 中的代码")
	case b.strength == "required":
		w.add("error", fhir.IssueCodeInvalid, loc, "Code "+what+" is not in the required value set "+vs, "代码 "+what+" 不在必需值集 "+vs+" 中")
	case fits:
		w.add("error", fhir.IssueCodeInvalid, loc, "Code "+what+" is not in the value set "+vs+" although it draws on that code system", "代码 "+what+" 不在值集 "+vs+" 中，而该值集包含此代码系统")
	case len(cs) > 0:
		w.add("warning", fhir.IssueCodeInvalid, loc, "Code "+what+" is not in the extensible value set "+vs, "代码 "+what+" 不在可扩展值集 "+vs+" 中")
	}
}

// referenceTarget extracts the type and id a reference points at; contained
// is true for "#id".
func referenceTarget(ref string) (typ, id string, contained bool) {
	if strings.HasPrefix(ref, "#") {
		return "", ref[1:], true
	}
	if strings.HasPrefix(ref, "urn:") {
		return "", "", false
	}
	parts := strings.Split(ref, "/")
	if i := len(parts) - 4; i >= 0 && parts[len(parts)-2] == "_history" {
		parts = parts[:len(parts)-2]
	}
	if len(parts) < 2 {
		return "", "", false
	}
	return parts[len(parts)-2], parts[len(parts)-1], false
}

// reference checks that a reference points at a type its targets allow,
// and, with a Resolver, at a resource that conforms to a target profile of
// ours.
func (w *walker) reference(m map[string]any, el *element, loc string) {
	var targets []string
	for _, t := range el.types {
		if t.code == "Reference" {
			targets = append(targets, t.targetProfiles...)
		}
	}
	ref, _ := m["reference"].(string)
	if ref == "" || len(targets) == 0 {
		return
	}
	typ, id, contained := referenceTarget(ref)
	var target map[string]any
	if contained {
		cs, _ := w.container["contained"].([]any)
		for _, c := range cs {
			if cm, ok := c.(map[string]any); ok && cm["id"] == id {
				typ, _ = cm["resourceType"].(string)
				target = cm
			}
		}
		if target == nil {
			if id != "" {
				w.add("error", fhir.IssueNotFound, loc+".reference", "No contained resource with id '"+id+"'", "找不到 id 为 '"+id+"' 的内含资源")
			}
			return
		}
	}
	if !w.v.defs.resourceTypes[typ] {
		return // not a reference this validator can read the type of
	}
	if rt, _ := m["type"].(string); rt != "" && rt != typ {
		w.add("error", fhir.IssueInvalid, loc+".type", "Reference.type "+rt+" does not match the reference "+ref, "Reference.type "+rt+" 与引用 "+ref+" 不一致")
	}
	allowed := false
	var ours []string
	var names []string
	for _, tp := range targets {
		tt := tp[strings.LastIndex(tp, "/")+1:]
		if st := w.v.defs.byURL[tp]; st != nil {
			tt = st.typ
		}
		names = append(names, tt)
		if tt == typ || tt == "Resource" || tt == "DomainResource" {
			allowed = true
			if strings.HasPrefix(tp, Canonical+"/") {
				ours = append(ours, tp)
			}
		}
	}
	if !allowed {
		w.add("error", fhir.IssueInvalid, loc+".reference",
			"A reference to a "+typ+" is not allowed here; allowed: "+strings.Join(names, ", "),
			"此处不允许引用 "+typ+"；允许的类型："+strings.Join(names, "、"))
		return
	}
	if len(ours) == 0 || w.v.resolve == nil || contained {
		return
	}
	res, err := w.v.resolve.Resolve(w.ctx, typ, id)
	if err != nil {
		w.err = err
		return
	}
	if res == nil {
		return // a dangling reference is the store's concern, not the profile's
	}
	if claims(res, ours) {
		return
	}
	w.add("error", fhir.IssueInvalid, loc+".reference",
		"The referenced "+typ+"/"+id+" does not claim the profile "+strings.Join(ours, " or "),
		"所引用的 "+typ+"/"+id+" 未声明 profile "+strings.Join(ours, " 或 "))
}

// claims reports whether a resource lists one of the profiles in
// meta.profile.
func claims(res map[string]any, profiles []string) bool {
	meta, _ := res["meta"].(map[string]any)
	ps, _ := meta["profile"].([]any)
	for _, p := range ps {
		s, _ := p.(string)
		s = strings.SplitN(s, "|", 2)[0]
		for _, want := range profiles {
			if s == want {
				return true
			}
		}
	}
	return false
}
