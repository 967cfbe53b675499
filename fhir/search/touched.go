package search

import (
	"slices"

	"github.com/fmtbank/cmts/store"
)

// Touched lists, sorted and without repeats, the resource types whose data
// a search's filter reads without returning it: the targets of its chains
// and the sources of its _has. The access policy needs every one of them
// searchable, as a match reveals what they hold. (What _include and
// _revinclude bring is returned, and checked resource by resource.)
func (s *Search) Touched() []string {
	var out []string
	var walk func(e store.Expr)
	walk = func(e store.Expr) {
		switch e := e.(type) {
		case store.And:
			for _, x := range e {
				walk(x)
			}
		case store.Or:
			for _, x := range e {
				walk(x)
			}
		case store.Not:
			walk(e.Expr)
		case store.Chain:
			out = append(out, e.TargetType)
			walk(e.Filter)
		case store.Has:
			out = append(out, e.Type)
			walk(e.Filter)
		}
	}
	walk(s.Filter)
	slices.Sort(out)
	return slices.Compact(out)
}
