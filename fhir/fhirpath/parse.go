package fhirpath

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Expr is a parsed FHIRPath expression. It is safe for concurrent use.
type Expr struct {
	src  string
	root *node
}

// String returns the source text the expression was parsed from.
func (e *Expr) String() string { return e.src }

// Parse parses a FHIRPath expression. It accepts the subset of FHIRPath
// described in the package documentation and reports anything else,
// including unknown functions, as an error.
func Parse(expr string) (*Expr, error) {
	toks, err := lex(expr)
	if err != nil {
		return nil, err
	}
	p := &parser{src: expr, toks: toks}
	n, err := p.parseExpr(0)
	if err != nil {
		return nil, err
	}
	if t := p.peek(); t.kind != tEOF {
		return nil, p.errorf(t, "unexpected %s", t)
	}
	return &Expr{src: expr, root: n}, nil
}

// MustParse is like Parse but panics if the expression cannot be parsed.
// It simplifies the initialisation of package-level expressions.
func MustParse(expr string) *Expr {
	e, err := Parse(expr)
	if err != nil {
		panic(err)
	}
	return e
}

// ---- lexer ----

type tokKind int

const (
	tEOF tokKind = iota
	tIdent
	tDelimIdent // `identifier`
	tString
	tNumber
	tDateTime // @2020-01-01, @T12:00
	tExternal // %name
	tSpecial  // $this, $index, $total
	tOp       // punctuation and symbolic operators
)

type token struct {
	kind tokKind
	text string // identifier name, decoded string, number text, operator
	pos  int
}

func (t token) String() string {
	switch t.kind {
	case tEOF:
		return "end of expression"
	case tString:
		return strconv.Quote(t.text)
	default:
		return fmt.Sprintf("%q", t.text)
	}
}

func lex(src string) ([]token, error) {
	var toks []token
	i := 0
	errf := func(pos int, format string, args ...any) error {
		return &SyntaxError{Expr: src, Pos: pos, Msg: fmt.Sprintf(format, args...)}
	}
	for i < len(src) {
		c := src[i]
		switch {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f':
			i++
		case c == '/' && i+1 < len(src) && src[i+1] == '/':
			for i < len(src) && src[i] != '\n' {
				i++
			}
		case c == '/' && i+1 < len(src) && src[i+1] == '*':
			end := strings.Index(src[i+2:], "*/")
			if end < 0 {
				return nil, errf(i, "unterminated comment")
			}
			i += end + 4
		case isIdentStart(c):
			j := i + 1
			for j < len(src) && isIdentPart(src[j]) {
				j++
			}
			toks = append(toks, token{tIdent, src[i:j], i})
			i = j
		case c == '`' || c == '\'':
			s, n, err := lexQuoted(src[i:], c)
			if err != nil {
				return nil, errf(i, "%v", err)
			}
			k := tString
			if c == '`' {
				k = tDelimIdent
			}
			toks = append(toks, token{k, s, i})
			i += n
		case c >= '0' && c <= '9':
			j := i
			for j < len(src) && src[j] >= '0' && src[j] <= '9' {
				j++
			}
			if j+1 < len(src) && src[j] == '.' && src[j+1] >= '0' && src[j+1] <= '9' {
				j++
				for j < len(src) && src[j] >= '0' && src[j] <= '9' {
					j++
				}
			}
			toks = append(toks, token{tNumber, src[i:j], i})
			i = j
		case c == '@':
			j := i + 1
			for j < len(src) && (isIdentPart(src[j]) || strings.IndexByte("-:.+", src[j]) >= 0) {
				j++
			}
			if j == i+1 {
				return nil, errf(i, "empty date/time literal")
			}
			toks = append(toks, token{tDateTime, src[i+1 : j], i})
			i = j
		case c == '%':
			if i+1 < len(src) && (src[i+1] == '`' || src[i+1] == '\'') {
				s, n, err := lexQuoted(src[i+1:], src[i+1])
				if err != nil {
					return nil, errf(i, "%v", err)
				}
				toks = append(toks, token{tExternal, s, i})
				i += 1 + n
				continue
			}
			j := i + 1
			for j < len(src) && (isIdentPart(src[j]) || src[j] == '-') {
				j++
			}
			if j == i+1 {
				return nil, errf(i, "empty external constant")
			}
			toks = append(toks, token{tExternal, src[i+1 : j], i})
			i = j
		case c == '$':
			j := i + 1
			for j < len(src) && isIdentPart(src[j]) {
				j++
			}
			name := src[i:j]
			if name != "$this" && name != "$index" && name != "$total" {
				return nil, errf(i, "unknown special variable %q", name)
			}
			toks = append(toks, token{tSpecial, name, i})
			i = j
		default:
			two := ""
			if i+1 < len(src) {
				two = src[i : i+2]
			}
			switch two {
			case "!=", "!~", "<=", ">=":
				toks = append(toks, token{tOp, two, i})
				i += 2
				continue
			}
			if strings.IndexByte(".,()[]{}|=~<>+-*/&", c) >= 0 {
				toks = append(toks, token{tOp, string(c), i})
				i++
				continue
			}
			r, _ := utf8.DecodeRuneInString(src[i:])
			return nil, errf(i, "unexpected character %q", r)
		}
	}
	toks = append(toks, token{tEOF, "", len(src)})
	return toks, nil
}

