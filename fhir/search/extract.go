package search

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"regexp"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/fmtbank/cmts/fhir/fhirpath"
	"github.com/fmtbank/cmts/fhir/jsonscan"
	"github.com/fmtbank/cmts/store"
)

// Suffixes of the extra token parameters that Entries indexes beside a
// parameter (docs/search.md):
//
//	<param>:identifier  Reference.identifier of a reference parameter, as
//	                    System = identifier system, Code = identifier value
//	                    (for the :identifier modifier);
//	<param>:of-type     each Identifier of a token parameter, as System =
//	                    the type coding's system, Code = "<type code>|<value>"
//	                    (for the :of-type modifier).
const (
	identifierSuffix = ":identifier"
	ofTypeSuffix     = ":of-type"
)

// Entries computes the index entries of a resource (its FHIR JSON) for
// every supported parameter of its type. The body is decoded once; each
// parameter's expression was parsed when the Engine was built. It fails when
// the body is not a JSON object of resourceType, or an expression cannot be
// evaluated on it.
func (e Engine) Entries(resourceType string, body []byte) ([]store.IndexEntry, error) {
	return e.entries(resourceType, body, func(*param) bool { return true })
}

// References computes the entries of the reference parameter name of a
// resource (every reference parameter of its type for "*"): what _include
// follows, without evaluating the type's other parameters.
func (e Engine) References(resourceType string, body []byte, name string) ([]store.IndexEntry, error) {
	return e.entries(resourceType, body, func(p *param) bool {
		return p.kind == store.KindReference && (name == "*" || p.code == name)
	})
}

func (e Engine) entries(resourceType string, body []byte, want func(*param) bool) ([]store.IndexEntry, error) {
	t := e.registry().types[resourceType]
	if t == nil {
		return nil, fmt.Errorf("search: index: unknown resource type %q", resourceType)
	}
	res, _, err := decode(body, jsonscan.SkipWS(body, 0))
	if err != nil {
		return nil, fmt.Errorf("search: index %s: %w", resourceType, err)
	}
	m, ok := res.(map[string]any)
	if !ok || m["resourceType"] != resourceType {
		return nil, fmt.Errorf("search: index: the body is not a %s resource", resourceType)
	}
	x := extractor{out: make([]store.IndexEntry, 0, 32)}
	for _, p := range t.indexed {
		if !want(p) {
			continue
		}
		x.start, x.seen = len(x.out), nil
		for _, expr := range p.exprs {
			nodes, err := expr.Evaluate(res)
			if err != nil {
				return nil, fmt.Errorf("search: index %s parameter %s: %w", resourceType, p.code, err)
			}
			if p.kind == KindComposite {
				if err := x.composite(p, res, nodes); err != nil {
					return nil, fmt.Errorf("search: index %s parameter %s: %w", resourceType, p.code, err)
				}
				continue
			}
			for _, n := range nodes {
				x.node(p.code, p.kind, n, 0)
			}
		}
	}
	return x.out, nil
}

// extractor collects the entries of one resource, without duplicates.
type extractor struct {
	out []store.IndexEntry
	// start is where the parameter in progress begins in out: entries of
	// different parameters never repeat each other.
	start int
	// seen holds out[start:] once that is long (nil before): a few
	// entries are compared faster than they are hashed.
	seen  map[store.IndexEntry]bool
	group int
}

// seenLen is how many entries of one parameter add compares one by one.
const seenLen = 16

func (x *extractor) add(e store.IndexEntry) {
	if x.seen == nil && len(x.out)-x.start > seenLen {
		x.seen = make(map[store.IndexEntry]bool, 2*seenLen)
		for _, o := range x.out[x.start:] {
			x.seen[o] = true
		}
	}
	if x.seen != nil {
		if x.seen[e] {
			return
		}
		x.seen[e] = true
	} else if slices.Contains(x.out[x.start:], e) {
		return
	}
	x.out = append(x.out, e)
}

