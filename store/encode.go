package store

import (
	"fmt"
	"math"
	"strconv"
	"time"
)

// timeLayout is fixed-width, so string order is time order (years 0001-9999).
const timeLayout = "2006-01-02T15:04:05.000000Z"

// Open ends of date ranges.
var (
	MinTime = EncodeTime(time.Date(1, 1, 1, 0, 0, 0, 0, time.UTC))
	MaxTime = EncodeTime(time.Date(9999, 12, 31, 23, 59, 59, 999999000, time.UTC))
)

// EncodeTime encodes an instant (UTC, microseconds) so that string order is
// time order. Date range bounds are inclusive: a day is [00:00:00.000000,
// 23:59:59.999999].
func EncodeTime(t time.Time) string {
	t = t.UTC()
	if t.Year() < 1 {
		t = time.Date(1, 1, 1, 0, 0, 0, 0, time.UTC)
	} else if t.Year() > 9999 {
		t = time.Date(9999, 12, 31, 23, 59, 59, 999999000, time.UTC)
	}
	return t.Format(timeLayout)
}

// DecodeTime reverses EncodeTime.
func DecodeTime(s string) (time.Time, error) { return time.Parse(timeLayout, s) }

// EncodeNumber encodes a number so that string order is numeric order: the
// IEEE-754 bits with the sign flipped (all bits flipped for negatives), as 16
// hex digits.
func EncodeNumber(f float64) string {
	if f == 0 {
		f = 0 // -0 sorts with +0
	}
	b := math.Float64bits(f)
	if b&(1<<63) != 0 {
		b = ^b
	} else {
		b |= 1 << 63
	}
	return fmt.Sprintf("%016x", b)
}

// DecodeNumber reverses EncodeNumber.
func DecodeNumber(s string) (float64, error) {
	b, err := strconv.ParseUint(s, 16, 64)
	if err != nil {
		return 0, err
	}
	if b&(1<<63) != 0 {
		b &^= 1 << 63
	} else {
		b = ^b
	}
	return math.Float64frombits(b), nil
}
