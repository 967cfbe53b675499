package fhir_test

import (
	"bytes"
	"os"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fmtbank/cmts/fhir"
	"github.com/fmtbank/cmts/fhir/fhirtest"
)

// TestCanonicalMatchesMarshal holds the stored form written from the
// received JSON (canonical) to the marshaller's bytes on every official R4
// example the codec accepts, given a new id and meta as a write gives
// them, and checks that it declines for few of them.
func TestCanonicalMatchesMarshal(t *testing.T) {
	t.Parallel()
	codec, err := fhir.NewCodec()
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 12, 1, 8, 30, 1, 123000, time.UTC)
	files := fhirtest.ExampleFiles(t, "")
	var mu sync.Mutex
	parsed, declined := 0, map[string]int{}
	work := make(chan string)
	var wg sync.WaitGroup
	for range runtime.GOMAXPROCS(0) {
		wg.Go(func() {
			for f := range work {
				raw, err := os.ReadFile(f)
				if err != nil {
					t.Error(err)
					continue
				}
				mu.Lock()
				parsed++
				mu.Unlock()
				if !canonicalAgrees(t, codec, f, raw, now, func(typ string) {
					mu.Lock()
					declined[typ]++
					mu.Unlock()
				}) {
					mu.Lock()
					parsed--
					mu.Unlock()
				}
			}
		})
	}
	for _, f := range files {
		work <- f
	}
	close(work)
	wg.Wait()
	n := 0
	for _, k := range declined {
		n += k
	}
	t.Logf("%d examples parsed; canonical declined %d: %v", parsed, n, declined)
	if parsed < 2000 {
		t.Errorf("only %d examples parsed", parsed)
	}
	if n*20 > parsed {
		t.Errorf("canonical declined %d of %d", n, parsed)
	}
}

// canonicalAgrees checks one example; it reports false if the codec
// refuses it.
func canonicalAgrees(t *testing.T, codec *fhir.Codec, f string, raw []byte, now time.Time, decline func(string)) bool {
	res, err := codec.Parse(raw)
	if err != nil {
		return false // the codec's refusals are pinned elsewhere (RunExamples)
	}
	res.SetID("new-id")
	res.SetMeta("7", now)
	want, err := codec.Marshalled(res)
	if err != nil {
		t.Errorf("%s: %v", f, err)
		return true
	}
	got, ok := fhir.CanonicalOf(res)
	if !ok {
		decline(res.Type)
	} else if !bytes.Equal(got, want) {
		t.Errorf("%s:\n got %s\nwant %s", f, diffAt(got, want), diffAt(want, got))
	}
	rewriteAgrees(t, codec, f, raw)
	return true
}

// rewriteAgrees checks that RewriteReferences, which tells from the
// received JSON when there is nothing to rewrite, rewrites what the walk
// of the parsed resource alone does, with every reference the example
// holds to be rewritten. (Each is parsed anew: marshalling a resource
// can add to what it holds, a contained resource's "#id" reference.)
func rewriteAgrees(t *testing.T, codec *fhir.Codec, f string, raw []byte) {
	fast, err := codec.Parse(raw)
	if err != nil {
		t.Errorf("%s: %v", f, err)
		return
	}
	to := map[string]string{}
	for _, ref := range fast.References() {
		to[ref] = "Basic/rewritten"
	}
	if len(to) == 0 {
		return
	}
	slow, err := codec.Parse(raw)
	if err != nil {
		t.Errorf("%s: %v", f, err)
		return
	}
	slow.ForgetRaw()
	nf, err := fast.RewriteReferences(to)
	if err != nil {
		t.Errorf("%s: %v", f, err)
		return
	}
	ns, err := slow.RewriteReferences(to)
	if err != nil {
		t.Errorf("%s: %v", f, err)
		return
	}
	if nf != ns {
		t.Errorf("%s: rewrote %d values, the walk alone %d", f, nf, ns)
	}
	if nf == 0 {
		t.Errorf("%s: none of %d references rewritten", f, len(to))
	}
}

// diffAt is a's text around where it first differs from b.
func diffAt(a, b []byte) string {
	i := 0
	for i < len(a) && i < len(b) && a[i] == b[i] {
		i++
	}
	from, to := max(0, i-80), min(len(a), i+80)
	return strings.ReplaceAll(string(a[from:to]), "\n", `\n`)
}

