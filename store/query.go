package store

import "fmt"

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
// version and evaluate queries on them, never on the resource JSON. What each
// field holds depends on Kind:
//
//	token      System, Code; Value = display/text, normalised (for :text)
//	string     Value = normalised text (see fhir/search); Code = the exact text (for :exact)
//	uri        Value = the uri
//	reference  System = target type, Code = target id (relative references);
//	           Value = the reference as written when it is absolute or canonical
//	date       Low, High = the covered period, as EncodeTime strings
//	number     Low, High = the value (or range), as EncodeNumber strings
//	quantity   Low, High as for number; System, Code = the unit's system and code
//
// Composite parameters are stored as entries of their components, each with
// Param "<composite>$<n>" n = component index, and Group set to the same
// number for the components of one composite value, so that a composite
// match requires all components in the same group.
type IndexEntry struct {
	Param  string
	Kind   IndexKind
	System string
	Code   string
	Value  string
	Low    string
	High   string
	// Group ties the components of one composite value together (0: none).
	Group int
}

// Query selects current, non-deleted resources that Access sees. A nil
// Filter matches everything. Everything the filter looks at (the targets of
// a Chain, the referrers of a Has) is limited by Access too.
type Query struct {
	Access Access
	// Type restricts to one resource type; empty searches all types.
	Type string
	// Types, when not empty, restricts to these types as well (a search
	// across several types: _type).
	Types  []string
	Filter Expr
	// Sort orders the matches; ties (and an empty Sort) fall back to type,
	// then id, ascending.
	Sort []SortKey
	// Count is the page size (>0); Offset the number of matches to skip.
	Count  int
	Offset int
	// WantTotal asks for the number of matches across all pages.
	WantTotal bool
	// After, when set, starts the page just after this position in the
	// page order. Before, when set, makes the page the Count matches just
	// before it (still in page order), and SearchPage.More then tells
	// whether matches precede the page. Keyset paging: pages stay stable
	// while other resources are created, changed or deleted, and the
	// position need not be a resource that still exists or matches. At most
	// one of them; Offset counts from the cursor; the total counts every
	// match. Errors: ErrInvalidQuery for both, or for a cursor without one
	// key per Sort key.
	After, Before *SearchCursor
}

// SearchCursor is a position in a search's page order: a resource's sort
// values, one per Sort key (nil when it has none; see SortKey and
// SortValue), then its type and id. PositionOf computes it. Scan uses Type
// and ID only.
type SearchCursor struct {
	Keys []*string
	Type string
	ID   string
}

// CheckCursor reports an ErrInvalidQuery when q's cursors do not fit its
// sort keys (see Query.After).
func (q Query) CheckCursor() error {
	switch {
	case q.After != nil && q.Before != nil:
		return fmt.Errorf("%w: both After and Before", ErrInvalidQuery)
	case q.After != nil && len(q.After.Keys) != len(q.Sort), q.Before != nil && len(q.Before.Keys) != len(q.Sort):
		return fmt.Errorf("%w: the cursor has not one key per sort key", ErrInvalidQuery)
	}
	return nil
}

// SortKey orders by a parameter's entries: ascending by the smallest of the
// resource's values (Value for strings/uri/token codes, Low for ranges),
// descending by the largest (High for ranges). Resources with no entry sort
// last either way.
type SortKey struct {
	Param string
	Desc  bool
}

// SearchPage is one page of matches.
type SearchPage struct {
	Versions []*Version
	// Total is the number of matches, or -1 when not asked for.
	Total int
	// More reports whether matches follow this page.
	More bool
}

// Expr is a node of the store-neutral search AST that every backend compiles
// (to SQL, to a MongoDB filter). Every leaf tests "the resource has at least
// one index entry of Param that ..." unless it says otherwise.
type Expr interface{ isExpr() }

// And matches when every operand matches (an empty And matches everything).
type And []Expr

// Or matches when any operand matches (an empty Or matches nothing).
type Or []Expr

// Not matches when the operand does not (for :not and ne).
type Not struct{ Expr Expr }

