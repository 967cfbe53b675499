package mongo

import (
	"context"
	"encoding/binary"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strings"

	"github.com/fmtbank/cmts/store"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// Fields of a current version's document that hold its index entries: the
// entries themselves (fIdx), and, for filtering, one array of encoded strings
// per kind of match. Every encoded value starts with the parameter code, so
// one multikey index per array serves every parameter, and a match is an
// equality or an anchored $regex on one array element: forms that MongoDB and
// FerretDB evaluate alike.
//
// No entry is encoded twice in one array's worth of meaning: a token's
// param|code is in tokc only and a reference's param|id in refi only, not
// in code as well (code holds the other kinds'), so an exact string search
// looks in all three (compileString). FerretDB v1 decodes every array
// element of every document on every query, so each element costs every
// search (see docs/mongodb.md, "Layout").
const (
	fIdx     = "idx"  // every entry, packed by packEntries into one binary value
	fTok     = "tok"  // token: param|system|code (system empty when there is none)
	fTokCode = "tokc" // token: param|code, for a search without a system or an exact string
	fRef     = "ref"  // reference: param|type|id (empty for an absolute one)
	fRefID   = "refi" // reference: param|id, for any target type or an exact string
	fRefURL  = "refu" // absolute or canonical reference: param|url
	fValue   = "val"  // every entry: param|Value (string, uri, token text...)
	fCode    = "code" // every entry but tokens and references: param|Code (a string's exact text...)
	fLow     = "lo"   // date, number, quantity: param|Low (sortable)
	fHigh    = "hi"   // date, number, quantity: param|High (sortable)
)

// indexArrays lists the fields above, in the order they are stored.
var indexArrays = []string{fIdx, fTok, fTokCode, fRef, fRefID, fRefURL, fValue, fCode, fLow, fHigh}

// entryDoc is a store.IndexEntry as documents written before the packed
// form hold it in fIdx (an array of these); they are still read.
type entryDoc struct {
	Param  string `bson:"p"`
	Kind   string `bson:"k"`
	System string `bson:"s,omitempty"`
	Code   string `bson:"c,omitempty"`
	Value  string `bson:"v,omitempty"`
	Low    string `bson:"l,omitempty"`
	High   string `bson:"h,omitempty"`
	Group  int    `bson:"g,omitempty"`
}

func (d *entryDoc) entry() store.IndexEntry {
	return store.IndexEntry{Param: d.Param, Kind: store.IndexKind(d.Kind), System: d.System, Code: d.Code,
		Value: d.Value, Low: d.Low, High: d.High, Group: d.Group}
}

// packedEntries is the first byte of fIdx's packed form, naming its layout.
const packedEntries = 1

// packEntries packs index entries into fIdx's binary value: packedEntries,
// then per entry its seven strings (Param, Kind, System, Code, Value, Low,
// High), each as a uvarint length and the bytes, and its Group as a varint.
// The filters never look inside fIdx (they use the arrays); it is read back
// whole for store.Match, and one binary value costs a server that decodes
// every document (FerretDB v1) far less than a subdocument per entry.
func packEntries(entries []store.IndexEntry) []byte {
	b := []byte{packedEntries}
	for _, e := range entries {
		for _, s := range [...]string{e.Param, string(e.Kind), e.System, e.Code, e.Value, e.Low, e.High} {
			b = binary.AppendUvarint(b, uint64(len(s)))
			b = append(b, s...)
		}
		b = binary.AppendVarint(b, int64(e.Group))
	}
	return b
}

// unpackEntries reverses packEntries.
func unpackEntries(b []byte) ([]store.IndexEntry, error) {
	if len(b) == 0 || b[0] != packedEntries {
		return nil, fmt.Errorf("mongo: stored index entries: unknown layout")
	}
	b = b[1:]
	var out []store.IndexEntry
	bad := fmt.Errorf("mongo: stored index entries: truncated")
	for len(b) > 0 {
		var f [7]string
		for i := range f {
			n, w := binary.Uvarint(b)
			if w <= 0 || n > uint64(len(b)-w) {
				return nil, bad
			}
			f[i] = string(b[w : w+int(n)])
			b = b[w+int(n):]
		}
		g, w := binary.Varint(b)
		if w <= 0 {
			return nil, bad
		}
		b = b[w:]
		out = append(out, store.IndexEntry{Param: f[0], Kind: store.IndexKind(f[1]), System: f[2], Code: f[3],
			Value: f[4], Low: f[5], High: f[6], Group: int(g)})
	}
	return out, nil
}

// entryList is fIdx as read back: the packed form, or the array of entryDoc
// that documents written before it hold.
type entryList []store.IndexEntry

// UnmarshalBSONValue reads either form of fIdx.
func (l *entryList) UnmarshalBSONValue(typ byte, data []byte) error {
	raw := bson.RawValue{Type: bson.Type(typ), Value: data}
	switch raw.Type {
	case bson.TypeBinary:
		_, b := raw.Binary()
		entries, err := unpackEntries(b)
		if err != nil {
			return err
		}
		*l = entries
	case bson.TypeArray:
		var docs []entryDoc
		if err := raw.Unmarshal(&docs); err != nil {
			return err
		}
		out := make([]store.IndexEntry, len(docs))
		for i := range docs {
			out[i] = docs[i].entry()
		}
		*l = out
	case bson.TypeNull:
		*l = nil
	default:
		return fmt.Errorf("mongo: stored index entries of BSON type %v", raw.Type)
	}
	return nil
}

// encodeKey joins the parts of an index value with "|", escaping "\" and "|"
// inside the parts so that different entries never encode alike (a system
// "a|b" with code "c" is not a system "a" with code "b|c"). The escaping maps
// every character on its own, so a prefix of a part encodes to a prefix of
// the part's encoding.
func encodeKey(parts ...string) string {
	var b strings.Builder
	for i, p := range parts {
		if i > 0 {
			b.WriteByte('|')
		}
		for _, r := range p {
			if r == '\\' || r == '|' {
				b.WriteByte('\\')
			}
			b.WriteRune(r)
		}
	}
	return b.String()
}

// indexFields encodes index entries as the fields above.
func indexFields(entries []store.IndexEntry) bson.D {
	if len(entries) == 0 {
		return nil
	}
	arrays := map[string][]string{}
	add := func(f, v string) { arrays[f] = append(arrays[f], v) }
	for _, e := range entries {
		add(fValue, encodeKey(e.Param, e.Value))
		switch {
		case e.Kind == store.KindToken:
			add(fTok, encodeKey(e.Param, e.System, e.Code))
			add(fTokCode, encodeKey(e.Param, e.Code))
		case e.Kind == store.KindReference:
			add(fRef, encodeKey(e.Param, e.System, e.Code))
			add(fRefID, encodeKey(e.Param, e.Code))
			if e.Value != "" {
				add(fRefURL, encodeKey(e.Param, e.Value))
			}
		case store.IsRangeKind(e.Kind):
			add(fLow, encodeKey(e.Param, e.Low))
			add(fHigh, encodeKey(e.Param, e.High))
			add(fCode, encodeKey(e.Param, e.Code))
		default:
			add(fCode, encodeKey(e.Param, e.Code))
		}
	}
	d := bson.D{{Key: fIdx, Value: bson.Binary{Data: packEntries(entries)}}}
	for _, f := range indexArrays[1:] {
		if vs := arrays[f]; len(vs) > 0 {
			d = append(d, bson.E{Key: f, Value: vs})
		}
	}
	return d
}

// searchSort is the default page order of Search; vid breaks the tie between
// two current versions of one resource while an update is being finished.
var searchSort = bson.D{{Key: "type", Value: 1}, {Key: "id", Value: 1}, {Key: "vid", Value: -1}}

// searchSortBack is searchSort backwards, for a page before a cursor; the
// newer of two current versions still comes first.
var searchSortBack = bson.D{{Key: "type", Value: -1}, {Key: "id", Value: -1}, {Key: "vid", Value: -1}}

// withIndex is versionProjection with the stored index entries.
var withIndex = append(slices.Clone(versionProjection), bson.E{Key: fIdx, Value: 1})

// Search finds the current versions q.Access sees that match q, after
// finishing any update of such versions that a writer left half-done (see
// Store.Put).
//
// The filter is compiled to a MongoDB filter that is either exact or selects
// a superset of the matches (see compiler). When it is exact and the order is
// the default one, MongoDB counts, orders and pages. Otherwise Search reads
// every candidate with its index entries, keeps those store.Match accepts and
// orders them with store.Less, so that the result is exactly what the
// reference evaluation gives, at the cost of reading all candidates.
func (s *Store) Search(ctx context.Context, q store.Query) (*store.SearchPage, error) {
	if err := q.CheckCursor(); err != nil {
		return nil, err
	}
	// The watermark first, then the markers, then any query: see
	// Store.visible.
	w, err := s.watermark(ctx)
	if err != nil {
		return nil, err
	}
	mv, err := s.finishPending(ctx, q.Access)
	if err != nil {
		return nil, err
	}
	c := &compiler{ctx: ctx, s: s, access: q.Access, w: w, mv: mv}
	cond, exact, err := c.compile(q.Filter)
	if err != nil {
		return nil, err
	}
	if len(q.Types) > 0 {
		in := bson.D{{Key: "type", Value: bson.D{{Key: "$in", Value: q.Types}}}}
		if len(cond) > 0 {
			in = bson.D{{Key: "$and", Value: bson.A{cond, in}}}
		}
		cond = in
	}
	count := q.Count
	if count <= 0 {
		count = 50
	}
	page := &store.SearchPage{Total: -1}
	if !exact || len(q.Sort) > 0 {
		vs, err := c.matches(q.Type, cond, exact, q.Filter, 0)
		if err != nil {
			return nil, err
		}
		slices.SortFunc(vs, func(a, b *store.Version) int { return store.Compare(a, b, q.Sort) })
		if q.WantTotal {
			page.Total = len(vs)
		}
		// Keyset paging: the matches after (before) the cursor, in the page
		// order that vs is in.
		if a := q.After; a != nil {
			i, _ := slices.BinarySearchFunc(vs, a, func(v *store.Version, a *store.SearchCursor) int {
				if a.Compare(v, q.Sort) <= 0 {
					return -1
				}
				return 1
			})
			vs = vs[i:]
		}
		if b := q.Before; b != nil {
			i, _ := slices.BinarySearchFunc(vs, b, func(v *store.Version, b *store.SearchCursor) int {
				if b.Compare(v, q.Sort) < 0 {
					return -1
				}
				return 1
			})
			vs = vs[:max(i-max(q.Offset, 0), 0)]
			if len(vs) > count {
				vs, page.More = vs[len(vs)-count:], true
			}
		} else {
			vs = vs[min(max(q.Offset, 0), len(vs)):]
			if len(vs) > count {
				vs, page.More = vs[:count], true
			}
		}
		for _, v := range vs {
			v.Index = nil
		}
		page.Versions = vs
		return page, nil
	}
	all := c.current(q.Type, cond)
	filter := all
	// Keyset paging: after (before) the cursor in (type, id) order; the
	// total below counts the whole set. A page before the cursor is read
	// backwards, and turned round below.
	order, cursor, op := searchSort, q.After, "$gt"
	if q.Before != nil {
		order, cursor, op = searchSortBack, q.Before, "$lt"
	}
	if a := cursor; a != nil {
		filter = bson.D{{Key: "$and", Value: bson.A{filter, bson.D{{Key: "$or", Value: bson.A{
			bson.D{{Key: "type", Value: bson.D{{Key: op, Value: a.Type}}}},
			bson.D{{Key: "type", Value: a.Type}, {Key: "id", Value: bson.D{{Key: op, Value: a.ID}}}},
		}}}}}}
	}
	docs, err := s.findVisible(ctx, "search", w, filter, func(limit int64) *options.FindOptionsBuilder {
		return options.Find().SetSort(order).SetSkip(int64(max(q.Offset, 0))).SetLimit(limit).SetProjection(versionProjection)
	}, int64(count+1), mv)
	if err != nil {
		return nil, err
	}
	// Fewer than the limit from the start of the set: the page holds every
	// match, judged by the same watermark and markers as a count would be.
	whole := len(docs) <= count && q.After == nil && q.Before == nil && q.Offset <= 0
	// An update committed after finishPending may not be finished yet; of its
	// resource's two current versions, keep the new one.
	docs = slices.CompactFunc(docs, func(a, b *versionDoc) bool { return a.Type == b.Type && a.ID == b.ID })
	if q.WantTotal {
		// A count of a page that holds the whole set is its length: two
		// queries fewer, which on FerretDB v1 are two scans of the
		// collection fewer.
		if whole {
			page.Total = len(docs)
		} else if page.Total, err = s.countVisible(ctx, w, mv, all); err != nil {
			return nil, err
		}
	}
	if len(docs) > count {
		docs = docs[:count]
		page.More = true
	}
	for _, d := range docs {
		page.Versions = append(page.Versions, d.version())
	}
	if q.Before != nil {
		slices.Reverse(page.Versions)
	}
	return page, nil
}

// countVisible counts the current versions filter selects that a reader
// sees: MongoDB counts those no transaction marks, less those a
// transaction stamped with a number above w; those a transaction marks
// (written by it, and not rolled forward yet) count only when its
// decision says committed (see Store.visible), which only reading them
// can tell.
func (s *Store) countVisible(ctx context.Context, w int64, mv *moving, filter bson.D) (int, error) {
	and := func(extra bson.D) bson.D { return bson.D{{Key: "$and", Value: bson.A{filter, extra}}} }
	plain, err := s.versions.CountDocuments(ctx, and(bson.D{{Key: "txn", Value: bson.D{{Key: "$exists", Value: false}}}}))
	if err != nil {
		return 0, translate(ctx, "search", err)
	}
	// $gt "" rather than $exists true: FerretDB evaluates the latter very
	// slowly beside an index-array condition.
	odd, err := s.find(ctx, "search", and(bson.D{{Key: "$or", Value: bson.A{
		bson.D{{Key: "txn", Value: bson.D{{Key: "$gt", Value: ""}}}},
		bson.D{{Key: "tseq", Value: bson.D{{Key: "$gt", Value: w}}}},
	}}}), options.Find().SetProjection(markProjection))
	if err != nil {
		return 0, err
	}
	var marked []*versionDoc
	for _, d := range odd {
		if d.Txn != "" {
			marked = append(marked, d)
		} else {
			plain-- // stamped after w
		}
	}
	vis, err := s.visible(ctx, marked, w, mv)
	if err != nil {
		return 0, err
	}
	return int(plain) + len(vis), nil
}

// matchAll bounds the targets of a Chain or the referrers of a Has that the
// compiler turns into a list of references; beyond it, the node becomes
// "every resource" and store.Match decides.
const matchAll = 10000

// compiler turns a search expression into a MongoDB filter on the current
// versions the query's Access sees. Each node compiles to a filter and whether that
// filter is exact; an inexact one selects a superset of the matches (never
// misses one), and the results then go through store.Match. An empty filter
// matches every document.
//
// Exact: And, Or and Not of exact nodes, Token, ID, String (but Contains),
// Missing, Reference, and Chain and Has (each run as a query of its own
// first). Inexact: Range (FerretDB does not apply the bounds of an
// operator-only $elemMatch to one element, and nothing ties a Low to its
// High), Composite (nothing ties the components to one group), String
// Contains (a safe superset), and Not of an inexact node (which becomes
// "everything").
type compiler struct {
	ctx    context.Context
	s      *Store
	access store.Access
	lookup *lookup
	// w is the search's watermark, mv the updates in flight when it began
	// (see Store.visible).
	w  int64
	mv *moving
}

// matchNone is a filter no document matches.
var matchNone = bson.D{{Key: "_id", Value: bson.D{{Key: "$in", Value: bson.A{}}}}}

func (c *compiler) compile(e store.Expr) (bson.D, bool, error) {
	switch e := e.(type) {
	case nil:
		return bson.D{}, true, nil
	case store.And:
		conds := bson.A{}
		exact := true
		for _, sub := range e {
			cond, ex, err := c.compile(sub)
			if err != nil {
				return nil, false, err
			}
			exact = exact && ex
			if len(cond) > 0 {
				conds = append(conds, cond)
			}
		}
		switch len(conds) {
		case 0:
			return bson.D{}, exact, nil
		case 1:
			return conds[0].(bson.D), exact, nil
		}
		return bson.D{{Key: "$and", Value: conds}}, exact, nil
	case store.Or:
		if len(e) == 0 {
			return matchNone, true, nil
		}
		conds := bson.A{}
		exact, all, allExact := true, false, false
		for _, sub := range e {
			cond, ex, err := c.compile(sub)
			if err != nil {
				return nil, false, err
			}
			exact = exact && ex
			if len(cond) == 0 {
				all, allExact = true, allExact || ex
			}
			conds = append(conds, cond)
		}
		switch {
		case all:
			// A branch that matches everything decides; exactly so if it
			// is exact.
			return bson.D{}, allExact, nil
		case len(conds) == 1:
			return conds[0].(bson.D), exact, nil
		}
		return bson.D{{Key: "$or", Value: conds}}, exact, nil
	case store.Not:
		cond, exact, err := c.compile(e.Expr)
		switch {
		case err != nil:
			return nil, false, err
		case !exact:
			// The complement of a superset is a subset: ask for everything.
			return bson.D{}, false, nil
		case len(cond) == 0:
			return matchNone, true, nil
		}
		return bson.D{{Key: "$nor", Value: bson.A{cond}}}, true, nil
	case store.Token:
		if e.System == nil {
			return bson.D{{Key: fTokCode, Value: encodeKey(e.Param, e.Code)}}, true, nil
		}
		if e.Code == "" {
			// system|: any code of the system, an anchored prefix of the
			// encoded key (encodeKey escapes | inside parts).
			return bson.D{{Key: fTok, Value: prefixRegex(encodeKey(e.Param, *e.System, ""))}}, true, nil
		}
		return bson.D{{Key: fTok, Value: encodeKey(e.Param, *e.System, e.Code)}}, true, nil
	case store.ID:
		ids := bson.A{}
		for _, id := range e.IDs {
			ids = append(ids, id)
		}
		return bson.D{{Key: "id", Value: bson.D{{Key: "$in", Value: ids}}}}, true, nil
	case store.String:
		return compileString(e)
	case store.Missing:
		has := bson.D{{Key: fValue, Value: prefixRegex(encodeKey(e.Param, ""))}}
		if e.Missing {
			return bson.D{{Key: "$nor", Value: bson.A{has}}}, true, nil
		}
		return has, true, nil
	case store.Range:
		return compileRange(e)
	case store.Reference:
		switch {
		case e.URL != "":
			return bson.D{{Key: fRefURL, Value: encodeKey(e.Param, e.URL)}}, true, nil
		case e.Type != "":
			return bson.D{{Key: fRef, Value: encodeKey(e.Param, e.Type, e.ID)}}, true, nil
		}
		return bson.D{{Key: fRefID, Value: encodeKey(e.Param, e.ID)}}, true, nil
	case store.Chain:
		targets, complete, err := c.all(e.TargetType, e.Filter)
		if err != nil || !complete {
			return bson.D{}, false, err
		}
		refs := bson.A{}
		for _, t := range targets {
			refs = append(refs, encodeKey(e.Param, t.Type, t.ID))
		}
		return bson.D{{Key: fRef, Value: bson.D{{Key: "$in", Value: refs}}}}, true, nil
	case store.Has:
		referrers, complete, err := c.all(e.Type, e.Filter)
		if err != nil || !complete {
			return bson.D{}, false, err
		}
		byType := map[string]bson.A{}
		for _, r := range referrers {
			for _, x := range r.Index {
				if x.Param == e.Param && x.Kind == store.KindReference && x.Code != "" {
					byType[x.System] = append(byType[x.System], x.Code)
				}
			}
		}
		conds := bson.A{}
		for _, typ := range slices.Sorted(maps.Keys(byType)) {
			conds = append(conds, bson.D{{Key: "type", Value: typ}, {Key: "id", Value: bson.D{{Key: "$in", Value: byType[typ]}}}})
		}
		if len(conds) == 0 {
			return matchNone, true, nil
		}
		return bson.D{{Key: "$or", Value: conds}}, true, nil
	case store.Composite:
		// Check the components for nodes no backend knows; what they select
		// is not used, as it ignores the groups.
		for _, sub := range e.Components {
			if _, _, err := c.compile(sub); err != nil {
				return nil, false, err
			}
		}
		// A match needs an entry of some component in some group.
		return bson.D{{Key: fValue, Value: prefixRegex(encodeKey(e.Param + "$"))}}, false, nil
	default:
		return nil, false, fmt.Errorf("mongo: search expression %T: %w", e, store.ErrInvalidQuery)
	}
}

// prefixRegex matches strings that start with prefix.
func prefixRegex(prefix string) bson.Regex {
	return bson.Regex{Pattern: "^" + regexp.QuoteMeta(prefix)}
}

func compileString(e store.String) (bson.D, bool, error) {
	switch e.Mode {
	case store.Prefix, store.Below:
		return bson.D{{Key: fValue, Value: prefixRegex(encodeKey(e.Param, e.Text))}}, true, nil
	case store.Exact:
		// Any entry's param|Code: a token's is in tokc, a reference's in
		// refi, the others' in code (indexFields).
		k := encodeKey(e.Param, e.Text)
		return bson.D{{Key: "$or", Value: bson.A{bson.D{{Key: fCode, Value: k}}, bson.D{{Key: fTokCode, Value: k}},
			bson.D{{Key: fRefID, Value: k}}}}}, true, nil
	case store.Equal:
		return bson.D{{Key: fValue, Value: encodeKey(e.Param, e.Text)}}, true, nil
	case store.Above:
		// The entry's value is a prefix of the text: one of the text's
		// prefixes (whole characters; values are valid UTF-8).
		prefixes := bson.A{encodeKey(e.Param, "")}
		for i := range e.Text {
			if i > 0 {
				prefixes = append(prefixes, encodeKey(e.Param, e.Text[:i]))
			}
		}
		prefixes = append(prefixes, encodeKey(e.Param, e.Text))
		return bson.D{{Key: fValue, Value: bson.D{{Key: "$in", Value: prefixes}}}}, true, nil
	case store.Contains:
		// Escaping could in principle let the text's encoding appear across
		// the encodings of two characters: store.Match checks.
		return bson.D{{Key: fValue, Value: bson.Regex{Pattern: "(?s)^" + regexp.QuoteMeta(encodeKey(e.Param, "")) +
			".*" + regexp.QuoteMeta(encodeKey(e.Text))}}}, false, nil
	}
	return nil, false, fmt.Errorf("mongo: string mode %d: %w", e.Mode, store.ErrInvalidQuery)
}

// compileRange selects resources with, for every bound, an entry of the
// parameter whose Low or High satisfies it: a superset, since nothing makes
// the bounds hold on one entry, nor checks the unit.
func compileRange(e store.Range) (bson.D, bool, error) {
	first, last := encodeKey(e.Param, ""), encodeKey(e.Param)+"}" // every value of Param sorts in [first, last)
	conds := bson.A{bson.D{{Key: fLow, Value: bson.D{{Key: "$elemMatch", Value: bson.D{{Key: "$gte", Value: first}, {Key: "$lt", Value: last}}}}}}}
	for _, b := range e.Bounds {
		f := fLow
		if b.High {
			f = fHigh
		}
		v := encodeKey(e.Param, b.Value)
		var m bson.D
		switch b.Op {
		case store.LT:
			m = bson.D{{Key: "$gte", Value: first}, {Key: "$lt", Value: v}}
		case store.LE:
			m = bson.D{{Key: "$gte", Value: first}, {Key: "$lte", Value: v}}
		case store.GT:
			m = bson.D{{Key: "$gt", Value: v}, {Key: "$lt", Value: last}}
		case store.GE:
			m = bson.D{{Key: "$gte", Value: v}, {Key: "$lt", Value: last}}
		default:
			return nil, false, fmt.Errorf("mongo: compare op %d: %w", b.Op, store.ErrInvalidQuery)
		}
		conds = append(conds, bson.D{{Key: f, Value: bson.D{{Key: "$elemMatch", Value: m}}}})
	}
	return bson.D{{Key: "$and", Value: conds}}, false, nil
}

// current is the filter on the current, non-deleted versions (of typ, when
// not empty) that the access sees and that also satisfy cond.
func (c *compiler) current(typ string, cond bson.D) bson.D {
	filter := bson.D{{Key: "$and", Value: bson.A{accessFilter(c.access)}}, {Key: "sup", Value: false}, {Key: "deleted", Value: false}}
	if typ != "" {
		filter = append(filter, bson.E{Key: "type", Value: typ})
	}
	if len(cond) > 0 {
		filter[0].Value = bson.A{filter[0].Value.(bson.A)[0], cond}
	}
	return filter
}

// all returns every current version of typ (any type when empty) that
// matches e, with its index entries, in no particular order; or, when more
// than matchAll resources are candidates, complete false.
func (c *compiler) all(typ string, e store.Expr) ([]*store.Version, bool, error) {
	cond, exact, err := c.compile(e)
	if err != nil {
		return nil, false, err
	}
	vs, err := c.matches(typ, cond, exact, e, matchAll)
	if err != nil || vs == nil {
		return nil, false, err
	}
	return vs, true, nil
}

// matches reads the versions that cond selects and, unless cond is exact,
// keeps those that match e. With limit > 0 it returns nil (and no error)
// when more than limit versions are candidates.
func (c *compiler) matches(typ string, cond bson.D, exact bool, e store.Expr, limit int) ([]*store.Version, error) {
	vs, err := c.s.readIndexed(c.ctx, c.w, c.mv, c.current(typ, cond), limit)
	if err != nil || vs == nil || exact {
		return vs, err
	}
	if c.lookup == nil {
		c.lookup = &lookup{c: c, current: map[string]*store.Version{}, referrers: map[string][]*store.Version{}}
	}
	kept := vs[:0]
	for _, v := range vs {
		ok, err := store.Match(e, v, c.lookup)
		if err != nil {
			return nil, err
		}
		if ok {
			kept = append(kept, v)
		}
	}
	return kept, nil
}

// readIndexed reads the versions that filter selects, with their index
// entries, one per resource (the highest, while an update is being finished).
// With limit > 0 it returns nil (and no error) when there are more than limit.
func (s *Store) readIndexed(ctx context.Context, w int64, mv *moving, filter bson.D, limit int) ([]*store.Version, error) {
	opts := options.Find().SetSort(searchSort).SetProjection(withIndex)
	if limit > 0 {
		// Two current versions of one resource may both be read; allow for
		// a few such.
		opts.SetLimit(int64(limit + 100))
	}
	cur, err := s.versions.Find(ctx, filter, opts)
	if err != nil {
		return nil, translate(ctx, "search", err)
	}
	var docs []*versionDoc
	if err := cur.All(ctx, &docs); err != nil {
		return nil, translate(ctx, "search", err)
	}
	if docs, err = s.visible(ctx, docs, w, mv); err != nil {
		return nil, err
	}
	docs = slices.CompactFunc(docs, func(a, b *versionDoc) bool { return a.Type == b.Type && a.ID == b.ID })
	if limit > 0 && len(docs) > limit {
		return nil, nil
	}
	vs := make([]*store.Version, 0, len(docs))
	for _, d := range docs {
		v := d.version()
		v.Index = d.Idx
		vs = append(vs, v)
	}
	return vs, nil
}

// lookup serves store.Match the resources that Chain and Has look at, from
// the current versions the access sees, remembering what it read for the rest of the
// search.
type lookup struct {
	c         *compiler
	current   map[string]*store.Version
	referrers map[string][]*store.Version
}

func (l *lookup) Current(typ, id string) (*store.Version, error) {
	key := typ + "/" + id
	if v, ok := l.current[key]; ok {
		return v, nil
	}
	// Two: the highest may belong to a transaction not committed.
	// As Read: the current version's reach decides.
	docs, err := l.c.s.find(l.c.ctx, "read "+key, bson.D{{Key: "type", Value: typ}, {Key: "id", Value: id}},
		options.Find().SetSort(bson.D{{Key: "vid", Value: -1}}).SetLimit(2).SetProjection(withIndex))
	if err == nil {
		docs, err = l.c.s.visible(l.c.ctx, docs, l.c.w, nil)
	}
	if err != nil {
		return nil, err
	}
	var v *store.Version
	if len(docs) > 0 && docs[0].seenBy(l.c.access) {
		d := docs[0]
		v = d.version()
		v.Index = d.Idx
	}
	l.current[key] = v
	return v, nil
}

func (l *lookup) Referrers(typ, param, targetType, targetID string) ([]*store.Version, error) {
	ref := encodeKey(param, targetType, targetID)
	key := typ + "|" + ref
	if vs, ok := l.referrers[key]; ok {
		return vs, nil
	}
	vs, err := l.c.s.readIndexed(l.c.ctx, l.c.w, l.c.mv, l.c.current(typ, bson.D{{Key: fRef, Value: ref}}), 0)
	if err != nil {
		return nil, err
	}
	l.referrers[key] = vs
	return vs, nil
}
