// Package jsonscan walks JSON text in place: it finds a value's end,
// visits an object's members and an array's items by index, and copies
// only the strings asked for. The reports read a few fields of tens of
// thousands of resources and the de-identifier rewrites thousands of
// them; decoding each whole body with encoding/json (reflection over
// every member, maps for every object) was most of their time.
package jsonscan

import (
	"encoding/json"
	"errors"
)

// ErrSyntax is the error of malformed JSON.
var ErrSyntax = errors.New("jsonscan: malformed JSON")

// SkipWS returns the index of the first non-whitespace byte at or after i.
func SkipWS(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\n' || b[i] == '\r' || b[i] == '\t') {
		i++
	}
	return i
}

// RawString returns the bytes between the quotes of the string at b[i]
// (escapes left as written), whether it holds an escape, and the index
// after it.
func RawString(b []byte, i int) (raw []byte, escaped bool, next int, err error) {
	if i >= len(b) || b[i] != '"' {
		return nil, false, 0, ErrSyntax
	}
	for j := i + 1; j < len(b); j++ {
		switch b[j] {
		case '\\':
			escaped = true
			j++
		case '"':
			return b[i+1 : j], escaped, j + 1, nil
		}
	}
	return nil, false, 0, ErrSyntax
}

// String reads the string at b[i] (anything else is "").
func String(b []byte, i int) (string, int, error) {
	if i < len(b) && b[i] != '"' {
		next, err := SkipValue(b, i)
		return "", next, err
	}
	raw, escaped, next, err := RawString(b, i)
	if err != nil || !escaped {
		return string(raw), next, err
	}
	var s string
	err = json.Unmarshal(b[i:next], &s)
	return s, next, err
}

// SkipValue returns the index after the value at b[i].
func SkipValue(b []byte, i int) (int, error) {
	if i >= len(b) {
		return 0, ErrSyntax
	}
	switch b[i] {
	case '"':
		_, _, next, err := RawString(b, i)
		return next, err
	case '{', '[':
		depth := 0
		for j := i; j < len(b); j++ {
			switch b[j] {
			case '"':
				_, _, next, err := RawString(b, j)
				if err != nil {
					return 0, err
				}
				j = next - 1
			case '{', '[':
				depth++
			case '}', ']':
				if depth--; depth == 0 {
					return j + 1, nil
				}
			}
		}
		return 0, ErrSyntax
	}
	j := i
	for j < len(b) && b[j] != ',' && b[j] != '}' && b[j] != ']' && b[j] != ' ' && b[j] != '\n' && b[j] != '\r' && b[j] != '\t' {
		j++
	}
	if j == i {
		return 0, ErrSyntax
	}
	return j, nil
}

// Object calls member with each key of the object at b[i] and the index
// of its value; member returns the index after the value (skipValue for
// the members it does not read). It returns the index after the object;
// a value that is not an object is skipped.
func Object(b []byte, i int, member func(key []byte, at int) (int, error)) (int, error) {
	i = SkipWS(b, i)
	if i >= len(b) || b[i] != '{' {
		return SkipValue(b, i)
	}
	i = SkipWS(b, i+1)
	if i < len(b) && b[i] == '}' {
		return i + 1, nil
	}
	for {
		raw, _, next, err := RawString(b, i)
		if err != nil {
			return 0, err
		}
		i = SkipWS(b, next)
		if i >= len(b) || b[i] != ':' {
			return 0, ErrSyntax
		}
		if i, err = member(raw, SkipWS(b, i+1)); err != nil {
			return 0, err
		}
		i = SkipWS(b, i)
		if i >= len(b) {
			return 0, ErrSyntax
		}
		switch b[i] {
		case ',':
			i = SkipWS(b, i+1)
		case '}':
			return i + 1, nil
		default:
			return 0, ErrSyntax
		}
	}
}

// Array calls item with the index of each value of the array at b[i];
// item returns the index after it. A value that is not an array is
// skipped.
func Array(b []byte, i int, item func(at int) (int, error)) (int, error) {
	i = SkipWS(b, i)
	if i >= len(b) || b[i] != '[' {
		return SkipValue(b, i)
	}
	i = SkipWS(b, i+1)
	if i < len(b) && b[i] == ']' {
		return i + 1, nil
	}
	for {
		var err error
		if i, err = item(i); err != nil {
			return 0, err
		}
		i = SkipWS(b, i)
		if i >= len(b) {
			return 0, ErrSyntax
		}
		switch b[i] {
		case ',':
			i = SkipWS(b, i+1)
		case ']':
			return i + 1, nil
		default:
			return 0, ErrSyntax
		}
	}
}

