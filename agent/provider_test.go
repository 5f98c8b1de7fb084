package agent

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/http/httptrace"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bulkhead-dev/bulkhead/agent/llmtest"
	"github.com/bulkhead-dev/bulkhead/netguard"
)

type protoCase struct {
	name  string
	proto llmtest.Protocol
	make  func(s *llmtest.Server, idle time.Duration) Provider
}

var protos = []protoCase{
	{"anthropic", llmtest.Anthropic, func(s *llmtest.Server, idle time.Duration) Provider {
		return NewAnthropic(AnthropicConfig{BaseURL: s.URL, HTTPClient: s.Client(), IdleTimeout: idle})
	}},
	{"openai", llmtest.OpenAI, func(s *llmtest.Server, idle time.Duration) Provider {
		return NewOpenAI(OpenAIConfig{BaseURL: s.URL + "/v1", HTTPClient: s.Client(), IdleTimeout: idle})
	}},
}

var testKey = NewSecret(llmtest.Key)

func basicRequest() *Request {
	return &Request{
		Model:    "test-model",
		System:   "You are terse.",
		Messages: []Message{UserText("list files")},
		Tools:    []ToolSpec{{Name: "bash", Description: "run a command", Schema: json.RawMessage(`{"type":"object","properties":{"cmd":{"type":"string"}}}`)}},
	}
}

func TestProviderStreamsTextAndToolCall(t *testing.T) {
	for _, pc := range protos {
		t.Run(pc.name, func(t *testing.T) {
			t.Parallel()
			s := llmtest.Start(t)
			p := pc.make(s, 0)
			// Byte-sized writes put chunk boundaries inside SSE lines and
			// multi-byte runes; 2-byte deltas split the JSON arguments.
			s.Push(llmtest.Reply{Blocks: []llmtest.Block{{Text: "Looking… ok"}, {ToolID: "t1", ToolName: "bash", ToolInput: `{"cmd":"ls -la /workspace"}`}},
				Chunk: 2, WriteSize: 1, Usage: llmtest.Usage{InputTokens: 42, OutputTokens: 9}})
			var text, args strings.Builder
			var started []string
			resp, err := p.Stream(context.Background(), testKey, basicRequest(), func(ev StreamEvent) {
				switch ev.Kind {
				case StreamText:
					text.WriteString(ev.Text)
				case StreamToolDelta:
					args.WriteString(ev.Text)
				case StreamToolStart:
					started = append(started, ev.Part.Name)
				}
			})
			if err != nil {
				t.Fatal(err)
			}
			if text.String() != "Looking… ok" || args.String() != `{"cmd":"ls -la /workspace"}` || len(started) != 1 || started[0] != "bash" {
				t.Fatalf("events: text %q args %q started %v", text.String(), args.String(), started)
			}
			if resp.StopReason != StopToolUse || resp.Usage != (Usage{42, 9}) {
				t.Fatalf("stop %q usage %+v", resp.StopReason, resp.Usage)
			}
			if got := resp.Message.Text(); got != "Looking… ok" {
				t.Fatalf("message text %q", got)
			}
			uses := resp.Message.ToolUses()
			if len(uses) != 1 || uses[0].ID != "t1" || uses[0].Name != "bash" || string(uses[0].Input) != `{"cmd":"ls -la /workspace"}` {
				t.Fatalf("tool uses %+v", uses)
			}
			r := s.Requests()[0]
			if r.System != "You are terse." || r.Model != "test-model" || len(r.Tools) != 1 || r.Tools[0] != "bash" || !r.Stream {
				t.Fatalf("request: %+v", r)
			}
		})
	}
}

func TestProviderSendsToolResultsTheServerAccepts(t *testing.T) {
	for _, pc := range protos {
		t.Run(pc.name, func(t *testing.T) {
			t.Parallel()
			s := llmtest.Start(t)
			p := pc.make(s, 0)
			s.Push(llmtest.Text("done"))
			req := basicRequest()
			req.Messages = append(req.Messages,
				Message{Role: RoleAssistant, Parts: []Part{{Type: PartText, Text: "running"},
					{Type: PartToolUse, ID: "a", Name: "bash", Input: json.RawMessage(`{"cmd":"ls"}`)},
					{Type: PartToolUse, ID: "b", Name: "bash", Input: json.RawMessage(`"not json"`)}}},
				Message{Role: RoleUser, Parts: []Part{{Type: PartToolResult, ID: "a", Text: "x.txt"},
					{Type: PartToolResult, ID: "b", Text: "bad arguments", IsError: true}}},
			)
			resp, err := p.Stream(context.Background(), testKey, req, func(StreamEvent) {})
			if err != nil {
				t.Fatal(err)
			}
			if resp.Message.Text() != "done" || resp.StopReason != StopEndTurn {
				t.Fatalf("%+v", resp)
			}
			body := string(s.Requests()[0].Body)
			if pc.proto == llmtest.OpenAI && !strings.Contains(body, `"arguments":"not json"`) {
				t.Fatalf("malformed arguments not sent back verbatim: %s", body)
			}
		})
	}
}

