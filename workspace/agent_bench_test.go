package workspace

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"sort"
	"strconv"
	gosync "sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bulkhead-dev/bulkhead/agent/llmtest"
	"github.com/bulkhead-dev/bulkhead/internal/testutil"
	"github.com/bulkhead-dev/bulkhead/sandbox"
)

// The peer's figures for one run against an instant mock model, as quoted in
// issue 7 (the peer is not installed here: these are its published numbers,
// not a measurement in this run).
const (
	peerRunSeconds = 2.4
	peerRunBytes   = 170 << 20
)

const benchCommand = "echo hi > /workspace/out.txt && cat /workspace/out.txt"

// benchModel answers a first turn with a bash tool call and a second with
// the final text, instantly.
func benchModel(b *testing.B) *llmtest.Server {
	llm := llmtest.Start(b)
	llm.Handle(func(r *llmtest.Request) llmtest.Reply {
		if len(r.Messages) == 1 {
			return llmtest.ToolCall("c1", "bash", mustJSON(b, map[string]string{"command": benchCommand}))
		}
		return llmtest.Text("wrote out.txt")
	})
	return llm
}

func durQuantile(d []time.Duration, q float64) time.Duration {
	s := append([]time.Duration(nil), d...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[min(len(s)-1, int(q*float64(len(s))))]
}

// BenchmarkAgentRun: one full run — model turn, a bash tool call through the
// workspace's real sandbox (FUSE view, namespaces, seccomp), model turn,
// everything journaled and recorded — against an instant loopback model.
// Reports p50/p99 with the sandbox warm, the first (cold) run, and host
// memory. Run with make bench-agent.
func BenchmarkAgentRun(b *testing.B) {
	testutil.RequireRoot(b)
	testutil.RequireFUSE(b)
	testutil.RequireUserNS(b)
	ctx := context.Background()
	llm := benchModel(b)
	dir := b.TempDir()
	s := openService(b, dir, "pw")
	defer s.Close()
	defer s.StopRuns()
	opts := llmAgentOptions(b, llm)
	opts.Quotas = Quotas{RunsPerMinute: 1 << 30}
	s.SetAgentOptions(opts)
	createAgentWorkspace(b, s, "bench")
	runOnce := func() time.Duration {
		start := time.Now()
		run, err := s.StartRun(ctx, "bench", RunRequest{Message: "write hi to out.txt"})
		if err != nil {
			b.Fatal(err)
		}
		done, err := s.WaitRun(ctx, "bench", run.ID)
		if err != nil || done.Status != RunSucceeded {
			b.Fatalf("run: %+v %v", done, err)
		}
		return time.Since(start)
	}
	cold := runOnce()
	runtime.GC()
	rss0 := rssBytes(b)
	var lat []time.Duration
	for b.Loop() {
		lat = append(lat, runOnce())
	}
	runtime.GC()
	rss1 := rssBytes(b)
	// The same command straight through the sandbox, for the share of a
	// run that is the tool itself.
	var execLat []time.Duration
	for range max(len(lat), 10) {
		t0 := time.Now()
		if _, err := s.Exec(ctx, "bench", sandbox.Command{Args: []string{"bash", "-c", benchCommand}}); err != nil {
			b.Fatal(err)
		}
		execLat = append(execLat, time.Since(t0))
	}
	execP50 := durQuantile(execLat, 0.5)
	p50, p99 := durQuantile(lat, 0.5), durQuantile(lat, 0.99)
	b.ReportMetric(float64(p50.Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(p99.Microseconds())/1000, "p99-ms")
	b.ReportMetric(float64(cold.Microseconds())/1000, "cold-ms")
	b.ReportMetric(rss1/(1<<20), "host-rss-MiB")
	b.ReportMetric(float64(execP50.Microseconds())/1000, "tool-exec-p50-ms")
	b.Logf("runs=%d p50=%s p99=%s cold(first run, starts sandbox+FUSE)=%s; peer 2.4 s → p50 is %.0fx faster; the bash call alone through the sandbox p50=%s, so the runtime around it (two model calls over HTTP, 5 synced journal entries, records) is ~%s; host RSS %.1f MiB (growth over the runs %+.1f MiB)",
		len(lat), p50.Round(time.Microsecond), p99.Round(time.Microsecond), cold.Round(time.Millisecond),
		peerRunSeconds/p50.Seconds(), execP50.Round(time.Microsecond), (p50 - execP50).Round(time.Microsecond), rss1/(1<<20), (rss1-rss0)/(1<<20))
}

// BenchmarkAgentConcurrent: N runs at once across N workspaces (N from
// BULKHEAD_BENCH_AGENT_N, default 100), each with its own sandbox. Reports
// wall time, throughput, errors, host RSS growth per concurrent run (peak
// during the runs minus the baseline with every workspace created), and the
// sandboxes' own memory (cgroups, outside the host process).
func BenchmarkAgentConcurrent(b *testing.B) {
	testutil.RequireRoot(b)
	testutil.RequireFUSE(b)
	testutil.RequireUserNS(b)
	n := 100
	if v, err := strconv.Atoi(os.Getenv("BULKHEAD_BENCH_AGENT_N")); err == nil && v > 0 {
		n = v
	}
	ctx := context.Background()
	llm := benchModel(b)
	for b.Loop() {
		s := openService(b, b.TempDir(), "pw")
		opts := llmAgentOptions(b, llm)
		opts.Quotas = Quotas{RunsPerMinute: 1 << 30}
		s.SetAgentOptions(opts)
		tCreate := time.Now()
		ids := make([]string, n)
		for i := range ids {
			ids[i] = fmt.Sprintf("w%03d", i)
			createAgentWorkspace(b, s, ids[i])
		}
		b.Logf("created %d workspaces in %s", n, time.Since(tCreate).Round(time.Millisecond))
		round := func(label string) {
			runtime.GC()
			base := rssBytes(b)
			var peak atomic.Int64
			peak.Store(int64(base))
			stop := make(chan struct{})
			sampled := make(chan struct{})
			var sbMem atomic.Uint64
			go func() {
				defer close(sampled)
				t := time.NewTicker(5 * time.Millisecond)
				defer t.Stop()
				for {
					select {
					case <-stop:
						return
					case <-t.C:
						if r := int64(rssBytes(b)); r > peak.Load() {
							peak.Store(r)
						}
					}
				}
			}()
			var errs atomic.Int64
			var wg gosync.WaitGroup
			lat := make([]time.Duration, n)
			start := time.Now()
			for i, id := range ids {
				wg.Add(1)
				go func() {
					defer wg.Done()
					t0 := time.Now()
					run, err := s.StartRun(ctx, id, RunRequest{Message: "write hi to out.txt"})
					if err == nil {
						run, err = s.WaitRun(ctx, id, run.ID)
					}
					if err != nil || run.Status != RunSucceeded {
						errs.Add(1)
						if err == nil {
							b.Logf("run in %s: %s %s", id, run.Status, run.Error)
						} else {
							b.Logf("run in %s: %v", id, err)
						}
					}
					lat[i] = time.Since(t0)
					if sb, err := s.Sandbox(ctx, id); err == nil {
						sbMem.Add(sb.MemoryUsage())
					}
				}()
			}
			wg.Wait()
			wall := time.Since(start)
			close(stop)
			<-sampled
			perRun := (float64(peak.Load()) - base) / float64(n)
			b.ReportMetric(float64(n)/wall.Seconds(), label+"-runs/s")
			b.ReportMetric(float64(errs.Load()), label+"-errors")
			b.ReportMetric(perRun/(1<<20), label+"-host-MiB/run")
			b.ReportMetric(float64(durQuantile(lat, 0.5).Milliseconds()), label+"-p50-ms")
			b.Logf("%s: %d concurrent runs in %d workspaces: wall %s, %.1f runs/s, %d errors, p50 %s p99 %s; host RSS base %.0f MiB peak %.0f MiB → %.2f MiB per concurrent run (peer ~170 MB per run: %.0fx less); sandboxes' own cgroup memory %.1f MiB total, %.2f MiB each",
				label, n, n, wall.Round(time.Millisecond), float64(n)/wall.Seconds(), errs.Load(),
				durQuantile(lat, 0.5).Round(time.Millisecond), durQuantile(lat, 0.99).Round(time.Millisecond),
				base/(1<<20), float64(peak.Load())/(1<<20), perRun/(1<<20), peerRunBytes/perRun,
				float64(sbMem.Load())/(1<<20), float64(sbMem.Load())/float64(n)/(1<<20))
		}
		// Cold: every run starts its workspace's sandbox and FUSE view.
		// Warm: the same again with the sandboxes running.
		round("cold")
		round("warm")
		tClose := time.Now()
		s.StopRuns()
		// Stop the sandboxes in parallel: each unmount of a FUSE view can
		// wait on the others (see the report of make bench-agent).
		var swg gosync.WaitGroup
		for _, id := range ids {
			swg.Add(1)
			go func() { defer swg.Done(); s.StopSandbox(id) }()
		}
		swg.Wait()
		s.Close()
		b.Logf("stopped %d sandboxes and closed in %s", n, time.Since(tClose).Round(time.Millisecond))
	}
}
