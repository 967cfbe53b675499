package profiles_test

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"testing"

	"github.com/fmtbank/cmts/fhir/rest"
	"github.com/fmtbank/cmts/fhir/rest/resttest"
	"github.com/fmtbank/cmts/profiles"
	"github.com/fmtbank/cmts/store/sqlite"
)

// BenchmarkCreate is the create rate of WMT Procedures and AdverseEvents
// on the embedded store through the REST handler (in process), with and
// without profile validation; the resources they reference are stored, so
// the validator's reference checks read them.
func BenchmarkCreate(b *testing.B) {
	for _, validate := range []bool{false, true} {
		name := "unvalidated"
		if validate {
			name = "validated"
		}
		b.Run(name, func(b *testing.B) {
			st, err := sqlite.Open(context.Background(), b.TempDir())
			if err != nil {
				b.Fatal(err)
			}
			defer st.Close()
			h := resttest.Handler(b, st, func(o *rest.Options) {
				if !validate {
					return
				}
				defs, err := profiles.Embedded()
				if err != nil {
					b.Fatal(err)
				}
				svc, err := profiles.NewService(defs, st, false)
				if err != nil {
					b.Fatal(err)
				}
				o.Validator = svc
			})
			do := func(method, path string, body []byte) int {
				req := httptest.NewRequest(method, "/fhir"+path, bytes.NewReader(body))
				req.Header.Set("Content-Type", "application/fhir+json")
				w := httptest.NewRecorder()
				h.ServeHTTP(w, req)
				return w.Code
			}
			for _, f := range []string{"Patient-recipient-r0001.json", "Specimen-product-l1.json", "Condition-indication-1.json", "Procedure-procedure-1.json"} {
				ex := readFile(b, f)
				if code := do(http.MethodPost, "/"+typeOf(f), ex); code != http.StatusCreated {
					b.Fatalf("%s: %d", f, code)
				}
			}
			// The AdverseEvent's suspect is the stored procedure-1 only if it
			// keeps its id, so store it under its id too.
			do(http.MethodPut, "/Procedure/procedure-1", readFile(b, "Procedure-procedure-1.json"))
			proc, ae := readFile(b, "Procedure-procedure-1.json"), readFile(b, "AdverseEvent-ae-1.json")
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; b.Loop(); i++ {
				body, path := proc, "/Procedure"
				if i%2 == 1 {
					body, path = ae, "/AdverseEvent"
				}
				if code := do(http.MethodPost, path, body); code != http.StatusCreated {
					b.Fatalf("POST %s: %d", path, code)
				}
			}
		})
	}
}

func readFile(b *testing.B, name string) []byte {
	b.Helper()
	data, err := os.ReadFile("examples/" + name)
	if err != nil {
		b.Fatal(err)
	}
	return data
}

func typeOf(file string) string {
	for i := range file {
		if file[i] == '-' {
			return file[:i]
		}
	}
	return file
}