// Token matches a token entry (Kind token, no other kind) of Param with this
// code and, when System is not nil, this system (an empty *System matches only
// entries without a system). With System set and Code empty it matches any
// code of that system (system|).
type Token struct {
	Param  string
	System *string
	Code   string
}

// ID matches resources whose logical id is one of IDs (of any type the query
// allows); an empty list matches nothing.
type ID struct{ IDs []string }

// StringMode is how a String leaf compares.
type StringMode int

// String comparison modes.
const (
	// Prefix: the entry's Value starts with the (normalised) text.
	Prefix StringMode = iota
	// Exact: the entry's Code equals the text exactly.
	Exact
	// Contains: the entry's Value contains the (normalised) text.
	Contains
	// Equal: the entry's Value equals the text (uri, reference URL).
	Equal
	// Below: the entry's Value starts with the text (uri :below).
	Below
	// Above: the text starts with the entry's Value (uri :above).
	Above
)

// String matches entries of Param of any kind by text: every mode but Exact
// compares the entry's Value, Exact its Code (see StringMode). Text is
// compared as given: the caller normalises it as the entries were
// (fhir/search).
type String struct {
	Param string
	Mode  StringMode
	Text  string
	// Folded is, for Exact, the Value of the entries whose Code is Text
	// (Text normalised as the entries were): a backend may find them by
	// Value, then compare Code. Empty: not known (or empty), and the
	// entries are found by Code alone.
	Folded string
}

// Missing matches resources that have no entry of Param, of any kind
// (Missing true), or at least one (Missing false).
type Missing struct {
	Param   string
	Missing bool
}

// Bound compares one end of an entry's range with a value, as strings (the
// encodings make string order the value order).
type Bound struct {
	// High selects the entry's High; otherwise its Low.
	High bool
	Op   CompareOp
	// Value is an EncodeTime or EncodeNumber string.
	Value string
}

// CompareOp is a comparison of a Bound.
type CompareOp int

// Comparisons.
const (
	LT CompareOp = iota
	LE
	GT
	GE
)

// Range matches a date, number or quantity entry of Param for which every
// bound holds (the same entry: a resource with two dates does not match a
// range that neither date satisfies alone); no bounds match any such entry.
// For quantities System and Code, when not nil, must also equal the entry's
// unit system and code. An op outside LT..GE is ErrInvalidQuery. Entries keep
// Low <= High (the extractor guarantees it; backends rely on it).
type Range struct {
	Param  string
	Bounds []Bound
	System *string
	Code   *string
}

// Reference matches a reference entry of Param to Type/ID (Type empty: any
// type), or, when URL is set, a reference entry whose Value equals URL.
type Reference struct {
	Param string
	Type  string
	ID    string
	URL   string
}

// Chain matches resources with a relative reference entry of Param pointing
// to a current, non-deleted resource of TargetType (empty: whatever type the
// entry names) that the query's Access sees and that matches Filter
// (subject:Patient.name=x). References to absent resources never match.
type Chain struct {
	Param      string
	TargetType string
	Filter     Expr
}

// Has matches resources referred to, through a reference entry of Param, by
// a current, non-deleted resource of Type that the query's Access sees and
// that matches Filter
// (_has:Type:param:...); a nil Filter asks only for such a referrer.
type Has struct {
	Type   string
	Param  string
	Filter Expr
}

// Composite matches when one composite value (a Group of entries) satisfies
// every component expression: Components[i] is evaluated with only the
// entries of Param "<Param>$<i>" of that group visible, so its leaves name
// that component parameter (code-value-quantity$0). ID and Has inside look
// at the resource itself, as at top level.
type Composite struct {
	Param      string
	Components []Expr
}

func (And) isExpr()       {}
func (Or) isExpr()        {}
func (Not) isExpr()       {}
func (Token) isExpr()     {}
func (ID) isExpr()        {}
func (String) isExpr()    {}
func (Missing) isExpr()   {}
func (Range) isExpr()     {}
func (Reference) isExpr() {}
func (Chain) isExpr()     {}
func (Has) isExpr()       {}
func (Composite) isExpr() {}
