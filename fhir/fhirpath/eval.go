package fhirpath

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/big"
	"sort"
	"strconv"
	"strings"
)

// Node is one item of a FHIRPath result collection.
type Node struct {
	// Value is the item as decoded by encoding/json: map[string]any for
	// resources and complex values, string, bool, json.Number (or float64
	// when the decoder did not use UseNumber) for primitives. The result of
	// resolve() on a reference to a resource not present in the evaluated
	// resource is a placeholder map with "resourceType" and, when known, "id".
	Value any
	// Type is the FHIR type name when known, else "": the resourceType of a
	// resource, the type named by a choice-type suffix ("Quantity" for
	// valueQuantity, "dateTime" for effectiveDateTime), "Extension" for the
	// results of extension(), and "System.String", "System.Boolean", ... for
	// literals and computed values.
	Type string

	// ext is the "_name" sibling of a primitive value (its id and
	// extensions), used by extension().
	ext map[string]any
}

// Evaluate evaluates the expression with resource (a FHIR resource decoded
// from JSON, normally with json.Decoder.UseNumber) as %resource, %context
// and the initial input. Primitive elements that carry only extensions and
// no value are left out of the result.
func (e *Expr) Evaluate(resource any) ([]Node, error) {
	if resource == nil {
		return nil, nil
	}
	root := valueNode(resource, "")
	return e.run(&evaluator{root: root, context: root})
}

// EvaluateOn evaluates the expression on one element of resource, as an
// invariant (ElementDefinition.constraint) is: focus, of FHIR type
// focusType ("" when unknown), is the input and %context; resource is
// %resource and %rootResource.
func (e *Expr) EvaluateOn(resource, focus any, focusType string) ([]Node, error) {
	return e.EvaluateIn(resource, resource, focus, focusType)
}

// EvaluateIn is EvaluateOn for an element of a contained resource:
// rootResource (%rootResource) is the resource that contains resource
// (%resource).
func (e *Expr) EvaluateIn(rootResource, resource, focus any, focusType string) ([]Node, error) {
	if focus == nil {
		return nil, nil
	}
	root := valueNode(rootResource, "")
	res := valueNode(resource, "")
	return e.run(&evaluator{root: root, resource: &res, context: valueNode(focus, focusType)})
}

func (e *Expr) run(ev *evaluator) ([]Node, error) {
	out, err := ev.eval(e.root, []Node{ev.context}, nil)
	if err != nil {
		return nil, fmt.Errorf("fhirpath: evaluating %q: %w", e.src, err)
	}
	// Keep the items with a value: all of them, mostly, and then the
	// result is out itself (built afresh by this run).
	for i, n := range out {
		if n.Value == nil {
			res := make([]Node, i, len(out)-1)
			copy(res, out[:i])
			for _, n := range out[i+1:] {
				if n.Value != nil {
					res = append(res, n)
				}
			}
			return res, nil
		}
	}
	return out, nil
}

// valueNode wraps a decoded JSON value, typing resources by resourceType.
func valueNode(v any, typ string) Node {
	if m, ok := v.(map[string]any); ok && typ == "" {
		if rt, ok := m["resourceType"].(string); ok {
			typ = rt
		}
	}
	return Node{Value: v, Type: typ}
}

type evaluator struct {
	root Node
	// context is %context: the element an invariant is evaluated on (the
	// root for Evaluate).
	context Node
	// resource is %resource when it differs from root (%rootResource):
	// inside a contained resource.
	resource *Node
}

// scope holds $this and $index inside the argument of where(), select(),
// exists() and all().
type scope struct {
	this  Node
	index int
}

var errSingleton = errors.New("expected a single item")

