package main

import (
	"flag"
	"fmt"
	"math"
	"os"
	"runtime/debug"
	"strconv"
	"strings"
)

// gcConfig is how Go's garbage collector trades memory for CPU in the
// commands that write much (serve, import): --gc-percent and
// --memory-limit, the GOGC and GOMEMLIMIT of the runtime.
//
// Writing a resource makes about 75 KB of garbage (half of it
// google/fhir/go's parse), so that at Go's default (GOGC=100) collecting it cost a fifth of the CPU of
// a large transaction. The defaults let the heap grow to five times what
// is live before a collection (GOGC=400), and bound that growth with a
// soft limit, past which the collector works harder instead.
type gcConfig struct {
	Percent int
	Limit   byteSize
	// given names the flags set on the command line or by their twins
	// (parsed).
	given map[string]bool
}

// The defaults of gcConfig (docs/serve.md, "Memory").
const (
	defaultGCPercent   = 400
	defaultMemoryLimit = 1 << 30
)

// defaultGC is gcConfig at its defaults.
func defaultGC() gcConfig {
	return gcConfig{Percent: defaultGCPercent, Limit: defaultMemoryLimit}
}

// gcFlags declares --gc-percent and --memory-limit on fs.
func gcFlags(fs *flag.FlagSet, c *gcConfig) {
	*c = defaultGC()
	fs.IntVar(&c.Percent, "gc-percent", c.Percent, "heap growth, in percent of the live heap, before the garbage collector runs (Go's GOGC; -1: only at --memory-limit)")
	fs.Var(&c.Limit, "memory-limit", "soft limit of the Go heap, past which the collector runs more often (Go's GOMEMLIMIT, e.g. 512MiB, 4GiB; 0: none)")
}

// parsed records which of the flags fs set, and checks them.
func (c *gcConfig) parsed(fs *flag.FlagSet) error {
	c.given = map[string]bool{}
	fs.Visit(func(f *flag.Flag) { c.given[f.Name] = true })
	return c.check()
}

// check refuses values the runtime would take for something else.
func (c gcConfig) check() error {
	if c.Percent < -1 || c.Percent == 0 {
		return fmt.Errorf("--gc-percent must be positive, or -1, not %d", c.Percent)
	}
	if c.Percent == -1 && c.Limit == 0 {
		return fmt.Errorf("--gc-percent -1 needs a --memory-limit")
	}
	return nil
}

// apply sets the collector as c says. A setting left at its default gives
// way to the runtime's own variable (GOGC, GOMEMLIMIT) when that is set, so
// that the usual Go knobs keep working; a flag or its CMTS_* twin wins.
// It returns what restores the settings it found.
func (c gcConfig) apply() (restore func()) {
	given := c.given
	oldPercent, oldLimit := -2, int64(-1)
	if given["gc-percent"] || os.Getenv("GOGC") == "" {
		oldPercent = debug.SetGCPercent(c.Percent)
	}
	if given["memory-limit"] || os.Getenv("GOMEMLIMIT") == "" {
		limit := int64(c.Limit)
		if limit == 0 {
			limit = math.MaxInt64
		}
		oldLimit = debug.SetMemoryLimit(limit)
	}
	return func() {
		if oldPercent != -2 {
			debug.SetGCPercent(oldPercent)
		}
		if oldLimit != -1 {
			debug.SetMemoryLimit(oldLimit)
		}
	}
}

// byteSize is a size in bytes written as GOMEMLIMIT is: a number with an
// optional B, KiB, MiB, GiB or TiB.
type byteSize int64

func (b *byteSize) String() string {
	if b == nil {
		return "0"
	}
	v := int64(*b)
	for _, u := range []struct {
		name string
		size int64
	}{{"TiB", 1 << 40}, {"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}} {
		if v != 0 && v%u.size == 0 {
			return strconv.FormatInt(v/u.size, 10) + u.name
		}
	}
	return strconv.FormatInt(v, 10)
}

func (b *byteSize) Set(s string) error {
	num, unit := s, int64(1)
	for _, u := range []struct {
		name string
		size int64
	}{{"TiB", 1 << 40}, {"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}, {"B", 1}} {
		if n, ok := strings.CutSuffix(s, u.name); ok {
			num, unit = n, u.size
			break
		}
	}
	n, err := strconv.ParseInt(strings.TrimSpace(num), 10, 64)
	if err != nil || n < 0 || n > math.MaxInt64/unit {
		return fmt.Errorf("%q is not a size (a number of bytes, or with KiB, MiB, GiB or TiB)", s)
	}
	*b = byteSize(n * unit)
	return nil
}
