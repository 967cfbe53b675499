package main

import (
	"flag"
	"io"
	"math"
	"runtime/debug"
	"testing"
)

func TestByteSize(t *testing.T) {
	tests := []struct {
		in   string
		want int64
		ok   bool
		out  string
	}{
		{"0", 0, true, "0"},
		{"1024", 1024, true, "1KiB"},
		{"1000", 1000, true, "1000"},
		{"512MiB", 512 << 20, true, "512MiB"},
		{"4GiB", 4 << 30, true, "4GiB"},
		{"2TiB", 2 << 40, true, "2TiB"},
		{"3KiB", 3 << 10, true, "3KiB"},
		{"100B", 100, true, "100"},
		{"1.5GiB", 0, false, ""},
		{"-1", 0, false, ""},
		{"GiB", 0, false, ""},
		{"4GB", 0, false, ""},
		{"9999999TiB", 0, false, ""},
	}
	for _, tt := range tests {
		var b byteSize
		err := b.Set(tt.in)
		if (err == nil) != tt.ok {
			t.Errorf("Set(%q): error %v, want ok=%v", tt.in, err, tt.ok)
			continue
		}
		if !tt.ok {
			continue
		}
		if int64(b) != tt.want || b.String() != tt.out {
			t.Errorf("Set(%q) = %d (%s), want %d (%s)", tt.in, b, b.String(), tt.want, tt.out)
		}
	}
}

// parseGC parses the GC flags as serve does.
func parseGC(t *testing.T, args ...string) (gcConfig, error) {
	t.Helper()
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	var c gcConfig
	gcFlags(fs, &c)
	if err := parseWithEnv(fs, args); err != nil {
		return c, err
	}
	return c, c.parsed(fs)
}

func TestGCFlags(t *testing.T) {
	tests := []struct {
		name string
		env  map[string]string
		args []string
		ok   bool
		// want: the collector's settings after apply (-2: as before).
		percent int
		limit   int64
	}{
		{name: "defaults", ok: true, percent: defaultGCPercent, limit: defaultMemoryLimit},
		{name: "flags", args: []string{"--gc-percent", "150", "--memory-limit", "256MiB"}, ok: true, percent: 150, limit: 256 << 20},
		{name: "no limit", args: []string{"--memory-limit", "0"}, ok: true, percent: defaultGCPercent, limit: math.MaxInt64},
		{name: "twins", env: map[string]string{"CMTS_GC_PERCENT": "200", "CMTS_MEMORY_LIMIT": "2GiB"}, ok: true, percent: 200, limit: 2 << 30},
		{name: "GOGC beats the default", env: map[string]string{"GOGC": "50"}, ok: true, percent: -2, limit: defaultMemoryLimit},
		{name: "GOMEMLIMIT beats the default", env: map[string]string{"GOMEMLIMIT": "100MiB"}, ok: true, percent: defaultGCPercent, limit: -2},
		{name: "a flag beats GOGC", env: map[string]string{"GOGC": "50"}, args: []string{"--gc-percent", "300"}, ok: true, percent: 300, limit: defaultMemoryLimit},
		{name: "only at the limit", args: []string{"--gc-percent", "-1"}, ok: true, percent: -1, limit: defaultMemoryLimit},
		{name: "never", args: []string{"--gc-percent", "-1", "--memory-limit", "0"}},
		{name: "zero percent", args: []string{"--gc-percent", "0"}},
		{name: "bad percent", args: []string{"--gc-percent", "-5"}},
		{name: "bad limit", args: []string{"--memory-limit", "lots"}},
		{name: "bad twin", env: map[string]string{"CMTS_MEMORY_LIMIT": "1 GB"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			c, err := parseGC(t, tt.args...)
			if (err == nil) != tt.ok {
				t.Fatalf("error %v, want ok=%v", err, tt.ok)
			}
			if !tt.ok {
				return
			}
			// Known settings before, so that "as before" can be told.
			before := debug.SetGCPercent(77)
			beforeLimit := debug.SetMemoryLimit(123 << 20)
			restore := c.apply()
			percent := debug.SetGCPercent(-1)
			debug.SetGCPercent(percent)
			limit := debug.SetMemoryLimit(-1)
			restore()
			if got := debug.SetGCPercent(before); got != 77 {
				t.Errorf("restored GC percent %d, want 77", got)
			}
			if got := debug.SetMemoryLimit(beforeLimit); got != 123<<20 {
				t.Errorf("restored memory limit %d, want %d", got, 123<<20)
			}
			wantPercent, wantLimit := tt.percent, tt.limit
			if wantPercent == -2 {
				wantPercent = 77
			}
			if wantLimit == -2 {
				wantLimit = 123 << 20
			}
			if percent != wantPercent || limit != wantLimit {
				t.Errorf("applied GC percent %d, memory limit %d; want %d, %d", percent, limit, wantPercent, wantLimit)
			}
		})
	}
}
