// Package search knows the FHIR R4 search parameters: which index entries a
// resource yields at write time (Entries), and how a query string becomes
// the store's query AST (Parse, Compile). The parameter registry is
// generated from the R4 SearchParameter definitions (params_gen.go); see
// docs/search.md for what is supported.
package search

import (
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/fmtbank/cmts/fhir/fhirpath"
	"github.com/fmtbank/cmts/store"
)

// KindComposite and KindSpecial are the parameter types that have no index
// entries of their own (a composite is indexed as its components).
const (
	KindComposite store.IndexKind = "composite"
	KindSpecial   store.IndexKind = "special"
)

// Param describes a search parameter the server supports.
type Param struct {
	Code string
	Type store.IndexKind
	// Doc is the CapabilityStatement documentation.
	Doc string
}

// Engine extracts index entries and parses queries, from the registry of
// the R4 search parameters. Build it with New; the zero value also works,
// building a shared registry on first use. An Engine is safe for concurrent
// use.
type Engine struct {
	reg *registry
	// Now is the clock for the "ap" prefix on dates (default time.Now).
	Now func() time.Time
	// Limits bound the cost of one search (zero fields: DefaultLimits').
	Limits Limits
}

// Limits bound what one search may ask for, so that a small request cannot
// cost seconds or exceed what a backend can evaluate (SQLite refuses a
// compound SELECT of over 500 terms and an expression tree deeper than
// 1,000). A search over a limit is a 400 naming the limit.
type Limits struct {
	// MaxValues bounds the comma-separated alternatives of one parameter.
	MaxValues int
	// MaxTerms bounds the alternatives of all filter parameters together.
	MaxTerms int
	// MaxParams bounds how many filter parameters (repeats included) one
	// search has.
	MaxParams int
	// MaxSortKeys bounds the keys of _sort.
	MaxSortKeys int
	// MaxIncludes bounds the _include and _revinclude values together.
	MaxIncludes int
}

// DefaultLimits are generous for any real query and well within what both
// backends evaluate.
var DefaultLimits = Limits{MaxValues: 100, MaxTerms: 300, MaxParams: 100, MaxSortKeys: 8, MaxIncludes: 16}

// orDefault fills zero fields from DefaultLimits.
func (l Limits) orDefault() Limits {
	fill := func(v *int, d int) {
		if *v <= 0 {
			*v = d
		}
	}
	fill(&l.MaxValues, DefaultLimits.MaxValues)
	fill(&l.MaxTerms, DefaultLimits.MaxTerms)
	fill(&l.MaxParams, DefaultLimits.MaxParams)
	fill(&l.MaxSortKeys, DefaultLimits.MaxSortKeys)
	fill(&l.MaxIncludes, DefaultLimits.MaxIncludes)
	return l
}

// New builds an engine: the parameter lists of every resource type, each
// expression parsed once. Custom parameters (SearchParameter resources as
// JSON, such as those of an implementation guide) are added beside the R4
// ones; one whose base and code match an R4 parameter replaces it.
func New(custom ...[]byte) (*Engine, error) {
	r, err := newRegistry(custom...)
	if err != nil {
		return nil, err
	}
	return &Engine{reg: r}, nil
}

// defaultRegistry serves the zero Engine; it is built once and never
// changed afterwards.
var defaultRegistry = sync.OnceValues(func() (*registry, error) { return newRegistry() })

func (e Engine) registry() *registry {
	if e.reg != nil {
		return e.reg
	}
	r, err := defaultRegistry()
	if err != nil {
		// The generated registry is checked by the tests; failing here is
		// a build defect, not a runtime condition.
		panic(err)
	}
	return r
}

func (e Engine) now() time.Time {
	if e.Now != nil {
		return e.Now()
	}
	return time.Now()
}

// Params lists the parameters supported on a resource type (its own and
// those of Resource and DomainResource), sorted by code. It is nil for an
// unknown type.
func (e Engine) Params(resourceType string) []Param {
	t := e.registry().types[resourceType]
	if t == nil {
		return nil
	}
	out := make([]Param, 0, len(t.params))
	for _, p := range t.sorted {
		if p.supported() {
			out = append(out, Param{Code: p.code, Type: p.kind, Doc: p.doc})
		}
	}
	return out
}

// registry holds the parameters of every resource type.
type registry struct {
	types map[string]*typeParams
	// system holds the parameters of every type (base Resource), for a
	// whole-system search.
	system *typeParams
}

// typeParams are the parameters of one resource type.
type typeParams struct {
	name   string
	params map[string]*param
	// sorted lists params by code; indexed those that yield entries.
	sorted  []*param
	indexed []*param
}

// param is a search parameter as it applies to one resource type.
type param struct {
	code string
	kind store.IndexKind
	doc  string
	// exprs are the parts of the parameter's expression for this type;
	// none when the parameter has no expression (e.g. _text) and so cannot
	// be supported.
	exprs      []*fhirpath.Expr
	targets    []string
	components []component
	modifiers  map[string]bool
	def        *paramDef
	// sameAs names the parameter of the type whose entries this one's
	// would repeat (same type and expression: Patient's phonetic is its
	// name), and which are searched instead; "" for none.
	sameAs string
}

// entries is the Param of the index entries the parameter is searched by.
func (p *param) entries() string {
	if p.sameAs != "" {
		return p.sameAs
	}
	return p.code
}

