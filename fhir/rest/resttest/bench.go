package resttest

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"runtime"
	"runtime/metrics"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

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

// BenchTransaction measures bundles and concurrent writes through the REST
// handler in process (no network), over st:
//   - Transaction1000: a transaction of 1,000 new ~1 KB Patients;
//     resources/s.
//   - Transaction10000: a transaction of 10,000 (the default entry limit),
//     with the peak heap in use while it runs (peak-MiB, garbage not yet
//     collected included) and the peak of what is live (live-MiB, as the
//     collections in between found it), against the body's size.
//   - ConcurrentCreates16: 16 clients creating Patients one by one;
//     creates/s.
//   - ParseOnly: google/fhir/go parsing and validating the same resources
//     alone, the ceiling the others read against; ParseAllCores, the same
//     on every core.
//
// Each also reports the process's CPU time per resource (cpu-µs), which
// on a machine shared with other work says more than the wall clock.
func BenchTransaction(b *testing.B, st store.Store) { BenchTransactionOn(b, Handler(b, st)) }

// BenchTransactionOn is BenchTransaction on the REST API h: requests are
// made for http://127.0.0.1/fhir (authentication off, or h's to supply).
func BenchTransactionOn(b *testing.B, h http.Handler) {
	serve := func(b *testing.B, method, path string, body []byte, want int) {
		req := httptest.NewRequest(method, "http://127.0.0.1/fhir"+path, bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/fhir+json")
		req.Header.Set("Prefer", "return=minimal")
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != want {
			b.Fatalf("%s %s: %d, want %d: %.300s", method, path, rec.Code, want, rec.Body.Bytes())
		}
	}
	var seq atomic.Int64
	// bundleOf builds a transaction of n Patients; cond puts an
	// ifNoneExist on the first, which makes the whole transaction wait on
	// its condition (no streaming).
	bundleOfCond := func(n int, cond bool) []byte {
		var buf bytes.Buffer
		buf.WriteString(`{"resourceType":"Bundle","type":"transaction","entry":[`)
		for i := range n {
			if i > 0 {
				buf.WriteByte(',')
			}
			k := strconv.FormatInt(seq.Add(1), 10)
			fmt.Fprintf(&buf, `{"fullUrl":"urn:uuid:00000000-0000-4000-8000-%012d","resource":`, i)
			fmt.Fprintf(&buf, benchPatient, "t"+k, k, k)
			if cond && i == 0 {
				fmt.Fprintf(&buf, `,"request":{"method":"POST","url":"Patient","ifNoneExist":"identifier=http://fmtbank.org/recipient-code|R-%s"}}`, k)
				continue
			}
			buf.WriteString(`,"request":{"method":"POST","url":"Patient"}}`)
		}
		buf.WriteString(`]}`)
		return buf.Bytes()
	}
	bundleOf := func(n int) []byte { return bundleOfCond(n, false) }
	b.Run("Transaction1000", func(b *testing.B) {
		var cpu time.Duration
		for b.Loop() {
			b.StopTimer()
			body := bundleOf(1000)
			runtime.GC()
			b.StartTimer()
			cpu0 := CPUTime()
			serve(b, "POST", "", body, 200)
			cpu += CPUTime() - cpu0
		}
		b.ReportMetric(float64(1000*b.N)/b.Elapsed().Seconds(), "resources/s")
		b.ReportMetric(float64(cpu.Microseconds())/float64(1000*b.N), "cpu-µs/resource")
	})
	large := func(b *testing.B, cond bool) {
		var cpu time.Duration
		for b.Loop() {
			b.StopTimer()
			body := bundleOfCond(10000, cond)
			runtime.GC()
			var base runtime.MemStats
			runtime.ReadMemStats(&base)
			baseLive := heapLive()
			stop := make(chan struct{})
			peak := make(chan [2]uint64)
			go func() {
				var ms runtime.MemStats
				var max, maxLive uint64
				for {
					runtime.ReadMemStats(&ms)
					max = maxOf(max, ms.HeapInuse)
					maxLive = maxOf(maxLive, heapLive())
					select {
					case <-stop:
						peak <- [2]uint64{max, maxLive}
						return
					case <-time.After(5 * time.Millisecond):
					}
				}
			}()
			b.StartTimer()
			cpu0 := CPUTime()
			serve(b, "POST", "", body, 200)
			cpu += CPUTime() - cpu0
			b.StopTimer()
			close(stop)
			pk := <-peak
			p, live := pk[0], pk[1]
			b.ReportMetric(float64(p-min(p, base.HeapInuse))/float64(1<<20), "peak-MiB")
			b.ReportMetric(float64(live-min(live, baseLive))/float64(1<<20), "live-MiB")
			b.ReportMetric(float64(len(body))/float64(1<<20), "body-MiB")
			b.StartTimer()
		}
		b.ReportMetric(float64(10000*b.N)/b.Elapsed().Seconds(), "resources/s")
		b.ReportMetric(float64(cpu.Microseconds())/float64(10000*b.N), "cpu-µs/resource")
	}
	b.Run("Transaction10000", func(b *testing.B) { large(b, false) })
	// Transaction10000Conditional is Transaction10000 with an ifNoneExist
	// on its first entry: the path every store without SeqStore takes.
	b.Run("Transaction10000Conditional", func(b *testing.B) { large(b, true) })
	b.Run("ConcurrentCreates16", func(b *testing.B) {
		var next atomic.Int64
		n := int64(b.N)
		b.ResetTimer()
		cpu0 := CPUTime()
		var wg sync.WaitGroup
		for range 16 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for next.Add(1) <= n {
					k := strconv.FormatInt(seq.Add(1), 10)
					serve(b, "POST", "/Patient", fmt.Appendf(nil, benchPatient, "x", k, k), 201)
				}
			}()
		}
		wg.Wait()
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "creates/s")
		b.ReportMetric(float64((CPUTime()-cpu0).Microseconds())/float64(b.N), "cpu-µs/create")
	})
	b.Run("ParseOnly", func(b *testing.B) {
		codec, _ := codecAndEngine(b)
		bodies := make([][]byte, 1000)
		for i := range bodies {
			k := strconv.Itoa(i)
			bodies[i] = fmt.Appendf(nil, benchPatient, "p"+k, k, k)
		}
		i := 0
		cpu0 := CPUTime()
		for b.Loop() {
			if _, err := codec.Parse(bodies[i%len(bodies)]); err != nil {
				b.Fatal(err)
			}
			i++
		}
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "resources/s")
		b.ReportMetric(float64((CPUTime()-cpu0).Microseconds())/float64(b.N), "cpu-µs/resource")
	})
	// ParseAllCores is ParseOnly on every core (GOMAXPROCS goroutines):
	// the most resources/s any write path that parses can reach here.
	b.Run("ParseAllCores", func(b *testing.B) {
		codec, _ := codecAndEngine(b)
		bodies := make([][]byte, 1000)
		for i := range bodies {
			k := strconv.Itoa(i)
			bodies[i] = fmt.Appendf(nil, benchPatient, "p"+k, k, k)
		}
		var i atomic.Int64
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if _, err := codec.Parse(bodies[int(i.Add(1))%len(bodies)]); err != nil {
					b.Error(err)
					return
				}
			}
		})
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "resources/s")
	})
}

// heapLive is the heap the last garbage collection found live: what the
// process holds, without the garbage that the collector lets grow to
// about as much again before it runs (which peak-MiB, from HeapInuse,
// includes).
func heapLive() uint64 {
	s := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
	metrics.Read(s)
	return s[0].Value.Uint64()
}

func maxOf(a, b uint64) uint64 {
	if a > b {
		return a
	}
	return b
}