func (ev *evaluator) eval(n *node, input []Node, sc *scope) ([]Node, error) {
	switch n.kind {
	case nLiteral:
		return []Node{n.lit}, nil
	case nEmpty:
		return nil, nil
	case nThis:
		if sc == nil {
			return input, nil
		}
		return []Node{sc.this}, nil
	case nIndexVar:
		if sc == nil {
			return nil, nil
		}
		return []Node{{Value: json.Number(strconv.Itoa(sc.index)), Type: "System.Integer"}}, nil
	case nTotal:
		return nil, fmt.Errorf("$total is not supported")
	case nExternal:
		switch n.name {
		case "resource":
			if ev.resource != nil {
				return []Node{*ev.resource}, nil
			}
			return []Node{ev.root}, nil
		case "rootResource":
			return []Node{ev.root}, nil
		case "context":
			return []Node{ev.context}, nil
		case "ucum":
			return []Node{{Value: "http://unitsofmeasure.org", Type: "System.String"}}, nil
		case "sct":
			return []Node{{Value: "http://snomed.info/sct", Type: "System.String"}}, nil
		case "loinc":
			return []Node{{Value: "http://loinc.org", Type: "System.String"}}, nil
		}
		return nil, fmt.Errorf("unknown external constant %%%s", n.name)
	case nMember:
		focus, root, err := ev.focus(n, input, sc)
		if err != nil {
			return nil, err
		}
		var out []Node
		for _, item := range focus {
			if root {
				// A type name at the start of a path selects the input
				// items of that type (Observation.code, Resource.id).
				if _, ok := item.Value.(map[string]any); ok && isType(item.Type, n.name) {
					out = append(out, item)
					continue
				}
			} else if m, ok := item.Value.(map[string]any); ok && m["resourceType"] == n.name {
				out = append(out, item)
				continue
			}
			out = appendChildren(out, item, n.name, n.extName)
		}
		return out, nil
	case nFunc:
		focus, _, err := ev.focus(n, input, sc)
		if err != nil {
			return nil, err
		}
		return ev.call(n, focus, input, sc)
	case nIndex:
		focus, err := ev.eval(n.left, input, sc)
		if err != nil {
			return nil, err
		}
		idx, err := ev.eval(n.args[0], input, sc)
		if err != nil {
			return nil, err
		}
		if len(idx) == 0 {
			return nil, nil
		}
		i, ok := asInt(idx)
		if !ok {
			return nil, fmt.Errorf("indexer must be an integer")
		}
		if i < 0 || i >= len(focus) {
			return nil, nil
		}
		return focus[i : i+1], nil
	case nNegate:
		v, err := ev.eval(n.left, input, sc)
		if err != nil || len(v) == 0 {
			return nil, err
		}
		if len(v) > 1 {
			return nil, errSingleton
		}
		f, ok := number(v[0].Value)
		if !ok {
			return nil, fmt.Errorf("unary minus needs a number")
		}
		return []Node{{Value: json.Number(new(big.Float).Neg(f).Text('g', -1)), Type: v[0].Type}}, nil
	case nTypeOp:
		left, err := ev.eval(n.left, input, sc)
		if err != nil {
			return nil, err
		}
		if n.name == "is" {
			return isOp(left, n.typeName)
		}
		return ofType(left, n.typeName), nil
	case nBinary:
		return ev.binary(n, input, sc)
	}
	return nil, fmt.Errorf("internal error: unknown node kind %d", n.kind)
}

// focus evaluates the input of an invocation: its left operand, or the
// expression's input (root reports which) when it starts a path.
func (ev *evaluator) focus(n *node, input []Node, sc *scope) ([]Node, bool, error) {
	if n.left != nil {
		f, err := ev.eval(n.left, input, sc)
		return f, false, err
	}
	if sc != nil {
		return []Node{sc.this}, true, nil
	}
	return input, true, nil
}

