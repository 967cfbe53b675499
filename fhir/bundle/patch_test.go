package bundle

import (
	"errors"
	"strings"
	"testing"

	"github.com/fmtbank/cmts/fhir"
	"github.com/google/go-cmp/cmp"
)

// problem is what a refusal says: status, issue code and diagnostics.
type problem struct {
	Status int
	Code   fhir.IssueType
	Diag   string
}

func problemOf(t *testing.T, err error) *problem {
	t.Helper()
	if err == nil {
		return nil
	}
	var fe *fhir.Error
	if !errors.As(err, &fe) {
		t.Fatalf("%v is not a *fhir.Error", err)
	}
	p := &problem{Status: fe.Status, Code: fe.Issues[0].Code}
	if strings.HasPrefix(fe.Issues[0].Diagnostics, "limit ") {
		p.Diag = fe.Issues[0].Diagnostics
	}
	return p
}

func TestDecodePatch(t *testing.T) {
	t.Parallel()
	op := `{"op":"remove","path":"/a"}`
	ops := func(n int) string { return "[" + strings.TrimSuffix(strings.Repeat(op+",", n), ",") + "]" }
	structure := &problem{Status: 400, Code: fhir.IssueStructure}
	for _, tc := range []struct {
		name string
		body string
		want *problem
	}{
		{"one operation", ops(1), nil},
		{"at the operation limit", ops(3), nil},
		{"over the operation limit", ops(4), &problem{Status: 413, Code: fhir.IssueTooLong, Diag: "limit max-patch-ops = 3"}},
		{"empty array", ` [] `, &problem{Status: 400, Code: fhir.IssueInvalid}},
		{"null", `null`, structure},
		{"object", op, structure},
		{"string", `"[]"`, structure},
		{"nothing", ``, structure},
		{"broken JSON", `[` + op, structure},
		{"unknown operation", `[{"op":"frobnicate","path":"/a"}]`, structure},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := decodePatch([]byte(tc.body), 3)
			if diff := cmp.Diff(tc.want, problemOf(t, err)); diff != "" {
				t.Errorf("decodePatch(%s) (-want +got):\n%s", tc.body, diff)
			}
		})
	}
}

func TestApplyPatch(t *testing.T) {
	t.Parallel()
	doc := `{"a":"0123456789"}` // "a"'s value is 12 bytes as JSON
	for _, tc := range []struct {
		name    string
		patch   string
		maxBody int64
		want    *problem
	}{
		// copy: the bytes copied count (12 each: "0123456789" as JSON),
		// whatever the result's size (18 bytes here)
		{"copies at the limit", `[{"op":"copy","from":"/a","path":"/b"},{"op":"remove","path":"/b"},{"op":"copy","from":"/a","path":"/b"},{"op":"remove","path":"/b"}]`, 24, nil},
		{"copies over the limit", `[{"op":"copy","from":"/a","path":"/b"},{"op":"remove","path":"/b"},{"op":"copy","from":"/a","path":"/b"},{"op":"remove","path":"/b"}]`, 23,
			&problem{Status: 422, Code: fhir.IssueTooLong, Diag: "limit max-body = 23"}},
		{"one copy under the limit", `[{"op":"copy","from":"/a","path":"/b"},{"op":"remove","path":"/b"}]`, 23, nil},
		// the result: {"a":"0123456789","b":1} is 24 bytes
		{"result at the limit", `[{"op":"add","path":"/b","value":1}]`, 24, nil},
		{"result over the limit", `[{"op":"add","path":"/b","value":1}]`, 23,
			&problem{Status: 422, Code: fhir.IssueTooLong, Diag: "limit max-body = 23"}},
		{"cannot apply", `[{"op":"remove","path":"/z"}]`, 100, &problem{Status: 422, Code: fhir.IssueProcessing}},
		{"test fails", `[{"op":"test","path":"/a","value":"x"}]`, 100, &problem{Status: 422, Code: fhir.IssueProcessing}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ops, err := decodePatch([]byte(tc.patch), 100)
			if err != nil {
				t.Fatal(err)
			}
			_, err = applyPatch(ops, []byte(doc), tc.maxBody)
			if diff := cmp.Diff(tc.want, problemOf(t, err)); diff != "" {
				t.Errorf("applyPatch (-want +got):\n%s", diff)
			}
		})
	}
}
