package profiles

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// minTestCasesAgreement is the share of the fhir-test-cases R4 validator
// cases on which this validator agrees with the HL7 Java validator (valid or
// not), below which TestFHIRTestCases fails; it was measured when written.
const minTestCasesAgreement = 0.65

// TestFHIRTestCases runs the R4 cases of the validator manifest of the
// public FHIR/fhir-test-cases repository that need no package, profile or
// supporting file beyond R4, validating each against its base definition,
// and compares valid/invalid with the Java validator's expected outcome.
//
// That repository is not published on npm, so the test cannot install it:
// set CMTS_FHIR_TEST_CASES to a checkout (the folder holding validator/).
func TestFHIRTestCases(t *testing.T) {
	dir := os.Getenv("CMTS_FHIR_TEST_CASES")
	if dir == "" {
		t.Skip("CMTS_FHIR_TEST_CASES is not set (a checkout of github.com/FHIR/fhir-test-cases, which is not on npm)")
	}
	defs := r4Definitions(t)
	v := NewValidator(defs, nil)
	var manifest struct {
		TestCases []map[string]any `json:"test-cases"`
	}
	b, err := os.ReadFile(filepath.Join(dir, "validator", "manifest.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &manifest); err != nil {
		t.Fatal(err)
	}
	total, agree := 0, 0
	var missed, extra []string
	for _, tc := range manifest.TestCases {
		file, _ := tc["file"].(string)
		java, _ := tc["java"].(string)
		if tc["version"] != "4.0" || tc["use-test"] == false || !strings.HasSuffix(file, ".json") || java == "" {
			continue
		}
		needsMore := false
		for _, k := range []string{"packages", "supporting", "profiles", "profile", "logical", "ips", "bundle-param"} {
			if _, ok := tc[k]; ok {
				needsMore = true
			}
		}
		if needsMore {
			continue
		}
		src, err1 := os.ReadFile(filepath.Join(dir, "validator", file))
		want, err2 := os.ReadFile(filepath.Join(dir, "validator", "outcomes", java))
		if err1 != nil || err2 != nil {
			continue
		}
		var outcome struct {
			Issue []struct{ Severity string } `json:"issue"`
		}
		if err := json.Unmarshal(want, &outcome); err != nil {
			continue
		}
		wantErrors := 0
		for _, is := range outcome.Issue {
			if is.Severity == "error" || is.Severity == "fatal" {
				wantErrors++
			}
		}
		total++
		res, err := Decode(src)
		gotErrors := 0
		if err != nil || res["resourceType"] == nil {
			gotErrors = 1 // not JSON, or no resource: invalid
		} else {
			issues, err := v.Validate(context.Background(), res, "")
			if err != nil {
				t.Fatal(err)
			}
			gotErrors = len(errorsOf(issues))
		}
		switch {
		case (gotErrors > 0) == (wantErrors > 0):
			agree++
		case wantErrors > 0:
			missed = append(missed, file)
		default:
			extra = append(extra, file)
		}
	}
	if total == 0 {
		t.Fatal("no test cases found")
	}
	rate := float64(agree) / float64(total)
	t.Logf("agreement with the Java validator: %d of %d R4 cases (%.1f%%); invalid but passed here: %d, valid but refused here: %d",
		agree, total, 100*rate, len(missed), len(extra))
	t.Logf("invalid but passed here: %v", missed)
	t.Logf("valid but refused here: %v", extra)
	if rate < minTestCasesAgreement {
		t.Errorf("agreement %.1f%% is below %.0f%%", 100*rate, 100*minTestCasesAgreement)
	}
}
