package sqlite

import (
	"context"
	"fmt"
	"runtime"
	"syscall"
	"testing"
	"time"

	"github.com/fmtbank/cmts/fhir"
	"github.com/fmtbank/cmts/fhir/search"
	"github.com/fmtbank/cmts/store"
)

// transactPatient is the ~1 KB recipient record of the REST transaction
// benchmark (resttest.BenchTransaction), so that the store's share of that
// benchmark can be read here alone.
const transactPatient = `{"resourceType":"Patient","id":%q,"identifier":[{"system":"http://fmtbank.org/recipient-code","value":"R-%d"},{"system":"urn:oid:2.16.840.1.113883.2.4.6.3","value":"MRN-%d"}],"active":true,"name":[{"use":"official","text":"王小明","family":"王","given":["小明"]}],"telecom":[{"system":"phone","value":"+86-10-5555-0100","use":"mobile"}],"gender":"male","birthDate":"1980-05-17","address":[{"use":"home","text":"北京市东城区","city":"北京","district":"东城区","country":"CN"}],"maritalStatus":{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/v3-MaritalStatus","code":"M"}]},"communication":[{"language":{"coding":[{"system":"urn:ietf:bcp:47","code":"zh-CN"}]},"preferred":true}]}`

// BenchmarkTransact measures the store's part of a transaction of 1,000
// new ~1 KB Patients (body and index entries made beforehand, as the
// Writer makes them before the store is called), on a store that already
// holds resources=N of them; reported as resources/s:
//
//	go test ./store/sqlite -run '^$' -bench Transact -benchtime 10x
func BenchmarkTransact(b *testing.B) {
	codec, err := fhir.NewCodec()
	if err != nil {
		b.Fatal(err)
	}
	engine, err := search.New()
	if err != nil {
		b.Fatal(err)
	}
	version := func(k int) store.Version {
		res, err := codec.Parse(fmt.Appendf(nil, transactPatient, fmt.Sprintf("p%d", k), k, k))
		if err != nil {
			b.Fatal(err)
		}
		res.SetMeta("1", time.Now())
		body, err := codec.Marshal(res)
		if err != nil {
			b.Fatal(err)
		}
		entries, err := engine.Entries("Patient", body)
		if err != nil {
			b.Fatal(err)
		}
		return store.Version{Tenant: "t1", Type: "Patient", ID: fmt.Sprintf("p%d", k), VersionID: 1,
			LastUpdated: time.Now().UTC(), Resource: body, Index: entries}
	}
	const size = 1000
	for _, existing := range []int{0, 20_000} {
		b.Run(fmt.Sprintf("resources=%d", existing), func(b *testing.B) {
			s, err := Open(context.Background(), b.TempDir())
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			next := 0
			batch := func() []store.Write {
				ws := make([]store.Write, size)
				for i := range ws {
					ws[i] = store.Write{Version: version(next)}
					next++
				}
				return ws
			}
			write := func(ws []store.Write) {
				if err := s.Transact(context.Background(), nil, func([][]*store.Version) ([]store.Write, error) { return ws, nil }); err != nil {
					b.Fatal(err)
				}
			}
			for next < existing {
				write(batch())
			}
			b.ReportMetric(float64(len(version(0).Index)), "entries/resource")
			var spent, cpu time.Duration
			for b.Loop() {
				b.StopTimer()
				ws := batch()
				runtime.GC()
				b.StartTimer()
				start, cpu0 := time.Now(), cpuTime()
				write(ws)
				spent += time.Since(start)
				cpu += cpuTime() - cpu0
			}
			b.ReportMetric(float64(size*b.N)/spent.Seconds(), "resources/s")
			b.ReportMetric(float64(cpu.Microseconds())/float64(size*b.N), "cpu-µs/resource")
		})
	}
}

// cpuTime is the CPU time the process has used, user and system: on a
// shared machine a steadier measure of work than the wall clock.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