func isIdentStart(c byte) bool {
	return c == '_' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
}

func isIdentPart(c byte) bool { return isIdentStart(c) || (c >= '0' && c <= '9') }

// lexQuoted decodes a quoted string or delimited identifier starting at
// s[0] == q and returns its value and the number of bytes consumed.
func lexQuoted(s string, q byte) (string, int, error) {
	var b strings.Builder
	for i := 1; i < len(s); i++ {
		c := s[i]
		switch {
		case c == q:
			return b.String(), i + 1, nil
		case c == '\\':
			if i+1 >= len(s) {
				return "", 0, fmt.Errorf("unterminated escape")
			}
			i++
			switch s[i] {
			case '\'', '"', '`', '\\', '/':
				b.WriteByte(s[i])
			case 'r':
				b.WriteByte('\r')
			case 'n':
				b.WriteByte('\n')
			case 't':
				b.WriteByte('\t')
			case 'f':
				b.WriteByte('\f')
			case 'u':
				if i+4 >= len(s) {
					return "", 0, fmt.Errorf("bad \\u escape")
				}
				v, err := strconv.ParseUint(s[i+1:i+5], 16, 32)
				if err != nil {
					return "", 0, fmt.Errorf("bad \\u escape")
				}
				b.WriteRune(rune(v))
				i += 4
			default:
				return "", 0, fmt.Errorf("unknown escape \\%c", s[i])
			}
		default:
			b.WriteByte(c)
		}
	}
	return "", 0, fmt.Errorf("unterminated %c", q)
}

// SyntaxError reports an expression that Parse cannot accept.
type SyntaxError struct {
	Expr string // the expression
	Pos  int    // byte offset of the problem
	Msg  string
}

func (e *SyntaxError) Error() string {
	return fmt.Sprintf("fhirpath: %s at offset %d in %q", e.Msg, e.Pos, e.Expr)
}

// ---- AST ----

type nodeKind int

const (
	nLiteral  nodeKind = iota // lit
	nEmpty                    // {}
	nMember                   // name, applied to left (or the input when left is nil)
	nFunc                     // name(args), applied to left (or the input)
	nThis                     // $this
	nIndexVar                 // $index
	nTotal                    // $total
	nExternal                 // %name
	nIndex                    // left[args[0]]
	nBinary                   // left op right
	nTypeOp                   // left is/as typeName
	nNegate                   // -left
)

type node struct {
	kind     nodeKind
	name     string // member/function/external name, operator, or type name
	left     *node
	right    *node
	args     []*node
	lit      Node
	typeName string // for nTypeOp and the type argument of ofType/as/is
	// extName is "_" + name for nMember: the JSON key of a primitive's
	// id and extensions, built once rather than at every step.
	extName string
	pos     int
}

// ---- parser ----

type parser struct {
	src  string
	toks []token
	i    int
}

func (p *parser) peek() token { return p.toks[p.i] }
func (p *parser) next() token {
	t := p.toks[p.i]
	if t.kind != tEOF {
		p.i++
	}
	return t
}