// TestCanonicalEdges holds canonical to the marshaller's bytes on the
// forms of JSON that the official examples lack: where the parser keeps
// less than was written (a time's odd decimals, a zone-less time, -0, an
// exponent), escapes, and elements SetID and SetMeta replace whole.
func TestCanonicalEdges(t *testing.T) {
	codec, err := fhir.NewCodec()
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 12, 1, 8, 30, 1, 0, time.UTC)
	obs := func(members string) string {
		return `{"resourceType":"Observation","status":"final","code":{"text":"x"}` + members + `}`
	}
	for _, tc := range []struct {
		name, body string
		// sure: canonical must not decline (else: whichever it does, the
		// bytes must agree)
		sure bool
	}{
		{name: "plain", body: obs(`,"effectiveDateTime":"2020-01-02T03:04:05+08:00"`), sure: true},
		{name: "millis", body: obs(`,"effectiveDateTime":"2020-01-02T03:04:05.123Z"`), sure: true},
		{name: "micros", body: obs(`,"effectiveDateTime":"2020-01-02T03:04:05.123456-05:00"`), sure: true},
		{name: "one decimal", body: obs(`,"effectiveDateTime":"2020-01-02T03:04:05.5Z"`)},
		{name: "nine decimals", body: obs(`,"effectiveDateTime":"2020-01-02T03:04:05.123456789Z"`)},
		{name: "zone-less", body: obs(`,"effectiveDateTime":"2020-01-02T03:04:05"`)},
		{name: "zone +00:00", body: obs(`,"effectiveDateTime":"2020-01-02T03:04:05+00:00"`)},
		{name: "zone -00:00", body: obs(`,"effectiveDateTime":"2020-01-02T03:04:05-00:00"`)},
		{name: "time odd decimals", body: obs(`,"valueTime":"03:04:05.5"`)},
		{name: "time", body: obs(`,"valueTime":"03:04:05"`), sure: true},
		{name: "negative zero", body: obs(`,"valueInteger":-0`)},
		{name: "exponent", body: obs(`,"valueQuantity":{"value":1e2}`)},
		{name: "decimal trailing zeros", body: obs(`,"valueQuantity":{"value":1.500}`), sure: true},
		{name: "negative decimal", body: obs(`,"valueQuantity":{"value":-0.5}`)},
		{name: "escapes", body: obs(`,"valueString":"a\"b\\c\/d\u00e9\u738b\n\t<&>"`), sure: true},
		{name: "control escape", body: obs(`,"valueString":"a\u0001b"`)},
		{name: "line separator raw", body: obs(`,"valueString":"a` + "\u2028" + `b"`), sure: true},
		{name: "line separator escaped", body: obs(`,"valueString":"a\u2029b"`), sure: true},
		{name: "html", body: obs(`,"text":{"status":"generated","div":"<div xmlns=\"http://www.w3.org/1999/xhtml\"><p>王 &amp; <b>x</b></p></div>"}`), sure: true},
		{name: "white space", body: "{\n  \"resourceType\" : \"Patient\",\n  \"name\" : [ { \"family\" : \"王\" } ]\n}\n", sure: true},
		{name: "primitive extension", body: `{"resourceType":"Patient","name":[{"given":["a",null],"_given":[null,{"extension":[{"url":"http://x","valueString":"y"}]}]}]}`},
		{name: "primitive extension only", body: `{"resourceType":"Patient","birthDate":"1970-01-01","_birthDate":{"extension":[{"url":"http://x","valueString":"y"}]},"_gender":{"extension":[{"url":"http://x","valueString":"z"}]}}`, sure: true},
		{name: "id extension", body: `{"resourceType":"Patient","id":"a","_id":{"extension":[{"url":"http://x","valueString":"y"}]}}`},
		{name: "meta kept", body: `{"resourceType":"Patient","meta":{"versionId":"3","lastUpdated":"2020-01-01T00:00:00Z","profile":["http://x/p"],"tag":[{"code":"t"}]}}`, sure: true},
		{name: "meta version extension", body: `{"resourceType":"Patient","meta":{"versionId":"3","_versionId":{"extension":[{"url":"http://x","valueString":"y"}]}}}`},
		{name: "empty array", body: `{"resourceType":"Patient","name":[]}`},
		{name: "empty object", body: `{"resourceType":"Patient","name":[{}]}`},
		{name: "null member", body: `{"resourceType":"Patient","gender":null}`},
		{name: "contained", body: `{"resourceType":"Patient","contained":[{"resourceType":"Organization","id":"o","name":"x"}],"managingOrganization":{"reference":"#o"}}`, sure: true},
		{name: "references", body: obs(`,"subject":{"reference":"Patient/1/_history/2"},"performer":[{"reference":"http://x.org/fhir/Practitioner/9"},{"reference":"urn:uuid:0d3b4e7a-1111-2222-3333-444455556666"}]`), sure: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res, err := codec.Parse([]byte(tc.body))
			if err != nil {
				if tc.sure {
					t.Fatal(err)
				}
				t.Skipf("the parser refuses it: %v", err)
			}
			res.SetID("new-id")
			res.SetMeta("2", now)
			want, err := codec.Marshalled(res)
			if err != nil {
				t.Fatal(err)
			}
			got, ok := fhir.CanonicalOf(res)
			if !ok {
				if tc.sure {
					t.Fatalf("declined; the marshaller writes %s", want)
				}
				return
			}
			if !bytes.Equal(got, want) {
				t.Errorf("\n got %s\nwant %s", got, want)
			}
		})
	}
}
