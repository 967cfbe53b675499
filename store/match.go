package store

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// Lookup resolves the other resources that Chain and Has look at. An
// implementation is bound to one Access (the query's) and to the caller's
// context: it never returns a resource the Access does not see.
type Lookup interface {
	// Current returns the current version of typ/id, a tombstone included, or
	// nil (and no error) when there is no such resource the Access sees.
	Current(typ, id string) (*Version, error)
	// Referrers returns the current, non-deleted versions of typ that have a
	// reference entry of param pointing to targetType/targetID, in any order.
	Referrers(typ, param, targetType, targetID string) ([]*Version, error)
}

// Match reports whether the version's index entries satisfy e: it is the
// reference evaluation of the search AST, which every backend must agree with
// (store/storetest checks them against it) and which a backend may use to
// re-check candidates it cannot filter exactly. A nil e matches. Match looks
// only at v.Type, v.ID and v.Index; whether v is current, deleted or of the
// visible to the query's Access is the caller's business. lookup serves Chain and Has (and may
// be nil when e has neither); its errors are returned as they are.
//
// Where the AST's doc comments leave a choice, Match decides it as follows,
// and backends follow Match:
//   - Token matches entries of Kind token; Reference, Chain and Has use
//     entries of Kind reference; Range uses entries of Kind date, number or
//     quantity. String and Missing look at entries of any kind.
//   - A reference entry points to System/Code (type/id) only when Code is not
//     empty; Chain with an empty TargetType follows references to any type.
//   - Inside a Composite, Components[i] sees only the entries of Param
//     "<composite>$<i>" with the group being tested (never group 0), so its
//     leaves name that parameter: Token{Param: "code-value-quantity$0", ...}.
//     An ID, Chain's target or Has inside a component look past the group as
//     they do elsewhere.
//   - String modes compare bytes: Prefix and Below are strings.HasPrefix(Value,
//     Text), Above strings.HasPrefix(Text, Value), Contains strings.Contains.
func Match(e Expr, v *Version, lookup Lookup) (bool, error) {
	return match(e, v, v.Index, lookup)
}

// match evaluates e with entries as the resource's visible index entries (all
// of them, or one composite group's component).
func match(e Expr, v *Version, entries []IndexEntry, lookup Lookup) (bool, error) {
	switch e := e.(type) {
	case nil:
		return true, nil
	case And:
		for _, sub := range e {
			ok, err := match(sub, v, entries, lookup)
			if err != nil || !ok {
				return false, err
			}
		}
		return true, nil
	case Or:
		for _, sub := range e {
			ok, err := match(sub, v, entries, lookup)
			if err != nil || ok {
				return ok, err
			}
		}
		return false, nil
	case Not:
		ok, err := match(e.Expr, v, entries, lookup)
		return !ok && err == nil, err
	case Token:
		return anyEntry(entries, e.Param, func(x *IndexEntry) bool {
			anyCode := e.Code == "" && e.System != nil
			return x.Kind == KindToken && (anyCode || x.Code == e.Code) && (e.System == nil || x.System == *e.System)
		}), nil
	case ID:
		return slices.Contains(e.IDs, v.ID), nil
	case String:
		var test func(x *IndexEntry) bool
		switch e.Mode {
		case Prefix, Below:
			test = func(x *IndexEntry) bool { return strings.HasPrefix(x.Value, e.Text) }
		case Exact:
			test = func(x *IndexEntry) bool { return x.Code == e.Text }
		case Contains:
			test = func(x *IndexEntry) bool { return strings.Contains(x.Value, e.Text) }
		case Equal:
			test = func(x *IndexEntry) bool { return x.Value == e.Text }
		case Above:
			test = func(x *IndexEntry) bool { return strings.HasPrefix(e.Text, x.Value) }
		default:
			return false, fmt.Errorf("store: string mode %d: %w", e.Mode, ErrInvalidQuery)
		}
		return anyEntry(entries, e.Param, test), nil
	case Missing:
		has := anyEntry(entries, e.Param, func(*IndexEntry) bool { return true })
		return has != e.Missing, nil
	case Range:
		for _, b := range e.Bounds {
			if b.Op < LT || b.Op > GE {
				return false, fmt.Errorf("store: compare op %d: %w", b.Op, ErrInvalidQuery)
			}
		}
		return anyEntry(entries, e.Param, func(x *IndexEntry) bool {
			if !IsRangeKind(x.Kind) || (e.System != nil && x.System != *e.System) || (e.Code != nil && x.Code != *e.Code) {
				return false
			}
			for _, b := range e.Bounds {
				if !b.holds(x) {
					return false
				}
			}
			return true
		}), nil
	case Reference:
		return anyEntry(entries, e.Param, func(x *IndexEntry) bool {
			if x.Kind != KindReference {
				return false
			}
			if e.URL != "" {
				return x.Value == e.URL
			}
			return x.Code == e.ID && (e.Type == "" || x.System == e.Type)
		}), nil
	case Chain:
		if lookup == nil {
			return false, fmt.Errorf("store: Chain needs a Lookup: %w", ErrInvalidQuery)
		}
		for i := range entries {
			x := &entries[i]
			if x.Param != e.Param || x.Kind != KindReference || x.Code == "" || (e.TargetType != "" && x.System != e.TargetType) {
				continue
			}
			t, err := lookup.Current(x.System, x.Code)
			if err != nil {
				return false, err
			}
			if t == nil || t.Deleted {
				continue
			}
			ok, err := match(e.Filter, t, t.Index, lookup)
			if err != nil || ok {
				return ok, err
			}
		}
		return false, nil
	case Has:
		if lookup == nil {
			return false, fmt.Errorf("store: Has needs a Lookup: %w", ErrInvalidQuery)
		}
		refs, err := lookup.Referrers(e.Type, e.Param, v.Type, v.ID)
		if err != nil {
			return false, err
		}
		for _, r := range refs {
			if r.Deleted {
				continue
			}
			ok, err := match(e.Filter, r, r.Index, lookup)
			if err != nil || ok {
				return ok, err
			}
		}
		return false, nil
	case Composite:
		prefix := e.Param + "$"
		var groups []int
		for _, x := range entries {
			if x.Group != 0 && strings.HasPrefix(x.Param, prefix) && !slices.Contains(groups, x.Group) {
				groups = append(groups, x.Group)
			}
		}
	group:
		for _, g := range groups {
			for i, c := range e.Components {
				param := prefix + strconv.Itoa(i)
				var view []IndexEntry
				for _, x := range entries {
					if x.Group == g && x.Param == param {
						view = append(view, x)
					}
				}
				ok, err := match(c, v, view, lookup)
				if err != nil {
					return false, err
				}
				if !ok {
					continue group
				}
			}
			return true, nil
		}
		return false, nil
	default:
		return false, fmt.Errorf("store: expression %T: %w", e, ErrInvalidQuery)
	}
}

