package agent

import (
	"context"
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bulkhead-dev/bulkhead/agent/llmtest"
)

func testChain(t testing.TB, s *llmtest.Server, proto llmtest.Protocol, window int) *Chain {
	t.Helper()
	var p Provider
	if proto == llmtest.Anthropic {
		p = NewAnthropic(AnthropicConfig{BaseURL: s.URL, HTTPClient: s.Client()})
	} else {
		p = NewOpenAI(OpenAIConfig{BaseURL: s.URL + "/v1", HTTPClient: s.Client()})
	}
	ch, err := NewChain(ChainConfig{
		Candidates: []Candidate{{Provider: p, Model: "test-model", ContextWindow: window}},
		Keys:       map[string]*KeyPool{p.Name(): NewKeyPool(p.Name(), testKey)},
		Sleep:      func(ctx context.Context, d time.Duration) error { return ctx.Err() },
	})
	if err != nil {
		t.Fatal(err)
	}
	return ch
}

// echoTool records its calls and answers with its "text" argument.
type echoTool struct {
	mu    sync.Mutex
	calls []string
}

func (e *echoTool) tool() Tool {
	return FuncTool{ToolName: "echo", ToolDescription: "echo text",
		ToolSchema: json.RawMessage(`{"type":"object","properties":{"text":{"type":"string"}}}`),
		Fn: func(ctx context.Context, args json.RawMessage) (string, error) {
			var in struct{ Text string }
			if err := json.Unmarshal(args, &in); err != nil {
				return "", err
			}
			e.mu.Lock()
			e.calls = append(e.calls, in.Text)
			e.mu.Unlock()
			return "echo: " + in.Text, nil
		}}
}

func (e *echoTool) Calls() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]string(nil), e.calls...)
}

type runEnv struct {
	srv     *llmtest.Server
	echo    *echoTool
	journal *MemJournal
	runner  *Runner
	events  []Event
	mu      sync.Mutex
}

