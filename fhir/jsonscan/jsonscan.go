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