func (p *parser) errorf(t token, format string, args ...any) error {
	return &SyntaxError{Expr: p.src, Pos: t.pos, Msg: fmt.Sprintf(format, args...)}
}

func (p *parser) isOp(s string) bool {
	t := p.peek()
	return t.kind == tOp && t.text == s
}

func (p *parser) expectOp(s string) error {
	if !p.isOp(s) {
		return p.errorf(p.peek(), "expected %q, found %s", s, p.peek())
	}
	p.next()
	return nil
}

// Binary operator precedence, higher binds tighter (FHIRPath §Operator
// precedence). Unsupported arithmetic operators are rejected.
var binaryPrec = map[string]int{
	"implies": 1,
	"or":      2, "xor": 2,
	"and": 3,
	"in":  4, "contains": 4,
	"=": 5, "~": 5, "!=": 5, "!~": 5,
	"<": 6, ">": 6, "<=": 6, ">=": 6,
	"|":  7,
	"is": 8, "as": 8,
	"+": 9, "-": 9, "&": 9,
	"*": 10, "/": 10, "div": 10, "mod": 10,
}

var unsupportedOps = map[string]bool{
	"~": true, "!~": true, "*": true, "/": true, "div": true, "mod": true,
}

func (p *parser) binaryOp() (string, int, bool) {
	t := p.peek()
	if t.kind != tOp && t.kind != tIdent {
		return "", 0, false
	}
	prec, ok := binaryPrec[t.text]
	if !ok {
		return "", 0, false
	}
	return t.text, prec, true
}

func (p *parser) parseExpr(minPrec int) (*node, error) {
	left, err := p.parseUnary()
	if err != nil {
		return nil, err
	}
	for {
		op, prec, ok := p.binaryOp()
		if !ok || prec <= minPrec {
			return left, nil
		}
		t := p.next()
		if unsupportedOps[op] {
			return nil, p.errorf(t, "unsupported operator %q", op)
		}
		if op == "is" || op == "as" {
			tn, err := p.parseTypeSpecifier()
			if err != nil {
				return nil, err
			}
			left = &node{kind: nTypeOp, name: op, left: left, typeName: tn, pos: t.pos}
			continue
		}
		right, err := p.parseExpr(prec)
		if err != nil {
			return nil, err
		}
		left = &node{kind: nBinary, name: op, left: left, right: right, pos: t.pos}
	}
}

func (p *parser) parseTypeSpecifier() (string, error) {
	t := p.next()
	if t.kind != tIdent && t.kind != tDelimIdent {
		return "", p.errorf(t, "expected a type name, found %s", t)
	}
	name := t.text
	if p.isOp(".") {
		p.next()
		t2 := p.next()
		if t2.kind != tIdent && t2.kind != tDelimIdent {
			return "", p.errorf(t2, "expected a type name, found %s", t2)
		}
		name += "." + t2.text
	}
	return name, nil
}

func (p *parser) parseUnary() (*node, error) {
	if p.isOp("-") || p.isOp("+") {
		t := p.next()
		operand, err := p.parseUnary()
		if err != nil {
			return nil, err
		}
		if t.text == "+" {
			return operand, nil
		}
		return &node{kind: nNegate, left: operand, pos: t.pos}, nil
	}
	return p.parsePostfix()
}

func (p *parser) parsePostfix() (*node, error) {
	n, err := p.parseTerm()
	if err != nil {
		return nil, err
	}
	for {
		switch {
		case p.isOp("."):
			p.next()
			inv, err := p.parseInvocation()
			if err != nil {
				return nil, err
			}
			inv.left = n
			n = inv
		case p.isOp("["):
			t := p.next()
			idx, err := p.parseExpr(0)
			if err != nil {
				return nil, err
			}
			if err := p.expectOp("]"); err != nil {
				return nil, err
			}
			n = &node{kind: nIndex, left: n, args: []*node{idx}, pos: t.pos}
		default:
			return n, nil
		}
	}
}