func newRunEnv(t testing.TB, proto llmtest.Protocol, mut func(*RunnerConfig), extra ...Tool) *runEnv {
	t.Helper()
	e := &runEnv{srv: llmtest.Start(t), echo: &echoTool{}, journal: NewMemJournal()}
	reg, err := NewRegistry(append([]Tool{e.echo.tool()}, extra...)...)
	if err != nil {
		t.Fatal(err)
	}
	cfg := RunnerConfig{Model: testChain(t, e.srv, proto, 0), Tools: reg, System: "You are a test agent.", Journal: e.journal}
	if mut != nil {
		mut(&cfg)
	}
	e.runner, err = NewRunner(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func (e *runEnv) onEvent(ev Event) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.events = append(e.events, ev)
}

func (e *runEnv) run(ctx context.Context, msg string) (*RunResult, error) {
	return e.runner.Run(ctx, RunInput{RunID: "run1", Message: msg, OnEvent: e.onEvent})
}

func (e *runEnv) kinds() string {
	e.mu.Lock()
	defer e.mu.Unlock()
	var k []string
	for _, ev := range e.events {
		if ev.Kind != EventText {
			k = append(k, string(ev.Kind))
		}
	}
	return strings.Join(k, ",")
}

// checkReplay asserts that the journal rebuilds the same transcript.
func (e *runEnv) checkReplay(t *testing.T, res *RunResult) {
	t.Helper()
	entries, err := e.journal.Read(context.Background(), res.RunID, 0)
	if err != nil {
		t.Fatal(err)
	}
	got := Replay(nil, entries)
	if !reflect.DeepEqual(got, res.Transcript) {
		gj, _ := json.Marshal(got)
		wj, _ := json.Marshal(res.Transcript)
		t.Fatalf("replay differs:\n got %s\nwant %s", gj, wj)
	}
}

func TestRunTwoTurnsWithTool(t *testing.T) {
	for _, pc := range protos {
		t.Run(pc.name, func(t *testing.T) {
			t.Parallel()
			e := newRunEnv(t, pc.proto, nil)
			e.srv.Push(
				llmtest.Reply{Blocks: []llmtest.Block{{Text: "Let me echo."}, {ToolID: "t1", ToolName: "echo", ToolInput: `{"text":"hi"}`}}, Chunk: 3, Usage: llmtest.Usage{InputTokens: 100, OutputTokens: 10}},
				llmtest.Reply{Blocks: []llmtest.Block{{Text: "The tool said hi."}}, Usage: llmtest.Usage{InputTokens: 130, OutputTokens: 5}},
			)
			res, err := e.run(context.Background(), "please echo hi")
			if err != nil {
				t.Fatal(err)
			}
			if res.Text != "The tool said hi." || res.Turns != 2 || res.Stop != StopDone || len(res.Transcript) != 4 {
				t.Fatalf("result %+v", res)
			}
			if res.Usage != (Usage{230, 15}) || res.UsageByModel[pc.name+"/test-model"] != (Usage{230, 15}) {
				t.Fatalf("usage %+v %+v", res.Usage, res.UsageByModel)
			}
			if c := e.echo.Calls(); len(c) != 1 || c[0] != "hi" {
				t.Fatalf("tool calls %v", c)
			}
			reqs := e.srv.Requests()
			if len(reqs) != 2 || reqs[0].System != "You are a test agent." || reqs[1].System != "You are a test agent." {
				t.Fatalf("system prompt not sent: %d requests", len(reqs))
			}
			if !strings.Contains(string(reqs[1].Body), "echo: hi") {
				t.Fatalf("tool result not sent: %s", reqs[1].Body)
			}
			if k := e.kinds(); k != "run_start,tool_call,tool_result,turn_end,turn_end,run_end" && k != "run_start,turn_end,tool_call,tool_result,turn_end,run_end" {
				t.Fatalf("events %s", k)
			}
			e.checkReplay(t, res)
		})
	}
}

func TestRunEmptyInput(t *testing.T) {
	e := newRunEnv(t, llmtest.Anthropic, nil)
	if _, err := e.run(context.Background(), "  \n"); !errors.Is(err, ErrEmptyInput) {
		t.Fatalf("%v", err)
	}
	if len(e.srv.Requests()) != 0 {
		t.Fatal("model called for empty input")
	}
}

func TestVetoHookStopsToolCall(t *testing.T) {
	var vetoed []string
	e := newRunEnv(t, llmtest.Anthropic, func(c *RunnerConfig) {
		c.Hooks.BeforeToolCall = func(ctx context.Context, call *ToolCall) error {
			if strings.Contains(string(call.Input), "rm -rf") {
				vetoed = append(vetoed, call.ID)
				return errors.New("destructive command blocked by policy")
			}
			return nil
		}
	})
	e.srv.Push(llmtest.ToolCall("t1", "echo", `{"text":"rm -rf /"}`), llmtest.ToolCall("t2", "echo", `{"text":"fine"}`), llmtest.Text("ok"))
	res, err := e.run(context.Background(), "go")
	if err != nil {
		t.Fatal(err)
	}
	if c := e.echo.Calls(); len(c) != 1 || c[0] != "fine" || len(vetoed) != 1 {
		t.Fatalf("calls %v vetoed %v", c, vetoed)
	}
	r := res.Transcript[2].Parts[0]
	if !r.IsError || !strings.Contains(r.Text, "blocked by policy") {
		t.Fatalf("veto result %+v", r)
	}
}

func TestBeforeToolCallRewrites(t *testing.T) {
	e := newRunEnv(t, llmtest.OpenAI, func(c *RunnerConfig) {
		c.Hooks.BeforeToolCall = func(ctx context.Context, call *ToolCall) error {
			call.Input = json.RawMessage(`{"text":"rewritten"}`)
			return nil
		}
	})
	e.srv.Push(llmtest.ToolCall("t1", "echo", `{"text":"orig"}`), llmtest.Text("ok"))
	if _, err := e.run(context.Background(), "go"); err != nil {
		t.Fatal(err)
	}
	if c := e.echo.Calls(); len(c) != 1 || c[0] != "rewritten" {
		t.Fatalf("calls %v", c)
	}
}

func TestBeforeAgentStartVeto(t *testing.T) {
	var ended atomic.Bool
	e := newRunEnv(t, llmtest.Anthropic, func(c *RunnerConfig) {
		c.Hooks.BeforeAgentStart = func(ctx context.Context, info *RunInfo) error { return errors.New("workspace paused") }
		c.Hooks.AfterAgentEnd = func(context.Context, RunInfo, *RunResult, error) { ended.Store(true) }
	})
	res, err := e.run(context.Background(), "hello")
	if !errors.Is(err, ErrVetoed) || res.Stop != StopVetoed || len(e.srv.Requests()) != 0 || ended.Load() {
		t.Fatalf("%v %+v", err, res)
	}
}

func TestBeforeAgentStartAddsContextAndAfterAgentEnd(t *testing.T) {
	var got *RunResult
	e := newRunEnv(t, llmtest.Anthropic, func(c *RunnerConfig) {
		c.Hooks.BeforeAgentStart = func(ctx context.Context, info *RunInfo) error {
			info.System += "\nToday is a test."
			return nil
		}
		c.Hooks.AfterAgentEnd = func(_ context.Context, _ RunInfo, res *RunResult, _ error) { got = res }
	})
	e.srv.Push(llmtest.Text("hi"))
	if _, err := e.run(context.Background(), "hello"); err != nil {
		t.Fatal(err)
	}
	if s := e.srv.Requests()[0].System; s != "You are a test agent.\nToday is a test." || got == nil || got.Text != "hi" {
		t.Fatalf("system %q after-hook %+v", s, got)
	}
}

func TestMalformedAndUnknownToolCalls(t *testing.T) {
	for _, pc := range protos {
		t.Run(pc.name, func(t *testing.T) {
			t.Parallel()
			e := newRunEnv(t, pc.proto, nil)
			e.srv.Push(
				llmtest.Reply{Blocks: []llmtest.Block{{ToolID: "a", ToolName: "echo", ToolInput: `{"text": "unterminated`}, {ToolID: "b", ToolName: "nosuch", ToolInput: `{}`}, {ToolID: "c", ToolName: "echo", ToolInput: `["array"]`}}},
				llmtest.Text("sorry"))
			res, err := e.run(context.Background(), "go")
			if err != nil {
				t.Fatal(err)
			}
			if len(e.echo.Calls()) != 0 {
				t.Fatalf("tool ran with bad arguments: %v", e.echo.Calls())
			}
			results := res.Transcript[2].Parts
			if len(results) != 3 || !results[0].IsError || !strings.Contains(results[0].Text, "not a JSON object") ||
				!strings.Contains(results[1].Text, "unknown tool") || !results[2].IsError {
				t.Fatalf("results %+v", results)
			}
			e.checkReplay(t, res)
		})
	}
}

func TestToolTimeout(t *testing.T) {
	release := make(chan struct{})
	t.Cleanup(func() { close(release) })
	hang := FuncTool{ToolName: "hang", ToolSchema: json.RawMessage(`{"type":"object"}`),
		Fn: func(ctx context.Context, _ json.RawMessage) (string, error) {
			<-release // ignores ctx on purpose
			return "late", nil
		}}
	e := newRunEnv(t, llmtest.Anthropic, func(c *RunnerConfig) { c.Limits.ToolTimeout = 50 * time.Millisecond }, hang)
	e.srv.Push(llmtest.ToolCall("t1", "hang", `{}`), llmtest.Text("gave up"))
	start := time.Now()
	res, err := e.run(context.Background(), "go")
	if err != nil {
		t.Fatal(err)
	}
	if r := res.Transcript[2].Parts[0]; !r.IsError || !strings.Contains(r.Text, "timed out") || time.Since(start) > 2*time.Second {
		t.Fatalf("%+v after %v", r, time.Since(start))
	}
}

func TestCancelRunKeepsTranscriptConsistent(t *testing.T) {
	for _, pc := range protos {
		t.Run(pc.name, func(t *testing.T) {
			t.Parallel()
			started := make(chan struct{})
			block := FuncTool{ToolName: "block", ToolSchema: json.RawMessage(`{"type":"object"}`),
				Fn: func(ctx context.Context, _ json.RawMessage) (string, error) {
					close(started)
					<-ctx.Done()
					return "", ctx.Err()
				}}
			e := newRunEnv(t, pc.proto, nil, block)
			e.srv.Push(llmtest.Reply{Blocks: []llmtest.Block{
				{ToolID: "a", ToolName: "echo", ToolInput: `{"text":"one"}`},
				{ToolID: "b", ToolName: "block", ToolInput: `{}`},
				{ToolID: "c", ToolName: "echo", ToolInput: `{"text":"never"}`}}})
			ctx, cancel := context.WithCancel(context.Background())
			go func() { <-started; cancel() }()
			res, err := e.run(ctx, "go")
			if !errors.Is(err, context.Canceled) || res.Stop != StopCanceled {
				t.Fatalf("%v %+v", err, res)
			}
			if c := e.echo.Calls(); len(c) != 1 {
				t.Fatalf("calls after cancel: %v", c)
			}
			last := res.Transcript[len(res.Transcript)-1]
			if len(last.Parts) != 3 || !last.Parts[1].IsError || !last.Parts[2].IsError || last.Parts[0].IsError {
				t.Fatalf("last message %+v", last)
			}
			e.checkReplay(t, res)
			// The transcript is valid for the next run: the server checks
			// that every tool call has its result.
			e.srv.Push(llmtest.Text("resumed"))
			res2, err := e.runner.Run(context.Background(), RunInput{History: res.Transcript, Message: "continue"})
			if err != nil || res2.Text != "resumed" {
				t.Fatalf("follow-up run: %v", err)
			}
		})
	}
}

func TestRunLimits(t *testing.T) {
	t.Run("turns", func(t *testing.T) {
		e := newRunEnv(t, llmtest.Anthropic, func(c *RunnerConfig) { c.Limits.MaxTurns = 3 })
		e.srv.Handle(func(*llmtest.Request) llmtest.Reply { return llmtest.ToolCall("", "echo", `{"text":"again"}`) })
		res, err := e.run(context.Background(), "loop forever")
		var le *LimitError
		if !errors.As(err, &le) || le.Limit != "turns" || res.Stop != StopLimit || len(e.srv.Requests()) != 3 {
			t.Fatalf("%v %d requests", err, len(e.srv.Requests()))
		}
		e.checkReplay(t, res)
	})
	t.Run("tokens", func(t *testing.T) {
		e := newRunEnv(t, llmtest.OpenAI, func(c *RunnerConfig) { c.Limits.MaxTokens = 250 })
		e.srv.Handle(func(*llmtest.Request) llmtest.Reply {
			r := llmtest.ToolCall("", "echo", `{"text":"x"}`)
			r.Usage = llmtest.Usage{InputTokens: 90, OutputTokens: 10}
			return r
		})
		_, err := e.run(context.Background(), "spend")
		var le *LimitError
		if !errors.As(err, &le) || le.Limit != "tokens" || len(e.srv.Requests()) != 3 {
			t.Fatalf("%v %d requests", err, len(e.srv.Requests()))
		}
	})
	t.Run("wall_time", func(t *testing.T) {
		e := newRunEnv(t, llmtest.Anthropic, func(c *RunnerConfig) { c.Limits.MaxWallTime = 150 * time.Millisecond })
		e.srv.Handle(func(*llmtest.Request) llmtest.Reply {
			r := llmtest.ToolCall("", "echo", `{"text":"slow"}`)
			r.Delay = 20 * time.Millisecond
			return r
		})
		start := time.Now()
		res, err := e.run(context.Background(), "slow")
		var le *LimitError
		if !errors.As(err, &le) || le.Limit != "wall_time" || res.Stop != StopLimit || time.Since(start) > 2*time.Second {
			t.Fatalf("%v after %v", err, time.Since(start))
		}
		e.checkReplay(t, res)
	})
}

func TestToolOutputTruncated(t *testing.T) {
	big := FuncTool{ToolName: "big", ToolSchema: json.RawMessage(`{"type":"object"}`),
		Fn: func(context.Context, json.RawMessage) (string, error) {
			return "START" + strings.Repeat("x", 100_000) + "END", nil
		}}
	e := newRunEnv(t, llmtest.Anthropic, func(c *RunnerConfig) { c.Limits.MaxToolOutput = 2000 }, big)
	e.srv.Push(llmtest.ToolCall("t1", "big", `{}`), llmtest.Text("ok"))
	res, err := e.run(context.Background(), "go")
	if err != nil {
		t.Fatal(err)
	}
	out := res.Transcript[2].Parts[0].Text
	if len(out) > 2000 || !strings.HasPrefix(out, "START") || !strings.HasSuffix(out, "END") || !strings.Contains(out, "truncated") {
		t.Fatalf("len %d: %.80q...", len(out), out)
	}
	if len(e.srv.Requests()[1].Body) > 5000 {
		t.Fatalf("request carries %d bytes", len(e.srv.Requests()[1].Body))
	}
}

func TestOldToolResultsPruned(t *testing.T) {
	n := 0
	big := FuncTool{ToolName: "big", ToolSchema: json.RawMessage(`{"type":"object"}`),
		Fn: func(context.Context, json.RawMessage) (string, error) {
			n++
			return "RESULT" + string(rune('A'+n)) + strings.Repeat(".", 5000), nil
		}}
	e := newRunEnv(t, llmtest.OpenAI, func(c *RunnerConfig) {
		c.Compaction.PruneAfterTurns = 2
		c.Compaction.PruneKeepBytes = 300
	}, big)
	for range 4 {
		e.srv.Push(llmtest.ToolCall("", "big", `{}`))
	}
	e.srv.Push(llmtest.Text("done"))
	res, err := e.run(context.Background(), "go")
	if err != nil {
		t.Fatal(err)
	}
	last := string(e.srv.Requests()[4].Body)
	// Results of turns 1 and 2 are trimmed; 3 and 4 are whole.
	if strings.Count(last, strings.Repeat(".", 5000)) != 2 || strings.Count(last, "old tool result truncated") != 2 {
		t.Fatalf("pruning: %d whole, %d trimmed", strings.Count(last, strings.Repeat(".", 5000)), strings.Count(last, "old tool result truncated"))
	}
	// The transcript keeps every result whole.
	for i := 2; i < len(res.Transcript); i += 2 {
		if len(res.Transcript[i].Parts[0].Text) < 5000 {
			t.Fatalf("transcript message %d pruned", i)
		}
	}
}

type recordingFlusher struct{ got [][]Message }

func (f *recordingFlusher) FlushBeforeCompaction(_ context.Context, _ string, msgs []Message) error {
	f.got = append(f.got, append([]Message(nil), msgs...))
	return nil
}

func TestCompactionOnOverflowKeepsRunGoing(t *testing.T) {
	for _, pc := range protos {
		t.Run(pc.name, func(t *testing.T) {
			t.Parallel()
			fl := &recordingFlusher{}
			e := newRunEnv(t, pc.proto, func(c *RunnerConfig) { c.Flusher = fl; c.Compaction.KeepRecent = 2 })
			e.srv.Push(
				llmtest.ToolCall("t1", "echo", `{"text":"step one"}`),
				llmtest.Fail(llmtest.ContextOverflow),
				llmtest.Text("SUMMARY-XYZ: the user asked to echo"),
				llmtest.Text("final answer"),
			)
			res, err := e.run(context.Background(), "ORIGINAL-REQUEST please echo")
			if err != nil {
				t.Fatal(err)
			}
			if res.Text != "final answer" || res.Compactions != 1 {
				t.Fatalf("%+v", res)
			}
			reqs := e.srv.Requests()
			if len(reqs) != 4 {
				t.Fatalf("%d requests", len(reqs))
			}
			if !strings.Contains(reqs[2].System, "compress") || !strings.Contains(string(reqs[2].Body), "ORIGINAL-REQUEST") {
				t.Fatalf("summary request: %s", reqs[2].Body)
			}
			final := string(reqs[3].Body)
			if !strings.Contains(final, "SUMMARY-XYZ") || strings.Contains(final, "ORIGINAL-REQUEST") || !strings.Contains(final, "echo: step one") {
				t.Fatalf("request after compaction: %s", final)
			}
			if len(fl.got) != 1 || fl.got[0][0].Text() != "ORIGINAL-REQUEST please echo" {
				t.Fatalf("memory flush got %+v", fl.got)
			}
			if !strings.Contains(e.kinds(), "compaction") {
				t.Fatalf("no compaction event: %s", e.kinds())
			}
			e.checkReplay(t, res)
		})
	}
}

func TestProactiveCompaction(t *testing.T) {
	chunk := strings.Repeat("z", 12_000)
	big := FuncTool{ToolName: "big", ToolSchema: json.RawMessage(`{"type":"object"}`),
		Fn: func(context.Context, json.RawMessage) (string, error) { return chunk, nil }}
	e := newRunEnv(t, llmtest.Anthropic, func(c *RunnerConfig) {
		c.ContextWindow = 20_000 // tokens; compaction at 16,000 ≈ 64 KB
		c.Compaction.KeepRecent = 2
		c.Compaction.PruneAfterTurns = 100
	}, big)
	var maxBody int
	tools := 0
	var mu sync.Mutex
	e.srv.Handle(func(r *llmtest.Request) llmtest.Reply {
		mu.Lock()
		defer mu.Unlock()
		if strings.Contains(r.System, "compress") {
			return llmtest.Text("summary of work so far")
		}
		maxBody = max(maxBody, len(r.Body))
		if tools < 10 {
			tools++
			return llmtest.ToolCall("", "big", `{}`)
		}
		return llmtest.Text("done")
	})
	res, err := e.run(context.Background(), "fill the context")
	if err != nil {
		t.Fatal(err)
	}
	if res.Compactions == 0 || res.Text != "done" || maxBody > 20_000*4 {
		t.Fatalf("compactions %d text %q largest request %d bytes", res.Compactions, res.Text, maxBody)
	}
	e.checkReplay(t, res)
}

func TestSessionHooksAndHistory(t *testing.T) {
	var started, ended []string
	e := newRunEnv(t, llmtest.Anthropic, func(c *RunnerConfig) {
		c.Hooks.SessionStart = func(_ context.Context, id string) error {
			if id == "forbidden" {
				return errors.New("no")
			}
			started = append(started, id)
			return nil
		}
		c.Hooks.SessionEnd = func(_ context.Context, id string) { ended = append(ended, id) }
	})
	if _, err := e.runner.StartSession(context.Background(), "forbidden", nil); !errors.Is(err, ErrVetoed) {
		t.Fatalf("session veto: %v", err)
	}
	s, err := e.runner.StartSession(context.Background(), "s1", nil)
	if err != nil {
		t.Fatal(err)
	}
	e.srv.Push(llmtest.Text("first"), llmtest.Text("second"))
	if _, err := s.Run(context.Background(), "", "FIRST-MESSAGE", nil); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Run(context.Background(), "", "second message", nil); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(e.srv.Requests()[1].Body), "FIRST-MESSAGE") || len(s.Transcript()) != 4 {
		t.Fatalf("history not carried: %d messages", len(s.Transcript()))
	}
	s.Close(context.Background())
	s.Close(context.Background())
	if _, err := s.Run(context.Background(), "", "after close", nil); err == nil {
		t.Fatal("run on closed session")
	}
	if len(started) != 1 || len(ended) != 1 {
		t.Fatalf("hooks: started %v ended %v", started, ended)
	}
}

