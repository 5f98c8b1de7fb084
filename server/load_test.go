package server

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strings"
	gosync "sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bulkhead-dev/bulkhead/agent/llmtest"
	"github.com/bulkhead-dev/bulkhead/netguard"
	"github.com/bulkhead-dev/bulkhead/workspace"
)

// BenchmarkAPILoad is the bounded load test of the API (make bench-api):
// 200 concurrent clients for 30 s across 50 workspaces, each client starting
// a run with its workspace's token and following its event stream to the
// end; the loopback model answers at once. It reports completed runs per
// second, p50/p99 of start-to-last-event and the error count, and fails on
// any error. BULKHEAD_LOAD_CLIENTS, _WORKSPACES and _SECONDS override.
func BenchmarkAPILoad(b *testing.B) {
	clients, spaces, secs := envInt("BULKHEAD_LOAD_CLIENTS", 200), envInt("BULKHEAD_LOAD_WORKSPACES", 50), envInt("BULKHEAD_LOAD_SECONDS", 30)
	for b.Loop() {
		f := newFixture(b)
		llm := llmtest.Start(b)
		llm.Handle(func(*llmtest.Request) llmtest.Reply { return llmtest.Text("done") })
		u, _ := url.Parse(llm.URL)
		g, err := netguard.New(netguard.Config{Allow: []string{u.Host}})
		if err != nil {
			b.Fatal(err)
		}
		f.svc.SetAgentOptions(workspace.AgentOptions{
			Guard:   g,
			Environ: []string{"OPENAI_BASE_URL=" + llm.URL + "/v1"},
			Quotas:  workspace.Quotas{MaxConcurrentRuns: clients, RunsPerMinute: 1_000_000},
		})
		b.Cleanup(f.svc.StopRuns)
		ctx := context.Background()
		tokens := make([]string, spaces)
		ids := make([]string, spaces)
		for i := range spaces {
			ids[i] = fmt.Sprintf("load%02d", i)
			cfg := workspace.DefaultConfig()
			cfg.Provider, cfg.Model = "openai", "test-model"
			if _, err := f.svc.Create(ctx, ids[i], &cfg); err != nil {
				b.Fatal(err)
			}
			if err := f.svc.SetCredential(ctx, ids[i], "openai_api_key", []byte(llmtest.Key)); err != nil {
				b.Fatal(err)
			}
			tokens[i] = f.token(b, ids[i])
		}
		hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: clients}}
		var (
			mu    gosync.Mutex
			lat   []time.Duration
			errs  atomic.Int64
			first atomic.Value
		)
		deadline := time.Now().Add(time.Duration(secs) * time.Second)
		var wg gosync.WaitGroup
		start := time.Now()
		for c := range clients {
			wg.Add(1)
			go func() {
				defer wg.Done()
				i := c % spaces
				for time.Now().Before(deadline) {
					t0 := time.Now()
					if err := oneRun(hc, f.ts.URL, ids[i], tokens[i]); err != nil {
						errs.Add(1)
						first.CompareAndSwap(nil, err.Error())
						continue
					}
					d := time.Since(t0)
					mu.Lock()
					lat = append(lat, d)
					mu.Unlock()
				}
			}()
		}
		wg.Wait()
		elapsed := time.Since(start)
		slices.Sort(lat)
		if len(lat) == 0 {
			b.Fatalf("no run completed; first error: %v", first.Load())
		}
		pct := func(p float64) float64 { return float64(lat[int(p*float64(len(lat)-1))].Microseconds()) / 1000 }
		b.ReportMetric(float64(len(lat))/elapsed.Seconds(), "runs/s")
		b.ReportMetric(pct(0.50), "ms-p50")
		b.ReportMetric(pct(0.99), "ms-p99")
		b.ReportMetric(float64(len(lat)), "runs")
		b.ReportMetric(float64(errs.Load()), "errors")
		if n := errs.Load(); n > 0 {
			b.Fatalf("%d errors under load; first: %v", n, first.Load())
		}
	}
}

// oneRun starts a run and reads its event stream to the end.
func oneRun(hc *http.Client, base, ws, token string) error {
	req, _ := http.NewRequest("POST", base+"/v1/workspaces/"+ws+"/runs", strings.NewReader(`{"message":"hello"}`))
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	var run workspace.Run
	err = json.NewDecoder(resp.Body).Decode(&run)
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted || err != nil {
		return fmt.Errorf("start run: %d %v", resp.StatusCode, err)
	}
	req, _ = http.NewRequest("GET", base+"/v1/workspaces/"+ws+"/runs/"+run.ID+"/events", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err = hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		return fmt.Errorf("events: %d", resp.StatusCode)
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	events := 0
	for sc.Scan() {
		if strings.HasPrefix(sc.Text(), "id:") {
			events++
		}
	}
	if err := sc.Err(); err != nil && err != io.EOF {
		return err
	}
	if events == 0 {
		return fmt.Errorf("run %s: no events", run.ID)
	}
	return nil
}

func envInt(name string, def int) int {
	var v int
	if _, err := fmt.Sscan(os.Getenv(name), &v); err != nil || v <= 0 {
		return def
	}
	return v
}
