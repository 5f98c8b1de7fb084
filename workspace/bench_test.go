package workspace

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// rssBytes reads the process's resident set size from /proc.
func rssBytes(b *testing.B) float64 {
	data, err := os.ReadFile("/proc/self/status")
	if err != nil {
		b.Skip("no /proc/self/status")
	}
	for _, line := range strings.Split(string(data), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmRSS:" {
			kb, _ := strconv.ParseFloat(f[1], 64)
			return kb * 1024
		}
	}
	b.Fatal("VmRSS not found")
	return 0
}

// BenchmarkState measures the state layer at 1,000 workspaces: creation time,
// RSS with 200 workspace databases open at once, and cold-open latency of one
// workspace database. Run with -benchtime 1x (make bench-state).
func BenchmarkState(b *testing.B) {
	const total, open = 1000, 200
	ctx := context.Background()
	for b.Loop() {
		dir := b.TempDir()
		s, err := Open(ctx, Options{StateDir: dir, Passphrase: func() ([]byte, error) { return []byte("pw"), nil }, MaxOpenDBs: 16})
		if err != nil {
			b.Fatal(err)
		}
		start := time.Now()
		for i := range total {
			if _, err := s.Create(ctx, fmt.Sprintf("ws%04d", i), nil); err != nil {
				b.Fatal(err)
			}
		}
		createDur := time.Since(start)

		runtime.GC()
		rssIdle := rssBytes(b)
		var releases []func()
		for i := range open {
			_, rel, err := s.DB(ctx, fmt.Sprintf("ws%04d", i))
			if err != nil {
				b.Fatal(err)
			}
			releases = append(releases, rel)
		}
		runtime.GC()
		rssOpen := rssBytes(b)
		for _, r := range releases {
			r()
		}

		// Cold open: the database is closed (not in the LRU) before each try.
		var lat []time.Duration
		for i := range 50 {
			id := fmt.Sprintf("ws%04d", 900+i)
			s.pool.Close(s.stateDBDir(id))
			t0 := time.Now()
			_, rel, err := s.DB(ctx, id)
			if err != nil {
				b.Fatal(err)
			}
			lat = append(lat, time.Since(t0))
			rel()
		}
		slices.Sort(lat)
		if err := s.Close(); err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(createDur.Seconds(), "s/1000-creates")
		b.ReportMetric(float64(createDur.Milliseconds())/total, "ms/create")
		b.ReportMetric(rssIdle/(1<<20), "MiB-RSS-1000-registered")
		b.ReportMetric(rssOpen/(1<<20), "MiB-RSS-200-open")
		b.ReportMetric((rssOpen-rssIdle)/open/(1<<10), "KiB-per-open-DB")
		b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "ms-cold-open-p50")
		b.ReportMetric(float64(lat[len(lat)*9/10].Microseconds())/1000, "ms-cold-open-p90")
	}
}
