package agent

import (
	"context"
	"encoding/json"
	"runtime"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/bulkhead-dev/bulkhead/agent/llmtest"
)

// The peer's figures for one run against an instant mock model, as given in
// issue 7 (the peer is not installed here, so these are the quoted numbers,
// not a measurement in this run).
const (
	peerRunSeconds = 2.4
	peerRunBytes   = 170 << 20
)

func benchRunner(b *testing.B, proto llmtest.Protocol, tool Tool) (*Runner, *llmtest.Server) {
	s := llmtest.Start(b)
	s.Handle(func(r *llmtest.Request) llmtest.Reply {
		// Two turns: a tool call, then the answer once the result is in.
		if len(r.Messages) == 1 {
			return llmtest.Reply{Blocks: []llmtest.Block{{Text: "Checking."}, {ToolName: "echo", ToolInput: `{"text":"hello"}`}}}
		}
		return llmtest.Text("The tool said hello.")
	})
	reg, err := NewRegistry(tool)
	if err != nil {
		b.Fatal(err)
	}
	r, err := NewRunner(RunnerConfig{
		Model:   testChain(b, s, proto, 200_000),
		Tools:   reg,
		System:  BuildSystemPrompt(PromptInput{Base: "You are a benchmark agent.", Files: []BootstrapFile{{Name: "SOUL.md", Content: "Be quick."}}}, PromptConfig{}),
		Journal: NewMemJournal(),
	})
	if err != nil {
		b.Fatal(err)
	}
	return r, s
}

func quantile(d []time.Duration, q float64) time.Duration {
	s := append([]time.Duration(nil), d...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[min(len(s)-1, int(q*float64(len(s))))]
}

// BenchmarkRun is one full run — two model turns with one tool call between
// them — against the loopback server, which runs in the same process (its
// allocations are included, so B/op is an upper bound for the runtime).
func BenchmarkRun(b *testing.B) {
	for _, pc := range protos {
		b.Run(pc.name, func(b *testing.B) {
			r, _ := benchRunner(b, pc.proto, (&echoTool{}).tool())
			ctx := context.Background()
			var lat []time.Duration
			b.ReportAllocs()
			for b.Loop() {
				start := time.Now()
				res, err := r.Run(ctx, RunInput{Message: "echo hello"})
				if err != nil || res.Turns != 2 {
					b.Fatalf("%v %+v", err, res)
				}
				lat = append(lat, time.Since(start))
			}
			p50 := quantile(lat, 0.50)
			b.ReportMetric(float64(p50.Microseconds())/1000, "p50-ms")
			b.ReportMetric(float64(quantile(lat, 0.99).Microseconds())/1000, "p99-ms")
			b.ReportMetric(peerRunSeconds/p50.Seconds(), "x-faster-than-peer-2.4s")
		})
	}
}

// BenchmarkConcurrentRuns holds n runs open at once (each parked inside its
// tool call) and reports the Go heap they hold per run, against the peer's
// ~170 MB per run.
func BenchmarkConcurrentRuns(b *testing.B) {
	const n = 100
	for b.Loop() {
		var parked, release sync.WaitGroup
		parked.Add(n)
		release.Add(1)
		tool := FuncTool{ToolName: "echo", ToolSchema: json.RawMessage(`{"type":"object"}`),
			Fn: func(ctx context.Context, _ json.RawMessage) (string, error) {
				parked.Done()
				release.Wait()
				return "hello", nil
			}}
		r, s := benchRunner(b, llmtest.Anthropic, tool)
		runtime.GC()
		var before, during runtime.MemStats
		runtime.ReadMemStats(&before)
		errs := make(chan error, n)
		start := time.Now()
		for range n {
			go func() {
				_, err := r.Run(context.Background(), RunInput{Message: "echo hello"})
				errs <- err
			}()
		}
		parked.Wait()
		runtime.GC()
		runtime.ReadMemStats(&during)
		release.Done()
		for range n {
			if err := <-errs; err != nil {
				b.Fatal(err)
			}
		}
		elapsed := time.Since(start)
		s.Close()
		perRun := float64(int64(during.HeapInuse)-int64(before.HeapInuse)) / n
		b.ReportMetric(perRun, "heap-B/run")
		b.ReportMetric(float64(peerRunBytes)/perRun, "x-smaller-than-peer-170MB")
		b.ReportMetric(float64(n)/elapsed.Seconds(), "runs/s")
	}
}
