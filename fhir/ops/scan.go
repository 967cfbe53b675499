package ops

import (
	"encoding/json"
	"errors"
	"strconv"
)

// A small JSON walker for the report's reads: $ae-report reads a few
// fields of tens of thousands of resources, and decoding each whole body
// with encoding/json (reflection over every member) cost about 17 µs a
// Procedure, most of the report's time. The walker visits members in
// place and copies only the strings asked for.

var errJSON = errors.New("ops: malformed JSON")

func skipWS(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\n' || b[i] == '\r' || b[i] == '\t') {
		i++
	}
	return i
}

// rawString returns the bytes between the quotes of the string at b[i]
// (escapes left as written), whether it holds an escape, and the index
// after it.
func rawString(b []byte, i int) (raw []byte, escaped bool, next int, err error) {
	if i >= len(b) || b[i] != '"' {
		return nil, false, 0, errJSON
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
	return nil, false, 0, errJSON
}

// str reads the string at b[i] (anything else is "").
func str(b []byte, i int) (string, int, error) {
	if i < len(b) && b[i] != '"' {
		next, err := skipValue(b, i)
		return "", next, err
	}
	raw, escaped, next, err := rawString(b, i)
	if err != nil || !escaped {
		return string(raw), next, err
	}
	var s string
	err = json.Unmarshal(b[i:next], &s)
	return s, next, err
}

// skipValue returns the index after the value at b[i].
func skipValue(b []byte, i int) (int, error) {
	if i >= len(b) {
		return 0, errJSON
	}
	switch b[i] {
	case '"':
		_, _, next, err := rawString(b, i)
		return next, err
	case '{', '[':
		depth := 0
		for j := i; j < len(b); j++ {
			switch b[j] {
			case '"':
				_, _, next, err := rawString(b, j)
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
		return 0, errJSON
	}
	j := i
	for j < len(b) && b[j] != ',' && b[j] != '}' && b[j] != ']' && b[j] != ' ' && b[j] != '\n' && b[j] != '\r' && b[j] != '\t' {
		j++
	}
	if j == i {
		return 0, errJSON
	}
	return j, nil
}

// object calls member with each key of the object at b[i] and the index
// of its value; member returns the index after the value (skipValue for
// the members it does not read). It returns the index after the object;
// a value that is not an object is skipped.
func object(b []byte, i int, member func(key []byte, at int) (int, error)) (int, error) {
	i = skipWS(b, i)
	if i >= len(b) || b[i] != '{' {
		return skipValue(b, i)
	}
	i = skipWS(b, i+1)
	if i < len(b) && b[i] == '}' {
		return i + 1, nil
	}
	for {
		raw, _, next, err := rawString(b, i)
		if err != nil {
			return 0, err
		}
		i = skipWS(b, next)
		if i >= len(b) || b[i] != ':' {
			return 0, errJSON
		}
		if i, err = member(raw, skipWS(b, i+1)); err != nil {
			return 0, err
		}
		i = skipWS(b, i)
		if i >= len(b) {
			return 0, errJSON
		}
		switch b[i] {
		case ',':
			i = skipWS(b, i+1)
		case '}':
			return i + 1, nil
		default:
			return 0, errJSON
		}
	}
}

// array calls item with the index of each value of the array at b[i];
// item returns the index after it. A value that is not an array is
// skipped.
func array(b []byte, i int, item func(at int) (int, error)) (int, error) {
	i = skipWS(b, i)
	if i >= len(b) || b[i] != '[' {
		return skipValue(b, i)
	}
	i = skipWS(b, i+1)
	if i < len(b) && b[i] == ']' {
		return i + 1, nil
	}
	for {
		var err error
		if i, err = item(i); err != nil {
			return 0, err
		}
		i = skipWS(b, i)
		if i >= len(b) {
			return 0, errJSON
		}
		switch b[i] {
		case ',':
			i = skipWS(b, i+1)
		case ']':
			return i + 1, nil
		default:
			return 0, errJSON
		}
	}
}

// codings reads a CodeableConcept's codings.
func codings(b []byte, i int) ([]coding, int, error) {
	var out []coding
	next, err := object(b, i, func(k []byte, at int) (int, error) {
		if string(k) != "coding" {
			return skipValue(b, at)
		}
		return array(b, at, func(at int) (int, error) {
			var c coding
			next, err := object(b, at, func(k []byte, at int) (int, error) {
				switch string(k) {
				case "system":
					s, next, err := str(b, at)
					c.System = s
					return next, err
				case "code":
					s, next, err := str(b, at)
					c.Code = s
					return next, err
				}
				return skipValue(b, at)
			})
			out = append(out, c)
			return next, err
		})
	})
	return out, next, err
}

// referenceAt reads a Reference's reference.
func referenceAt(b []byte, i int) (reference, int, error) {
	var r reference
	next, err := object(b, i, func(k []byte, at int) (int, error) {
		if string(k) == "reference" {
			s, next, err := str(b, at)
			r.Reference = s
			return next, err
		}
		return skipValue(b, at)
	})
	return r, next, err
}

// number reads the integer at b[i] (0 and ok false for anything else).
func number(b []byte, i int) (n int, ok bool, next int, err error) {
	next, err = skipValue(b, i)
	if err != nil {
		return 0, false, 0, err
	}
	n, perr := strconv.Atoi(string(b[i:next]))
	return n, perr == nil, next, nil
}

// procFields are the fields of a Procedure the report reads.
type procFields struct {
	wmtProfile                       bool
	status, route, course, performed string
	code                             []coding
	subject, reason                  string // ids of the Patient, the first Condition
}

// decodeProcedure reads a Procedure's procFields.
// extension is what the reports read of one extension: its url, and its
// value when a code (valueCode) or a whole number (valuePositiveInt,
// valueInteger).
type extension struct {
	url, code string
	n         int
	hasN      bool
}

// extensions walks an extension array at i, handing each to use.
func extensions(b []byte, i int, use func(extension)) (int, error) {
	return array(b, i, func(at int) (int, error) {
		var e extension
		next, err := object(b, at, func(k []byte, at int) (int, error) {
			switch string(k) {
			case "url":
				s, next, err := str(b, at)
				e.url = s
				return next, err
			case "valueCode":
				s, next, err := str(b, at)
				e.code = s
				return next, err
			case "valuePositiveInt", "valueInteger":
				v, ok, next, err := number(b, at)
				e.n, e.hasN = v, ok
				return next, err
			}
			return skipValue(b, at)
		})
		use(e)
		return next, err
	})
}

func decodeProcedure(b []byte) (procFields, error) {
	var f procFields
	var periodStart string
	_, err := object(b, 0, func(k []byte, at int) (int, error) {
		switch string(k) {
		case "meta":
			return object(b, at, func(k []byte, at int) (int, error) {
				if string(k) != "profile" {
					return skipValue(b, at)
				}
				return array(b, at, func(at int) (int, error) {
					s, next, err := str(b, at)
					f.wmtProfile = f.wmtProfile || s == profileBase+wmtProcedure
					return next, err
				})
			})
		case "status":
			s, next, err := str(b, at)
			f.status = s
			return next, err
		case "extension":
			return extensions(b, at, func(e extension) {
				switch {
				case e.url == routeURL:
					f.route = e.code
				case e.url == courseURL && e.hasN:
					f.course = strconv.Itoa(e.n)
				}
			})
		case "code":
			cs, next, err := codings(b, at)
			f.code = cs
			return next, err
		case "subject":
			r, next, err := referenceAt(b, at)
			f.subject = r.id("Patient")
			return next, err
		case "performedDateTime":
			s, next, err := str(b, at)
			f.performed = s
			return next, err
		case "performedPeriod":
			return object(b, at, func(k []byte, at int) (int, error) {
				if string(k) != "start" {
					return skipValue(b, at)
				}
				s, next, err := str(b, at)
				periodStart = s
				return next, err
			})
		case "reasonReference":
			return array(b, at, func(at int) (int, error) {
				r, next, err := referenceAt(b, at)
				if id := r.id("Condition"); id != "" && f.reason == "" {
					f.reason = id
				}
				return next, err
			})
		}
		return skipValue(b, at)
	})
	if f.performed == "" {
		f.performed = periodStart
	}
	return f, err
}

// decodeCondition reads a Condition's code.
func decodeCondition(b []byte) ([]coding, error) {
	var out []coding
	_, err := object(b, 0, func(k []byte, at int) (int, error) {
		if string(k) != "code" {
			return skipValue(b, at)
		}
		cs, next, err := codings(b, at)
		out = cs
		return next, err
	})
	return out, err
}

// eventFields are the fields of an AdverseEvent the report reads.
type eventFields struct {
	actuality                   string
	grade                       string
	term, seriousness, severity []coding
	suspects                    []aeSuspect // every Procedure suspected
}

// decodeEvent reads an AdverseEvent's eventFields.
func decodeEvent(b []byte) (eventFields, error) {
	var f eventFields
	_, err := object(b, 0, func(k []byte, at int) (int, error) {
		switch string(k) {
		case "actuality":
			s, next, err := str(b, at)
			f.actuality = s
			return next, err
		case "extension":
			return extensions(b, at, func(e extension) {
				if e.url == ctcaeURL && e.hasN {
					f.grade = strconv.Itoa(e.n)
				}
			})
		case "event", "seriousness", "severity":
			cs, next, err := codings(b, at)
			switch string(k) {
			case "event":
				f.term = cs
			case "seriousness":
				f.seriousness = cs
			default:
				f.severity = cs
			}
			return next, err
		case "suspectEntity":
			return array(b, at, func(at int) (int, error) {
				var s aeSuspect
				next, err := object(b, at, func(k []byte, at int) (int, error) {
					switch string(k) {
					case "instance":
						r, next, err := referenceAt(b, at)
						s.proc = r.id("Procedure")
						return next, err
					case "causality":
						return array(b, at, func(at int) (int, error) {
							return object(b, at, func(k []byte, at int) (int, error) {
								if string(k) != "assessment" {
									return skipValue(b, at)
								}
								cs, next, err := codings(b, at)
								if r := (concept{Coding: cs}).code(csBase + "relatedness"); r != "" && s.relatedness == "" {
									s.relatedness = r
								}
								return next, err
							})
						})
					}
					return skipValue(b, at)
				})
				if s.proc != "" {
					f.suspects = append(f.suspects, s)
				}
				return next, err
			})
		}
		return skipValue(b, at)
	})
	return f, err
}
