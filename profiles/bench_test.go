package profiles

import (
	"context"
	"testing"
)

// BenchmarkValidate measures validating one WMT resource against its
// profile with the shipped definitions (decoded JSON in, issues out; the
// resolver answers from memory, so this is the validator's own cost).
func BenchmarkValidate(b *testing.B) {
	defs := shipped(b)
	procedure := readExample(b, "Procedure-procedure-1.json")
	v := NewValidator(defs, mapResolver{"Procedure/procedure-1": procedure})
	for _, c := range []struct{ name, file, profile string }{
		{"Procedure", "Procedure-procedure-1.json", sd + "cmts-wmt-procedure"},
		{"AdverseEvent", "AdverseEvent-ae-1.json", sd + "cmts-adverse-event"},
	} {
		res := readExample(b, c.file)
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				issues, err := v.Validate(context.Background(), res, c.profile)
				if err != nil || len(errorsOf(issues)) > 0 {
					b.Fatal(err, issues)
				}
			}
		})
	}
}