func TestProviderErrorsClassified(t *testing.T) {
	kinds := []struct {
		kind llmtest.ErrorKind
		want Class
	}{
		{llmtest.RateLimited, ClassRateLimit},
		{llmtest.Overloaded, ClassOverloaded},
		{llmtest.Unavailable, ClassOverloaded},
		{llmtest.ServerError, ClassServerError},
		{llmtest.ContextOverflow, ClassContextOverflow},
		{llmtest.PermissionDenied, ClassAuthPermanent},
		{llmtest.Billing, ClassBilling},
		{llmtest.ModelNotFound, ClassModelNotFound},
		{llmtest.BadRequest, ClassFormat},
	}
	for _, pc := range protos {
		t.Run(pc.name, func(t *testing.T) {
			t.Parallel()
			s := llmtest.Start(t)
			p := pc.make(s, 0)
			for _, k := range kinds {
				s.Push(llmtest.Reply{Err: &llmtest.Error{Kind: k.kind}})
				_, err := p.Stream(context.Background(), testKey, basicRequest(), func(StreamEvent) {})
				if got := Classify(err); got != k.want {
					t.Errorf("kind %d: class %s, want %s (%v)", k.kind, got, k.want, err)
				}
			}
			// Errors sent inside a started stream.
			for _, k := range []struct {
				kind llmtest.ErrorKind
				want Class
			}{{llmtest.Overloaded, ClassOverloaded}, {llmtest.RateLimited, ClassRateLimit}, {llmtest.ServerError, ClassServerError}} {
				s.Push(llmtest.Reply{Err: &llmtest.Error{Kind: k.kind, MidStream: true}})
				_, err := p.Stream(context.Background(), testKey, basicRequest(), func(StreamEvent) {})
				if got := Classify(err); got != k.want {
					t.Errorf("mid-stream kind %d: class %s, want %s (%v)", k.kind, got, k.want, err)
				}
			}
			// A key the server does not accept.
			_, err := p.Stream(context.Background(), NewSecret("wrong-key"), basicRequest(), func(StreamEvent) {})
			if got := Classify(err); got != ClassAuth {
				t.Errorf("bad key: class %s (%v)", got, err)
			}
		})
	}
}

func TestProviderRetryAfter(t *testing.T) {
	for _, pc := range protos {
		t.Run(pc.name, func(t *testing.T) {
			s := llmtest.Start(t)
			p := pc.make(s, 0)
			s.Push(llmtest.Reply{Err: &llmtest.Error{Kind: llmtest.RateLimited, RetryAfter: "7"}},
				llmtest.Reply{Err: &llmtest.Error{Kind: llmtest.RateLimited, RetryAfter: "7", RetryAfterMS: "1500"}})
			_, err := p.Stream(context.Background(), testKey, basicRequest(), func(StreamEvent) {})
			if d := RetryAfter(err); d != 7*time.Second {
				t.Fatalf("retry-after %v", d)
			}
			_, err = p.Stream(context.Background(), testKey, basicRequest(), func(StreamEvent) {})
			if d := RetryAfter(err); d != 1500*time.Millisecond {
				t.Fatalf("retry-after-ms %v", d)
			}
		})
	}
}