// appendChildren appends the children called name of item, flattening
// arrays and resolving choice types (value -> valueQuantity).
// extName is "_" + name.
func appendChildren(out []Node, item Node, name, extName string) []Node {
	m, ok := item.Value.(map[string]any)
	if !ok {
		return out
	}
	v, has := m[name]
	ext, hasExt := m[extName]
	if has || hasExt {
		return appendValues(out, v, ext, "")
	}
	// Choice type: name followed by a capitalised type name. A primitive
	// choice value may carry only extensions ("_valueString").
	if !choiceElements[name] {
		return out
	}
	var keys []string
	for k := range m {
		base := strings.TrimPrefix(k, "_")
		if len(base) > len(name) && strings.HasPrefix(base, name) {
			if _, ok := choiceTypes[base[len(name):]]; ok && (base == k || m[base] == nil) {
				keys = append(keys, base)
			}
		}
	}
	sort.Strings(keys)
	for _, k := range keys {
		out = appendValues(out, m[k], m["_"+k], choiceTypes[k[len(name):]])
	}
	return out
}

func appendValues(out []Node, v, ext any, typ string) []Node {
	if arr, ok := v.([]any); ok {
		exts, _ := ext.([]any)
		for i, e := range arr {
			n := valueNode(e, typ)
			if i < len(exts) {
				n.ext, _ = exts[i].(map[string]any)
			}
			if n.Value != nil || n.ext != nil {
				out = append(out, n)
			}
		}
		if len(exts) > len(arr) {
			for _, x := range exts[len(arr):] {
				if xm, ok := x.(map[string]any); ok {
					out = append(out, Node{Type: typ, ext: xm})
				}
			}
		}
		return out
	}
	if v == nil && ext == nil {
		return out
	}
	if exts, ok := ext.([]any); ok && v == nil {
		for _, x := range exts {
			if xm, ok := x.(map[string]any); ok {
				out = append(out, Node{Type: typ, ext: xm})
			}
		}
		return out
	}
	n := valueNode(v, typ)
	n.ext, _ = ext.(map[string]any)
	if n.Value == nil && n.ext == nil {
		return out
	}
	return append(out, n)
}

func (ev *evaluator) binary(n *node, input []Node, sc *scope) ([]Node, error) {
	l, err := ev.eval(n.left, input, sc)
	if err != nil {
		return nil, err
	}
	r, err := ev.eval(n.right, input, sc)
	if err != nil {
		return nil, err
	}
	switch n.name {
	case "|":
		return union(l, r), nil
	case "=", "!=":
		if len(l) == 0 || len(r) == 0 {
			return nil, nil
		}
		eq := len(l) == len(r)
		for i := 0; eq && i < len(l); i++ {
			eq = equal(l[i].Value, r[i].Value)
		}
		return boolean(eq == (n.name == "=")), nil
	case "<", ">", "<=", ">=":
		if len(l) == 0 || len(r) == 0 {
			return nil, nil
		}
		if len(l) > 1 || len(r) > 1 {
			return nil, errSingleton
		}
		c, ok := compare(l[0].Value, r[0].Value)
		if !ok {
			return nil, fmt.Errorf("cannot compare %T with %T", l[0].Value, r[0].Value)
		}
		switch n.name {
		case "<":
			return boolean(c < 0), nil
		case ">":
			return boolean(c > 0), nil
		case "<=":
			return boolean(c <= 0), nil
		default:
			return boolean(c >= 0), nil
		}
	case "in", "contains":
		item, coll := l, r
		if n.name == "contains" {
			item, coll = r, l
		}
		if len(item) == 0 {
			return nil, nil
		}
		if len(item) > 1 {
			return nil, errSingleton
		}
		for _, c := range coll {
			if equal(item[0].Value, c.Value) {
				return boolean(true), nil
			}
		}
		return boolean(false), nil
	case "&":
		a, _ := singleString(l)
		b, _ := singleString(r)
		return []Node{{Value: a + b, Type: "System.String"}}, nil
	case "+", "-":
		if len(l) == 0 || len(r) == 0 {
			return nil, nil
		}
		if len(l) > 1 || len(r) > 1 {
			return nil, errSingleton
		}
		if a, ok := l[0].Value.(string); ok && n.name == "+" {
			b, ok := r[0].Value.(string)
			if !ok {
				return nil, fmt.Errorf("cannot add %T to a string", r[0].Value)
			}
			return []Node{{Value: a + b, Type: "System.String"}}, nil
		}
		a, ok1 := number(l[0].Value)
		b, ok2 := number(r[0].Value)
		if !ok1 || !ok2 {
			return nil, fmt.Errorf("cannot compute %T %s %T", l[0].Value, n.name, r[0].Value)
		}
		sum := new(big.Float)
		if n.name == "+" {
			sum.Add(a, b)
		} else {
			sum.Sub(a, b)
		}
		typ := "System.Decimal"
		if sum.IsInt() && !strings.ContainsAny(fmt.Sprint(l[0].Value, r[0].Value), ".eE") {
			typ = "System.Integer"
		}
		return []Node{{Value: json.Number(sum.Text('g', -1)), Type: typ}}, nil
	case "and", "or", "xor", "implies":
		a, err := toBool(l)
		if err != nil {
			return nil, err
		}
		b, err := toBool(r)
		if err != nil {
			return nil, err
		}
		return logic(n.name, a, b), nil
	}
	return nil, fmt.Errorf("unsupported operator %q", n.name)
}

