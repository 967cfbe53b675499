package profiles

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/fmtbank/cmts/fhir/fhirtest"
)

var (
	r4Once sync.Once
	r4Defs *Definitions
	r4Err  error
)

// r4Definitions loads every StructureDefinition, CodeSystem and ValueSet of
// hl7.fhir.r4.examples, once per test binary.
func r4Definitions(t testing.TB) *Definitions {
	t.Helper()
	dir := fhirtest.ExamplesDir(t)
	r4Once.Do(func() {
		d := NewDefinitions()
		for _, pat := range []string{"StructureDefinition-*.json", "CodeSystem-*.json", "ValueSet-*.json", "ConceptMap-*.json"} {
			files, err := filepath.Glob(filepath.Join(dir, pat))
			if err != nil {
				r4Err = err
				return
			}
			for _, f := range files {
				b, err := os.ReadFile(f)
				if err != nil {
					r4Err = err
					return
				}
				if err := d.Add(b); err != nil {
					r4Err = fmt.Errorf("%s: %w", filepath.Base(f), err)
					return
				}
			}
		}
		r4Defs = d
	})
	if r4Err != nil {
		t.Fatal(r4Err)
	}
	return r4Defs
}

// trueErrors are the errors the validator finds in the official examples
// that are errors in the examples, not in the validator: file -> location
// -> why.
var trueErrors = map[string]map[string]string{
	"DeviceMetric-example.json":                    {"DeviceMetric.parent.reference": "parent may reference a Device only, not a DeviceDefinition"},
	"DeviceUseStatement-example.json":              {"DeviceUseStatement.reasonReference[0].reference": "reasonReference does not allow Procedure"},
	"MedicationRequest-medrx0301.json":             {"MedicationRequest.dispenseRequest.performer.reference": "dispenseRequest.performer may reference an Organization only"},
	"Observation-clinical-gender.json":             {"Observation.performer[0].reference": "performer does not allow Encounter"},
	"ImplementationGuide-fhir.json":                {"ImplementationGuide.name": "a publication stub without name", "ImplementationGuide.status": "a publication stub without status"},
	"ig-r4.json":                                   {"ImplementationGuide.name": "the publisher's configuration, not a complete resource", "ImplementationGuide.status": "the publisher's configuration, not a complete resource"},
	"StructureDefinition-Definition.json":          {"StructureDefinition": "sdf-4: a logical model neither abstract nor with a baseDefinition"},
	"StructureDefinition-Event.json":               {"StructureDefinition": "sdf-4: a logical model neither abstract nor with a baseDefinition"},
	"StructureDefinition-FiveWs.json":              {"StructureDefinition": "sdf-4: a logical model neither abstract nor with a baseDefinition"},
	"StructureDefinition-Request.json":             {"StructureDefinition": "sdf-4: a logical model neither abstract nor with a baseDefinition"},
	"Measure-measure-exclusive-breastfeeding.json": {"Measure.group[0].population[2].code": "code denominator-exclusions; the measure-population code is denominator-exclusion"},
	"Measure-measure-predecessor-example.json":     {"Measure.group[0].population[2].code": "code denominator-exclusions; the measure-population code is denominator-exclusion"},
	"Bundle-dataelements.json":                     {"Bundle": "bdl-7: several entries share a fullUrl (e.g. .../de-Quantity.value)"},
	"SearchParameter-questionnaireresponse-extensions-QuestionnaireResponse-item-subject.json": {"SearchParameter.id": "an id of 67 characters; ids have at most 64"},
}

func init() {
	// Every display item of this questionnaire lacks the required linkId.
	for _, loc := range qs1Items {
		add("Questionnaire-qs1.json", loc+".linkId", "a display item without the required linkId")
	}
	for _, kind := range []string{"author", "effective", "end", "keyword", "workflow"} {
		for _, typ := range []string{"CodeSystem", "ValueSet"} {
			add("SearchParameter-"+strings.ToLower(typ)+"-extensions-"+typ+"-"+kind+".json", "SearchParameter.base",
				"an extension search parameter without the required base")
		}
	}
}

func add(file, loc, why string) {
	if trueErrors[file] == nil {
		trueErrors[file] = map[string]string{}
	}
	trueErrors[file][loc] = why
}

// TestOfficialExamples validates every resource of hl7.fhir.r4.examples
// against the base definition of its type: no errors but the true ones
// listed in trueErrors.
func TestOfficialExamples(t *testing.T) {
	t.Parallel()
	defs := r4Definitions(t)
	v := NewValidator(defs, nil)
	files := fhirtest.ExampleFiles(t, "")
	if len(files) < 5000 {
		t.Fatalf("only %d example files", len(files))
	}
	counts := map[string]int{}
	n := 0
	for _, f := range files {
		name := filepath.Base(f)
		if strings.HasPrefix(name, ".") || name == "package.json" {
			continue
		}
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		res, err := Decode(b)
		if err != nil || res["resourceType"] == nil {
			continue
		}
		n++
		issues, err := v.Validate(context.Background(), res, "")
		if err != nil {
			t.Fatal(err)
		}
		for _, is := range errorsOf(issues) {
			loc := strings.Join(is.Expression, ",")
			if _, ok := trueErrors[name][loc]; ok {
				continue
			}
			counts[is.Message.EN]++
			t.Errorf("%s: %s: %s", name, loc, is.Message.EN)
		}
	}
	t.Logf("validated %d resources", n)
	var keys []string
	for k := range counts {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		t.Logf("%5d %s", counts[k], k)
	}
}
