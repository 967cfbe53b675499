package fhir

import (
	"bytes"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"unsafe"

	"github.com/fmtbank/cmts/fhir/jsonscan"
)

// Limits bound the work one resource body may cause. The codec checks them
// (and refuses duplicate object keys and nested contained resources) in one
// streaming pass over the JSON before the R4 parser sees it, because that
// parser's time and memory grow with the number of values and the depth, not
// with the body's size in bytes: a 16 MiB body of small values costs it
// minutes and gigabytes. A field of zero (or less) takes its default.
type Limits struct {
	// Depth is the deepest nesting of objects and arrays (the resource
	// object itself is level 1).
	Depth int
	// Array is the most entries one array may hold.
	Array int
	// Elements is the most JSON values (objects, arrays, strings, numbers,
	// booleans, nulls) one resource may hold, counting its contained
	// resources. A resource inside a Bundle entry (entry.resource,
	// entry.response.outcome) or a Parameters parameter has its own budget,
	// so that a Bundle is bounded per entry; the number of entries is bounded
	// by Array.
	Elements int
	// PatchOps is the most operations one JSON Patch may hold.
	PatchOps int
}

// The default limits. The official R4 examples the codec accepts stay well
// inside them (deepest 22 levels, longest array 6,781 entries, largest
// resource 23,263 values), while the R4 parser's cost stays near two seconds
// of CPU for a resource at the element limit.
const (
	DefaultDepth    = 64
	DefaultArray    = 10000
	DefaultElements = 100000
	DefaultPatchOps = 100
)

// DefaultLimits returns the default limits.
func DefaultLimits() Limits {
	return Limits{Depth: DefaultDepth, Array: DefaultArray, Elements: DefaultElements, PatchOps: DefaultPatchOps}
}

// WithDefaults returns l with every unset field at its default.
func (l Limits) WithDefaults() Limits {
	d := DefaultLimits()
	if l.Depth <= 0 {
		l.Depth = d.Depth
	}
	if l.Array <= 0 {
		l.Array = d.Array
	}
	if l.Elements <= 0 {
		l.Elements = d.Elements
	}
	if l.PatchOps <= 0 {
		l.PatchOps = d.PatchOps
	}
	return l
}

// TooComplex is the refusal of a body over one of the limits: 413 with issue
// code too-long, naming the limit (as its serve flag), its value and the
// element where it was reached.
func TooComplex(limit string, value int, en, zh, expr string) *Error {
	v := strconv.Itoa(value)
	e := newError(http.StatusRequestEntityTooLarge, IssueTooLong,
		en+" (limit "+limit+" = "+v+")", zh+"（限制 "+limit+" = "+v+"）").
		WithDiagnostics("limit " + limit + " = " + v)
	if expr != "" {
		e = e.WithExpression(expr)
	}
	return e
}

// The frame roles that matter for where a resource starts: a resource, an
// element of a resource's entry array (Bundle.entry), an entry's response,
// and an element of a resource's parameter array or of a parameter's part
// array (Parameters.parameter, .part).
const (
	roleOther = iota
	roleResource
	roleEntry
	roleResponse
	roleParam
)

// frame is one open object or array of the scan.
type frame struct {
	array bool
	role  int
	// name is the key under which this value sits in its parent object (""
	// in an array or at the root); cur is an object's current key.
	name, cur string
	// n counts an array's entries so far.
	n int
	// wantKey: an object's next token is a key.
	wantKey bool
	// keys seen in an object: a slice while small, then a set.
	keys []string
	set  map[string]struct{}
	// contained: this value is, or is inside, a contained resource.
	contained bool
	// budget is the index in scan.budgets of the resource this value counts
	// towards; typ is a resource's resourceType once read.
	budget int
	typ    string
	// typeNext: the next token is this resource's resourceType.
	typeNext bool
}

// smallKeys is how many keys an object holds before a set replaces the
// linear search.
const smallKeys = 16

type scan struct {
	l       Limits
	frames  []frame
	budgets []int
}

// Scan checks body (one JSON value) against the limits, and refuses
// duplicate object keys and a contained resource that contains resources
// (dom-2). It reads the body once, as a stream of tokens, and stops at the
// first problem: a *Error, 413 for a limit (naming it), 400 for the rest,
// with the element's path as expression. It does not check that the JSON is
// a resource: the parser that runs after it does.
func (l Limits) Scan(body []byte) error {
	if !jsonscan.Valid(body) {
		return Invalid(IssueStructure, "The body is not valid JSON", "请求体不是合法的 JSON")
	}
	return l.scan(body)
}

