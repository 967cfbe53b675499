package jsonscan

import (
	"errors"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestSkipValue(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want int // -1: ErrSyntax
	}{
		{`"a\"b" ,`, 6},
		{`{"a":[1,{"b":"}"}]} x`, 19},
		{`12.5e3,`, 6},
		{`true]`, 4},
		{`"open`, -1},
		{`{"a":1`, -1},
		{``, -1},
		{`,`, -1},
	} {
		got, err := SkipValue([]byte(tc.in), 0)
		if tc.want < 0 {
			if !errors.Is(err, ErrSyntax) {
				t.Errorf("SkipValue(%q) = %d, %v; want ErrSyntax", tc.in, got, err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("SkipValue(%q) = %d, %v; want %d", tc.in, got, err, tc.want)
		}
	}
}

func TestObjectArray(t *testing.T) {
	b := []byte(` { "a" : [1, "x", {"b":2}] , "c\u0064":null } `)
	var keys []string
	var items []string
	end, err := Object(b, 0, func(k []byte, at int) (int, error) {
		keys = append(keys, string(k))
		if string(k) != "a" {
			return SkipValue(b, at)
		}
		return Array(b, at, func(at int) (int, error) {
			next, err := SkipValue(b, at)
			items = append(items, string(b[at:next]))
			return next, err
		})
	})
	if err != nil || end != len(b)-1 {
		t.Fatalf("Object: end %d, %v; want %d", end, err, len(b)-1)
	}
	if diff := cmp.Diff([]string{"a", `c\u0064`}, keys); diff != "" {
		t.Errorf("keys (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"1", `"x"`, `{"b":2}`}, items); diff != "" {
		t.Errorf("items (-want +got):\n%s", diff)
	}
	for _, bad := range []string{`{"a" 1}`, `{"a":1,}`, `{"a":1 "b":2}`, `[1 2]`} {
		_, err := Object([]byte(bad), 0, func(_ []byte, at int) (int, error) { return SkipValue([]byte(bad), at) })
		if bad[0] == '[' {
			_, err = Array([]byte(bad), 0, func(at int) (int, error) { return SkipValue([]byte(bad), at) })
		}
		if !errors.Is(err, ErrSyntax) {
			t.Errorf("%s: %v, want ErrSyntax", bad, err)
		}
	}
}

func TestString(t *testing.T) {
	b := []byte(`"a\u00e9\n" 7`)
	s, next, err := String(b, 0)
	if err != nil || s != "aé\n" || next != 11 {
		t.Errorf("String = %q, %d, %v", s, next, err)
	}
	if s, _, err := String(b, 12); err != nil || s != "" {
		t.Errorf("String of a number = %q, %v; want empty", s, err)
	}
}