// composite indexes each value of a composite parameter as one group of
// component entries, Param "<code>$<i>".
func (x *extractor) composite(p *param, res any, nodes []fhirpath.Node) error {
	var fromResource [][]fhirpath.Node
	for _, n := range nodes {
		x.group++
		mark := len(x.out)
		complete := true
		for i, c := range p.components {
			var vals []fhirpath.Node
			var err error
			if c.fromResource {
				if fromResource == nil {
					fromResource = make([][]fhirpath.Node, len(p.components))
				}
				if fromResource[i] == nil {
					if fromResource[i], err = c.expr.Evaluate(res); err != nil {
						return err
					}
				}
				vals = fromResource[i]
			} else if vals, err = c.expr.Evaluate(n.Value); err != nil {
				return err
			}
			before := len(x.out)
			for _, v := range vals {
				x.node(c.param, c.kind, v, x.group)
			}
			if len(x.out) == before {
				complete = false
			}
		}
		// A composite value with a component missing can never match; its
		// partial group is dropped.
		if !complete {
			for _, e := range x.out[mark:] {
				if x.seen != nil {
					delete(x.seen, e)
				}
			}
			x.out = x.out[:mark]
		}
	}
	return nil
}

// node indexes one value of an expression according to the parameter type,
// reading the value's FHIR type from its shape where the expression does not
// say it (Node.Type).
func (x *extractor) node(code string, kind store.IndexKind, n fhirpath.Node, group int) {
	switch kind {
	case store.KindToken:
		x.token(code, n, group)
	case store.KindString:
		x.string(code, n, group)
	case store.KindDate:
		x.date(code, n, group)
	case store.KindNumber:
		x.number(code, store.KindNumber, n, group)
	case store.KindQuantity:
		x.number(code, store.KindQuantity, n, group)
	case store.KindReference:
		x.reference(code, n, group)
	case store.KindURI:
		if s, ok := n.Value.(string); ok && s != "" {
			x.add(store.IndexEntry{Param: code, Kind: store.KindURI, Value: s, Group: group})
			if base, _, ok := strings.Cut(s, "|"); ok {
				// A canonical with a version also matches without it.
				x.add(store.IndexEntry{Param: code, Kind: store.KindURI, Value: base, Group: group})
			}
		}
	}
}

// contactPointSystems are the codes of ContactPoint.system; an Identifier's
// system is a URI and never one of them.
var contactPointSystems = map[string]bool{
	"phone": true, "fax": true, "email": true, "pager": true, "url": true, "sms": true, "other": true,
}

func (x *extractor) token(code string, n fhirpath.Node, group int) {
	tok := func(system, c, text string) {
		x.add(store.IndexEntry{Param: code, Kind: store.KindToken, System: system, Code: c, Value: Normalize(text), Group: group})
	}
	switch v := n.Value.(type) {
	case string:
		if v != "" {
			tok("", v, "")
		}
	case bool:
		if v {
			tok("", "true", "")
		} else {
			tok("", "false", "")
		}
	case json.Number:
		tok("", v.String(), "")
	case map[string]any:
		_, hasCoding := v["coding"]
		_, hasCode := v["code"]
		_, hasValue := v["value"]
		switch {
		case hasCoding || n.Type == "CodeableConcept":
			for _, c := range list(v["coding"]) {
				if cm, ok := c.(map[string]any); ok {
					x.coding(code, cm, group)
				}
			}
			if text := str(v, "text"); text != "" {
				tok("", "", text)
			}
		case hasCode || n.Type == "Coding":
			x.coding(code, v, group)
		case hasValue:
			val := str(v, "value")
			if val == "" {
				return
			}
			sys := str(v, "system")
			if contactPointSystems[sys] {
				// ContactPoint: the value alone.
				tok("", val, "")
				return
			}
			typ, _ := v["type"].(map[string]any)
			tok(sys, val, str(typ, "text"))
			// Identifier.type, for :of-type.
			for _, c := range list(typ["coding"]) {
				if cm, ok := c.(map[string]any); ok && str(cm, "code") != "" {
					x.add(store.IndexEntry{Param: code + ofTypeSuffix, Kind: store.KindToken,
						System: str(cm, "system"), Code: str(cm, "code") + "|" + val, Group: group})
				}
			}
		default:
			if text := str(v, "text"); text != "" {
				tok("", "", text)
			}
		}
	}
}

