package deid

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/fmtbank/cmts/fhir/jsonscan"
)

// The de-identification rewrites JSON text directly: it splits objects into
// their members' raw spans (with jsonscan, the walker the reports use),
// decides on each by its key, and copies what it keeps byte for byte, so
// that a resource is never decoded into maps and re-encoded (the $trace of
// a donor renders thousands of resources through it). Numbers and strings
// keep their exact text.

// member is one member of a JSON object: its key, decoded (the text itself
// when it has no escape, so that splitting an object copies nothing), and
// its value's raw text.
type member struct {
	key []byte
	val []byte
}

var errSyntax = jsonscan.ErrSyntax

// errStop ends a walk of eachMember early.
var errStop = errors.New("deid: stop")

// splitter splits objects into members on one stack for a whole
// de-identification: the members of an object stay valid until released
// (after the members of the objects inside it were released), so that
// splitting a resource's objects allocates once, not once an object.
type splitter struct {
	ms []member
	// es are the arrays' elements, likewise (see array).
	es [][]byte
}

// mark is where the stack is, for release.
func (sp *splitter) mark() int { return len(sp.ms) }

// release drops what was split since mark.
func (sp *splitter) release(mark int) { sp.ms = sp.ms[:mark] }

// members splits the object obj (its raw text, braces included) on the
// stack; the result's capacity is its length, so appending to it copies.
func (sp *splitter) members(obj []byte) ([]member, error) {
	start := len(sp.ms)
	out, err := appendMembers(sp.ms, obj)
	if err != nil {
		sp.ms = sp.ms[:start]
		return nil, err
	}
	sp.ms = out
	return out[start:len(out):len(out)], nil
}

// members splits the object obj (its raw text, braces included).
func members(obj []byte) ([]member, error) {
	return appendMembers(make([]member, 0, 8), obj)
}

// appendMembers appends the members of the object obj to out.
func appendMembers(out []member, obj []byte) ([]member, error) {
	err := walkMembers(obj, func(key, val []byte) error {
		out = append(out, member{key: key, val: val})
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// eachMember calls each with the key (decoded) and the raw value of the
// members of the object obj in turn, until each returns false; it reports
// whether obj is an object, well formed up to where it stopped. It splits
// nothing out, for the checks that look at one member or two.
func eachMember(obj []byte, each func(key, val []byte) bool) bool {
	err := walkMembers(obj, func(key, val []byte) error {
		if !each(key, val) {
			return errStop
		}
		return nil
	})
	return err == nil || err == errStop
}

// walkMembers calls each with the key (decoded) and the raw value of the
// members of the object obj in turn, until it returns an error, which
// walkMembers returns; obj must be an object, well formed to its end.
func walkMembers(obj []byte, each func(key, val []byte) error) error {
	if kind(obj) != '{' {
		return errSyntax
	}
	end, err := jsonscan.Object(obj, 0, func(k []byte, at int) (int, error) {
		key := k
		if bytes.IndexByte(k, '\\') >= 0 {
			s, err := unquote(k)
			if err != nil {
				return 0, err
			}
			key = []byte(s)
		}
		next, err := jsonscan.SkipValue(obj, at)
		if err != nil {
			return 0, err
		}
		return next, each(key, obj[at:next])
	})
	switch {
	case err != nil:
		return err
	case end != len(obj):
		return errSyntax
	}
	return nil
}

// elements splits the array arr (its raw text, brackets included).
func elements(arr []byte) ([][]byte, error) {
	return appendElements(make([][]byte, 0, 4), arr)
}

// appendElements appends the elements of the array arr to out.
func appendElements(out [][]byte, arr []byte) ([][]byte, error) {
	if kind(arr) != '[' {
		return nil, errSyntax
	}
	end, err := jsonscan.Array(arr, 0, func(at int) (int, error) {
		next, err := jsonscan.SkipValue(arr, at)
		if err != nil {
			return 0, err
		}
		out = append(out, arr[at:next])
		return next, nil
	})
	if err != nil {
		return nil, err
	}
	if end != len(arr) {
		return nil, errSyntax
	}
	return out, nil
}

// unquote decodes a JSON string's text between its quotes.
func unquote(raw []byte) (string, error) {
	if bytes.IndexByte(raw, '\\') < 0 {
		return string(raw), nil
	}
	var s string
	if err := json.Unmarshal(append(append([]byte{'"'}, raw...), '"'), &s); err != nil {
		return "", fmt.Errorf("deid: %w", err)
	}
	return s, nil
}

// stringValue is the decoded value of raw when it is a JSON string.
func stringValue(raw []byte) (string, bool) {
	if len(raw) < 2 || raw[0] != '"' || raw[len(raw)-1] != '"' {
		return "", false
	}
	s, err := unquote(raw[1 : len(raw)-1])
	return s, err == nil
}

// hasPrefix reports whether raw is a JSON string that starts with prefix,
// without decoding it unless it holds an escape.
func hasPrefix(raw []byte, prefix string) bool {
	if len(raw) < 2 || raw[0] != '"' || raw[len(raw)-1] != '"' {
		return false
	}
	if bytes.IndexByte(raw, '\\') < 0 {
		return bytes.HasPrefix(raw[1:len(raw)-1], []byte(prefix))
	}
	s, ok := stringValue(raw)
	return ok && strings.HasPrefix(s, prefix)
}

// kind is the first byte of a raw value: '{', '[', '"' or a literal's.
func kind(raw []byte) byte {
	if len(raw) == 0 {
		return 0
	}
	return raw[0]
}
