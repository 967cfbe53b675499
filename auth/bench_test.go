package auth_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/fmtbank/cmts/auth"
	"github.com/fmtbank/cmts/auth/authtest"
	"github.com/fmtbank/cmts/fhir/rest"
	"github.com/fmtbank/cmts/fhir/rest/resttest"
	"github.com/fmtbank/cmts/store/sqlite"
)

// BenchmarkRead compares reads through the REST handler (in process, no
// network) without authentication (--insecure-no-auth) and with a real
// provider's JWT access token, and reports the median (p50) and p99 time per
// request of each, and the difference of the p50s:
//
//	go test ./auth -run '^$' -bench Read -benchtime 3000x
//
// added-p50-ns is what token checking adds to a request that reuses its
// token (as clients do for the token's life); Verify/uncached is the check of
// a token seen for the first time (the RSA signature check).
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
	type side struct {
		name   string
		h      http.Handler
		header string
		times  []time.Duration
	}
	sides := []*side{
		{name: "insecure", h: resttest.Handler(b, st, func(o *rest.Options) { o.Auth = auth.Insecure{Tenant: "hospital-a"} })},
		{name: "bearer", h: resttest.Handler(b, st, func(o *rest.Options) { o.Auth = v }), header: "Bearer " + token},
	}
	do := func(b *testing.B, s *side, method, path, body string, want ...int) {
		// A loopback Host: the server refuses others without a base URL.
		req := httptest.NewRequest(method, "http://127.0.0.1/fhir"+path, strings.NewReader(body))
		if body != "" {
			req.Header.Set("Content-Type", "application/fhir+json")
		}
		if s.header != "" {
			req.Header.Set("Authorization", s.header)
		}
		rec := httptest.NewRecorder()
		h := s.h
		h.ServeHTTP(rec, req)
		if !slices.Contains(want, rec.Code) {
			b.Fatalf("%s %s: %d %s", method, path, rec.Code, rec.Body)
		}
	}
	for i := range resources {
		id := fmt.Sprint("p-", i)
		do(b, sides[0], "PUT", "/Patient/"+id, `{"resourceType":"Patient","id":"`+id+`","gender":"female","birthDate":"1980-05-17"}`, 200, 201)
	}
	// The two servers take turns, request by request, so that both see the
	// same machine load; each side's p50 and p99 are reported.
	b.Run("Read", func(b *testing.B) {
		for _, s := range sides {
			s.times = s.times[:0]
		}
		i := 0
		for b.Loop() {
			for _, s := range sides {
				start := time.Now()
				do(b, s, "GET", fmt.Sprint("/Patient/p-", i%resources), "", 200)
				s.times = append(s.times, time.Since(start))
			}
			i++
		}
		p50 := map[string]time.Duration{}
		for _, s := range sides {
			slices.Sort(s.times)
			p50[s.name] = s.times[len(s.times)/2]
			b.ReportMetric(float64(p50[s.name].Nanoseconds()), s.name+"-p50-ns")
			b.ReportMetric(float64(s.times[len(s.times)*99/100].Nanoseconds()), s.name+"-p99-ns")
		}
		b.ReportMetric(float64((p50["bearer"] - p50["insecure"]).Nanoseconds()), "added-p50-ns")
	})
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