func (x *extractor) coding(code string, c map[string]any, group int) {
	cd, display := str(c, "code"), str(c, "display")
	if cd == "" && display == "" {
		return
	}
	x.add(store.IndexEntry{Param: code, Kind: store.KindToken, System: str(c, "system"), Code: cd,
		Value: Normalize(display), Group: group})
}

// stringFields are the parts of HumanName and Address (and the text of
// other complex types) that a string parameter matches, each its own entry.
var stringFields = []string{"text", "family", "given", "prefix", "suffix",
	"line", "city", "district", "state", "postalCode", "country"}

func (x *extractor) string(code string, n fhirpath.Node, group int) {
	add := func(s string) {
		if strings.TrimSpace(s) != "" {
			x.add(store.IndexEntry{Param: code, Kind: store.KindString, Value: Normalize(s), Code: s, Group: group})
		}
	}
	switch v := n.Value.(type) {
	case string:
		add(v)
		if isHan(v) && strings.ContainsAny(v, " \t\u3000") {
			add(removeSpaces(v))
		}
	case map[string]any:
		for _, f := range stringFields {
			for _, s := range list(v[f]) {
				if s, ok := s.(string); ok {
					add(s)
				}
			}
		}
		// A Chinese name is written family name first, without spaces:
		// index the whole name that way too, so that "王小" finds 王小明
		// whether it was entered as text, as family + given, or spaced.
		family := str(v, "family")
		var given []string
		for _, g := range list(v["given"]) {
			if s, ok := g.(string); ok {
				given = append(given, s)
			}
		}
		if whole := family + strings.Join(given, ""); isHan(whole) && len(given) > 0 {
			add(removeSpaces(whole))
		}
		if text := str(v, "text"); isHan(text) {
			add(removeSpaces(text))
		}
	}
}

func (x *extractor) date(code string, n fhirpath.Node, group int) {
	entry := func(lo, hi string) {
		x.add(store.IndexEntry{Param: code, Kind: store.KindDate, Low: lo, High: hi, Group: group})
	}
	switch v := n.Value.(type) {
	case string:
		if lo, hi, ok := parseDateRange(v); ok {
			entry(store.EncodeTime(lo), store.EncodeTime(hi))
		}
	case map[string]any:
		if _, isTiming := v["event"]; isTiming || v["repeat"] != nil {
			// Timing: only the outer limits matter, from the events and
			// the repeat's bounding period.
			lo, hi := "", ""
			widen := func(l, h string) {
				if lo == "" || l < lo {
					lo = l
				}
				if hi == "" || h > hi {
					hi = h
				}
			}
			for _, ev := range list(v["event"]) {
				if s, ok := ev.(string); ok {
					if l, h, ok := parseDateRange(s); ok {
						widen(store.EncodeTime(l), store.EncodeTime(h))
					}
				}
			}
			if rep, ok := v["repeat"].(map[string]any); ok {
				if bp, ok := rep["boundsPeriod"].(map[string]any); ok {
					if l, h, ok := periodRange(bp); ok {
						widen(l, h)
					}
				}
			}
			if lo != "" {
				entry(lo, hi)
			}
			return
		}
		if lo, hi, ok := periodRange(v); ok {
			entry(lo, hi)
		}
	}
}

// periodRange reads a Period; an open end is the beginning or end of time.
func periodRange(p map[string]any) (lo, hi string, ok bool) {
	lo, hi = store.MinTime, store.MaxTime
	start, end := str(p, "start"), str(p, "end")
	if start == "" && end == "" {
		return "", "", false
	}
	if start != "" {
		l, _, ok := parseDateRange(start)
		if !ok {
			return "", "", false
		}
		lo = store.EncodeTime(l)
	}
	if end != "" {
		_, h, ok := parseDateRange(end)
		if !ok {
			return "", "", false
		}
		hi = store.EncodeTime(h)
	}
	return lo, hi, true
}

