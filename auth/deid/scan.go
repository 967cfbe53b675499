package deid

import (
	"encoding/json"
	"errors"
	"fmt"
)

// The de-identification rewrites JSON text directly: it splits objects into
// their members' raw spans, decides on each by its key, and copies what it
// keeps byte for byte, so that a resource is never decoded into maps and
// re-encoded (the $trace of a donor renders thousands of resources through
// it). Numbers and strings keep their exact text.

// member is one member of a JSON object: its key, decoded, and its value's
// raw text.
type member struct {
	key string
	val []byte
}

var errSyntax = errors.New("deid: malformed JSON")

// ws reports whether c is JSON whitespace.
func ws(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }

// skipWS returns the index of the first non-whitespace byte at or after i.
func skipWS(b []byte, i int) int {
	for i < len(b) && ws(b[i]) {
		i++
	}
	return i
}

// valueEnd returns the index just past the JSON value starting at b[i].
func valueEnd(b []byte, i int) (int, error) {
	if i >= len(b) {
		return 0, errSyntax
	}
	switch b[i] {
	case '"':
		return stringEnd(b, i)
	case '{', '[':
		// Nesting is counted, not parsed: the members are split later,
		// when (and only if) the rewrite descends into them.
		depth := 0
		for i < len(b) {
			switch b[i] {
			case '"':
				end, err := stringEnd(b, i)
				if err != nil {
					return 0, err
				}
				i = end
				continue
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					return i + 1, nil
				}
			}
			i++
		}
		return 0, errSyntax
	default:
		start := i
		for i < len(b) && literalByte(b[i]) {
			i++
		}
		if i == start {
			return 0, errSyntax
		}
		return i, nil
	}
}

// literalByte reports whether c can be part of a number, true, false or
// null.
func literalByte(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c == '-' || c == '+' || c == '.' || c == 'E'
}

// stringEnd returns the index just past the string starting at b[i].
func stringEnd(b []byte, i int) (int, error) {
	for i++; i < len(b); i++ {
		switch b[i] {
		case '\\':
			i++
		case '"':
			return i + 1, nil
		}
	}
	return 0, errSyntax
}

// members splits the object obj (its raw text, braces included).
func members(obj []byte) ([]member, error) {
	if len(obj) < 2 || obj[0] != '{' || obj[len(obj)-1] != '}' {
		return nil, errSyntax
	}
	out := make([]member, 0, 8)
	i := skipWS(obj, 1)
	if obj[i] == '}' {
		return nil, nil
	}
	for {
		if obj[i] != '"' {
			return nil, errSyntax
		}
		kend, err := stringEnd(obj, i)
		if err != nil {
			return nil, err
		}
		key, err := unquote(obj[i:kend])
		if err != nil {
			return nil, err
		}
		i = skipWS(obj, kend)
		if i >= len(obj) || obj[i] != ':' {
			return nil, errSyntax
		}
		i = skipWS(obj, i+1)
		vend, err := valueEnd(obj, i)
		if err != nil {
			return nil, err
		}
		out = append(out, member{key: key, val: obj[i:vend]})
		i = skipWS(obj, vend)
		if i >= len(obj) {
			return nil, errSyntax
		}
		switch obj[i] {
		case ',':
			i = skipWS(obj, i+1)
		case '}':
			if i != len(obj)-1 {
				return nil, errSyntax
			}
			return out, nil
		default:
			return nil, errSyntax
		}
	}
}

// elements splits the array arr (its raw text, brackets included).
func elements(arr []byte) ([][]byte, error) {
	if len(arr) < 2 || arr[0] != '[' || arr[len(arr)-1] != ']' {
		return nil, errSyntax
	}
	var out [][]byte
	i := skipWS(arr, 1)
	if arr[i] == ']' {
		return nil, nil
	}
	for {
		end, err := valueEnd(arr, i)
		if err != nil {
			return nil, err
		}
		out = append(out, arr[i:end])
		i = skipWS(arr, end)
		if i >= len(arr) {
			return nil, errSyntax
		}
		switch arr[i] {
		case ',':
			i = skipWS(arr, i+1)
		case ']':
			if i != len(arr)-1 {
				return nil, errSyntax
			}
			return out, nil
		default:
			return nil, errSyntax
		}
	}
}

// unquote decodes a JSON string's raw text.
func unquote(raw []byte) (string, error) {
	plain := true
	for _, c := range raw[1 : len(raw)-1] {
		if c == '\\' || c < 0x20 {
			plain = false
			break
		}
	}
	if plain {
		return string(raw[1 : len(raw)-1]), nil
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return "", fmt.Errorf("deid: %w", err)
	}
	return s, nil
}

// stringValue is the decoded value of raw when it is a JSON string.
func stringValue(raw []byte) (string, bool) {
	if len(raw) < 2 || raw[0] != '"' {
		return "", false
	}
	s, err := unquote(raw)
	return s, err == nil
}

// kind is the first byte of a raw value: '{', '[', '"' or a literal's.
func kind(raw []byte) byte {
	if len(raw) == 0 {
		return 0
	}
	return raw[0]
}