// tri is a three-valued boolean: -1 empty, 0 false, 1 true.
type tri int

const (
	triEmpty tri = -1
	triFalse tri = 0
	triTrue  tri = 1
)

// toBool applies FHIRPath singleton evaluation for a boolean operand.
func toBool(c []Node) (tri, error) {
	switch len(c) {
	case 0:
		return triEmpty, nil
	case 1:
		if b, ok := c[0].Value.(bool); ok {
			if b {
				return triTrue, nil
			}
			return triFalse, nil
		}
		return triTrue, nil
	}
	return triEmpty, errSingleton
}

func logic(op string, a, b tri) []Node {
	var r tri
	switch op {
	case "and":
		switch {
		case a == triFalse || b == triFalse:
			r = triFalse
		case a == triTrue && b == triTrue:
			r = triTrue
		default:
			r = triEmpty
		}
	case "or":
		switch {
		case a == triTrue || b == triTrue:
			r = triTrue
		case a == triFalse && b == triFalse:
			r = triFalse
		default:
			r = triEmpty
		}
	case "xor":
		if a == triEmpty || b == triEmpty {
			r = triEmpty
		} else if a != b {
			r = triTrue
		} else {
			r = triFalse
		}
	case "implies":
		switch {
		case a == triFalse || b == triTrue:
			r = triTrue
		case a == triTrue && b == triFalse:
			r = triFalse
		default:
			r = triEmpty
		}
	}
	if r == triEmpty {
		return nil
	}
	return boolean(r == triTrue)
}

func boolean(b bool) []Node { return []Node{{Value: b, Type: "System.Boolean"}} }

// union merges two collections, dropping duplicate values.
func union(a, b []Node) []Node {
	var out []Node
	seen := map[string]bool{}
	for _, c := range [][]Node{a, b} {
		for _, n := range c {
			k := key(n)
			if !seen[k] {
				seen[k] = true
				out = append(out, n)
			}
		}
	}
	return out
}

// key is a canonical text of a node's value, used for de-duplication.
func key(n Node) string {
	if n.Value == nil {
		b, _ := json.Marshal(n.ext)
		return "ext:" + string(b)
	}
	return string(Canonical(n.Value))
}

// Canonical returns a canonical JSON encoding of a decoded JSON value:
// object keys sorted and numbers in the shortest form that reads back as
// the same float64 (as JavaScript prints them), so that equal values (1.50
// and 1.5, json.Number and float64) encode the same.
func Canonical(v any) []byte {
	var b bytes.Buffer
	writeCanonical(&b, v)
	return b.Bytes()
}