func (p *parser) parseTerm() (*node, error) {
	t := p.peek()
	switch t.kind {
	case tString:
		p.next()
		return &node{kind: nLiteral, lit: Node{Value: t.text, Type: "System.String"}, pos: t.pos}, nil
	case tNumber:
		p.next()
		typ := "System.Integer"
		if strings.Contains(t.text, ".") {
			typ = "System.Decimal"
		}
		if p.peek().kind == tString || (p.peek().kind == tIdent && calendarUnits[p.peek().text]) {
			return nil, p.errorf(p.peek(), "quantity literals are not supported")
		}
		return &node{kind: nLiteral, lit: Node{Value: json.Number(t.text), Type: typ}, pos: t.pos}, nil
	case tDateTime:
		p.next()
		return &node{kind: nLiteral, lit: dateLiteral(t.text), pos: t.pos}, nil
	case tExternal:
		p.next()
		return &node{kind: nExternal, name: t.text, pos: t.pos}, nil
	case tSpecial:
		p.next()
		k := map[string]nodeKind{"$this": nThis, "$index": nIndexVar, "$total": nTotal}[t.text]
		return &node{kind: k, pos: t.pos}, nil
	case tOp:
		switch t.text {
		case "(":
			p.next()
			n, err := p.parseExpr(0)
			if err != nil {
				return nil, err
			}
			if err := p.expectOp(")"); err != nil {
				return nil, err
			}
			return n, nil
		case "{":
			p.next()
			if err := p.expectOp("}"); err != nil {
				return nil, err
			}
			return &node{kind: nEmpty, pos: t.pos}, nil
		}
	case tIdent:
		switch t.text {
		case "true", "false":
			p.next()
			return &node{kind: nLiteral, lit: Node{Value: t.text == "true", Type: "System.Boolean"}, pos: t.pos}, nil
		}
	}
	return p.parseInvocation()
}

var calendarUnits = map[string]bool{
	"year": true, "years": true, "month": true, "months": true, "week": true, "weeks": true,
	"day": true, "days": true, "hour": true, "hours": true, "minute": true, "minutes": true,
	"second": true, "seconds": true, "millisecond": true, "milliseconds": true,
}

// parseInvocation parses an identifier or a function call.
func (p *parser) parseInvocation() (*node, error) {
	t := p.next()
	if t.kind != tIdent && t.kind != tDelimIdent {
		return nil, p.errorf(t, "expected an identifier, found %s", t)
	}
	if t.kind == tDelimIdent || !p.isOp("(") {
		if t.kind == tIdent && reservedWords[t.text] {
			return nil, p.errorf(t, "unexpected keyword %q", t.text)
		}
		return &node{kind: nMember, name: t.text, extName: "_" + t.text, pos: t.pos}, nil
	}
	p.next() // (
	fn, ok := functions[t.text]
	if !ok {
		return nil, p.errorf(t, "unsupported function %s()", t.text)
	}
	n := &node{kind: nFunc, name: t.text, pos: t.pos}
	if fn.typeArg {
		tn, err := p.parseTypeSpecifier()
		if err != nil {
			return nil, err
		}
		n.typeName = tn
	} else if !p.isOp(")") {
		for {
			a, err := p.parseExpr(0)
			if err != nil {
				return nil, err
			}
			n.args = append(n.args, a)
			if !p.isOp(",") {
				break
			}
			p.next()
		}
	}
	if err := p.expectOp(")"); err != nil {
		return nil, err
	}
	if fn.typeArg {
		return n, nil
	}
	if len(n.args) < fn.minArgs || len(n.args) > fn.maxArgs {
		return nil, p.errorf(t, "%s() takes %s, got %d", t.text, fn.arity(), len(n.args))
	}
	return n, nil
}

// reservedWords cannot be used as bare identifiers (FHIRPath allows 'as',
// 'is', 'in' and 'contains' as identifiers; so does this parser).
var reservedWords = map[string]bool{
	"and": true, "or": true, "xor": true, "implies": true, "div": true, "mod": true,
	"true": true, "false": true,
}

func dateLiteral(s string) Node {
	switch {
	case strings.HasPrefix(s, "T"):
		return Node{Value: s[1:], Type: "System.Time"}
	case strings.Contains(s, "T"):
		return Node{Value: strings.TrimSuffix(s, "T"), Type: "System.DateTime"}
	default:
		return Node{Value: s, Type: "System.Date"}
	}
}
