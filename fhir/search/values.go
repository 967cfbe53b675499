package search

import (
	"math"
	"math/big"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// dateRE matches the FHIR date, dateTime and instant forms, and the partial
// forms a search may use (a dateTime to the minute).
var dateRE = regexp.MustCompile(`^(\d{4})(?:-(\d{2})(?:-(\d{2})(?:T(\d{2}):(\d{2})(?::(\d{2})(?:\.(\d+))?)?(Z|[+\- ]\d{2}:\d{2})?)?)?)?$`)

// parseDateRange reads a FHIR date, dateTime or instant (or a prefix of one)
// and returns the period its precision covers, inclusive, to the
// microsecond: "2020-03" is [2020-03-01T00:00:00.000000Z,
// 2020-03-31T23:59:59.999999Z]. A time without a zone is taken as UTC. A
// space in place of the zone's "+" is read as "+", as a query string often
// decodes an unescaped "+" into one.
func parseDateRange(s string) (low, high time.Time, ok bool) {
	m := dateRE.FindStringSubmatch(s)
	if m == nil {
		return time.Time{}, time.Time{}, false
	}
	num := func(i int) int {
		if m[i] == "" {
			return 0
		}
		n, _ := strconv.Atoi(m[i])
		return n
	}
	year, month, day := num(1), 1, 1
	if m[2] != "" {
		month = num(2)
	}
	if m[3] != "" {
		day = num(3)
	}
	hour, minute, sec := num(4), num(5), num(6)
	if month < 1 || month > 12 || day < 1 || day > daysIn(year, time.Month(month)) ||
		hour > 23 || minute > 59 || sec > 59 {
		return time.Time{}, time.Time{}, false
	}
	loc := time.UTC
	if z := m[8]; z != "" && z != "Z" {
		h, _ := strconv.Atoi(z[1:3])
		mi, _ := strconv.Atoi(z[4:6])
		if h > 14 || mi > 59 {
			return time.Time{}, time.Time{}, false
		}
		off := h*3600 + mi*60
		if z[0] == '-' {
			off = -off
		}
		loc = time.FixedZone("", off)
	}
	frac := m[7]
	nanos := 0
	if frac != "" {
		f := frac
		if len(f) > 9 {
			f = f[:9]
		}
		nanos, _ = strconv.Atoi(f + strings.Repeat("0", 9-len(f)))
		nanos -= nanos % 1000 // the encoding keeps microseconds
	}
	low = time.Date(year, time.Month(month), day, hour, minute, sec, nanos, loc)
	switch {
	case m[2] == "":
		high = low.AddDate(1, 0, 0)
	case m[3] == "":
		high = low.AddDate(0, 1, 0)
	case m[4] == "":
		high = low.AddDate(0, 0, 1)
	case m[6] == "":
		high = low.Add(time.Minute)
	case frac == "":
		high = low.Add(time.Second)
	case len(frac) < 6:
		high = low.Add(time.Duration(math.Pow10(9 - len(frac))))
	default:
		high = low.Add(time.Microsecond)
	}
	return low.UTC(), high.Add(-time.Microsecond).UTC(), true
}

func daysIn(year int, month time.Month) int {
	return time.Date(year, month+1, 0, 0, 0, 0, 0, time.UTC).Day()
}

// numberRE matches a FHIR decimal, with an optional exponent as the search
// syntax allows ("1e2").
var numberRE = regexp.MustCompile(`^[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?$`)

// decimal is a number as written, with the range its precision implies.
type decimal struct {
	value float64
	// lo and hi bound the implied range [lo, hi): "100" is [99.5, 100.5),
	// "100.00" [99.995, 100.005), "1e2" [50, 150).
	lo, hi float64
	exact  *big.Rat
	half   *big.Rat
}

// parseDecimal reads a decimal and its implicit precision: half a unit of
// its last significant digit either side.
func parseDecimal(s string) (decimal, bool) {
	if !numberRE.MatchString(s) {
		return decimal{}, false
	}
	mant, exp := s, 0
	if i := strings.IndexAny(s, "eE"); i >= 0 {
		mant = s[:i]
		e, err := strconv.Atoi(s[i+1:])
		if err != nil || e > 300 || e < -300 {
			return decimal{}, false
		}
		exp = e
	}
	scale := exp
	if i := strings.IndexByte(mant, '.'); i >= 0 {
		scale -= len(mant) - i - 1
	}
	r, ok := new(big.Rat).SetString(s)
	if !ok {
		return decimal{}, false
	}
	half := new(big.Rat).SetFrac64(1, 2)
	p := new(big.Rat).SetInt(new(big.Int).Exp(big.NewInt(10), big.NewInt(int64(abs(scale))), nil))
	if scale < 0 {
		p.Inv(p)
	}
	half.Mul(half, p)
	d := decimal{exact: r, half: half}
	d.value, _ = r.Float64()
	d.lo, _ = new(big.Rat).Sub(r, half).Float64()
	d.hi, _ = new(big.Rat).Add(r, half).Float64()
	return d, true
}

// approx widens the decimal by 10% of its value either side, and never
// narrower than its implied precision (the "ap" prefix).
func (d decimal) approx() (lo, hi float64) {
	tenth := new(big.Rat).Abs(d.exact)
	tenth.Quo(tenth, big.NewRat(10, 1))
	if tenth.Cmp(d.half) < 0 {
		tenth = d.half
	}
	lo, _ = new(big.Rat).Sub(d.exact, tenth).Float64()
	hi, _ = new(big.Rat).Add(d.exact, tenth).Float64()
	return lo, hi
}

func abs(n int) int {
	if n < 0 {
		return -n
	}
	return n
}
