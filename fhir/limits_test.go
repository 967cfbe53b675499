package fhir_test

import (
	"errors"
	"net/http"
	"strings"
	"testing"

	"github.com/fmtbank/cmts/fhir"
	"github.com/fmtbank/cmts/fhir/jsonscan"
	"github.com/google/go-cmp/cmp"
)

// nums is n comma-separated numbers: n array entries of one value each.
func nums(n int) string { return strings.TrimSuffix(strings.Repeat("1,", n), ",") }

// nest is v inside n arrays.
func nest(n int, v string) string { return strings.Repeat("[", n) + v + strings.Repeat("]", n) }

// refusal is what a Scan refusal should say.
type refusal struct {
	Status int
	Code   fhir.IssueType
	Expr   []string
	// Diag is the diagnostics (the limit, for a limit).
	Diag string
}

func refusalOf(err error) *refusal {
	if err == nil {
		return nil
	}
	var fe *fhir.Error
	if !errors.As(err, &fe) {
		return &refusal{Diag: "not a *fhir.Error: " + err.Error()}
	}
	r := &refusal{Status: fe.Status, Code: fe.Issues[0].Code, Expr: fe.Issues[0].Expression}
	if fe.Status == http.StatusRequestEntityTooLarge {
		r.Diag = fe.Issues[0].Diagnostics
	}
	return r
}

