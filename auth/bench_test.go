package auth_test

import (
	"context"
	"fmt"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/fmtbank/cmts/auth"
	"github.com/fmtbank/cmts/auth/authtest"
	"github.com/fmtbank/cmts/fhir"
	"github.com/fmtbank/cmts/fhir/rest"
	"github.com/fmtbank/cmts/fhir/rest/resttest"
	"github.com/fmtbank/cmts/store/sqlite"
)

// BenchmarkRead compares reads through the REST handler (in process, no
// network) without authentication and with a real provider's JWT access
// token, and reports the median (p50) and p99 time per request:
//
//	go test ./auth -run '^$' -bench Read -benchtime 3000x
//
// The difference of the p50s is what token checking adds to a request that
// reuses its token (as clients do for the token's life); Verify/uncached is
// the first request with a new token (the RSA signature check).
func BenchmarkRead(b *testing.B) {
	op := authtest.Start(b, authtest.Config{Clients: []authtest.Client{{ID: "ehr", Secret: secret, Scopes: systemScopes}}})
	tr, err := auth.ParseTrust([]byte(`{"tenants": [{"id": "hospital-a", "kind": "hospital"}],
	  "issuers": [{"issuer": "` + op.Issuer + `", "audience": "cmts", "tenant": "hospital-a"}]}`))
	if err != nil {
		b.Fatal(err)
	}
	v, err := auth.NewVerifier(tr, auth.Options{})
	if err != nil {
		b.Fatal(err)
	}
	token := op.Token(b, "ehr", secret, systemScopes)
	st, err := sqlite.Open(context.Background(), b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { st.Close() })

	const resources = 100
	for _, bc := range []struct {
		name   string
		authn  fhir.Authenticator
		header string
	}{
		{"insecure-no-auth", auth.Insecure{Tenant: "hospital-a"}, ""},
		{"bearer-jwt", v, "Bearer " + token},
	} {
		h := resttest.Handler(b, st, func(o *rest.Options) { o.Auth = bc.authn })
		do := func(b *testing.B, method, path, body string, want int) {
			req := httptest.NewRequest(method, "/fhir"+path, strings.NewReader(body))
			if body != "" {
				req.Header.Set("Content-Type", "application/fhir+json")
			}
			if bc.header != "" {
				req.Header.Set("Authorization", bc.header)
			}
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			if rec.Code != want {
				b.Fatalf("%s %s: %d %s", method, path, rec.Code, rec.Body)
			}
		}
		b.Run(bc.name, func(b *testing.B) {
			for i := range resources {
				id := fmt.Sprintf("%s-%d", bc.name, i)
				do(b, "PUT", "/Patient/"+id, `{"resourceType":"Patient","id":"`+id+`","gender":"female","birthDate":"1980-05-17"}`, 201)
			}
			times := make([]time.Duration, 0, b.N)
			i := 0
			for b.Loop() {
				start := time.Now()
				do(b, "GET", fmt.Sprintf("/Patient/%s-%d", bc.name, i%resources), "", 200)
				times = append(times, time.Since(start))
				i++
			}
			slices.Sort(times)
			b.ReportMetric(float64(times[len(times)/2].Nanoseconds()), "p50-ns")
			b.ReportMetric(float64(times[len(times)*99/100].Nanoseconds()), "p99-ns")
		})
	}
	uncached, err := auth.NewVerifier(tr, auth.Options{CacheSize: -1})
	if err != nil {
		b.Fatal(err)
	}
	for _, vc := range []struct {
		name string
		v    *auth.Verifier
	}{{"Verify/cached", v}, {"Verify/uncached", uncached}} {
		b.Run(vc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := vc.v.Verify(context.Background(), token); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
