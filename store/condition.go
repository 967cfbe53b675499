package store

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// ConditionKey is a text naming what q selects, the same for two queries
// whose Access (see Access.Key), Type, Types and Filter are equal up to the order (and
// repetition) of And and Or operands, of ID lists, of Types and of a Range's
// bounds, and up to nested And in And or Or in Or: so "a=1&b=2" and
// "b=2&a=1", compiled, have one key. Sort, paging and cursors are left out.
// Queries that select the same resources by different means (a token with
// and without its system, an ID and a Token on _id...) get different keys.
// Backends serialise conditional writes on it (see Store.PutIf); it may be
// long and holds the query's values, so hash it before storing it.
func (q Query) ConditionKey() string {
	var b strings.Builder
	b.WriteString("access=(")
	b.WriteString(q.Access.Key())
	b.WriteString(")")
	b.WriteString(";type=")
	b.WriteString(strconv.Quote(q.Type))
	if len(q.Types) > 0 {
		types := slices.Clone(q.Types)
		slices.Sort(types)
		b.WriteString(";types=")
		b.WriteString(quoteList(slices.Compact(types)))
	}
	b.WriteString(";filter=")
	b.WriteString(canonical(q.Filter))
	return b.String()
}

// canonical writes e in one form for every order of its commutative parts.
// A nil filter and an empty And both match everything, and share a form.
func canonical(e Expr) string {
	switch e := e.(type) {
	case nil:
		return "and()"
	case And:
		return commutative("and", e, func(x Expr) ([]Expr, bool) { a, ok := x.(And); return a, ok })
	case Or:
		return commutative("or", e, func(x Expr) ([]Expr, bool) { o, ok := x.(Or); return o, ok })
	case Not:
		return "not(" + canonical(e.Expr) + ")"
	case Token:
		return "token(" + strconv.Quote(e.Param) + "," + quotePtr(e.System) + "," + strconv.Quote(e.Code) + ")"
	case ID:
		ids := slices.Clone(e.IDs)
		slices.Sort(ids)
		return "id(" + quoteList(slices.Compact(ids)) + ")"
	case String:
		return "string(" + strconv.Quote(e.Param) + "," + strconv.Itoa(int(e.Mode)) + "," + strconv.Quote(e.Text) + ")"
	case Missing:
		return "missing(" + strconv.Quote(e.Param) + "," + strconv.FormatBool(e.Missing) + ")"
	case Range:
		bounds := make([]string, len(e.Bounds))
		for i, bd := range e.Bounds {
			bounds[i] = strconv.FormatBool(bd.High) + " " + strconv.Itoa(int(bd.Op)) + " " + strconv.Quote(bd.Value)
		}
		slices.Sort(bounds)
		return "range(" + strconv.Quote(e.Param) + "," + quoteList(slices.Compact(bounds)) + "," + quotePtr(e.System) + "," + quotePtr(e.Code) + ")"
	case Reference:
		return "reference(" + strconv.Quote(e.Param) + "," + strconv.Quote(e.Type) + "," + strconv.Quote(e.ID) + "," + strconv.Quote(e.URL) + ")"
	case Chain:
		return "chain(" + strconv.Quote(e.Param) + "," + strconv.Quote(e.TargetType) + "," + canonical(e.Filter) + ")"
	case Has:
		// A nil Filter asks only for a referrer, which an empty And does too.
		return "has(" + strconv.Quote(e.Type) + "," + strconv.Quote(e.Param) + "," + canonical(e.Filter) + ")"
	case Composite:
		// Components are positional: component i matches "<Param>$<i>".
		parts := make([]string, len(e.Components))
		for i, c := range e.Components {
			parts[i] = canonical(c)
		}
		return "composite(" + strconv.Quote(e.Param) + ",[" + strings.Join(parts, ",") + "])"
	default:
		// A node this function does not know yet: still a stable text, if
		// not an order-independent one.
		return strconv.Quote(fmt.Sprintf("%T%#v", e, e))
	}
}

// commutative writes an And or Or: operands flattened (nested nodes of the
// same kind), sorted and made unique; a single operand stands for itself.
func commutative(name string, ops []Expr, same func(Expr) ([]Expr, bool)) string {
	var parts []string
	var walk func([]Expr)
	walk = func(ops []Expr) {
		for _, x := range ops {
			if inner, ok := same(x); ok {
				walk(inner)
				continue
			}
			parts = append(parts, canonical(x))
		}
	}
	walk(ops)
	slices.Sort(parts)
	parts = slices.Compact(parts)
	if len(parts) == 1 {
		return parts[0]
	}
	return name + "(" + strings.Join(parts, ",") + ")"
}

func quotePtr(s *string) string {
	if s == nil {
		return "nil"
	}
	return strconv.Quote(*s)
}

func quoteList(l []string) string {
	q := make([]string, len(l))
	for i, s := range l {
		q[i] = strconv.Quote(s)
	}
	return "[" + strings.Join(q, ",") + "]"
}
