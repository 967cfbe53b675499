package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/fmtbank/cmts/profiles/synth"
)

// genConfig is what `cmts gen` is told.
type genConfig struct {
	Config
	Patients int
	Seed     uint64
	Truth    string
	Batch    int
}

func parseGenFlags(args []string, stderr io.Writer) (genConfig, error) {
	fs := flag.NewFlagSet("gen", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, "usage: cmts gen --patients N [--seed S] [--truth FILE] [store flags]\n\nwrites a synthetic WMT registry into an empty store (docs/gen.md)\n\nflags:\n")
		fs.PrintDefaults()
	}
	var c genConfig
	storeFlags(fs, &c.Config)
	fs.IntVar(&c.Patients, "patients", 1000, "number of recipients")
	fs.Uint64Var(&c.Seed, "seed", 1, "seed: the same seed makes the same registry, byte for byte")
	fs.StringVar(&c.Truth, "truth", "", "write the registry's true report figures to this JSON file")
	fs.IntVar(&c.Batch, "batch", 2000, "resource versions per atomic store write")
	if err := parseWithEnv(fs, args); err != nil {
		return c, err
	}
	switch {
	case c.Patients <= 0:
		return c, fmt.Errorf("--patients must be positive, not %d", c.Patients)
	case c.Batch <= 0:
		return c, fmt.Errorf("--batch must be positive, not %d", c.Batch)
	}
	return c, nil
}

// runGen is `cmts gen`: it generates the registry, writes it into the
// store in large atomic batches with the search engine's index entries,
// and writes the truth file.
func runGen(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	c, err := parseGenFlags(args, stderr)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		fmt.Fprintln(stderr, "cmts gen:", err)
		return 2
	}
	began := time.Now()
	reg, err := synth.Generate(synth.Options{Patients: c.Patients, Seed: c.Seed})
	if err != nil {
		fmt.Fprintln(stderr, "cmts gen:", err)
		return 1
	}
	truth := reg.Truth()
	if c.Truth != "" {
		// Written before the store, so a failed write still leaves the
		// figures of what was meant.
		if err := writeTruth(c.Truth, truth); err != nil {
			fmt.Fprintln(stderr, "cmts gen:", err)
			return 1
		}
	}
	st, err := openStore(ctx, c.Config)
	if err != nil {
		fmt.Fprintln(stderr, "cmts gen:", err)
		return 1
	}
	defer st.Close()
	engine, err := guideEngine()
	if err != nil {
		fmt.Fprintln(stderr, "cmts gen:", err)
		return 1
	}
	progress := newGenProgress(stderr, reg.Len())
	err = reg.Write(ctx, synth.WriteOptions{Store: st, Indexer: engine, Batch: c.Batch, Progress: progress.update})
	progress.finish()
	if err != nil {
		fmt.Fprintln(stderr, "cmts gen:", err)
		return 1
	}
	elapsed := time.Since(began)
	fmt.Fprintf(stdout, "generated %d patients (seed %d): %d resources, %d versions in %s (%.0f versions/s); adverse events in %d of %d patients\n",
		c.Patients, c.Seed, sumCounts(truth.Resources), reg.Len(), elapsed.Round(time.Millisecond), rateOf(reg.Len(), elapsed),
		truth.AEReport.Patients.Numerator, truth.AEReport.Patients.Denominator)
	return 0
}

func sumCounts(m map[string]int) int {
	n := 0
	for _, v := range m {
		n += v
	}
	return n
}

func writeTruth(path string, t synth.Truth) error {
	b, err := json.MarshalIndent(t, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}

// genProgress shows the versions written: import's bar on a terminal,
// else a plain line every few seconds.
type genProgress struct {
	w          io.Writer
	bar        *progressBar // nil: plain lines
	total      int
	done       int
	began      time.Time
	printed    time.Time
	plainEvery time.Duration
}

func newGenProgress(w io.Writer, total int) *genProgress {
	p := &genProgress{w: w, total: total, began: time.Now(), printed: time.Now(), plainEvery: 10 * time.Second}
	if isTerminal(w) {
		p.bar = newProgressBar(w)
		p.bar.start(total)
	}
	return p
}

func (p *genProgress) update(done, total int) {
	p.done = done
	if p.bar != nil {
		p.bar.set(done)
		return
	}
	if time.Since(p.printed) >= p.plainEvery {
		p.printed = time.Now()
		rate := rateOf(done, time.Since(p.began))
		fmt.Fprintf(p.w, "gen: %3.0f%%  %d/%d versions  %.0f/s  ETA %s\n", 100*float64(done)/float64(max(total, 1)), done, total, rate, etaOf(float64(total-done), rate))
	}
}

func (p *genProgress) finish() {
	if p.bar != nil {
		p.bar.finish(p.done)
		fmt.Fprintln(p.w)
	}
}
