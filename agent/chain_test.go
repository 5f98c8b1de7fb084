package agent

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bulkhead-dev/bulkhead/agent/llmtest"
)

// fakeTime is a clock that only moves when the chain sleeps.
type fakeTime struct {
	mu     sync.Mutex
	now    time.Time
	sleeps []time.Duration
}

func newFakeTime() *fakeTime { return &fakeTime{now: time.Unix(1_700_000_000, 0)} }

func (f *fakeTime) Now() time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.now
}

func (f *fakeTime) Sleep(ctx context.Context, d time.Duration) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.sleeps = append(f.sleeps, d)
	f.now = f.now.Add(d)
	return ctx.Err()
}

func (f *fakeTime) Sleeps() []time.Duration {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]time.Duration(nil), f.sleeps...)
}

type chainEnv struct {
	srv   *llmtest.Server
	ant   Provider
	oai   Provider
	clock *fakeTime
	cool  *Cooldowns
	log   *bytes.Buffer
}

func newChainEnv(t *testing.T) *chainEnv {
	s := llmtest.Start(t)
	return &chainEnv{
		srv:   s,
		ant:   NewAnthropic(AnthropicConfig{BaseURL: s.URL, HTTPClient: s.Client()}),
		oai:   NewOpenAI(OpenAIConfig{BaseURL: s.URL + "/v1", HTTPClient: s.Client()}),
		clock: newFakeTime(),
		cool:  NewCooldowns(),
		log:   &bytes.Buffer{},
	}
}