func TestLimitsScan(t *testing.T) {
	t.Parallel()
	small := fhir.Limits{Depth: 4, Array: 3, Elements: 10}
	tooDeep := func(expr string) *refusal {
		return &refusal{Status: 413, Code: fhir.IssueTooLong, Expr: []string{expr}, Diag: "limit max-depth = 4"}
	}
	tooLong := func(expr string) *refusal {
		return &refusal{Status: 413, Code: fhir.IssueTooLong, Expr: []string{expr}, Diag: "limit max-array = 3"}
	}
	tooMany := func(expr ...string) *refusal {
		return &refusal{Status: 413, Code: fhir.IssueTooLong, Expr: expr, Diag: "limit max-elements = 10"}
	}
	dup := func(expr string) *refusal {
		return &refusal{Status: 400, Code: fhir.IssueStructure, Expr: []string{expr}}
	}
	dom2 := func(expr string) *refusal {
		return &refusal{Status: 400, Code: fhir.IssueInvariant, Expr: []string{expr}}
	}
	var keys20 []string
	for _, k := range strings.Split("abcdefghijklmnopqrst", "") {
		keys20 = append(keys20, `"`+k+`":1`)
	}
	for _, tc := range []struct {
		name   string
		limits fhir.Limits
		body   string
		want   *refusal
	}{
		// depth: the resource object is level 1
		{"depth at the limit", small, `{"resourceType":"Patient","x":` + nest(3, "1") + `}`, nil},
		{"depth over the limit", small, `{"resourceType":"Patient","x":` + nest(4, "1") + `}`, tooDeep("Patient.x[0][0][0]")},
		{"depth over in an object", small, `{"resourceType":"Patient","x":[{"y":{"z":{}}}]}`, tooDeep("Patient.x[0].y.z")},
		{"depth, default 64", fhir.Limits{}, `{"x":` + nest(63, "1") + `}`, nil},
		{"depth, default 64, over", fhir.Limits{}, `{"x":` + nest(64, "1") + `}`, &refusal{Status: 413, Code: fhir.IssueTooLong,
			Expr: []string{"x" + strings.Repeat("[0]", 63)}, Diag: "limit max-depth = 64"}},
		// array entries
		{"array at the limit", small, `{"resourceType":"Patient","a":[1,2,3]}`, nil},
		{"array over the limit", small, `{"resourceType":"Patient","a":[1,2,3,4]}`, tooLong("Patient.a")},
		{"nested array over the limit", small, `{"resourceType":"Patient","a":[[1],[1,2,3,4]]}`, tooLong("Patient.a[1]")},
		{"array, default 10,000", fhir.Limits{}, `{"resourceType":"Patient","a":[` + nums(10000) + `]}`, nil},
		{"array, default 10,000, over", fhir.Limits{}, `{"resourceType":"Patient","a":[` + nums(10001) + `]}`,
			&refusal{Status: 413, Code: fhir.IssueTooLong, Expr: []string{"Patient.a"}, Diag: "limit max-array = 10000"}},
		// elements: the root object, "Patient", the array, then its entries
		{"elements at the limit", fhir.Limits{Elements: 10}, `{"resourceType":"Patient","a":[` + nums(7) + `]}`, nil},
		{"elements over the limit", fhir.Limits{Elements: 10}, `{"resourceType":"Patient","a":[` + nums(8) + `]}`, tooMany("Patient")},
		{"elements, default 100,000", fhir.Limits{}, `{"resourceType":"Patient","a":[` + strings.Repeat(`[`+nums(9999)+`],`, 9) + `[` + nums(9996) + `]]}`, nil},
		{"elements, default 100,000, over", fhir.Limits{}, `{"resourceType":"Patient","a":[` + strings.Repeat(`[`+nums(9999)+`],`, 9) + `[` + nums(9997) + `]]}`,
			&refusal{Status: 413, Code: fhir.IssueTooLong, Expr: []string{"Patient"}, Diag: "limit max-elements = 100000"}},
		{"contained resources count towards their container", fhir.Limits{Elements: 10},
			`{"resourceType":"Patient","contained":[{"resourceType":"Patient","a":[1,2,3,4]}]}`, nil},
		{"contained resources count towards their container, over", fhir.Limits{Elements: 10},
			`{"resourceType":"Patient","contained":[{"resourceType":"Patient","a":[1,2,3,4,5]}]}`, tooMany("Patient")},
		// a Bundle: each entry's resource has its own budget
		{"bundle entries each at the limit", fhir.Limits{Elements: 10},
			`{"resourceType":"Bundle","entry":[{"resource":{"resourceType":"Patient","a":[` + nums(7) + `]}},{"resource":{"resourceType":"Patient","a":[` + nums(7) + `]}}]}`, nil},
		{"bundle entry over the limit", fhir.Limits{Elements: 10},
			`{"resourceType":"Bundle","entry":[{"resource":{"resourceType":"Patient","a":[` + nums(7) + `]}},{"resource":{"resourceType":"Patient","a":[` + nums(8) + `]}}]}`,
			tooMany("Bundle.entry[1].resource")},
		{"bundle response outcome has its own budget", fhir.Limits{Elements: 10},
			`{"resourceType":"Bundle","entry":[{"response":{"outcome":{"resourceType":"OperationOutcome","a":[` + nums(7) + `]}}}]}`, nil},
		{"parameters part resource has its own budget", fhir.Limits{Elements: 10},
			`{"resourceType":"Parameters","parameter":[{"part":[{"resource":{"resourceType":"Patient","a":[` + nums(7) + `]}}]}]}`, nil},
		{"bundle whose resourceType comes last is one budget", fhir.Limits{Elements: 10},
			`{"entry":[{"resource":{"resourceType":"Patient","a":[` + nums(7) + `]}}],"resourceType":"Bundle"}`, tooMany()},
		{"entry.resource outside a Bundle is not a budget", fhir.Limits{Elements: 10},
			`{"resourceType":"List","entry":[{"resource":{"resourceType":"Patient","a":[` + nums(7) + `]}}]}`, tooMany("List")},
		{"bundle entries over the array limit", small,
			`{"resourceType":"Bundle","entry":[{},{},{},{}]}`, tooLong("Bundle.entry")},
		// duplicate keys
		{"duplicate resourceType", fhir.Limits{}, `{"resourceType":"Observation","resourceType":"Patient"}`, dup("Observation.resourceType")},
		{"duplicate nested key", fhir.Limits{}, `{"resourceType":"Patient","name":[{"family":"a"},{"family":"b","family":"c"}]}`, dup("Patient.name[1].family")},
		{"duplicate key in a large object", fhir.Limits{}, `{"resourceType":"Patient",` + strings.Join(keys20, ",") + `,"c":2}`, dup("Patient.c")},
		{"same key in sibling objects", fhir.Limits{}, `{"resourceType":"Patient","name":[{"family":"a"},{"family":"b"}],"x":{"family":1}}`, nil},
		{"primitive and its extension", fhir.Limits{}, `{"resourceType":"Patient","birthDate":"1970","_birthDate":{"id":"x"}}`, nil},
		{"large objects, distinct keys", fhir.Limits{}, `{"resourceType":"Patient",` + strings.Join(keys20, ",") + `,"x":{` + strings.Join(keys20, ",") + `}}`, nil},
		// dom-2
		{"contained", fhir.Limits{}, `{"resourceType":"Patient","contained":[{"resourceType":"Patient","id":"a"},{"resourceType":"Patient","id":"b"}]}`, nil},
		{"contained in contained", fhir.Limits{}, `{"resourceType":"Patient","contained":[{"resourceType":"Patient","id":"a"},{"resourceType":"Patient","contained":[{"resourceType":"Patient"}]}]}`,
			dom2("Patient.contained[1].contained")},
		{"contained deeper inside contained", fhir.Limits{}, `{"resourceType":"Patient","contained":[{"resourceType":"Bundle","entry":[{"resource":{"resourceType":"Patient","contained":[]}}]}]}`,
			dom2("Patient.contained[0].entry[0].resource.contained")},
		{"contained in bundle entries", fhir.Limits{}, `{"resourceType":"Bundle","entry":[{"resource":{"resourceType":"Patient","contained":[{"resourceType":"Patient"}]}}]}`, nil},
		{"3,000 levels of contained", fhir.Limits{}, strings.Repeat(`{"resourceType":"Patient","contained":[`, 3000) + `{}` + strings.Repeat(`]}`, 3000),
			dom2("Patient.contained[0].contained")},
		// not one JSON value
		{"trailing value", fhir.Limits{}, `{"resourceType":"Patient"} {}`, &refusal{Status: 400, Code: fhir.IssueStructure}},
		{"broken JSON", fhir.Limits{}, `{"resourceType":"Patient",]`, &refusal{Status: 400, Code: fhir.IssueStructure}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got := refusalOf(tc.limits.Scan([]byte(tc.body)))
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("Scan (-want +got):\n%s", diff)
			}
		})
	}
}