func TestProviderDroppedAndSlowStreams(t *testing.T) {
	for _, pc := range protos {
		t.Run(pc.name, func(t *testing.T) {
			t.Parallel()
			s := llmtest.Start(t)
			p := pc.make(s, 80*time.Millisecond)

			s.Push(llmtest.Reply{Blocks: []llmtest.Block{{Text: "partial answer"}}, Chunk: 1, DropAfter: 5})
			var got strings.Builder
			_, err := p.Stream(context.Background(), testKey, basicRequest(), func(ev StreamEvent) { got.WriteString(ev.Text) })
			var te *TransportError
			if !errors.As(err, &te) || Classify(err) != ClassTimeout || got.Len() == 0 {
				t.Fatalf("dropped stream: %v (class %s, partial %q)", err, Classify(err), got.String())
			}

			// Slow but steady: each gap is under the idle timeout.
			s.Push(llmtest.Reply{Blocks: []llmtest.Block{{Text: "slow"}}, Chunk: 1, Delay: 15 * time.Millisecond})
			resp, err := p.Stream(context.Background(), testKey, basicRequest(), func(StreamEvent) {})
			if err != nil || resp.Message.Text() != "slow" {
				t.Fatalf("slow stream: %v", err)
			}

			// Stalled: a gap longer than the idle timeout.
			s.Push(llmtest.Reply{Blocks: []llmtest.Block{{Text: "stall"}}, Delay: 400 * time.Millisecond})
			start := time.Now()
			_, err = p.Stream(context.Background(), testKey, basicRequest(), func(StreamEvent) {})
			if !errors.As(err, &te) || !te.Timeout || Classify(err) != ClassTimeout {
				t.Fatalf("stalled stream: %v", err)
			}
			if d := time.Since(start); d > 350*time.Millisecond {
				t.Fatalf("idle timeout fired after %v", d)
			}
		})
	}
}

func TestProviderCancel(t *testing.T) {
	for _, pc := range protos {
		t.Run(pc.name, func(t *testing.T) {
			t.Parallel()
			s := llmtest.Start(t)
			p := pc.make(s, 0)
			hold := make(chan struct{})
			defer close(hold)
			s.Push(llmtest.Reply{Blocks: []llmtest.Block{{Text: "x"}}, Hold: hold})
			ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
			defer cancel()
			_, err := p.Stream(ctx, testKey, basicRequest(), func(StreamEvent) {})
			if Classify(err) != ClassTimeout {
				t.Fatalf("deadline: %v (%s)", err, Classify(err))
			}
			ctx2, cancel2 := context.WithCancel(context.Background())
			s.Push(llmtest.Reply{Blocks: []llmtest.Block{{Text: "x"}}, Hold: hold})
			time.AfterFunc(30*time.Millisecond, cancel2)
			_, err = p.Stream(ctx2, testKey, basicRequest(), func(StreamEvent) {})
			if Classify(err) != ClassCanceled {
				t.Fatalf("cancel: %v (%s)", err, Classify(err))
			}
		})
	}
}

func TestProviderMalformedToolArguments(t *testing.T) {
	for _, pc := range protos {
		t.Run(pc.name, func(t *testing.T) {
			t.Parallel()
			s := llmtest.Start(t)
			p := pc.make(s, 0)
			s.Push(llmtest.ToolCall("t9", "bash", `{"cmd": "ls`))
			resp, err := p.Stream(context.Background(), testKey, basicRequest(), func(StreamEvent) {})
			if err != nil {
				t.Fatal(err)
			}
			in := resp.Message.ToolUses()[0].Input
			var s2 string
			if err := json.Unmarshal(in, &s2); err != nil || s2 != `{"cmd": "ls` {
				t.Fatalf("input %s", in)
			}
		})
	}
}

func TestProviderErrorsNeverCarryTheKey(t *testing.T) {
	const secret = "sk-proj-SECRETSECRET1234567890"
	for _, pc := range protos {
		t.Run(pc.name, func(t *testing.T) {
			t.Parallel()
			s := llmtest.Start(t)
			s.SetKeys(pc.proto, secret)
			p := pc.make(s, 0)
			// A hostile or careless server echoes the key in its message.
			s.Push(llmtest.Reply{Err: &llmtest.Error{Kind: llmtest.InvalidKey, Message: "Incorrect API key provided: " + secret + ". Key " + secret + " is bad"}},
				llmtest.Reply{Err: &llmtest.Error{Kind: llmtest.ServerError, MidStream: true, Message: "boom " + secret}})
			for range 2 {
				_, err := p.Stream(context.Background(), NewSecret(secret), basicRequest(), func(StreamEvent) {})
				if err == nil || strings.Contains(err.Error(), "SECRETSECRET") {
					t.Fatalf("error leaks key: %v", err)
				}
			}
		})
	}
}

