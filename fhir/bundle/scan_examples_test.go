package bundle

import (
	"os"
	"regexp"
	"slices"
	"sync"
	"testing"

	"github.com/fmtbank/cmts/fhir"
	"github.com/fmtbank/cmts/fhir/fhirtest"
)

// literalRef is a literal reference "Type/id" as a JSON member.
var literalRef = regexp.MustCompile(`"reference"(\s*):(\s*)"([A-Z][A-Za-z]+)/([A-Za-z0-9\-.]{1,64})"`)

// TestConditionalReferencesInExamples checks the conditional references
// read from JSON in place (conditionalReferencesIn), which plan a large
// transaction without parsing it, against those the parser finds
// (Resource.References) in every official R4 example the codec accepts,
// with each literal reference "Type/id" made conditional
// ("Type?_id=id"): the two readers must agree wherever a reference sits.
func TestConditionalReferencesInExamples(t *testing.T) {
	t.Parallel()
	codec, err := fhir.NewCodec()
	if err != nil {
		t.Fatal(err)
	}
	files := fhirtest.ExampleFiles(t, "")
	var mu sync.Mutex
	checked, refs := 0, 0
	forEach(len(files), func(i int) {
		f := files[i]
		raw, err := os.ReadFile(f)
		if err != nil {
			t.Error(err)
			return
		}
		raw = literalRef.ReplaceAll(raw, []byte(`"reference"$1:$2"$3?_id=$4"`))
		res, err := codec.Parse(raw)
		if err != nil {
			return // the codec's own refusals are pinned elsewhere (RunExamples)
		}
		var want []string
		for _, ref := range res.References() {
			if isConditionalReference(ref) {
				want = append(want, ref)
			}
		}
		got, sure := conditionalReferencesIn(raw)
		if !sure {
			t.Errorf("%s: in doubt", f)
			return
		}
		slices.Sort(want)
		slices.Sort(got)
		if !slices.Equal(got, want) {
			t.Errorf("%s: read in place %q, parsed %q", f, got, want)
		}
		if id, ok := topLevelID(raw); !ok || id != res.ID() {
			t.Errorf("%s: id read in place %q (%v), parsed %q", f, id, ok, res.ID())
		}
		mu.Lock()
		checked++
		refs += len(want)
		mu.Unlock()
	})
	if checked < 2000 || refs < 1000 {
		t.Errorf("checked %d examples with %d conditional references; the examples are not what they were", checked, refs)
	}
	t.Logf("%d examples, %d conditional references", checked, refs)
}