func TestRunFailsWhenJournalFails(t *testing.T) {
	e := newRunEnv(t, llmtest.Anthropic, func(c *RunnerConfig) { c.Journal = failingJournal{} })
	e.srv.Push(llmtest.Text("x"))
	if _, err := e.run(context.Background(), "go"); err == nil || !strings.Contains(err.Error(), "journal") {
		t.Fatalf("%v", err)
	}
}

type failingJournal struct{}

func (failingJournal) Append(context.Context, Entry) error { return errors.New("disk full") }
func (failingJournal) Read(context.Context, string, uint64) ([]Entry, error) {
	return nil, nil
}

func TestConcurrentRunsShareARunner(t *testing.T) {
	e := newRunEnv(t, llmtest.OpenAI, nil)
	e.srv.Handle(func(r *llmtest.Request) llmtest.Reply {
		if len(r.Messages) == 1 {
			return llmtest.ToolCall("", "echo", `{"text":"x"}`)
		}
		return llmtest.Text("ok")
	})
	var wg sync.WaitGroup
	errs := make(chan error, 20)
	for i := range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			res, err := e.runner.Run(context.Background(), RunInput{RunID: "c" + string(rune('a'+i)), Message: "go"})
			if err == nil && (res.Text != "ok" || res.Turns != 2) {
				err = errors.New("wrong result")
			}
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if len(e.echo.Calls()) != 20 {
		t.Fatalf("%d tool calls", len(e.echo.Calls()))
	}
}

func TestAfterToolCallRewritesOutput(t *testing.T) {
	var seen []string
	e := newRunEnv(t, llmtest.Anthropic, func(c *RunnerConfig) {
		c.Hooks.AfterToolCall = func(_ context.Context, call ToolCall, out *ToolOutcome) {
			seen = append(seen, call.Name+":"+out.Output)
			out.Output = strings.ReplaceAll(out.Output, "hi", "[redacted]")
		}
	})
	e.srv.Push(llmtest.ToolCall("t1", "echo", `{"text":"hi"}`), llmtest.Text("ok"))
	res, err := e.run(context.Background(), "go")
	if err != nil {
		t.Fatal(err)
	}
	if len(seen) != 1 || seen[0] != "echo:echo: hi" || res.Transcript[2].Parts[0].Text != "echo: [redacted]" {
		t.Fatalf("seen %v result %q", seen, res.Transcript[2].Parts[0].Text)
	}
	if strings.Contains(string(e.srv.Requests()[1].Body), "echo: hi") {
		t.Fatal("unredacted output sent to the model")
	}
}