// scan is Scan of a body known to be valid JSON. It tokenizes by hand rather
// than with json.Decoder, which is ten times slower on long strings (a 16 MiB
// attachment) and allocates for every token.
func (l Limits) scan(body []byte) error {
	s := &scan{l: l.WithDefaults(), frames: make([]frame, 0, 16), budgets: make([]int, 1, 4)}
	for i := 0; i < len(body); {
		switch c := body[i]; c {
		case ' ', '\t', '\n', '\r', ',', ':':
			i++
		case '{', '[', '}', ']':
			if err := s.token(c, nil); err != nil {
				return err
			}
			i++
		case '"':
			end := stringEnd(body, i+1)
			if err := s.token(c, body[i+1:end]); err != nil {
				return err
			}
			i = end + 1
		default:
			// a number, true, false or null
			for i++; i < len(body) && !isDelim(body[i]); i++ {
			}
			if err := s.token('0', nil); err != nil {
				return err
			}
		}
	}
	return nil
}

// stringEnd is the index of the quote that closes the string starting at
// from (just after its opening quote).
func stringEnd(b []byte, from int) int {
	for {
		q := from + bytes.IndexByte(b[from:], '"')
		// the quote is escaped if an odd number of backslashes precede it
		n := 0
		for j := q - 1; j >= from && b[j] == '\\'; j-- {
			n++
		}
		if n%2 == 0 {
			return q
		}
		from = q + 1
	}
}

func isDelim(c byte) bool {
	switch c {
	case ' ', '\t', '\n', '\r', ',', ':', ']', '}':
		return true
	}
	return false
}

// unquote is the text of a JSON string's contents.
func unquote(raw []byte) string {
	if bytes.IndexByte(raw, '\\') < 0 {
		return string(raw)
	}
	var str string
	if err := json.Unmarshal(append(append([]byte{'"'}, raw...), '"'), &str); err != nil {
		return string(raw)
	}
	return str
}

// text is the text of a JSON string's contents, as unquote, but without
// copying a plain one: the scan keeps a resource's keys to find duplicates,
// and copying each cost an allocation. The string shares the body's bytes,
// which do not change while the scan runs, and no such string outlives it
// (paths in errors are built anew).
func (s *scan) text(raw []byte) string {
	if len(raw) == 0 || bytes.IndexByte(raw, '\\') >= 0 {
		return unquote(raw)
	}
	return unsafe.String(&raw[0], len(raw))
}

func (s *scan) top() *frame {
	if len(s.frames) == 0 {
		return nil
	}
	return &s.frames[len(s.frames)-1]
}

// token takes the next token: a delimiter, a string ('"', with its raw
// contents) or another scalar ('0').
func (s *scan) token(kind byte, raw []byte) error {
	if kind == '}' || kind == ']' {
		s.frames = s.frames[:len(s.frames)-1]
		s.valueDone()
		return nil
	}
	p := s.top()
	if p != nil && !p.array && p.wantKey {
		return s.key(p, s.text(raw))
	}
	// a value: at the root, in an array, or after a key
	budget := 0
	if p != nil {
		budget = p.budget
		if p.array {
			p.n++
			if p.n > s.l.Array {
				return TooComplex("max-array", s.l.Array, "An array has more entries than the limit", "数组的条目数超过上限", s.path(""))
			}
		} else if p.typeNext {
			p.typeNext = false
			if kind == '"' {
				p.typ = s.text(raw)
			}
		}
	}
	if kind != '{' && kind != '[' {
		if err := s.count(budget); err != nil {
			return err
		}
		s.valueDone()
		return nil
	}
	// a new object or array: its name, role and budget
	if len(s.frames) >= s.l.Depth {
		return TooComplex("max-depth", s.l.Depth, "The resource nests deeper than the limit", "资源的嵌套层数超过上限", s.valuePath())
	}
	f := frame{array: kind == '[', budget: budget, wantKey: kind == '{'}
	if p != nil {
		f.contained = p.contained
		if !p.array {
			f.name = p.cur
		}
	}
	if !f.array {
		f.role = s.role(p, f.name)
		switch {
		case p == nil || f.role != roleResource:
		case p.array && p.name == "contained":
			// a contained resource is part of its container's budget
			f.contained = true
		default:
			// a resource in a Bundle entry or a Parameters parameter
			s.budgets = append(s.budgets, 0)
			f.budget = len(s.budgets) - 1
		}
	}
	if err := s.count(f.budget); err != nil {
		return err
	}
	if n := len(s.frames); n < cap(s.frames) {
		// reuse a popped frame's key storage
		s.frames = s.frames[:n+1]
		old := &s.frames[n]
		f.keys = old.keys[:0]
		if old.set != nil {
			clear(old.set)
			f.set = old.set
		}
		*old = f
	} else {
		s.frames = append(s.frames, f)
	}
	return nil
}

