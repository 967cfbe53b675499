package ops

import (
	"strconv"

	"github.com/fmtbank/cmts/fhir/jsonscan"
)

// codings reads a CodeableConcept's codings.
func codings(b []byte, i int) ([]coding, int, error) {
	var out []coding
	next, err := jsonscan.Object(b, i, func(k []byte, at int) (int, error) {
		if string(k) != "coding" {
			return jsonscan.SkipValue(b, at)
		}
		return jsonscan.Array(b, at, func(at int) (int, error) {
			var c coding
			next, err := jsonscan.Object(b, at, func(k []byte, at int) (int, error) {
				switch string(k) {
				case "system":
					s, next, err := jsonscan.String(b, at)
					c.System = s
					return next, err
				case "code":
					s, next, err := jsonscan.String(b, at)
					c.Code = s
					return next, err
				}
				return jsonscan.SkipValue(b, at)
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
	next, err := jsonscan.Object(b, i, func(k []byte, at int) (int, error) {
		if string(k) == "reference" {
			s, next, err := jsonscan.String(b, at)
			r.Reference = s
			return next, err
		}
		return jsonscan.SkipValue(b, at)
	})
	return r, next, err
}

// number reads the integer at b[i] (0 and ok false for anything else).
func number(b []byte, i int) (n int, ok bool, next int, err error) {
	next, err = jsonscan.SkipValue(b, i)
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
	return jsonscan.Array(b, i, func(at int) (int, error) {
		var e extension
		next, err := jsonscan.Object(b, at, func(k []byte, at int) (int, error) {
			switch string(k) {
			case "url":
				s, next, err := jsonscan.String(b, at)
				e.url = s
				return next, err
			case "valueCode":
				s, next, err := jsonscan.String(b, at)
				e.code = s
				return next, err
			case "valuePositiveInt", "valueInteger":
				v, ok, next, err := number(b, at)
				e.n, e.hasN = v, ok
				return next, err
			}
			return jsonscan.SkipValue(b, at)
		})
		use(e)
		return next, err
	})
}

func decodeProcedure(b []byte) (procFields, error) {
	var f procFields
	var periodStart string
	_, err := jsonscan.Object(b, 0, func(k []byte, at int) (int, error) {
		switch string(k) {
		case "meta":
			return jsonscan.Object(b, at, func(k []byte, at int) (int, error) {
				if string(k) != "profile" {
					return jsonscan.SkipValue(b, at)
				}
				return jsonscan.Array(b, at, func(at int) (int, error) {
					s, next, err := jsonscan.String(b, at)
					f.wmtProfile = f.wmtProfile || s == profileBase+wmtProcedure
					return next, err
				})
			})
		case "status":
			s, next, err := jsonscan.String(b, at)
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
			s, next, err := jsonscan.String(b, at)
			f.performed = s
			return next, err
		case "performedPeriod":
			return jsonscan.Object(b, at, func(k []byte, at int) (int, error) {
				if string(k) != "start" {
					return jsonscan.SkipValue(b, at)
				}
				s, next, err := jsonscan.String(b, at)
				periodStart = s
				return next, err
			})
		case "reasonReference":
			return jsonscan.Array(b, at, func(at int) (int, error) {
				r, next, err := referenceAt(b, at)
				if id := r.id("Condition"); id != "" && f.reason == "" {
					f.reason = id
				}
				return next, err
			})
		}
		return jsonscan.SkipValue(b, at)
	})
	if f.performed == "" {
		f.performed = periodStart
	}
	return f, err
}

// decodeCondition reads a Condition's code.
func decodeCondition(b []byte) ([]coding, error) {
	var out []coding
	_, err := jsonscan.Object(b, 0, func(k []byte, at int) (int, error) {
		if string(k) != "code" {
			return jsonscan.SkipValue(b, at)
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
	_, err := jsonscan.Object(b, 0, func(k []byte, at int) (int, error) {
		switch string(k) {
		case "actuality":
			s, next, err := jsonscan.String(b, at)
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
			return jsonscan.Array(b, at, func(at int) (int, error) {
				var s aeSuspect
				next, err := jsonscan.Object(b, at, func(k []byte, at int) (int, error) {
					switch string(k) {
					case "instance":
						r, next, err := referenceAt(b, at)
						s.proc = r.id("Procedure")
						return next, err
					case "causality":
						return jsonscan.Array(b, at, func(at int) (int, error) {
							return jsonscan.Object(b, at, func(k []byte, at int) (int, error) {
								if string(k) != "assessment" {
									return jsonscan.SkipValue(b, at)
								}
								cs, next, err := codings(b, at)
								if r := (concept{Coding: cs}).code(csBase + "relatedness"); r != "" && s.relatedness == "" {
									s.relatedness = r
								}
								return next, err
							})
						})
					}
					return jsonscan.SkipValue(b, at)
				})
				if s.proc != "" {
					f.suspects = append(f.suspects, s)
				}
				return next, err
			})
		}
		return jsonscan.SkipValue(b, at)
	})
	return f, err
}
