package resttest

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"sync/atomic"
	"testing"

	"github.com/fmtbank/cmts/store"
)

// benchPatient is a realistic recipient record (~1 KB).
const benchPatient = `{"resourceType":"Patient","id":%q,"identifier":[{"system":"http://fmtbank.org/recipient-code","value":"R-%s"},{"system":"urn:oid:2.16.840.1.113883.2.4.6.3","value":"MRN-%s"}],"active":true,"name":[{"use":"official","text":"王小明","family":"王","given":["小明"]}],"telecom":[{"system":"phone","value":"+86-10-5555-0100","use":"mobile"}],"gender":"male","birthDate":"1980-05-17","address":[{"use":"home","text":"北京市东城区","city":"北京","district":"东城区","country":"CN"}],"maritalStatus":{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/v3-MaritalStatus","code":"M"}]},"communication":[{"language":{"coding":[{"system":"urn:ietf:bcp:47","code":"zh-CN"}]},"preferred":true}]}`

// benchResources is how many resources Read and Update run over.
const benchResources = 1000

// Bench measures read, update and create through the HTTP layer (a real
// loopback HTTP server and client) over st.
//
// Read and Update run first, over benchResources resources visited in an
// order that mixes old and new ones, so that what they measure does not
// depend on how many resources an earlier phase happened to create (on
// FerretDB a lookup costs in proportion to the documents written before the
// one it finds; see docs/mongodb.md). Update adds a version per operation;
// Create comes last.
func Bench(b *testing.B, st store.Store) {
	c := Serve(b, st)
	post := func(b *testing.B, method, url string, body []byte, want int) {
		req, _ := http.NewRequest(method, url, bytes.NewReader(body))
		if body != nil {
			req.Header.Set("Content-Type", "application/fhir+json")
		}
		resp, err := c.HTTP.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != want {
			b.Fatalf("%s %s: %d, want %d", method, url, resp.StatusCode, want)
		}
	}
	for i := 0; i < benchResources; i++ {
		n := strconv.Itoa(i)
		post(b, "PUT", c.Base+"/Patient/r"+n, fmt.Appendf(nil, benchPatient, "r"+n, n, n), 201)
	}
	// spread is the i-th resource to visit: every one in turn, old and new
	// mixed, however few operations a run makes.
	spread := func(i int) string { return strconv.Itoa(i * 7919 % benchResources) }
	b.Run("Read", func(b *testing.B) {
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			post(b, "GET", c.Base+"/Patient/r"+spread(i), nil, 200)
			i++
		}
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "ops/s")
	})
	b.Run("Update", func(b *testing.B) {
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			n := spread(i)
			post(b, "PUT", c.Base+"/Patient/r"+n, fmt.Appendf(nil, benchPatient, "r"+n, n, n), 200)
			i++
		}
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "ops/s")
	})
	var seq atomic.Int64
	b.Run("Create", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			n := strconv.FormatInt(seq.Add(1), 10)
			post(b, "POST", c.Base+"/Patient", fmt.Appendf(nil, benchPatient, "x", n, n), 201)
		}
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "ops/s")
	})
}