// role decides what an object opened under parent p (with name, when p is
// an object) is. The entry and parameter roles are given only under a
// resource whose resourceType was read first and is Bundle or Parameters, so
// a body that puts resourceType last is bounded more tightly, never less.
func (s *scan) role(p *frame, name string) int {
	if p == nil {
		return roleResource
	}
	if p.array {
		if len(s.frames) < 2 {
			return roleOther
		}
		owner := &s.frames[len(s.frames)-2]
		switch {
		case p.name == "contained" && owner.role == roleResource:
			return roleResource
		case p.name == "entry" && owner.role == roleResource && owner.typ == "Bundle":
			return roleEntry
		case p.name == "parameter" && owner.role == roleResource && owner.typ == "Parameters",
			p.name == "part" && owner.role == roleParam:
			return roleParam
		}
		return roleOther
	}
	switch {
	case p.role == roleEntry && name == "resource", p.role == roleParam && name == "resource",
		p.role == roleResponse && name == "outcome":
		return roleResource
	case p.role == roleEntry && name == "response":
		return roleResponse
	}
	return roleOther
}

// key takes an object's key: duplicates and dom-2 are refused here.
func (s *scan) key(p *frame, k string) error {
	if p.set != nil {
		if _, dup := p.set[k]; dup {
			return duplicateKey(k, s.path(k))
		}
		p.set[k] = struct{}{}
	} else {
		for _, seen := range p.keys {
			if seen == k {
				return duplicateKey(k, s.path(k))
			}
		}
		p.keys = append(p.keys, k)
		if len(p.keys) > smallKeys {
			p.set = make(map[string]struct{}, 2*smallKeys)
			for _, seen := range p.keys {
				p.set[seen] = struct{}{}
			}
		}
	}
	if k == "contained" && p.contained {
		return Invalid(IssueInvariant, "A contained resource may not contain resources (dom-2)", "被包含的资源不能再包含资源（dom-2）").
			WithExpression(s.path(k))
	}
	p.cur = k
	p.wantKey = false
	p.typeNext = k == "resourceType" && p.role == roleResource
	return nil
}

func duplicateKey(k, path string) *Error {
	return Invalid(IssueStructure, "The key '"+k+"' appears more than once in one object", "同一对象中键 '"+k+"' 出现了多次").
		WithExpression(path)
}

// count adds one value to a resource's budget.
func (s *scan) count(budget int) error {
	s.budgets[budget]++
	if s.budgets[budget] > s.l.Elements {
		return TooComplex("max-elements", s.l.Elements, "The resource holds more values than the limit", "资源包含的值的个数超过上限", s.resourcePath(budget))
	}
	return nil
}

// valueDone: after a value, an object's next token is a key.
func (s *scan) valueDone() {
	if p := s.top(); p != nil && !p.array {
		p.wantKey = true
	}
}

// path is the FHIRPath-like path of the open values (and of key within the
// innermost, if given): the root's resourceType (if read by then), then .name
// for object members and [i] for array entries.
func (s *scan) path(key string) string { return s.pathTo(len(s.frames), key) }

// pathTo is the path of frames[:n], then key.
func (s *scan) pathTo(n int, key string) string {
	var b strings.Builder
	for i := 0; i < n; i++ {
		switch f := &s.frames[i]; {
		case i == 0:
			b.WriteString(f.typ)
		case s.frames[i-1].array:
			b.WriteString("[" + strconv.Itoa(s.frames[i-1].n-1) + "]")
		default:
			b.WriteString("." + f.name)
		}
	}
	if key != "" {
		b.WriteString("." + key)
	}
	return strings.TrimPrefix(b.String(), ".")
}

// valuePath is the path of the value just read (not yet opened).
func (s *scan) valuePath() string {
	p := s.top()
	if p == nil {
		return ""
	}
	if p.array {
		return s.path("") + "[" + strconv.Itoa(p.n-1) + "]"
	}
	return s.path(p.cur)
}

// resourcePath is the path of the resource that opened budget.
func (s *scan) resourcePath(budget int) string {
	for i := len(s.frames) - 1; i > 0; i-- {
		if s.frames[i].budget == budget && s.frames[i-1].budget != budget {
			return s.pathTo(i+1, "")
		}
	}
	return s.pathTo(min(1, len(s.frames)), "")
}
