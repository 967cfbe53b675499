package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/fmtbank/cmts/fhir/search"
	"github.com/fmtbank/cmts/store"
	"github.com/fmtbank/cmts/store/sqlite"
)

// reindexBatch is how many resources one Scan reads.
const reindexBatch = 500

// runReindex is `cmts reindex`: it recomputes the search index entries of
// every current resource with this build's search parameters, in place (no
// new versions), showing a progress bar on stderr.
func runReindex(ctx context.Context, args []string, stderr io.Writer) int {
	fs := flag.NewFlagSet("reindex", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var c Config
	storeFlags(fs, &c)
	if err := parseWithEnv(fs, args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		fmt.Fprintln(stderr, "cmts reindex:", err)
		return 2
	}
	if c.MongoURI == "" && !sqlite.Exists(c.Data) {
		// Reindexing nothing would create an empty store and report success:
		// a mistyped --data deserves an error.
		fmt.Fprintf(stderr, "cmts reindex: no store in %s (give --data the directory the server uses)\n", c.Data)
		return 1
	}
	st, err := openStore(ctx, c)
	if err != nil {
		fmt.Fprintln(stderr, "cmts reindex:", err)
		return 1
	}
	defer st.Close()
	engine, err := guideEngine()
	if err != nil {
		fmt.Fprintln(stderr, "cmts reindex:", err)
		return 1
	}
	res, err := reindex(ctx, st, engine, newProgressBar(stderr))
	if err != nil {
		fmt.Fprintln(stderr, "\ncmts reindex:", err)
		return 1
	}
	fmt.Fprintf(stderr, "\nreindexed %d resources (%d changed meanwhile and kept their writer's entries)\n", res.done, res.skipped)
	return 0
}

type reindexResult struct{ done, skipped int }

// reindex walks every current resource and replaces its entries. A resource
// updated while it runs keeps the entries its writer computed (SetIndex then
// answers ErrConflict), which are as new as ours.
func reindex(ctx context.Context, st store.Store, engine *search.Engine, bar *progressBar) (reindexResult, error) {
	var res reindexResult
	total, err := st.Count(ctx)
	if err != nil {
		return res, err
	}
	bar.start(total)
	var after *store.SearchCursor
	for {
		vs, err := st.Scan(ctx, after, reindexBatch)
		if err != nil {
			return res, err
		}
		if len(vs) == 0 {
			break
		}
		for _, v := range vs {
			entries, err := engine.Entries(v.Type, v.Resource)
			if err != nil {
				return res, fmt.Errorf("%s/%s: %w", v.Type, v.ID, err)
			}
			switch err := st.SetIndex(ctx, v, entries); {
			case errors.Is(err, store.ErrConflict):
				res.skipped++
			case err != nil:
				return res, err
			}
			res.done++
			bar.set(res.done)
		}
		last := vs[len(vs)-1]
		after = &store.SearchCursor{Type: last.Type, ID: last.ID}
	}
	bar.finish(res.done)
	return res, nil
}

// progressBar draws "[#####.....]  50%  5000/10000  1234/s  ETA 4s" on one
// line, redrawn at most ten times a second.
type progressBar struct {
	w     io.Writer
	total int
	began time.Time
	drawn time.Time
}

func newProgressBar(w io.Writer) *progressBar { return &progressBar{w: w} }

func (p *progressBar) start(total int) {
	p.total, p.began = total, time.Now()
	p.draw(0)
}

func (p *progressBar) set(done int) {
	if time.Since(p.drawn) >= 100*time.Millisecond {
		p.draw(done)
	}
}

func (p *progressBar) finish(done int) { p.draw(done) }

func (p *progressBar) draw(done int) {
	frac := 1.0
	if p.total > 0 {
		frac = min(float64(done)/float64(p.total), 1)
	}
	rate := rateOf(done, time.Since(p.began))
	p.render(frac, fmt.Sprintf("%d/%d  %.0f/s  ETA %s", done, p.total, rate, etaOf(float64(max(p.total-done, 0)), rate)))
}

// render draws the bar filled to frac (0 to 1), then text.
func (p *progressBar) render(frac float64, text string) {
	p.drawn = time.Now()
	const width = 30
	filled := int(frac * width)
	fmt.Fprintf(p.w, "\r[%s%s] %3.0f%%  %s ", strings.Repeat("#", filled), strings.Repeat(".", width-filled), frac*100, text)
}

// rateOf is done per second over elapsed (0 before any time has passed).
func rateOf(done int, elapsed time.Duration) float64 {
	if s := elapsed.Seconds(); s > 0 {
		return float64(done) / s
	}
	return 0
}

// etaOf is the time left for remaining units at rate per second ("?" while
// the rate is unknown).
func etaOf(remaining, rate float64) string {
	if rate <= 0 {
		return "?"
	}
	return (time.Duration(remaining/rate) * time.Second).Round(time.Second).String()
}