func TestLimitsWithDefaults(t *testing.T) {
	t.Parallel()
	want := fhir.Limits{Depth: 64, Array: 10000, Elements: 100000, PatchOps: 100}
	if diff := cmp.Diff(want, fhir.Limits{}.WithDefaults()); diff != "" {
		t.Errorf("zero Limits (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(want, fhir.DefaultLimits()); diff != "" {
		t.Errorf("DefaultLimits (-want +got):\n%s", diff)
	}
	set := fhir.Limits{Depth: 5, Array: 6, Elements: 7, PatchOps: 8}
	if diff := cmp.Diff(set, set.WithDefaults()); diff != "" {
		t.Errorf("set Limits (-want +got):\n%s", diff)
	}
}

// TestLimitsMessages checks a refusal speaks both languages and names the
// limit and its value in each.
func TestLimitsMessages(t *testing.T) {
	t.Parallel()
	err := fhir.Limits{Array: 2}.Scan([]byte(`{"resourceType":"Patient","a":[1,2,3]}`))
	var fe *fhir.Error
	if !errors.As(err, &fe) {
		t.Fatalf("Scan: %v, want a *fhir.Error", err)
	}
	for _, text := range []string{fe.Issues[0].Message.EN, fe.Issues[0].Message.ZH} {
		if !strings.Contains(text, "max-array = 2") {
			t.Errorf("message %q does not name the limit and its value", text)
		}
	}
	if fe.Issues[0].Message.EN == fe.Issues[0].Message.ZH {
		t.Errorf("the Chinese message is the English one: %q", fe.Issues[0].Message.ZH)
	}
}

// TestCodecParseScans checks the codec runs the scan before the R4 parser,
// with the limits it was given.
func TestCodecParseScans(t *testing.T) {
	t.Parallel()
	c, err := fhir.NewCodec()
	if err != nil {
		t.Fatal(err)
	}
	// Without the scan, the R4 parser keeps the last of duplicate keys.
	_, err = c.Parse([]byte(`{"resourceType":"Observation","resourceType":"Patient"}`))
	if diff := cmp.Diff(dupResourceType, refusalOf(err)); diff != "" {
		t.Errorf("duplicate keys (-want +got):\n%s", diff)
	}
	body := []byte(`{"resourceType":"Patient","name":[{"given":["a","b","c"]}]}`)
	if _, err := c.Parse(body); err != nil {
		t.Fatalf("default limits: %v", err)
	}
	strict := c.WithLimits(fhir.Limits{Array: 2})
	if got := strict.Limits(); got.Array != 2 || got.Depth != fhir.DefaultDepth {
		t.Errorf("WithLimits: Limits() = %+v", got)
	}
	want := &refusal{Status: 413, Code: fhir.IssueTooLong, Expr: []string{"Patient.name[0].given"}, Diag: "limit max-array = 2"}
	_, err = strict.Parse(body)
	if diff := cmp.Diff(want, refusalOf(err)); diff != "" {
		t.Errorf("WithLimits (-want +got):\n%s", diff)
	}
	if _, err := c.Parse(body); err != nil {
		t.Errorf("WithLimits changed the original codec: %v", err)
	}
}

var dupResourceType = &refusal{Status: 400, Code: fhir.IssueStructure, Expr: []string{"Observation.resourceType"}}

// observation1KB is a typical resource of about 1 KB.
const observation1KB = `{"resourceType":"Observation","id":"qc-0001","meta":{"profile":["http://fmtbank.org/fhir/StructureDefinition/cmts-product-qc"]},` +
	`"status":"final","category":[{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/observation-category","code":"laboratory","display":"Laboratory"}]}],` +
	`"code":{"coding":[{"system":"http://loinc.org","code":"6463-4","display":"Bacteria identified in Specimen by Culture"}],"text":"Culture"},` +
	`"subject":{"reference":"Patient/donor-0042"},"specimen":{"reference":"Specimen/product-lot-0001"},"effectiveDateTime":"2026-03-04T05:06:07Z",` +
	`"issued":"2026-03-04T09:00:00Z","performer":[{"reference":"Organization/bank-xa","display":"Xi'an microbiota bank"}],` +
	`"valueCodeableConcept":{"coding":[{"system":"http://snomed.info/sct","code":"264868006","display":"No growth"}],"text":"未检出"},` +
	`"interpretation":[{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation","code":"N","display":"Normal"}]}],` +
	`"note":[{"text":"Screened for C. difficile, STEC, EPEC and multidrug-resistant organisms; none detected."}],` +
	`"referenceRange":[{"text":"No growth"}]}`

// BenchmarkScan measures the scan against the R4 parse it guards and the
// syntax check before it: a typical resource, a transaction of 1,000 of them, a 16 MiB attachment (the body
// limit, few values) and a 16 MiB body of small values (refused at the
// element limit, after 100,000 of its 8.4 million values).
func BenchmarkScan(b *testing.B) {
	c, err := fhir.NewCodec()
	if err != nil {
		b.Fatal(err)
	}
	attachment := []byte(`{"resourceType":"Binary","contentType":"application/pdf","data":"` + strings.Repeat("QUJD", 4<<20-32) + `"}`)
	values := []byte(`{"resourceType":"Patient","a":[` + strings.Repeat(`[`+nums(9999)+`],`, 839) + `[1]]}`)
	entry := `{"fullUrl":"urn:uuid:00000000-0000-4000-8000-000000000001","resource":` + observation1KB + `,"request":{"method":"POST","url":"Observation"}}`
	bundle := []byte(`{"resourceType":"Bundle","type":"transaction","entry":[` + strings.TrimSuffix(strings.Repeat(entry+",", 1000), ",") + `]}`)
	for _, bc := range []struct {
		name string
		body []byte
		ok   bool
	}{
		{"1KB", []byte(observation1KB), true},
		{"bundle-1000x1KB", bundle, true},
		{"16MiB-attachment", attachment, true},
		{"16MiB-values", values, false},
	} {
		if err := (fhir.Limits{}).Scan(bc.body); (err == nil) != bc.ok {
			b.Fatalf("%s (%d bytes): Scan: %v", bc.name, len(bc.body), err)
		}
		// Parse checks the syntax with jsonscan.Valid, then scans: the
		// scan's own cost is what the codec adds.
		b.Run("valid/"+bc.name, func(b *testing.B) {
			b.SetBytes(int64(len(bc.body)))
			b.ReportAllocs()
			for b.Loop() {
				_ = jsonscan.Valid(bc.body)
			}
		})
		b.Run("scan/"+bc.name, func(b *testing.B) {
			b.SetBytes(int64(len(bc.body)))
			b.ReportAllocs()
			for b.Loop() {
				_ = fhir.ScanValid(fhir.Limits{}, bc.body)
			}
		})
		if bc.name == "1KB" {
			b.Run("parse/"+bc.name, func(b *testing.B) {
				b.SetBytes(int64(len(bc.body)))
				b.ReportAllocs()
				for b.Loop() {
					if _, err := c.Parse(bc.body); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}