func TestProviderReusesConnections(t *testing.T) {
	for _, pc := range protos {
		t.Run(pc.name, func(t *testing.T) {
			t.Parallel()
			s := llmtest.Start(t)
			p := pc.make(s, 0)
			var mu sync.Mutex
			reused := 0
			ctx := httptrace.WithClientTrace(context.Background(), &httptrace.ClientTrace{GotConn: func(info httptrace.GotConnInfo) {
				mu.Lock()
				defer mu.Unlock()
				if info.Reused {
					reused++
				}
			}})
			for range 3 {
				// The end of the chunked body arrives after the final event.
				s.Push(llmtest.Reply{Blocks: []llmtest.Block{{Text: "hi"}, {ToolName: "bash", ToolInput: `{}`}}, EndDelay: 5 * time.Millisecond})
				if _, err := p.Stream(ctx, testKey, basicRequest(), func(StreamEvent) {}); err != nil {
					t.Fatal(err)
				}
			}
			mu.Lock()
			defer mu.Unlock()
			if reused != 2 {
				t.Fatalf("%d of 3 calls reused a connection, want 2", reused)
			}
		})
	}
}

// A base URL that redirects (a hijacked proxy, an open redirect) must not
// get the key sent on to the redirect target.
func TestProviderDoesNotFollowRedirectsWithTheKey(t *testing.T) {
	var mu sync.Mutex
	var leaked []string
	target := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		leaked = append(leaked, r.Header.Get("x-api-key")+r.Header.Get("Authorization"))
		mu.Unlock()
	}))
	defer target.Close()
	redirector := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, target.URL+r.URL.Path, http.StatusTemporaryRedirect)
	}))
	defer redirector.Close()
	for _, p := range []Provider{
		NewAnthropic(AnthropicConfig{BaseURL: redirector.URL}),
		NewOpenAI(OpenAIConfig{BaseURL: redirector.URL + "/v1", HTTPClient: &http.Client{}}),
	} {
		_, err := p.Stream(context.Background(), NewSecret("sk-REDIRECTED-KEY-123456"), basicRequest(), func(StreamEvent) {})
		var ae *APIError
		if !errors.As(err, &ae) || ae.Status != http.StatusTemporaryRedirect || Classify(err).Retryable() {
			t.Fatalf("%s: %v", p.Name(), err)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if len(leaked) != 0 {
		t.Fatalf("redirect followed, target saw %q", leaked)
	}
}

// With the SSRF guard's client, a base URL on loopback (where llmtest
// listens, like any local service an agent might aim at) is refused at dial
// time, classified as blocked, not retried, and nothing reaches the server.
func TestProviderThroughNetguard(t *testing.T) {
	g, err := netguard.New(netguard.Config{Timeout: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	s := llmtest.Start(t)
	s.Push(llmtest.Text("must not be served"))
	p := NewOpenAI(OpenAIConfig{BaseURL: s.URL + "/v1", HTTPClient: g.Client()})
	ch, err := NewChain(ChainConfig{Candidates: []Candidate{{Provider: p, Model: "m"}}, Keys: testKeys(),
		Sleep: func(context.Context, time.Duration) error { t.Fatal("blocked call retried"); return nil }})
	if err != nil {
		t.Fatal(err)
	}
	_, _, err = ch.Stream(context.Background(), basicRequest(), nil)
	if !errors.Is(err, netguard.ErrBlocked) || Classify(err) != ClassBlocked || len(s.Requests()) != 0 {
		t.Fatalf("%v (class %s, %d requests)", err, Classify(err), len(s.Requests()))
	}

	// Allowed explicitly by the operator, the same endpoint works, and the
	// guard's whole-request Timeout does not cut a slow stream short.
	host := strings.TrimPrefix(s.URL, "http://")
	g2, err := netguard.New(netguard.Config{Allow: []string{host}, Timeout: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	p2 := NewOpenAI(OpenAIConfig{BaseURL: s.URL + "/v1", HTTPClient: g2.Client()})
	s.Reset()
	s.Push(llmtest.Reply{Blocks: []llmtest.Block{{Text: "slow but fine"}}, Chunk: 2, Delay: 10 * time.Millisecond})
	resp, err := p2.Stream(context.Background(), testKey, basicRequest(), func(StreamEvent) {})
	if err != nil || resp.Message.Text() != "slow but fine" {
		t.Fatalf("allowed endpoint: %v", err)
	}
}