func (e *chainEnv) chain(t *testing.T, keys map[string]*KeyPool, cands ...Candidate) *Chain {
	t.Helper()
	if keys == nil {
		keys = testKeys()
	}
	ch, err := NewChain(ChainConfig{
		Candidates: cands, Keys: keys, Cooldowns: e.cool,
		Now: e.clock.Now, Sleep: e.clock.Sleep, Rand: func() float64 { return 0 },
		Logger: slog.New(slog.NewTextHandler(e.log, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	return ch
}

func models(reqs []*llmtest.Request) string {
	var m []string
	for _, r := range reqs {
		m = append(m, r.Model)
	}
	return strings.Join(m, ",")
}

func TestChainFallbackOrderAndCooldownSkip(t *testing.T) {
	e := newChainEnv(t)
	ch := e.chain(t, nil,
		Candidate{Provider: e.ant, Model: "m1"},
		Candidate{Provider: e.oai, Model: "m2"},
		Candidate{Provider: e.ant, Model: "m3"})
	e.srv.Push(llmtest.Fail(llmtest.Billing), llmtest.Fail(llmtest.ModelNotFound), llmtest.Text("from m3"))
	var notices []string
	resp, cand, err := ch.Stream(context.Background(), basicRequest(), func(ev StreamEvent) {
		if ev.Kind == StreamNotice {
			notices = append(notices, ev.Notice.What+":"+ev.Notice.Model)
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	if cand.Model != "m3" || resp.Message.Text() != "from m3" || models(e.srv.Requests()) != "m1,m2,m3" {
		t.Fatalf("cand %s text %q requests %s", cand.Model, resp.Message.Text(), models(e.srv.Requests()))
	}
	if strings.Join(notices, " ") != "fallback:m2 fallback:m3" {
		t.Fatalf("notices %v", notices)
	}
	if len(e.clock.Sleeps()) != 0 {
		t.Fatalf("billing and model-not-found must not be retried in place: %v", e.clock.Sleeps())
	}

	// The next call skips m1 and m2 while they cool down.
	e.srv.Reset()
	e.srv.Push(llmtest.Text("again"))
	_, cand, err = ch.Stream(context.Background(), basicRequest(), nil)
	if err != nil || cand.Model != "m3" || models(e.srv.Requests()) != "m3" {
		t.Fatalf("cooldown not honoured: %v %s requests %s", err, cand.Model, models(e.srv.Requests()))
	}

	// After the cooldown, m1 is preferred again.
	e.clock.Sleep(context.Background(), 2*time.Hour)
	e.srv.Reset()
	e.srv.Push(llmtest.Text("m1 back"))
	if _, cand, err = ch.Stream(context.Background(), basicRequest(), nil); err != nil || cand.Model != "m1" {
		t.Fatalf("after cooldown: %v %s", err, cand.Model)
	}
}

func TestChainAllCoolingProbesSoonest(t *testing.T) {
	e := newChainEnv(t)
	ch := e.chain(t, nil, Candidate{Provider: e.ant, Model: "a"}, Candidate{Provider: e.ant, Model: "b"})
	now := e.clock.Now()
	e.cool.Fail(e.ant.Name()+"/a", ClassBilling, 0, now)    // an hour
	e.cool.Fail(e.ant.Name()+"/b", ClassOverloaded, 0, now) // 30 s
	e.srv.Push(llmtest.Text("ok"))
	if _, cand, err := ch.Stream(context.Background(), basicRequest(), nil); err != nil || cand.Model != "b" {
		t.Fatalf("%v %s", err, cand.Model)
	}
}

func TestChainRotatesKeyOnRateLimit(t *testing.T) {
	e := newChainEnv(t)
	e.srv.SetKeys(llmtest.Anthropic, "k1", "k2")
	pool := NewKeyPool("anthropic", NewSecret("k1"), NewSecret("k2"))
	ch := e.chain(t, map[string]*KeyPool{"anthropic": pool}, Candidate{Provider: e.ant, Model: "m"})
	e.srv.Push(llmtest.Reply{Err: &llmtest.Error{Kind: llmtest.RateLimited, RetryAfter: "20"}}, llmtest.Text("ok"))
	if _, _, err := ch.Stream(context.Background(), basicRequest(), nil); err != nil {
		t.Fatal(err)
	}
	reqs := e.srv.Requests()
	if len(reqs) != 2 || reqs[0].Key != "k1" || reqs[1].Key != "k2" {
		t.Fatalf("keys used: %v", reqs)
	}
	if len(e.clock.Sleeps()) != 0 {
		t.Fatalf("rotation to a fresh key must not wait: %v", e.clock.Sleeps())
	}
	// k1 is cooling for the server's 20 s: the next two calls both use k2.
	e.srv.Reset()
	e.srv.Push(llmtest.Text("a"), llmtest.Text("b"))
	ch.Stream(context.Background(), basicRequest(), nil)
	ch.Stream(context.Background(), basicRequest(), nil)
	if r := e.srv.Requests(); r[0].Key != "k2" || r[1].Key != "k2" {
		t.Fatalf("cooling key reused: %s %s", r[0].Key, r[1].Key)
	}
}

func TestChainRotatesKeyOnAuthAndDropsPermanent(t *testing.T) {
	e := newChainEnv(t)
	e.srv.SetKeys(llmtest.OpenAI, "good1", "good2")
	pool := NewKeyPool("openai", NewSecret("revoked-key"), NewSecret("good1"), NewSecret("good2"))
	ch := e.chain(t, map[string]*KeyPool{"openai": pool}, Candidate{Provider: e.oai, Model: "m"})
	// revoked-key is refused by the server (401, not recorded); good1 is
	// then refused for permissions (a scripted 401 insufficient permissions).
	e.srv.Push(llmtest.Fail(llmtest.PermissionDenied), llmtest.Text("ok"))
	if _, _, err := ch.Stream(context.Background(), basicRequest(), nil); err != nil {
		t.Fatal(err)
	}
	reqs := e.srv.Requests()
	if len(reqs) != 2 || reqs[0].Key != "good1" || reqs[1].Key != "good2" {
		t.Fatalf("keys used: %v", models(reqs))
	}
	// good1 is disabled for good, revoked-key cools for an hour.
	e.clock.Sleep(context.Background(), 2*time.Minute)
	for range 3 {
		k, _, err := pool.Acquire(e.clock.Now())
		if err != nil || k.Reveal() != "good2" {
			t.Fatalf("pool handed out %q (%v)", k.Reveal(), err)
		}
	}
}

func TestChainHonoursRetryAfter(t *testing.T) {
	e := newChainEnv(t)
	pool := NewKeyPool("anthropic", NewSecret(llmtest.Key))
	ch := e.chain(t, map[string]*KeyPool{"anthropic": pool}, Candidate{Provider: e.ant, Model: "m"})
	e.srv.Push(llmtest.Reply{Err: &llmtest.Error{Kind: llmtest.RateLimited, RetryAfter: "3"}}, llmtest.Text("ok"))
	if _, _, err := ch.Stream(context.Background(), basicRequest(), nil); err != nil {
		t.Fatal(err)
	}
	if s := e.clock.Sleeps(); len(s) != 1 || s[0] != 3*time.Second {
		t.Fatalf("sleeps %v, want [3s]", s)
	}
}

func TestChainHonoursRetryAfterRealClock(t *testing.T) {
	s := llmtest.Start(t)
	ant := NewOpenAI(OpenAIConfig{BaseURL: s.URL + "/v1", HTTPClient: s.Client()})
	ch, err := NewChain(ChainConfig{Candidates: []Candidate{{Provider: ant, Model: "m"}}, Keys: testKeys()})
	if err != nil {
		t.Fatal(err)
	}
	s.Push(llmtest.Reply{Err: &llmtest.Error{Kind: llmtest.Overloaded, RetryAfterMS: "200"}}, llmtest.Text("ok"))
	start := time.Now()
	if _, _, err := ch.Stream(context.Background(), basicRequest(), nil); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d < 200*time.Millisecond {
		t.Fatalf("retried after %v, before the server's 200ms", d)
	}
}

func TestChainBackoffThenFallback(t *testing.T) {
	e := newChainEnv(t)
	ch := e.chain(t, nil, Candidate{Provider: e.ant, Model: "a"}, Candidate{Provider: e.oai, Model: "b"})
	e.srv.Push(llmtest.Fail(llmtest.Overloaded), llmtest.Fail(llmtest.Unavailable), llmtest.Fail(llmtest.ServerError), llmtest.Text("b ok"))
	_, cand, err := ch.Stream(context.Background(), basicRequest(), nil)
	if err != nil || cand.Model != "b" {
		t.Fatalf("%v %s", err, cand.Model)
	}
	if got := models(e.srv.Requests()); got != "a,a,a,b" {
		t.Fatalf("requests %s", got)
	}
	// Jitter source 0: each delay is half of 500ms·2^(n-1).
	if s := e.clock.Sleeps(); len(s) != 2 || s[0] != 250*time.Millisecond || s[1] != 500*time.Millisecond {
		t.Fatalf("backoff %v", s)
	}
}

func TestChainLongRetryAfterFallsBack(t *testing.T) {
	e := newChainEnv(t)
	ch := e.chain(t, nil, Candidate{Provider: e.ant, Model: "a"}, Candidate{Provider: e.ant, Model: "b"})
	e.srv.Push(llmtest.Reply{Err: &llmtest.Error{Kind: llmtest.Overloaded, RetryAfter: "600"}}, llmtest.Text("b"))
	if _, cand, err := ch.Stream(context.Background(), basicRequest(), nil); err != nil || cand.Model != "b" || len(e.clock.Sleeps()) != 0 {
		t.Fatalf("%v %s %v", err, cand.Model, e.clock.Sleeps())
	}
	if until, ok := e.cool.Until(e.ant.Name()+"/a", e.clock.Now()); !ok || until.Sub(e.clock.Now()) < 600*time.Second {
		t.Fatalf("cooldown shorter than Retry-After: %v", until.Sub(e.clock.Now()))
	}
}

func TestChainDoesNotFallBackOnOverflowOrFormat(t *testing.T) {
	for _, k := range []llmtest.ErrorKind{llmtest.ContextOverflow, llmtest.BadRequest} {
		e := newChainEnv(t)
		ch := e.chain(t, nil, Candidate{Provider: e.ant, Model: "a"}, Candidate{Provider: e.ant, Model: "b"})
		e.srv.Push(llmtest.Fail(k), llmtest.Text("never"))
		_, _, err := ch.Stream(context.Background(), basicRequest(), nil)
		if err == nil || len(e.srv.Requests()) != 1 {
			t.Fatalf("kind %d: %v after %d requests", k, err, len(e.srv.Requests()))
		}
	}
}

func TestChainResetsAfterDroppedStream(t *testing.T) {
	e := newChainEnv(t)
	ch := e.chain(t, nil, Candidate{Provider: e.oai, Model: "a"})
	e.srv.Push(llmtest.Reply{Blocks: []llmtest.Block{{Text: "first try"}}, Chunk: 1, DropAfter: 4}, llmtest.Text("second"))
	var text strings.Builder
	resp, _, err := ch.Stream(context.Background(), basicRequest(), func(ev StreamEvent) {
		switch ev.Kind {
		case StreamText:
			text.WriteString(ev.Text)
		case StreamReset:
			text.Reset()
		}
	})
	if err != nil || text.String() != "second" || resp.Message.Text() != "second" {
		t.Fatalf("%v: streamed %q", err, text.String())
	}
}

func TestChainAllFail(t *testing.T) {
	e := newChainEnv(t)
	ch := e.chain(t, nil, Candidate{Provider: e.ant, Model: "a"}, Candidate{Provider: e.oai, Model: "b"})
	e.srv.Push(llmtest.Fail(llmtest.Billing), llmtest.Fail(llmtest.ModelNotFound))
	_, _, err := ch.Stream(context.Background(), basicRequest(), nil)
	var ce *ChainError
	if !errors.As(err, &ce) || len(ce.Attempts) != 2 || ce.Attempts[0].Class != ClassBilling || Classify(err) != ClassModelNotFound {
		t.Fatalf("%v", err)
	}
}

func TestContextGuard(t *testing.T) {
	e := newChainEnv(t)
	_, err := NewChain(ChainConfig{Candidates: []Candidate{{Provider: e.ant, Model: "tiny", ContextWindow: 8192}}})
	if !errors.Is(err, ErrContextWindowTooSmall) {
		t.Fatalf("8k model accepted: %v", err)
	}
	var logBuf bytes.Buffer
	ch, err := NewChain(ChainConfig{
		Candidates: []Candidate{{Provider: e.ant, Model: "tiny", ContextWindow: 8192}, {Provider: e.ant, Model: "small", ContextWindow: 24000}, {Provider: e.ant, Model: "big", ContextWindow: 200000}},
		Logger:     slog.New(slog.NewTextHandler(&logBuf, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	if c := ch.Candidates(); len(c) != 2 || c[0].Model != "small" {
		t.Fatalf("candidates %v", c)
	}
	if !strings.Contains(logBuf.String(), "model=tiny") || !strings.Contains(logBuf.String(), "context window is small") {
		t.Fatalf("log: %s", logBuf.String())
	}
}

func TestChainLogsNoKey(t *testing.T) {
	e := newChainEnv(t)
	const key = "sk-live-TOPSECRET-0123456789"
	e.srv.SetKeys(llmtest.OpenAI, key)
	pool := NewKeyPool("openai", NewSecret(key))
	ch := e.chain(t, map[string]*KeyPool{"openai": pool}, Candidate{Provider: e.oai, Model: "a"})
	e.srv.Push(llmtest.Reply{Err: &llmtest.Error{Kind: llmtest.BadRequest, Message: "key " + key + " rejected"}})
	_, _, err := ch.Stream(context.Background(), basicRequest(), nil)
	if err == nil {
		t.Fatal("want error")
	}
	e.srv.Push(llmtest.Fail(llmtest.Billing))
	_, _, err2 := ch.Stream(context.Background(), basicRequest(), nil)
	if strings.Contains(e.log.String()+err.Error()+err2.Error(), "TOPSECRET") {
		t.Fatalf("key leaked: %s / %v / %v", e.log.String(), err, err2)
	}
}

func testKeys() map[string]*KeyPool {
	return map[string]*KeyPool{
		"anthropic": NewKeyPool("anthropic", testKey),
		"openai":    NewKeyPool("openai", testKey),
	}
}

func TestNewProviderByName(t *testing.T) {
	s := llmtest.Start(t)
	for _, name := range ProviderNames() {
		p, err := NewProvider(name, "", nil)
		if err != nil || p.Name() != name {
			t.Fatalf("%s: %v", name, err)
		}
	}
	if _, err := NewProvider("acme", "", nil); !errors.Is(err, ErrUnknownProvider) {
		t.Fatalf("unknown provider: %v", err)
	}
	// Overridden base URLs reach the loopback server with each protocol and
	// each endpoint's request shape.
	s.Push(llmtest.Text("a"), llmtest.Text("b"), llmtest.Text("c"))
	for _, c := range []struct{ name, base string }{{"anthropic", s.URL}, {"groq", s.URL + "/v1"}, {"acme", s.URL + "/v1"}} {
		p, err := NewProvider(c.name, c.base, s.Client())
		if err != nil {
			t.Fatal(err)
		}
		req := basicRequest()
		req.MaxTokens = 100
		if _, err := p.Stream(context.Background(), testKey, req, nil); err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
	}
	reqs := s.Requests()
	if reqs[0].Protocol != llmtest.Anthropic || reqs[1].IncludeUsage || !strings.Contains(string(reqs[1].Body), `"max_tokens":100`) {
		t.Fatalf("request shapes: %s / %s", reqs[0].Protocol, reqs[1].Body)
	}
}
