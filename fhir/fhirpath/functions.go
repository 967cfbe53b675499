package fhirpath

import (
	"encoding/json"
	"fmt"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
)

type function struct {
	minArgs, maxArgs int
	typeArg          bool // takes one type specifier instead of expressions
}

func (f function) arity() string {
	switch {
	case f.minArgs == f.maxArgs && f.minArgs == 0:
		return "no arguments"
	case f.minArgs == f.maxArgs:
		return fmt.Sprintf("%d argument(s)", f.minArgs)
	}
	return fmt.Sprintf("%d to %d arguments", f.minArgs, f.maxArgs)
}

// functions lists the supported functions and their arity.
var functions = map[string]function{
	"where":        {1, 1, false},
	"select":       {1, 1, false},
	"exists":       {0, 1, false},
	"all":          {1, 1, false},
	"empty":        {0, 0, false},
	"not":          {0, 0, false},
	"first":        {0, 0, false},
	"last":         {0, 0, false},
	"tail":         {0, 0, false},
	"count":        {0, 0, false},
	"distinct":     {0, 0, false},
	"union":        {1, 1, false},
	"combine":      {1, 1, false},
	"ofType":       {typeArg: true},
	"as":           {typeArg: true},
	"is":           {typeArg: true},
	"extension":    {1, 1, false},
	"hasExtension": {1, 1, false},
	"hasValue":     {0, 0, false},
	"resolve":      {0, 0, false},
	"startsWith":   {1, 1, false},
	"contains":     {1, 1, false},
	// For ElementDefinition.constraint (invariants).
	"matches":        {1, 1, false},
	"replaceMatches": {2, 2, false},
	"length":         {0, 0, false},
	"toInteger":      {0, 0, false},
	"toString":       {0, 0, false},
	"substring":      {1, 2, false},
	"isDistinct":     {0, 0, false},
	"intersect":      {1, 1, false},
	"iif":            {2, 3, false},
	"trace":          {1, 2, false},
	"children":       {0, 0, false},
	"descendants":    {0, 0, false},
	"htmlChecks":     {0, 0, false},
}

func (ev *evaluator) call(n *node, focus, input []Node, sc *scope) ([]Node, error) {
	// arg evaluates a non-iterating argument against the expression's input.
	arg := func(i int) ([]Node, error) { return ev.eval(n.args[i], input, sc) }
	switch n.name {
	case "where", "select", "all", "exists":
		if n.name == "exists" && len(n.args) == 0 {
			return boolean(len(focus) > 0), nil
		}
		var out []Node
		all := true
		for i, item := range focus {
			r, err := ev.eval(n.args[0], []Node{item}, &scope{this: item, index: i})
			if err != nil {
				return nil, err
			}
			switch n.name {
			case "select":
				out = append(out, r...)
			case "where", "exists":
				if truthy(r) {
					if n.name == "exists" {
						return boolean(true), nil
					}
					out = append(out, item)
				}
			case "all":
				if !truthy(r) {
					all = false
				}
			}
		}
		switch n.name {
		case "exists":
			return boolean(false), nil
		case "all":
			return boolean(all), nil
		}
		return out, nil
	case "empty":
		return boolean(len(focus) == 0), nil
	case "not":
		b, err := toBool(focus)
		if err != nil || b == triEmpty {
			return nil, err
		}
		return boolean(b == triFalse), nil
	case "first":
		if len(focus) == 0 {
			return nil, nil
		}
		return focus[:1], nil
	case "last":
		if len(focus) == 0 {
			return nil, nil
		}
		return focus[len(focus)-1:], nil
	case "tail":
		if len(focus) < 2 {
			return nil, nil
		}
		return focus[1:], nil
	case "count":
		return []Node{{Value: json.Number(strconv.Itoa(len(focus))), Type: "System.Integer"}}, nil
	case "distinct":
		return union(focus, nil), nil
	case "union", "combine":
		other, err := arg(0)
		if err != nil {
			return nil, err
		}
		if n.name == "union" {
			return union(focus, other), nil
		}
		return append(append([]Node(nil), focus...), other...), nil
	case "ofType", "as":
		return ofType(focus, n.typeName), nil
	case "is":
		return isOp(focus, n.typeName)
	case "extension", "hasExtension":
		u, err := stringArg(arg(0))
		if err != nil {
			return nil, err
		}
		var out []Node
		for _, item := range focus {
			var exts []any
			if m, ok := item.Value.(map[string]any); ok {
				exts, _ = m["extension"].([]any)
			} else if item.ext != nil {
				exts, _ = item.ext["extension"].([]any)
			}
			for _, x := range exts {
				if xm, ok := x.(map[string]any); ok && xm["url"] == u {
					out = append(out, Node{Value: xm, Type: "Extension"})
				}
			}
		}
		if n.name == "hasExtension" {
			return boolean(len(out) > 0), nil
		}
		return out, nil
	case "hasValue":
		return boolean(len(focus) == 1 && isPrimitive(focus[0].Value)), nil
	case "resolve":
		var out []Node
		for _, item := range focus {
			if r, ok := ev.resolve(item); ok {
				out = append(out, r)
			}
		}
		return out, nil
	case "startsWith", "contains":
		if len(focus) == 0 {
			return nil, nil
		}
		if len(focus) > 1 {
			return nil, errSingleton
		}
		s, ok := focus[0].Value.(string)
		if !ok {
			return nil, fmt.Errorf("%s() needs a string input", n.name)
		}
		a, err := stringArg(arg(0))
		if err != nil {
			return nil, err
		}
		if n.name == "startsWith" {
			return boolean(strings.HasPrefix(s, a)), nil
		}
		return boolean(strings.Contains(s, a)), nil
	}
	return ev.callMore(n, focus, input, sc)
}

