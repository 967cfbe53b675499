package store

import (
	"math"
	"sort"
	"testing"
	"time"
)

func TestEncodeNumberOrder(t *testing.T) {
	nums := []float64{math.Inf(-1), -1e300, -100.5, -1, -1e-9, 0, 1e-9, 0.5, 1, 2, 10, 99.5, 100, 1e300, math.Inf(1)}
	for i := range nums {
		for j := range nums {
			a, b := EncodeNumber(nums[i]), EncodeNumber(nums[j])
			if (nums[i] < nums[j]) != (a < b) {
				t.Errorf("%v < %v is %v but encoded %q < %q is %v", nums[i], nums[j], nums[i] < nums[j], a, b, a < b)
			}
		}
		if got, err := DecodeNumber(EncodeNumber(nums[i])); err != nil || got != nums[i] {
			t.Errorf("round trip %v: %v %v", nums[i], got, err)
		}
	}
	if EncodeNumber(math.Copysign(0, -1)) != EncodeNumber(0) {
		t.Error("-0 and +0 encode differently")
	}
}

func TestEncodeTimeOrder(t *testing.T) {
	times := []time.Time{
		time.Date(1, 1, 1, 0, 0, 0, 0, time.UTC),
		time.Date(999, 5, 1, 0, 0, 0, 0, time.UTC),
		time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC),
		time.Date(2020, 1, 1, 0, 0, 0, 1000, time.UTC),
		time.Date(2020, 1, 1, 8, 0, 0, 0, time.FixedZone("CST", 8*3600)).Add(time.Second),
		time.Date(2026, 11, 25, 0, 0, 0, 0, time.UTC),
	}
	var enc []string
	for _, tm := range times {
		enc = append(enc, EncodeTime(tm))
		if got, err := DecodeTime(EncodeTime(tm)); err != nil || !got.Equal(tm) {
			t.Errorf("round trip %v: %v %v", tm, got, err)
		}
	}
	if !sort.StringsAreSorted(enc) {
		t.Errorf("encodings out of order: %q", enc)
	}
	if MinTime >= MaxTime {
		t.Error("MinTime >= MaxTime")
	}
}
