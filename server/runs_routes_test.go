package server

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/bulkhead-dev/bulkhead/agent/llmtest"
	"github.com/bulkhead-dev/bulkhead/internal/testutil"
	"github.com/bulkhead-dev/bulkhead/netguard"
	"github.com/bulkhead-dev/bulkhead/sandbox"
	"github.com/bulkhead-dev/bulkhead/workspace"
)

// The test binary doubles as the sandbox init (exec runs in a real
// sandbox), as the bulkhead binary does.
func TestMain(m *testing.M) {
	sandbox.RunInitIfRequested()
	os.Exit(m.Run())
}

// withModel points alice at the loopback model.
func withModel(t *testing.T, f *fixture, q workspace.Quotas) *llmtest.Server {
	t.Helper()
	llm := llmtest.Start(t)
	u, _ := url.Parse(llm.URL)
	g, err := netguard.New(netguard.Config{Allow: []string{u.Host}})
	if err != nil {
		t.Fatal(err)
	}
	f.svc.SetAgentOptions(workspace.AgentOptions{Guard: g, Environ: []string{"OPENAI_BASE_URL=" + llm.URL + "/v1"}, Quotas: q})
	t.Cleanup(f.svc.StopRuns)
	ctx := context.Background()
	if _, err := f.svc.UpdateConfig(ctx, "alice", func(c *workspace.Config) error {
		c.Provider, c.Model = "openai", "test-model"
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if err := f.svc.SetCredential(ctx, "alice", "openai_api_key", []byte(llmtest.Key)); err != nil {
		t.Fatal(err)
	}
	return llm
}

type sseEvent struct {
	id, kind, data string
}

// readSSE reads events until n are read (0: until the stream ends).
func readSSE(t *testing.T, f *fixture, token, path, lastID string, n int) []sseEvent {
	t.Helper()
	req, _ := http.NewRequest("GET", f.ts.URL+path, nil)
	req.Header.Set("Authorization", "Bearer "+token)
	if lastID != "" {
		req.Header.Set("Last-Event-ID", lastID)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	resp, err := http.DefaultClient.Do(req.WithContext(ctx))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close() // a client that goes away mid-stream
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("GET %s: %d %s", path, resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	return parseSSE(resp.Body, n)
}

// parseSSE reads events from r until n are read (0: until it ends).
func parseSSE(r io.Reader, n int) []sseEvent {
	var out []sseEvent
	var cur sseEvent
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		switch {
		case line == "":
			if cur.kind != "" {
				out = append(out, cur)
				if n > 0 && len(out) == n {
					return out
				}
			}
			cur = sseEvent{}
		case strings.HasPrefix(line, "id: "):
			cur.id = line[4:]
		case strings.HasPrefix(line, "event: "):
			cur.kind = line[7:]
		case strings.HasPrefix(line, "data: "):
			cur.data = line[6:]
		}
	}
	return out
}

// Start a run over HTTP, follow it as SSE, drop the connection, resume with
// Last-Event-ID: every event exactly once, and the run finishes regardless.
func TestRunOverHTTPWithSSEResume(t *testing.T) {
	f := newFixture(t)
	llm := withModel(t, f, workspace.Quotas{})
	text := strings.Repeat("0123456789", 20)
	llm.Push(llmtest.Reply{Blocks: []llmtest.Block{{Text: text}}, Chunk: 5, Delay: 2 * time.Millisecond})
	var run workspace.Run
	if code := f.do(t, f.alice, "POST", "/v1/workspaces/alice/runs", `{"message":"count","session":"web"}`, &run); code != 202 || run.ID == "" {
		t.Fatalf("start: %d %+v", code, run)
	}
	path := "/v1/workspaces/alice/runs/" + run.ID + "/events"
	first := readSSE(t, f, f.alice, path, "", 4)
	rest := readSSE(t, f, f.alice, path, first[len(first)-1].id, 0)
	all := append(first, rest...)
	var got strings.Builder
	for i, e := range all {
		if e.id != strconv.Itoa(i+1) {
			t.Fatalf("event %d has id %q", i, e.id)
		}
		var ev workspace.RunEvent
		if err := json.Unmarshal([]byte(e.data), &ev); err != nil || string(ev.Kind) != e.kind {
			t.Fatalf("event %d: %q %v", i, e.data, err)
		}
		got.WriteString(ev.Text)
	}
	if last := all[len(all)-1]; last.kind != "run_end" || !strings.Contains(got.String(), text) {
		t.Fatalf("stream ended with %q, text %q", last.kind, got.String())
	}
	var done workspace.Run
	if code := f.do(t, f.alice, "GET", "/v1/workspaces/alice/runs/"+run.ID, "", &done); code != 200 || done.Status != workspace.RunSucceeded {
		t.Fatalf("get run: %d %+v", code, done)
	}
	var list []workspace.Run
	if code := f.do(t, f.alice, "GET", "/v1/workspaces/alice/runs?limit=5", "", &list); code != 200 || len(list) != 1 {
		t.Fatalf("list: %d %v", code, list)
	}
	var sess workspace.Session
	if code := f.do(t, f.alice, "GET", "/v1/workspaces/alice/sessions/web", "", &sess); code != 200 || len(sess.Transcript) != 2 {
		t.Fatalf("session: %d %+v", code, sess)
	}
	// Bob cannot see alice's run even with its id.
	if code, _ := f.raw(t, f.bob, "GET", "/v1/workspaces/alice/runs/"+run.ID, ""); code != 404 {
		t.Fatalf("bob read alice's run: %d", code)
	}
	if code, _ := f.raw(t, f.bob, "GET", "/v1/workspaces/bob/runs/"+run.ID, ""); code != 404 {
		t.Fatalf("alice's run under bob: %d", code)
	}
	if code := f.do(t, f.alice, "DELETE", "/v1/workspaces/alice/sessions/web", "", nil); code != 204 {
		t.Fatalf("delete session: %d", code)
	}
	if f.srv.metrics.Runs.Value("alice", "succeeded") != 1 {
		t.Fatal("run not counted in the metrics")
	}
}

func TestRunQuotaAndBadRequests(t *testing.T) {
	f := newFixture(t)
	llm := withModel(t, f, workspace.Quotas{MaxConcurrentRuns: 1})
	hold := make(chan struct{})
	llm.Push(llmtest.Reply{Blocks: []llmtest.Block{{Text: "slow"}}, Hold: hold})
	var run workspace.Run
	if code := f.do(t, f.alice, "POST", "/v1/workspaces/alice/runs", `{"message":"one"}`, &run); code != 202 {
		t.Fatalf("start: %d", code)
	}
	req, _ := http.NewRequest("POST", f.ts.URL+"/v1/workspaces/alice/runs", strings.NewReader(`{"message":"two"}`))
	req.Header.Set("Authorization", "Bearer "+f.alice)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 429 || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("over quota: %d Retry-After %q", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
	if code := f.do(t, f.alice, "POST", "/v1/workspaces/alice/runs/"+run.ID+"/cancel", "", nil); code != 202 {
		t.Fatalf("cancel: %d", code)
	}
	close(hold)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if r, err := f.svc.WaitRun(ctx, "alice", run.ID); err != nil || r.Status != workspace.RunCancelled {
		t.Fatalf("cancelled run: %+v %v", r, err)
	}
	for _, c := range []struct {
		method, path, body string
		want               int
	}{
		{"POST", "/v1/workspaces/alice/runs", `{"message":""}`, 400},
		{"POST", "/v1/workspaces/alice/runs", `{"message":"hi","model":"other/model"}`, 400},
		{"POST", "/v1/workspaces/alice/runs", `{"message":"hi","session":"../x"}`, 400},
		{"POST", "/v1/workspaces/alice/runs", `{"message":"hi","provider":"evil"}`, 400},
		{"GET", "/v1/workspaces/alice/runs/nope", "", 400},
		{"GET", "/v1/workspaces/alice/runs/r000000000000000000000000", "", 404},
		{"GET", "/v1/workspaces/alice/runs/r000000000000000000000000/events", "", 404},
		{"POST", "/v1/workspaces/alice/runs/" + run.ID + "/cancel", "", 409},
		{"GET", "/v1/workspaces/alice/sessions/nope", "", 404},
		{"GET", "/v1/workspaces/alice/usage?day=yesterday", "", 400},
		{"PUT", "/v1/workspaces/alice/skills/echoer", "", 403}, // enabling a skill is the operator's
		{"POST", "/v1/workspaces/alice/exec", `{"args":[]}`, 400},
	} {
		if code, b := f.raw(t, f.alice, c.method, c.path, c.body); code != c.want {
			t.Errorf("%s %s %s = %d %s, want %d", c.method, c.path, c.body, code, b, c.want)
		}
	}
	if code, _ := f.raw(t, f.admin, "PUT", "/v1/workspaces/alice/skills/nope", ""); code != 404 {
		t.Errorf("enable unknown skill: %d", code)
	}
}

func TestExecOverHTTP(t *testing.T) {
	testutil.RequireRoot(t)
	testutil.RequireFUSE(t)
	testutil.RequireUserNS(t)
	f := newFixture(t)
	t.Cleanup(func() { f.svc.StopSandbox("alice") })
	var res ExecResponse
	if code := f.do(t, f.alice, "POST", "/v1/workspaces/alice/exec", `{"args":["sh","-c","echo out; echo err >&2; cat; exit 3"],"stdin":"in"}`, &res); code != 200 {
		t.Fatalf("exec: %d", code)
	}
	if res.ExitCode != 3 || res.Stdout != "out\nin" || res.Stderr != "err\n" {
		t.Fatalf("exec result: %+v", res)
	}
	req, _ := http.NewRequest("POST", f.ts.URL+"/v1/workspaces/alice/exec", strings.NewReader(`{"args":["sh","-c","echo a; echo b >&2"]}`))
	req.Header.Set("Authorization", "Bearer "+f.alice)
	req.Header.Set("Accept", "text/event-stream")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	var kinds []string
	for sc.Scan() {
		if k, ok := strings.CutPrefix(sc.Text(), "event: "); ok {
			kinds = append(kinds, k)
		}
	}
	joined := strings.Join(kinds, ",")
	if !strings.Contains(joined, "stdout") || !strings.Contains(joined, "stderr") || kinds[len(kinds)-1] != "exit" {
		t.Fatalf("streamed exec events: %v", kinds)
	}
	// An egress attempt the workspace's config does not allow is refused
	// by its proxy, and the refusal shows in the metrics.
	var eg ExecResponse
	probe := `exec 3<>/dev/tcp/127.0.0.1/3128 && printf 'CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n' >&3 && head -c 12 <&3`
	body, _ := json.Marshal(map[string]any{"args": []string{"bash", "-c", probe}})
	if code := f.do(t, f.alice, "POST", "/v1/workspaces/alice/exec", string(body), &eg); code != 200 || !strings.HasPrefix(eg.Stdout, "HTTP/1.1 403") {
		t.Fatalf("egress probe: %d %+v", code, eg)
	}
	if got := f.srv.metrics.Egress.Value("alice", "denied"); got != 1 {
		t.Fatalf("bulkhead_egress_requests_total{alice,denied} = %v, want 1", got)
	}
}

// Tool calls are counted by workspace and tool once a run ends.
func TestRunToolCallsCounted(t *testing.T) {
	f := newFixture(t)
	llm := withModel(t, f, workspace.Quotas{})
	llm.Push(llmtest.ToolCall("c1", "memory_search", `{"query":"deploy key"}`), llmtest.Text("nothing found"))
	var run workspace.Run
	if code := f.do(t, f.alice, "POST", "/v1/workspaces/alice/runs", `{"message":"search memory"}`, &run); code != 202 {
		t.Fatalf("start: %d", code)
	}
	deadline := time.Now().Add(30 * time.Second)
	for f.srv.metrics.ToolCalls.Value("alice", "memory_search") != 1 {
		if time.Now().After(deadline) {
			t.Fatalf("tool call not counted (runs: %v succeeded)", f.srv.metrics.Runs.Value("alice", "succeeded"))
		}
		time.Sleep(20 * time.Millisecond)
	}
	if v := f.srv.metrics.ToolCalls.Value("bob", "memory_search"); v != 0 {
		t.Fatalf("bob's series counted alice's call: %v", v)
	}
}