func anyEntry(entries []IndexEntry, param string, test func(*IndexEntry) bool) bool {
	for i := range entries {
		if entries[i].Param == param && test(&entries[i]) {
			return true
		}
	}
	return false
}

// IsRangeKind reports whether entries of kind k hold a range in Low and High
// (the entries a Range leaf looks at).
func IsRangeKind(k IndexKind) bool {
	return k == KindDate || k == KindNumber || k == KindQuantity
}

// holds reports whether the bound holds for the entry.
func (b Bound) holds(x *IndexEntry) bool {
	v := x.Low
	if b.High {
		v = x.High
	}
	switch b.Op {
	case LT:
		return v < b.Value
	case LE:
		return v <= b.Value
	case GT:
		return v > b.Value
	default:
		return v >= b.Value
	}
}

// SortValue is the value an entry sorts by: Code for tokens, Low (ascending)
// or High (descending) for dates, numbers and quantities, "type/id" for
// relative references, and Value for everything else (strings, uris, absolute
// references).
func SortValue(x *IndexEntry, desc bool) string {
	switch {
	case x.Kind == KindToken:
		return x.Code
	case IsRangeKind(x.Kind) && desc:
		return x.High
	case IsRangeKind(x.Kind):
		return x.Low
	case x.Kind == KindReference && x.Code != "":
		return x.System + "/" + x.Code
	default:
		return x.Value
	}
}

// sortKey returns the smallest (ascending) or largest (descending) SortValue
// of v's entries of the key's parameter, and false when v has none.
func sortKey(v *Version, k SortKey) (string, bool) {
	var best string
	found := false
	for i := range v.Index {
		x := &v.Index[i]
		if x.Param != k.Param {
			continue
		}
		s := SortValue(x, k.Desc)
		if !found || (k.Desc && s > best) || (!k.Desc && s < best) {
			best, found = s, true
		}
	}
	return best, found
}

// RefersTo reports whether v has a reference entry of param to
// targetType/targetID: what a Lookup's Referrers selects among the referrers'
// type.
func RefersTo(v *Version, param, targetType, targetID string) bool {
	return anyEntry(v.Index, param, func(x *IndexEntry) bool {
		return x.Kind == KindReference && x.System == targetType && x.Code == targetID
	})
}

// Less reports whether a sorts before b in a search's page order (see
// Compare).
func Less(a, b *Version, keys []SortKey) bool { return Compare(a, b, keys) < 0 }

// Compare orders a and b in a search's page order, for slices.SortFunc: by
// each key in turn (see SortKey: ascending by the smallest value, descending
// by the largest, resources without a value last either way), then by type
// and id ascending.
func Compare(a, b *Version, keys []SortKey) int {
	for _, k := range keys {
		va, oka := sortKey(a, k)
		vb, okb := sortKey(b, k)
		if c := compareKey(va, oka, vb, okb, k.Desc); c != 0 {
			return c
		}
	}
	if c := strings.Compare(a.Type, b.Type); c != 0 {
		return c
	}
	return strings.Compare(a.ID, b.ID)
}

// compareKey orders two resources' values of one sort key (ok false: none,
// which sorts last).
func compareKey(a string, oka bool, b string, okb bool, desc bool) int {
	switch {
	case oka != okb && oka:
		return -1
	case oka != okb:
		return 1
	case !oka || a == b:
		return 0
	case (a < b) != desc:
		return -1
	default:
		return 1
	}
}

// PositionOf returns v's position in the page order of keys, from its index
// entries.
func PositionOf(v *Version, keys []SortKey) *SearchCursor {
	c := &SearchCursor{Keys: make([]*string, len(keys)), Type: v.Type, ID: v.ID}
	for i, k := range keys {
		if s, ok := sortKey(v, k); ok {
			c.Keys[i] = &s
		}
	}
	return c
}

// Compare orders v against the position c in the page order of keys: -1
// when v comes before it, 0 at it, +1 after it. c has one key per sort key.
func (c *SearchCursor) Compare(v *Version, keys []SortKey) int {
	for i, k := range keys {
		s, ok := sortKey(v, k)
		at := ""
		if c.Keys[i] != nil {
			at = *c.Keys[i]
		}
		if r := compareKey(s, ok, at, c.Keys[i] != nil, k.Desc); r != 0 {
			return r
		}
	}
	if r := strings.Compare(v.Type, c.Type); r != 0 {
		return r
	}
	return strings.Compare(v.ID, c.ID)
}