// number indexes number and quantity values: decimals, Quantity (and its
// specialisations, Money), Range.
func (x *extractor) number(code string, kind store.IndexKind, n fhirpath.Node, group int) {
	entry := func(lo, hi float64, system, unit string) {
		x.add(store.IndexEntry{Param: code, Kind: kind, Low: store.EncodeNumber(lo), High: store.EncodeNumber(hi),
			System: system, Code: unit, Group: group})
	}
	switch v := n.Value.(type) {
	case json.Number:
		if f, ok := float(v); ok {
			entry(f, f, "", "")
		}
	case map[string]any:
		if _, ok := v["value"]; ok {
			f, ok := float(v["value"])
			if !ok {
				return
			}
			system, unit := quantityUnit(v)
			// A comparator (">60") is not widened into an open range: a
			// search for gt1e17 should not find a GFR reported as ">60".
			// The value is indexed as written, as HAPI does.
			lo, hi := f, f
			entry(lo, hi, system, unit)
			// value||unit searches match the unit text as well as the code
			// (the spec: "the unit part matches code or unit"); a second
			// entry without a system carries the text.
			if text := str(v, "unit"); text != "" && (text != unit || system != "") {
				entry(lo, hi, "", text)
			}
			return
		}
		low, _ := v["low"].(map[string]any)
		high, _ := v["high"].(map[string]any)
		if low == nil && high == nil {
			return
		}
		lo, lok := float(low["value"])
		hi, hok := float(high["value"])
		if !lok && !hok {
			return
		}
		if !lok {
			lo = math.Inf(-1)
		}
		if !hok {
			hi = math.Inf(1)
		}
		system, unit := quantityUnit(low)
		if system == "" && unit == "" {
			system, unit = quantityUnit(high)
		}
		entry(lo, hi, system, unit)
	}
}

// quantityUnit is the unit a quantity is searched by: its system and code,
// or its unit text when it has no code; Money's currency is an ISO 4217
// code.
func quantityUnit(q map[string]any) (system, code string) {
	if q == nil {
		return "", ""
	}
	if cur := str(q, "currency"); cur != "" {
		return "urn:iso:std:iso:4217", cur
	}
	code = str(q, "code")
	if code == "" {
		code = str(q, "unit")
	}
	return str(q, "system"), code
}

// relativeRef matches a relative literal reference, optionally versioned.
var relativeRef = regexp.MustCompile(`^([A-Z][A-Za-z]+)/([A-Za-z0-9\-.]{1,64})(?:/_history/[A-Za-z0-9\-.]{1,64})?$`)

func (x *extractor) reference(code string, n fhirpath.Node, group int) {
	switch v := n.Value.(type) {
	case string:
		// canonical or uri
		x.refString(code, v, group)
	case map[string]any:
		if rt := str(v, "resourceType"); rt != "" {
			// A resource (Bundle.entry[0].resource): a reference to it.
			if id := str(v, "id"); id != "" {
				x.add(store.IndexEntry{Param: code, Kind: store.KindReference, System: rt, Code: id, Group: group})
			}
			return
		}
		if ref := str(v, "reference"); ref != "" {
			x.refString(code, ref, group)
		}
		if id, ok := v["identifier"].(map[string]any); ok {
			if val := str(id, "value"); val != "" {
				x.add(store.IndexEntry{Param: code + identifierSuffix, Kind: store.KindToken,
					System: str(id, "system"), Code: val, Group: group})
			}
		}
	}
}

func (x *extractor) refString(code, ref string, group int) {
	switch {
	case ref == "", ref[0] == '#':
		// Contained resources are not searchable on their own.
	case relativeRef.MatchString(ref):
		m := relativeRef.FindStringSubmatch(ref)
		x.add(store.IndexEntry{Param: code, Kind: store.KindReference, System: m[1], Code: m[2], Group: group})
	default:
		x.add(store.IndexEntry{Param: code, Kind: store.KindReference, Value: ref, Group: group})
		if base, _, ok := strings.Cut(ref, "|"); ok {
			x.add(store.IndexEntry{Param: code, Kind: store.KindReference, Value: base, Group: group})
		}
	}
}

