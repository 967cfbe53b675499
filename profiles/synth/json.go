package synth

import (
	"fmt"
	"strconv"
	"time"
	"unicode/utf8"
)

// obj is a JSON object whose members keep their order, so that a resource
// renders byte for byte the same on every run (resourceType first, as FHIR
// JSON is usually read).
type obj []member

type member struct {
	k string
	v any
}

// arr is a JSON array.
type arr []any

// appendJSON writes v (obj, arr, string, int, int64, float64, bool) as JSON.
func appendJSON(b []byte, v any) []byte {
	switch v := v.(type) {
	case obj:
		b = append(b, '{')
		for i, m := range v {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendString(b, m.k)
			b = append(b, ':')
			b = appendJSON(b, m.v)
		}
		return append(b, '}')
	case arr:
		b = append(b, '[')
		for i, e := range v {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendJSON(b, e)
		}
		return append(b, ']')
	case string:
		return appendString(b, v)
	case int:
		return strconv.AppendInt(b, int64(v), 10)
	case int64:
		return strconv.AppendInt(b, v, 10)
	case float64:
		return strconv.AppendFloat(b, v, 'g', -1, 64)
	case bool:
		return strconv.AppendBool(b, v)
	}
	panic(fmt.Sprintf("synth: cannot render a %T as JSON", v))
}

// appendString writes s as a JSON string: quotes, backslashes and control
// characters escaped, everything else (Chinese included) as UTF-8.
func appendString(b []byte, s string) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	for i := 0; i < len(s); {
		c := s[i]
		if c >= utf8.RuneSelf {
			r, n := utf8.DecodeRuneInString(s[i:])
			b = utf8.AppendRune(b, r)
			i += n
			continue
		}
		switch {
		case c == '"' || c == '\\':
			b = append(b, '\\', c)
		case c < 0x20:
			b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
		default:
			b = append(b, c)
		}
		i++
	}
	return append(b, '"')
}

// The registry's clock is Beijing time: business times are written with
// +08:00, as a Chinese hospital records them.
var beijing = time.FixedZone("CST", 8*60*60)

// dateTime is a FHIR dateTime to the second in Beijing time.
func dateTime(t time.Time) string { return t.In(beijing).Format("2006-01-02T15:04:05-07:00") }

// date is a FHIR date in Beijing time.
func date(t time.Time) string { return t.In(beijing).Format("2006-01-02") }

// instant is meta.lastUpdated as the server writes it: UTC, microseconds.
func instant(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05.000000Z") }
