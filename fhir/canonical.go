package fhir

import (
	"bytes"
	"slices"
	"time"
	"unicode/utf8"

	"github.com/fmtbank/cmts/fhir/jsonscan"
)

// The stored form of a resource is what google/fhir/go's marshaller
// writes: members sorted by name, no white space, strings escaped as
// encoding/json escapes them (HTML left alone). Marshalling the parsed
// resource back (protobuf reflection into maps, then encoding/json) was an
// eighth of a write's CPU; for a resource stored as it was received,
// apart from its id and meta, the same bytes come from the received JSON
// by sorting its members (canonical). Where the received text could
// differ from what the parser made of it (a time in another form, a
// number in exponent form, an escaped member name, an empty array) it
// declines and the codec marshals. TestCanonicalMatchesMarshal holds it
// to the marshaller's bytes on every official example, and a Verifying
// codec checks every write of the test suites.

// canonicalEdit is what Resource.SetID and SetMeta changed since parsing:
// canonical writes these instead of what the body holds.
type canonicalEdit struct {
	id          string
	setID       bool
	versionID   string
	lastUpdated time.Time
	setMeta     bool
}

// canonical appends body, the JSON text of one resource that the codec
// parsed and validated, in stored form with edit applied. It reports false
// (dst unspecified) where it cannot be sure of matching the marshaller.
func canonical(dst, body []byte, edit canonicalEdit) ([]byte, bool) {
	c := canonicalizer{dst: dst, edit: edit}
	if _, ok := c.objectAt(body, jsonscan.SkipWS(body, 0), true, false, 0); !ok {
		return nil, false
	}
	return c.dst, true
}

type canonicalizer struct {
	dst  []byte
	edit canonicalEdit
	// members is reused by nested objects as a stack (see objectAt).
	members []member
}

// member is one member of an object: its name and where its value sits.
type member struct {
	name []byte
	at   int
	// extra is 'i' (id), 'm' (meta), 'v' (meta.versionId) or 'u'
	// (meta.lastUpdated): written from edit, not from body (0).
	extra byte
}

// maxCanonicalDepth bounds the nesting canonical follows (the codec's own limit is
// lower; this only keeps the recursion finite if it is raised).
const maxCanonicalDepth = 128

// objectAt writes the object at b[i] with its members sorted; top is the
// resource itself (id and meta edited), meta its meta element.
func (c *canonicalizer) objectAt(b []byte, i int, top, meta bool, depth int) (int, bool) {
	if depth > maxCanonicalDepth || i >= len(b) || b[i] != '{' {
		return 0, false
	}
	base := len(c.members)
	defer func() { c.members = c.members[:base] }()
	sawID, sawMeta := false, false
	ok := true
	end, err := jsonscan.Object(b, i, func(name []byte, at int) (int, error) {
		next, err := jsonscan.SkipValue(b, at)
		if err != nil {
			return 0, err
		}
		if bytes.IndexByte(name, '\\') >= 0 || b[at] == 'n' {
			// an escaped name; a null member (which the parser drops)
			ok = false
			return next, nil
		}
		m := member{name: name, at: at}
		switch {
		case top && string(name) == "id" && c.edit.setID:
			m.extra, sawID = 'i', true
		case top && string(name) == "meta":
			sawMeta = true
			if c.edit.setMeta {
				m.extra = 'm'
			}
		case top && string(name) == "_id" && c.edit.setID,
			meta && (string(name) == "_versionId" || string(name) == "_lastUpdated"):
			// SetID and SetMeta replace the element, its extensions too
			ok = false
		case meta && (string(name) == "versionId" || string(name) == "lastUpdated"):
			return next, nil // written from edit
		}
		c.members = append(c.members, m)
		return next, nil
	})
	if err != nil || !ok {
		return 0, false
	}
	if top && c.edit.setID && !sawID {
		c.members = append(c.members, member{name: []byte("id"), extra: 'i'})
	}
	if top && c.edit.setMeta && !sawMeta {
		c.members = append(c.members, member{name: []byte("meta"), extra: 'm', at: -1})
	}
	if meta {
		c.members = append(c.members, member{name: []byte("versionId"), extra: 'v'}, member{name: []byte("lastUpdated"), extra: 'u'})
	}
	kept := c.members[base:]
	if len(kept) == 0 {
		return 0, false // an empty object, which the parser drops
	}
	slices.SortFunc(kept, func(x, y member) int { return bytes.Compare(x.name, y.name) })
	c.dst = append(c.dst, '{')
	for k, m := range kept {
		if k > 0 {
			c.dst = append(c.dst, ',')
		}
		c.dst = append(c.dst, '"')
		c.dst = append(c.dst, m.name...)
		c.dst = append(c.dst, '"', ':')
		switch m.extra {
		case 'i':
			c.dst = appendJSONString(c.dst, c.edit.id)
		case 'v':
			c.dst = appendJSONString(c.dst, c.edit.versionID)
		case 'u':
			c.dst = append(c.dst, '"')
			c.dst = c.edit.lastUpdated.UTC().AppendFormat(c.dst, "2006-01-02T15:04:05.000000Z")
			c.dst = append(c.dst, '"')
		case 'm':
			mb, at := b, m.at
			if at < 0 { // the body has no meta: edit an empty one
				mb, at = []byte("{}"), 0
			}
			if _, ok := c.objectAt(mb, at, false, true, depth+1); !ok {
				return 0, false
			}
		default:
			if _, ok := c.value(b, m.at, depth+1); !ok {
				return 0, false
			}
		}
	}
	c.dst = append(c.dst, '}')
	return end, true
}