// repeats reports whether p's entries would be q's: the same kind and
// expressions. A reference parameter is left alone (its name also
// selects what _include follows), and so is a composite.
func (p *param) repeats(q *param) bool {
	return p.kind == q.kind && p.kind != store.KindReference && p.kind != KindComposite &&
		len(p.exprs) > 0 && slices.Equal(p.exprs, q.exprs)
}

// component is one part of a composite parameter.
type component struct {
	// param is the entries' Param: "<composite>$<index>".
	param string
	kind  store.IndexKind
	expr  *fhirpath.Expr
	// fromResource evaluates expr on the resource rather than on the
	// composite's value (component expressions starting with %resource).
	fromResource bool
}

func (p *param) supported() bool { return len(p.exprs) > 0 && p.kind != KindSpecial }

// hasTarget reports whether a reference parameter may point to typ.
func (p *param) hasTarget(typ string) bool {
	if len(p.targets) == 0 {
		return true
	}
	for _, t := range p.targets {
		if t == typ {
			return true
		}
	}
	return false
}

func newRegistry(custom ...[]byte) (*registry, error) {
	r := &registry{types: map[string]*typeParams{}, system: &typeParams{params: map[string]*param{}}}
	domain := map[string]bool{}
	for _, rt := range r4ResourceTypes {
		r.types[rt.Name] = &typeParams{name: rt.Name, params: map[string]*param{}}
		domain[rt.Name] = rt.Base == "DomainResource"
	}
	parsed := map[string]*fhirpath.Expr{}
	parse := func(src string) (*fhirpath.Expr, error) {
		if x, ok := parsed[src]; ok {
			return x, nil
		}
		x, err := fhirpath.Parse(src)
		if err != nil {
			return nil, err
		}
		parsed[src] = x
		return x, nil
	}
	defs := make([]*paramDef, 0, len(r4Params)+len(custom))
	for i := range r4Params {
		defs = append(defs, &r4Params[i])
	}
	for _, b := range custom {
		d, err := customParam(b)
		if err != nil {
			return nil, err
		}
		defs = append(defs, d)
	}
	for _, d := range defs {
		var comps []component
		for n, c := range d.Components {
			src, fromResource := c.Expression, false
			// Component expressions are evaluated on the composite's value;
			// one that starts from %resource is evaluated on the resource.
			if rest, ok := strings.CutPrefix(src, "%resource."); ok {
				src, fromResource = rest, true
			}
			x, err := parse(src)
			if err != nil {
				return nil, fmt.Errorf("search: %s component %s: %w", d.ID, c.Code, err)
			}
			comps = append(comps, component{param: d.Code + "$" + strconv.Itoa(n), kind: store.IndexKind(c.Type), expr: x, fromResource: fromResource})
		}
		mods := map[string]bool{}
		for _, m := range d.Modifiers {
			mods[m] = true
		}
		for _, b := range d.Bases {
			var exprs []*fhirpath.Expr
			for _, src := range b.Expressions {
				x, err := parse(src)
				if err != nil {
					return nil, fmt.Errorf("search: %s on %s: %w", d.ID, b.Type, err)
				}
				exprs = append(exprs, x)
			}
			targets := d.Targets
			if b.Targets != nil {
				targets = b.Targets
			}
			p := &param{code: d.Code, kind: store.IndexKind(d.Type), doc: b.Doc, exprs: exprs,
				targets: targets, components: comps, modifiers: mods, def: d}
			switch b.Type {
			case "Resource", "DomainResource":
				if b.Type == "Resource" {
					r.system.add(p)
				}
				for name, t := range r.types {
					if b.Type == "Resource" || domain[name] {
						t.add(p)
					}
				}
			default:
				t := r.types[b.Type]
				if t == nil {
					return nil, fmt.Errorf("search: %s: unknown base %s", d.ID, b.Type)
				}
				t.add(p)
			}
		}
	}
	all := []*typeParams{r.system}
	for _, t := range r.types {
		all = append(all, t)
	}
	for _, t := range all {
		for _, p := range t.params {
			t.sorted = append(t.sorted, p)
		}
		sort.Slice(t.sorted, func(i, j int) bool { return t.sorted[i].code < t.sorted[j].code })
	params:
		for i, p := range t.sorted {
			if !p.supported() {
				continue
			}
			// A parameter that repeats another is searched by the other's
			// entries and writes none of its own: a Patient's names are
			// not written twice. (Expressions are parsed once per text, so
			// equal ones are the same pointer.)
			for _, q := range t.indexed {
				if p.repeats(q) {
					cp := *p
					cp.sameAs = q.code
					t.params[p.code], t.sorted[i] = &cp, &cp
					continue params
				}
			}
			t.indexed = append(t.indexed, p)
		}
	}
	return r, nil
}

// add registers p; a type's own definition wins over a Resource-level one
// of the same code.
func (t *typeParams) add(p *param) {
	if old, ok := t.params[p.code]; ok {
		isGeneric := func(p *param) bool {
			for _, b := range p.def.Bases {
				if b.Type == "Resource" || b.Type == "DomainResource" {
					return true
				}
			}
			return false
		}
		if !isGeneric(old) && !p.def.custom {
			return
		}
	}
	t.params[p.code] = p
}