func writeCanonical(b *bytes.Buffer, v any) {
	switch x := v.(type) {
	case map[string]any:
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		b.WriteByte('{')
		for i, k := range keys {
			if i > 0 {
				b.WriteByte(',')
			}
			kb, _ := json.Marshal(k)
			b.Write(kb)
			b.WriteByte(':')
			writeCanonical(b, x[k])
		}
		b.WriteByte('}')
	case []any:
		b.WriteByte('[')
		for i, e := range x {
			if i > 0 {
				b.WriteByte(',')
			}
			writeCanonical(b, e)
		}
		b.WriteByte(']')
	case json.Number, float64, int, int64:
		f, _ := number(x)
		if f64, acc := f.Float64(); !math.IsInf(f64, 0) && (f64 != 0 || acc == big.Exact) {
			b.WriteString(strconv.FormatFloat(f64, 'g', -1, 64))
		} else {
			b.WriteString(f.Text('g', -1))
		}
	default:
		enc, _ := json.Marshal(x)
		b.Write(enc)
	}
}

func number(v any) (*big.Float, bool) {
	switch x := v.(type) {
	case json.Number:
		f, _, err := big.ParseFloat(string(x), 10, 200, big.ToNearestEven)
		return f, err == nil
	case float64:
		f, _, err := big.ParseFloat(strconv.FormatFloat(x, 'g', -1, 64), 10, 200, big.ToNearestEven)
		return f, err == nil
	case int:
		return new(big.Float).SetInt64(int64(x)), true
	case int64:
		return new(big.Float).SetInt64(x), true
	}
	return nil, false
}

func asInt(c []Node) (int, bool) {
	if len(c) != 1 {
		return 0, false
	}
	f, ok := number(c[0].Value)
	if !ok || !f.IsInt() {
		return 0, false
	}
	i, _ := f.Int64()
	return int(i), true
}

// equal is FHIRPath equality of two item values (dates and times are
// compared as their text).
func equal(a, b any) bool {
	if fa, ok := number(a); ok {
		fb, ok := number(b)
		return ok && fa.Cmp(fb) == 0
	}
	switch x := a.(type) {
	case string:
		y, ok := b.(string)
		return ok && x == y
	case bool:
		y, ok := b.(bool)
		return ok && x == y
	case map[string]any, []any:
		return bytes.Equal(Canonical(a), Canonical(b))
	}
	return false
}

func compare(a, b any) (int, bool) {
	if fa, ok := number(a); ok {
		fb, ok := number(b)
		if !ok {
			return 0, false
		}
		return fa.Cmp(fb), true
	}
	if x, ok := a.(string); ok {
		y, ok := b.(string)
		if !ok {
			return 0, false
		}
		return strings.Compare(x, y), true
	}
	return 0, false
}

// isOp implements the "is" operator and function.
func isOp(c []Node, typeName string) ([]Node, error) {
	switch len(c) {
	case 0:
		return nil, nil
	case 1:
		return boolean(isType(c[0].Type, typeName)), nil
	}
	return nil, fmt.Errorf("'is' %s: %w, got %d", typeName, errSingleton, len(c))
}

// ofType keeps the items of the named type. The "as" operator and function
// use it too: unlike FHIRPath, which makes "as" on more than one item an
// error, search parameter expressions such as
// (Observation.component.value as Quantity) mean a filter.
func ofType(c []Node, typeName string) []Node {
	var out []Node
	for _, n := range c {
		if isType(n.Type, typeName) {
			out = append(out, n)
		}
	}
	return out
}

// singleString is the text of a one-item collection ("" when empty).
func singleString(c []Node) (string, error) {
	if len(c) == 0 {
		return "", nil
	}
	if len(c) > 1 {
		return "", errSingleton
	}
	return toText(c[0].Value)
}

// toText is a primitive's string form (FHIRPath toString()).
func toText(v any) (string, error) {
	switch x := v.(type) {
	case string:
		return x, nil
	case bool:
		return strconv.FormatBool(x), nil
	case json.Number:
		return x.String(), nil
	case float64:
		return strconv.FormatFloat(x, 'g', -1, 64), nil
	}
	return "", fmt.Errorf("%T has no string form", v)
}