// callMore holds the functions invariants use beyond search.
func (ev *evaluator) callMore(n *node, focus, input []Node, sc *scope) ([]Node, error) {
	arg := func(i int) ([]Node, error) { return ev.eval(n.args[i], input, sc) }
	one := func() (string, bool, error) {
		if len(focus) == 0 {
			return "", false, nil
		}
		if len(focus) > 1 {
			return "", false, errSingleton
		}
		s, err := toText(focus[0].Value)
		return s, err == nil, nil
	}
	switch n.name {
	case "matches", "replaceMatches":
		s, ok, err := one()
		if err != nil || !ok {
			return nil, err
		}
		pat, err := stringArg(arg(0))
		if err != nil {
			return nil, err
		}
		re, err := ev.regexp(pat)
		if err != nil {
			return nil, err
		}
		if n.name == "matches" {
			return boolean(re.MatchString(s)), nil
		}
		sub, err := stringArg(arg(1))
		if err != nil {
			return nil, err
		}
		return []Node{{Value: re.ReplaceAllString(s, strings.ReplaceAll(sub, "$", "$$")), Type: "System.String"}}, nil
	case "length":
		s, ok, err := one()
		if err != nil || !ok {
			return nil, err
		}
		return []Node{{Value: json.Number(strconv.Itoa(len([]rune(s)))), Type: "System.Integer"}}, nil
	case "toString":
		s, ok, err := one()
		if err != nil || !ok {
			return nil, err
		}
		return []Node{{Value: s, Type: "System.String"}}, nil
	case "toInteger":
		s, ok, err := one()
		if err != nil || !ok {
			return nil, err
		}
		if _, isBool := focus[0].Value.(bool); isBool {
			return []Node{{Value: json.Number(map[bool]string{true: "1", false: "0"}[focus[0].Value.(bool)]), Type: "System.Integer"}}, nil
		}
		i, err := strconv.Atoi(s)
		if err != nil {
			return nil, nil
		}
		return []Node{{Value: json.Number(strconv.Itoa(i)), Type: "System.Integer"}}, nil
	case "substring":
		s, ok, err := one()
		if err != nil || !ok {
			return nil, err
		}
		r := []rune(s)
		startC, err := arg(0)
		if err != nil {
			return nil, err
		}
		start, ok := asInt(startC)
		if !ok || start < 0 || start >= len(r) {
			return nil, nil
		}
		end := len(r)
		if len(n.args) > 1 {
			lc, err := arg(1)
			if err != nil {
				return nil, err
			}
			if l, ok := asInt(lc); ok && start+l < end {
				end = start + max(l, 0)
			}
		}
		return []Node{{Value: string(r[start:end]), Type: "System.String"}}, nil
	case "isDistinct":
		return boolean(len(union(focus, nil)) == len(focus)), nil
	case "intersect":
		other, err := arg(0)
		if err != nil {
			return nil, err
		}
		var out []Node
		for _, a := range union(focus, nil) {
			for _, b := range other {
				if equal(a.Value, b.Value) {
					out = append(out, a)
					break
				}
			}
		}
		return out, nil
	case "iif":
		// The criterion and the branches are evaluated on the focus.
		in := focus
		if n.left == nil {
			in = input
		}
		cond, err := ev.eval(n.args[0], in, sc)
		if err != nil {
			return nil, err
		}
		b, err := toBool(cond)
		if err != nil {
			return nil, err
		}
		switch {
		case b == triTrue:
			return ev.eval(n.args[1], in, sc)
		case len(n.args) > 2:
			return ev.eval(n.args[2], in, sc)
		}
		return nil, nil
	case "trace":
		return focus, nil
	case "children", "descendants":
		var out []Node
		frontier := focus
		for len(frontier) > 0 {
			var next []Node
			for _, item := range frontier {
				next = appendAllChildren(next, item)
			}
			out = append(out, next...)
			if n.name == "children" {
				break
			}
			frontier = next
		}
		return out, nil
	case "htmlChecks":
		// The narrative's XHTML rules are not checked here.
		return boolean(true), nil
	}
	return nil, fmt.Errorf("unsupported function %s()", n.name)
}

