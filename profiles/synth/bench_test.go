package synth_test

import (
	"context"
	"testing"

	"github.com/fmtbank/cmts/profiles/synth"
	"github.com/fmtbank/cmts/store/sqlite"
)

// BenchmarkWrite generates and writes a registry of 1,000 patients into a
// fresh embedded store; versions/s is the figure (cmts gen --patients
// 10000 writes about 165,000 versions, so under two minutes needs about
// 1,400/s).
func BenchmarkWrite(b *testing.B) {
	engine, _ := guide(b, nil)
	versions := 0
	for b.Loop() {
		b.StopTimer()
		st, err := sqlite.Open(context.Background(), b.TempDir())
		if err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		reg, err := synth.Generate(synth.Options{Patients: 1000, Seed: 3})
		if err != nil {
			b.Fatal(err)
		}
		if err := reg.Write(context.Background(), synth.WriteOptions{Store: st, Indexer: engine}); err != nil {
			b.Fatal(err)
		}
		versions += reg.Len()
		b.StopTimer()
		st.Close()
		b.StartTimer()
	}
	b.ReportMetric(float64(versions)/b.Elapsed().Seconds(), "versions/s")
}