func str(m map[string]any, k string) string {
	s, _ := m[k].(string)
	return s
}

// list returns v as a list: itself if it is an array, else a list of one
// (nil: none).
func list(v any) []any {
	switch v := v.(type) {
	case nil:
		return nil
	case []any:
		return v
	}
	return []any{v}
}

func float(v any) (float64, bool) {
	switch v := v.(type) {
	case json.Number:
		f, err := v.Float64()
		return f, err == nil && !math.IsInf(f, 0)
	case float64:
		return v, true
	}
	return 0, false
}

// decode reads the JSON value at b[i] as encoding/json reads it into an
// any with UseNumber (objects as map[string]any, arrays as []any, numbers
// as json.Number), and returns the index after it; what follows is not
// read. It walks the text in place (jsonscan) instead of through
// encoding/json's reflecting decoder, which took a third of Entries' time.
func decode(b []byte, i int) (any, int, error) {
	if i >= len(b) {
		return nil, 0, jsonscan.ErrSyntax
	}
	switch c := b[i]; {
	case c == '{':
		m := make(map[string]any, 8)
		next, err := jsonscan.Object(b, i, func(key []byte, at int) (int, error) {
			k, err := decodeString(key, bytes.IndexByte(key, '\\') >= 0)
			if err != nil {
				return 0, err
			}
			v, next, err := decode(b, at)
			m[k] = v
			return next, err
		})
		return m, next, err
	case c == '[':
		a := []any{}
		next, err := jsonscan.Array(b, i, func(at int) (int, error) {
			v, next, err := decode(b, at)
			a = append(a, v)
			return next, err
		})
		return a, next, err
	case c == '"':
		raw, escaped, next, err := jsonscan.RawString(b, i)
		if err != nil {
			return nil, 0, err
		}
		s, err := decodeString(raw, escaped)
		return s, next, err
	}
	next, err := jsonscan.SkipValue(b, i)
	if err != nil {
		return nil, 0, err
	}
	switch lit := string(b[i:next]); lit {
	case "true":
		return true, next, nil
	case "false":
		return false, next, nil
	case "null":
		return nil, next, nil
	default:
		if !isNumber(lit) {
			return nil, 0, jsonscan.ErrSyntax
		}
		return json.Number(lit), next, nil
	}
}

// decodeString is the string whose text between the quotes is raw:
// itself when it is plain (no escape, no control character, valid UTF-8),
// else as encoding/json reads it (which replaces invalid UTF-8 and
// refuses a control character).
func decodeString(raw []byte, escaped bool) (string, error) {
	plain := !escaped
	for j := 0; plain && j < len(raw); j++ {
		plain = raw[j] >= 0x20
	}
	plain = plain && utf8.Valid(raw)
	if plain {
		return string(raw), nil
	}
	q := make([]byte, 0, len(raw)+2)
	q = append(append(append(q, '"'), raw...), '"')
	var s string
	err := json.Unmarshal(q, &s)
	return s, err
}

// isNumber reports whether s is a JSON number:
// -?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)?
func isNumber(s string) bool {
	i := 0
	digits := func() bool {
		start := i
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			i++
		}
		return i > start
	}
	if i < len(s) && s[i] == '-' {
		i++
	}
	switch {
	case i < len(s) && s[i] == '0':
		i++
	case !digits():
		return false
	}
	if i < len(s) && s[i] == '.' {
		i++
		if !digits() {
			return false
		}
	}
	if i < len(s) && (s[i] == 'e' || s[i] == 'E') {
		i++
		if i < len(s) && (s[i] == '+' || s[i] == '-') {
			i++
		}
		if !digits() {
			return false
		}
	}
	return i == len(s)
}