// value writes the value at b[i].
func (c *canonicalizer) value(b []byte, i, depth int) (int, bool) {
	switch b[i] {
	case '{':
		return c.objectAt(b, i, false, false, depth)
	case '[':
		if depth > maxCanonicalDepth {
			return 0, false
		}
		c.dst = append(c.dst, '[')
		n := 0
		ok := true
		end, err := jsonscan.Array(b, i, func(at int) (int, error) {
			if n > 0 {
				c.dst = append(c.dst, ',')
			}
			n++
			next, good := c.value(b, at, depth+1)
			if !good {
				ok = false
				return 0, jsonscan.ErrSyntax // stop: declined
			}
			return next, nil
		})
		if err != nil || !ok || n == 0 {
			return 0, false // an empty array, which the parser drops
		}
		c.dst = append(c.dst, ']')
		return end, true
	case '"':
		raw, escaped, next, err := jsonscan.RawString(b, i)
		if err != nil {
			return 0, false
		}
		s := raw
		if escaped {
			str, _, err := jsonscan.String(b, i)
			if err != nil {
				return 0, false
			}
			s = []byte(str)
		}
		if !plainText(s) {
			return 0, false
		}
		if escaped || bytes.Contains(raw, lineSep) || bytes.Contains(raw, paraSep) {
			c.dst = appendJSONString(c.dst, string(s))
		} else {
			c.dst = append(c.dst, '"')
			c.dst = append(c.dst, raw...)
			c.dst = append(c.dst, '"')
		}
		return next, true
	case 't', 'f':
		next, err := jsonscan.SkipValue(b, i)
		if err != nil {
			return 0, false
		}
		c.dst = append(c.dst, b[i:next]...)
		return next, true
	case 'n':
		return 0, false // null (an array's gap: the parser refuses it)
	default:
		next, err := jsonscan.SkipValue(b, i)
		if err != nil || !plainNumber(b[i:next]) {
			return 0, false
		}
		c.dst = append(c.dst, b[i:next]...)
		return next, true
	}
}

// U+2028 and U+2029, which encoding/json escapes.
var lineSep, paraSep = []byte("\u2028"), []byte("\u2029")

// plainNumber reports whether a number is written as the parser's value
// of it is: no exponent, no negative zero.
func plainNumber(n []byte) bool {
	if len(n) == 0 || bytes.ContainsAny(n, "eE") {
		return false
	}
	if n[0] == '-' && len(n) > 1 && n[1] == '0' {
		return false
	}
	return true
}

// plainText reports whether a string value is one the marshaller writes
// back as it is: valid UTF-8 (else it would write U+FFFD), and, if it
// looks like a time, a dateTime, instant or time in the one form the
// marshaller writes (seconds, then 3 or 6 decimals or none, then a zone).
func plainText(s []byte) bool {
	if !utf8.Valid(s) {
		return false
	}
	if len(s) >= 8 && isDigit(s[0]) && isDigit(s[1]) {
		switch {
		case len(s) >= 11 && s[4] == '-' && s[10] == 'T' && allDigits(s[:4]):
			return canonicalTime(s[11:], true)
		case s[2] == ':':
			return canonicalTime(s, false)
		}
	}
	return true
}

// canonicalTime checks hh:mm:ss[.fff|.ffffff] followed by a zone (Z or
// ±hh:mm, not -00:00) if zoned, by nothing otherwise.
func canonicalTime(s []byte, zoned bool) bool {
	if len(s) < 8 || !isDigit(s[0]) || !isDigit(s[1]) || s[2] != ':' || !isDigit(s[3]) || !isDigit(s[4]) || s[5] != ':' || !isDigit(s[6]) || !isDigit(s[7]) {
		return false
	}
	s = s[8:]
	if len(s) > 0 && s[0] == '.' {
		n := 1
		for n < len(s) && isDigit(s[n]) {
			n++
		}
		if n != 4 && n != 7 {
			return false
		}
		s = s[n:]
	}
	if !zoned {
		return len(s) == 0
	}
	if len(s) == 1 && s[0] == 'Z' {
		return true
	}
	if string(s) == "-00:00" {
		return false // written +00:00
	}
	return len(s) == 6 && (s[0] == '+' || s[0] == '-') && isDigit(s[1]) && isDigit(s[2]) && s[3] == ':' && isDigit(s[4]) && isDigit(s[5])
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

func allDigits(s []byte) bool {
	for _, c := range s {
		if !isDigit(c) {
			return false
		}
	}
	return true
}

// appendJSONString appends s quoted as encoding/json quotes it with HTML
// escaping off.
func appendJSONString(dst []byte, s string) []byte {
	const hex = "0123456789abcdef"
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		if b := s[i]; b < utf8.RuneSelf {
			if b >= 0x20 && b != '"' && b != '\\' {
				i++
				continue
			}
			dst = append(dst, s[start:i]...)
			switch b {
			case '\\', '"':
				dst = append(dst, '\\', b)
			case '\b':
				dst = append(dst, '\\', 'b')
			case '\f':
				dst = append(dst, '\\', 'f')
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			default:
				dst = append(dst, '\\', 'u', '0', '0', hex[b>>4], hex[b&0xF])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			dst = append(dst, s[start:i]...)
			dst = append(dst, '\\', 'u', '2', '0', '2', hex[r&0xF])
			i += size
			start = i
			continue
		}
		i += size
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}