// appendAllChildren appends every child element of item, in key order.
func appendAllChildren(out []Node, item Node) []Node {
	m, ok := item.Value.(map[string]any)
	if !ok {
		return out
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		if k != "resourceType" && !strings.HasPrefix(k, "_") {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	for _, k := range keys {
		typ := ""
		for suffix, t := range choiceTypes {
			if strings.HasSuffix(k, suffix) && len(k) > len(suffix) {
				if len(t) > len(typ) {
					typ = t
				}
			}
		}
		out = appendValues(out, m[k], m["_"+k], typ)
	}
	return out
}

// regexp compiles a FHIRPath regular expression (as FHIRPath 2.0, which R4
// uses, it matches anywhere in the string unless anchored).
func (ev *evaluator) regexp(pat string) (*regexp.Regexp, error) {
	if re, ok := regexCache.Load(pat); ok {
		return re.(*regexp.Regexp), nil
	}
	re, err := regexp.Compile(pat)
	if err != nil {
		return nil, err
	}
	regexCache.Store(pat, re)
	return re, nil
}

// regexCache holds compiled patterns: invariants use a few, again and again.
var regexCache sync.Map

// truthy is the test where() applies to its criterion: the first item is
// true, or is any value other than false.
func truthy(c []Node) bool {
	if len(c) == 0 {
		return false
	}
	if b, ok := c[0].Value.(bool); ok {
		return b
	}
	return c[0].Value != nil
}

func isPrimitive(v any) bool {
	switch v.(type) {
	case string, bool, json.Number, float64:
		return true
	}
	return false
}

func stringArg(c []Node, err error) (string, error) {
	if err != nil {
		return "", err
	}
	if len(c) != 1 {
		return "", fmt.Errorf("expected one string argument, got %d items", len(c))
	}
	s, ok := c[0].Value.(string)
	if !ok {
		return "", fmt.Errorf("expected a string argument, got %T", c[0].Value)
	}
	return s, nil
}

// refPattern matches the type and id at the end of a literal reference:
// "Patient/1", "http://x/fhir/Patient/1/_history/2", "Patient?identifier=x".
var refPattern = regexp.MustCompile(`(?:^|/)([A-Z][A-Za-z]+)(?:/([A-Za-z0-9\-.]{1,64})(?:/_history/[^/]+)?|\?.*)$`)

// resolve implements resolve() without a server: a contained resource
// ("#id") or a Bundle entry (by fullUrl) of the evaluated resource when
// present, else a placeholder carrying the type (and id) named by the
// reference, or by Reference.type.
func (ev *evaluator) resolve(item Node) (Node, bool) {
	var ref, typ string
	switch v := item.Value.(type) {
	case map[string]any:
		ref, _ = v["reference"].(string)
		typ, _ = v["type"].(string)
	case string:
		ref = v
	default:
		return Node{}, false
	}
	root, _ := ev.root.Value.(map[string]any)
	if strings.HasPrefix(ref, "#") && root != nil {
		contained, _ := root["contained"].([]any)
		for _, c := range contained {
			if cm, ok := c.(map[string]any); ok && cm["id"] == ref[1:] {
				return valueNode(cm, ""), true
			}
		}
	}
	if ref != "" && root != nil && root["resourceType"] == "Bundle" {
		entries, _ := root["entry"].([]any)
		for _, e := range entries {
			em, _ := e.(map[string]any)
			if em != nil && em["fullUrl"] == ref {
				if r, ok := em["resource"].(map[string]any); ok {
					return valueNode(r, ""), true
				}
			}
		}
	}
	placeholder := map[string]any{}
	if ref = strings.SplitN(ref, "#", 2)[0]; ref != "" {
		if m := refPattern.FindStringSubmatch(ref); m != nil {
			placeholder["resourceType"] = m[1]
			if m[2] != "" {
				placeholder["id"] = m[2]
			}
		}
	}
	if placeholder["resourceType"] == nil {
		if typ == "" {
			return Node{}, false
		}
		placeholder["resourceType"] = typ
	}
	return valueNode(placeholder, ""), true
}