// maxDepth is the deepest nesting encoding/json accepts.
const maxDepth = 10000

// Valid reports whether b is one JSON value, white space around it
// allowed: what encoding/json.Valid reports (invalid UTF-8 in a string
// is accepted, nesting deeper than 10,000 is not), at several times its
// speed, which a 16 MiB Bundle checked before anything else waits for.
func Valid(b []byte) bool {
	i, ok := validValue(b, SkipWS(b, 0), 0)
	return ok && SkipWS(b, i) == len(b)
}

// validValue checks the value at b[i] and returns the index after it.
func validValue(b []byte, i, depth int) (int, bool) {
	if i >= len(b) {
		return 0, false
	}
	switch c := b[i]; {
	case c == '"':
		return validString(b, i+1)
	case c == '{', c == '[':
		return validContainer(b, i, depth, c == '{')
	case c == '-' || c >= '0' && c <= '9':
		return validNumber(b, i)
	case c == 't':
		return validLiteral(b, i, "true")
	case c == 'f':
		return validLiteral(b, i, "false")
	case c == 'n':
		return validLiteral(b, i, "null")
	}
	return 0, false
}

// validContainer checks the object (or array) at b[i]: members, each a
// key, a colon and a value (or items, each a value), between commas.
func validContainer(b []byte, i, depth int, object bool) (int, bool) {
	if depth++; depth > maxDepth {
		return 0, false
	}
	end := byte(']')
	if object {
		end = '}'
	}
	i = SkipWS(b, i+1)
	if i < len(b) && b[i] == end {
		return i + 1, true
	}
	for {
		var ok bool
		if object {
			if i >= len(b) || b[i] != '"' {
				return 0, false
			}
			if i, ok = validString(b, i+1); !ok {
				return 0, false
			}
			if i = SkipWS(b, i); i >= len(b) || b[i] != ':' {
				return 0, false
			}
			i = SkipWS(b, i+1)
		}
		if i, ok = validValue(b, i, depth); !ok {
			return 0, false
		}
		if i = SkipWS(b, i); i >= len(b) {
			return 0, false
		}
		switch b[i] {
		case ',':
			i = SkipWS(b, i+1)
		case end:
			return i + 1, true
		default:
			return 0, false
		}
	}
}

// validString checks a string whose opening quote is before b[i]: no
// control character, only JSON's escapes.
func validString(b []byte, i int) (int, bool) {
	for i < len(b) {
		if plain[b[i]] {
			i++
			continue
		}
		switch c := b[i]; {
		case c == '"':
			return i + 1, true
		case c < 0x20:
			return 0, false
		case c == '\\':
			if i+1 >= len(b) {
				return 0, false
			}
			switch b[i+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				i += 2
			case 'u':
				if i+6 > len(b) {
					return 0, false
				}
				for _, h := range b[i+2 : i+6] {
					if !(h >= '0' && h <= '9' || h >= 'a' && h <= 'f' || h >= 'A' && h <= 'F') {
						return 0, false
					}
				}
				i += 6
			default:
				return 0, false
			}
		default:
			i++
		}
	}
	return 0, false
}

// plain holds the bytes that stand for themselves in a string: not a
// quote, a backslash or a control character.
var plain = func() (t [256]bool) {
	for c := range t {
		t[c] = c >= 0x20 && c != '"' && c != '\\'
	}
	return t
}()

// validNumber checks -?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)?.
func validNumber(b []byte, i int) (int, bool) {
	digits := func(i int) (int, bool) {
		start := i
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			i++
		}
		return i, i > start
	}
	if b[i] == '-' {
		i++
	}
	switch {
	case i < len(b) && b[i] == '0':
		i++
	case i < len(b) && b[i] >= '1' && b[i] <= '9':
		i, _ = digits(i)
	default:
		return 0, false
	}
	var ok bool
	if i < len(b) && b[i] == '.' {
		if i, ok = digits(i + 1); !ok {
			return 0, false
		}
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		if i, ok = digits(i); !ok {
			return 0, false
		}
	}
	return i, true
}

func validLiteral(b []byte, i int, lit string) (int, bool) {
	if len(b)-i < len(lit) || string(b[i:i+len(lit)]) != lit {
		return 0, false
	}
	return i + len(lit), true
}
