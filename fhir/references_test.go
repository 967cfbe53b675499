package fhir

import (
	"encoding/json"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestRewriteReferences(t *testing.T) {
	const u1, u2 = "urn:uuid:0d3b4e7a-1111-2222-3333-444455556666", "urn:uuid:9a8b7c6d-1111-2222-3333-444455556666"
	to := map[string]string{
		u1:                       "Patient/p-new",
		u2:                       "Procedure/pr-new",
		"Patient/old":            "Patient/p-new",
		"Patient/old/_history/1": "Patient/p-new/_history/1",
		"http://example.org/fhir/Practitioner/dr": "Practitioner/dr-new",
	}
	for _, tc := range []struct {
		name, in, want string
		changed        int
		refs           []string
	}{{
		name: "nested elements and an extension",
		in: `{"resourceType":"AdverseEvent","actuality":"actual","subject":{"reference":"` + u1 + `"},
			"suspectEntity":[{"instance":{"reference":"` + u2 + `"},"extension":[{"url":"http://fmtbank.org/fhir/StructureDefinition/product-lot","valueReference":{"reference":"Specimen/lot-1"}}]}],
			"extension":[{"url":"http://x","valueReference":{"reference":"` + u2 + `","display":"d"}}],
			"recorder":{"reference":"http://example.org/fhir/Practitioner/dr"}}`,
		want: `{"resourceType":"AdverseEvent","actuality":"actual","subject":{"reference":"Patient/p-new"},
			"suspectEntity":[{"instance":{"reference":"Procedure/pr-new"},"extension":[{"url":"http://fmtbank.org/fhir/StructureDefinition/product-lot","valueReference":{"reference":"Specimen/lot-1"}}]}],
			"extension":[{"url":"http://x","valueReference":{"reference":"Procedure/pr-new","display":"d"}}],
			"recorder":{"reference":"Practitioner/dr-new"}}`,
		changed: 4,
		refs:    []string{"http://example.org/fhir/Practitioner/dr", u2, "Specimen/lot-1", u1},
	}, {
		name: "typed and version-specific references, a local one untouched",
		in: `{"resourceType":"Observation","status":"final","code":{"text":"x"},"subject":{"reference":"Patient/old"},
			"focus":[{"reference":"Patient/old/_history/1"},{"reference":"#c1"}],
			"contained":[{"resourceType":"Patient","id":"c1","link":[{"other":{"reference":"` + u1 + `"},"type":"seealso"}]}]}`,
		want: `{"resourceType":"Observation","status":"final","code":{"text":"x"},"subject":{"reference":"Patient/p-new"},
			"focus":[{"reference":"Patient/p-new/_history/1"},{"reference":"#c1"}],
			"contained":[{"resourceType":"Patient","id":"c1","link":[{"other":{"reference":"Patient/p-new"},"type":"seealso"}]}]}`,
		changed: 3,
		refs:    []string{u1, "Patient/old/_history/1", "Patient/old"},
	}, {
		name: "uri and url values and narrative links are rewritten, canonicals are not",
		in: `{"resourceType":"DocumentReference","status":"current","text":{"status":"generated","div":"<div xmlns=\"http://www.w3.org/1999/xhtml\"><a href=\"` + u1 + `\">p</a></div>"},
			"meta":{"profile":["` + u1 + `"],"source":"` + u1 + `"},
			"content":[{"attachment":{"url":"` + u1 + `"}}]}`,
		want: `{"resourceType":"DocumentReference","status":"current","text":{"status":"generated","div":"<div xmlns=\"http://www.w3.org/1999/xhtml\"><a href=\"Patient/p-new\">p</a></div>"},
			"meta":{"profile":["` + u1 + `"],"source":"Patient/p-new"},
			"content":[{"attachment":{"url":"Patient/p-new"}}]}`,
		changed: 3,
	}} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := NewCodec()
			if err != nil {
				t.Fatal(err)
			}
			r, err := c.Parse([]byte(tc.in))
			if err != nil {
				t.Fatal(err)
			}
			if tc.refs != nil {
				if diff := cmp.Diff(sorted(tc.refs), sorted(r.References())); diff != "" {
					t.Errorf("References (-want +got):\n%s", diff)
				}
			}
			n, err := r.RewriteReferences(to)
			if err != nil {
				t.Fatal(err)
			}
			if n != tc.changed {
				t.Errorf("changed %d references, want %d", n, tc.changed)
			}
			out, err := c.Marshal(r)
			if err != nil {
				t.Fatal(err)
			}
			var got, want any
			json.Unmarshal(out, &got)
			if err := json.Unmarshal([]byte(tc.want), &want); err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("rewritten (-want +got):\n%s", diff)
			}
		})
	}
}

func sorted(xs []string) []string {
	out := append([]string(nil), xs...)
	for i := range out {
		for j := i + 1; j < len(out); j++ {
			if out[j] < out[i] {
				out[i], out[j] = out[j], out[i]
			}
		}
	}
	return out
}

// TestHoldsAny pins what RewriteReferences's look at the received JSON
// finds: it may say yes when nothing is rewritten (the walk then decides),
// never no when something would be.
func TestHoldsAny(t *testing.T) {
	to := map[string]string{"urn:uuid:1": "Patient/a", "Patient/old": "Patient/a", "http://x/Patient/9": "Patient/a"}
	for _, tc := range []struct {
		name, json string
		want       bool
	}{
		{"no reference", `{"resourceType":"Patient","name":[{"family":"王"}]}`, false},
		{"other references", `{"resourceType":"Observation","subject":{"reference":"Patient/other"},"focus":[{"reference":"urn:uuid:2"}]}`, false},
		{"a key as a prefix only", `{"resourceType":"Observation","subject":{"reference":"urn:uuid:10"}}`, false},
		{"urn:uuid", `{"resourceType":"Observation","subject":{"reference":"urn:uuid:1"}}`, true},
		{"relative", `{"resourceType":"Observation","subject":{"reference":"Patient/old"}}`, true},
		{"absolute", `{"resourceType":"Observation","subject":{"reference":"http://x/Patient/9"}}`, true},
		{"escaped slash", `{"resourceType":"Observation","subject":{"reference":"Patient\/old"}}`, true},
		{"escaped letter", `{"resourceType":"Observation","subject":{"reference":"\u0075rn:uuid:1"}}`, true},
		{"in an extension's uri", `{"resourceType":"Patient","extension":[{"url":"http://e","valueUri":"urn:uuid:1"}]}`, true},
		{"after an escaped quote", `{"resourceType":"Patient","name":[{"text":"a \"b\" c"}],"link":[{"other":{"reference":"Patient/old"}}]}`, true},
		{"a narrative link", `{"resourceType":"Patient","text":{"status":"generated","div":"<div xmlns=\"http://www.w3.org/1999/xhtml\"><a href=\"urn:uuid:2\">x</a></div>"}}`, true},
		{"an escaped narrative link", `{"resourceType":"Patient","text":{"status":"generated","div":"<div xmlns=\"http://www.w3.org/1999/xhtml\"><img \u0073rc=\"x\"/></div>"}}`, true},
	} {
		if got := holdsAny([]byte(tc.json), to); got != tc.want {
			t.Errorf("%s: holdsAny = %v, want %v", tc.name, got, tc.want)
		}
	}
}
