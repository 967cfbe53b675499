package store

// IndexKind is the search parameter type an index entry was extracted for.
type IndexKind string

// The R4 search parameter types.
const (
	KindToken     IndexKind = "token"
	KindString    IndexKind = "string"
	KindReference IndexKind = "reference"
	KindDate      IndexKind = "date"
	KindNumber    IndexKind = "number"
	KindQuantity  IndexKind = "quantity"
	KindURI       IndexKind = "uri"
)

// IndexEntry is one searchable value of a resource version, computed at write
// time from a search parameter definition. Backends store entries beside the
// version and evaluate queries on them, never on the resource JSON.
type IndexEntry struct {
	// Param is the search parameter code ("identifier", "_id", "subject").
	Param string
	Kind  IndexKind
	// System and Code hold a token (System empty when the value has none) or,
	// for a reference, the target type and id.
	System string
	Code   string
	// Value holds a string parameter's normalised text or a uri.
	Value string
	// Low and High bound a date, number or quantity as sortable strings.
	Low  string
	High string
}

// Query selects current, non-deleted resources of one tenant. The zero Filter
// matches everything.
type Query struct {
	Tenant string
	// Type restricts to one resource type; empty searches all types.
	Type   string
	Filter Expr
	// Count is the page size (>0); Offset the number of matches to skip.
	Count  int
	Offset int
	// WantTotal asks for the number of matches across all pages.
	WantTotal bool
}

// SearchPage is one page of matches, in a stable order (type, id) unless the
// query sorts otherwise.
type SearchPage struct {
	Versions []*Version
	// Total is the number of matches, or -1 when not asked for.
	Total int
	// More reports whether matches follow this page.
	More bool
}

// Expr is a node of the store-neutral search AST that every backend compiles
// (to SQL, to a MongoDB filter).
type Expr interface{ isExpr() }

// And matches when every operand matches.
type And []Expr

// Or matches when any operand matches.
type Or []Expr

// Token matches an entry of Param with this code and, when System is not nil,
// this system (an empty *System matches only entries without a system).
type Token struct {
	Param  string
	System *string
	Code   string
}

// ID matches resources by logical id.
type ID struct{ IDs []string }

func (And) isExpr()   {}
func (Or) isExpr()    {}
func (Token) isExpr() {}
func (ID) isExpr()    {}
