package jsonscan_test

import (
	"encoding/json"
	"math/rand/v2"
	"os"
	"strings"
	"testing"

	"github.com/fmtbank/cmts/fhir/fhirtest"
	"github.com/fmtbank/cmts/fhir/jsonscan"
)

// validCases are the forms where a JSON validator goes wrong.
var validCases = []string{
	``, ` `, `{}`, `[]`, ` {} `, "\t[\n]\r", `{`, `}`, `[`, `]`, `{]`, `[}`, `{}}`, `[]]`, `{} {}`, `[] x`,
	`{"a":1}`, `{"a":1,}`, `{,"a":1}`, `{"a" 1}`, `{"a":}`, `{a:1}`, `{'a':1}`, `{"a":1 "b":2}`, `{"a":1,"b":2}`,
	`[1,2]`, `[1,]`, `[,1]`, `[1 2]`, `[[[]]]`, `[[[]]`, `{"a":{"b":[{"c":null}]}}`,
	`0`, `-0`, `01`, `-01`, `1.`, `1.5`, `.5`, `-`, `+1`, `1e5`, `1E+5`, `1e-5`, `1e`, `1e+`, `1.5e3`, `-1.5E-3`, `1.e3`, `0x10`, `1_000`, `Infinity`, `NaN`,
	`true`, `false`, `null`, `tru`, `nul`, `True`, `nullx`, `truefalse`,
	`""`, `"a"`, `"a`, `"\""`, `"\\"`, `"\/"`, `"\b\f\n\r\t"`, `"\u0041"`, `"\u00e9"`, `"\uD83D\uDE00"`, `"\u12"`, `"\u12G4"`, `"\x41"`, `"\a"`, `"\'"`, "\"\t\"", "\"\x01\"", "\"\x7f\"",
	"\"\xff\xfe\"", "\"中文\"", `"王小明"`, `"\`, `"abc\`,
	"{\"a\":1}\x00", "\x00{}", "\u00a0{}",
}

func TestValid(t *testing.T) {
	for _, in := range validCases {
		if got, want := jsonscan.Valid([]byte(in)), json.Valid([]byte(in)); got != want {
			t.Errorf("Valid(%q) = %v, encoding/json says %v", in, got, want)
		}
	}
	deep := func(n int) string { return strings.Repeat("[", n) + strings.Repeat("]", n) }
	for _, n := range []int{9999, 10000, 10001} {
		in := []byte(deep(n))
		if got, want := jsonscan.Valid(in), json.Valid(in); got != want {
			t.Errorf("Valid(%d levels) = %v, encoding/json says %v", n, got, want)
		}
	}
}

// TestValidExamples checks Valid against encoding/json on the official
// R4 examples and on copies of them broken at random: a byte changed,
// removed or added, the text cut short.
func TestValidExamples(t *testing.T) {
	t.Parallel()
	files := fhirtest.ExampleFiles(t, "")
	rng := rand.New(rand.NewPCG(9, 9))
	special := []byte("{}[]\",:\\ -+.eE0123456789tfnu\x00\x1f")
	broken := 0
	for i, f := range files {
		raw, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if !jsonscan.Valid(raw) {
			t.Errorf("%s: not valid", f)
		}
		if i%4 != 0 {
			continue
		}
		for range 8 {
			b := append([]byte(nil), raw...)
			at := rng.IntN(len(b))
			switch rng.IntN(4) {
			case 0:
				b[at] = special[rng.IntN(len(special))]
			case 1:
				b = append(b[:at], b[at+1:]...)
			case 2:
				b = append(b[:at], append([]byte{special[rng.IntN(len(special))]}, b[at:]...)...)
			case 3:
				b = b[:at]
			}
			got, want := jsonscan.Valid(b), json.Valid(b)
			if got != want {
				t.Errorf("%s broken at %d: Valid = %v, encoding/json says %v: %q", f, at, got, want, b[max(0, at-20):min(len(b), at+20)])
			}
			if !want {
				broken++
			}
		}
	}
	t.Logf("%d examples, %d broken copies", len(files), broken)
}

func FuzzValid(f *testing.F) {
	for _, in := range validCases {
		f.Add([]byte(in))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if got, want := jsonscan.Valid(b), json.Valid(b); got != want {
			t.Errorf("Valid(%q) = %v, encoding/json says %v", b, got, want)
		}
	})
}

func BenchmarkValid(b *testing.B) {
	files := fhirtest.ExampleFiles(b, "Patient")
	parts := make([]string, 0, len(files))
	for _, f := range files {
		raw, err := os.ReadFile(f)
		if err != nil {
			b.Fatal(err)
		}
		parts = append(parts, string(raw))
	}
	body := []byte("[" + strings.Join(parts, ",") + "]")
	if !json.Valid(body) {
		b.Fatal("benchmark body is not JSON")
	}
	for _, v := range []struct {
		name  string
		valid func([]byte) bool
	}{{"encoding-json", json.Valid}, {"jsonscan", jsonscan.Valid}} {
		b.Run(v.name, func(b *testing.B) {
			b.SetBytes(int64(len(body)))
			for b.Loop() {
				if !v.valid(body) {
					b.Fatal("not valid")
				}
			}
		})
	}
}
