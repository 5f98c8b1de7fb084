package agent

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sort"
	"sync"
	"time"
)

// Candidate is one (provider, model) the chain may call.
type Candidate struct {
	Provider Provider
	Model    string
	// ContextWindow is the model's context window in tokens; 0 if unknown
	// (the guard lets it through, and compaction then waits for an
	// overflow error instead of acting early).
	ContextWindow int
	// MaxTokens is the output limit sent when a Request has none.
	MaxTokens int
}

// ID is "provider/model".
func (c Candidate) ID() string { return c.Provider.Name() + "/" + c.Model }

// ContextGuard refuses models whose context window is too small to run an
// agent in, and warns about small ones.
type ContextGuard struct {
	Block int // windows below this are refused; default 16,000
	Warn  int // windows below this are logged; default 32,000
}

// Check returns an error wrapping ErrContextWindowTooSmall for a window
// below Block, and warn for one below Warn. A window of 0 (unknown) passes.
func (g ContextGuard) Check(window int) (warn bool, err error) {
	if g.Block == 0 && g.Warn == 0 {
		g.Block, g.Warn = 16000, 32000
	}
	if window <= 0 {
		return false, nil
	}
	if window < g.Block {
		return false, fmt.Errorf("%w: %d tokens < %d", ErrContextWindowTooSmall, window, g.Block)
	}
	return window < g.Warn, nil
}

// RetryPolicy is how one candidate is retried on a retryable failure.
type RetryPolicy struct {
	// MaxRetries is how many times a candidate is retried after the first
	// attempt; default 2. Key rotations on rate limits do not count.
	MaxRetries int
	// BaseDelay and MaxDelay bound the exponential backoff; defaults 500 ms
	// and 30 s. The delay for retry n (from 1) is BaseDelay·2^(n-1), capped,
	// with full jitter over its upper half.
	BaseDelay, MaxDelay time.Duration
	// MaxRetryAfter is the longest server Retry-After the chain waits out
	// on the same candidate; a longer one sends it to the next candidate.
	// Default 60 s.
	MaxRetryAfter time.Duration
}

func (p RetryPolicy) withDefaults() RetryPolicy {
	if p.MaxRetries == 0 {
		p.MaxRetries = 2
	}
	if p.MaxRetries < 0 {
		p.MaxRetries = 0
	}
	if p.BaseDelay <= 0 {
		p.BaseDelay = 500 * time.Millisecond
	}
	if p.MaxDelay <= 0 {
		p.MaxDelay = 30 * time.Second
	}
	if p.MaxRetryAfter <= 0 {
		p.MaxRetryAfter = 60 * time.Second
	}
	return p
}

// Backoff is the delay before retry n (from 1); r is a uniform [0,1) sample.
// A positive retryAfter from the server wins over the computed delay.
func (p RetryPolicy) Backoff(n int, retryAfter time.Duration, r float64) time.Duration {
	if retryAfter > 0 {
		return retryAfter
	}
	d := p.BaseDelay
	for i := 1; i < n && d < p.MaxDelay; i++ {
		d *= 2
	}
	d = min(d, p.MaxDelay)
	return d/2 + time.Duration(r*float64(d/2))
}

// Cooldowns remembers which candidates failed recently. Share one between
// chains so that every run on a node skips a candidate that just failed.
// Safe for concurrent use.
type Cooldowns struct {
	mu sync.Mutex
	m  map[string]*cooldown
}

type cooldown struct {
	until    time.Time
	failures int
	class    Class
}

// NewCooldowns returns an empty set.
func NewCooldowns() *Cooldowns { return &Cooldowns{m: map[string]*cooldown{}} }

// cooldownBase is the first cooldown for a class; it doubles with each
// consecutive failure, up to an hour.
func cooldownBase(c Class) time.Duration {
	switch c {
	case ClassBilling, ClassAuth, ClassAuthPermanent, ClassModelNotFound:
		return time.Hour
	default:
		return 30 * time.Second
	}
}

// Fail records a failure of id and returns when it may be tried again.
func (c *Cooldowns) Fail(id string, cls Class, hint time.Duration, now time.Time) time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	cd := c.m[id]
	if cd == nil {
		cd = &cooldown{}
		c.m[id] = cd
	}
	cd.failures++
	cd.class = cls
	d := cooldownBase(cls)
	for i := 1; i < cd.failures && d < time.Hour; i++ {
		d *= 2
	}
	d = max(min(d, time.Hour), hint)
	cd.until = now.Add(d)
	return cd.until
}

// Succeed clears id's cooldown.
func (c *Cooldowns) Succeed(id string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.m, id)
}

// Until returns when id's cooldown ends, and whether it is cooling at now.
func (c *Cooldowns) Until(id string, now time.Time) (time.Time, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	cd := c.m[id]
	if cd == nil || !cd.until.After(now) {
		return time.Time{}, false
	}
	return cd.until, true
}

// ChainConfig configures a Chain.
type ChainConfig struct {
	// Candidates in order of preference.
	Candidates []Candidate
	// Keys by provider name. A provider with no pool is called without a
	// key (local servers such as Ollama).
	Keys map[string]*KeyPool
	// Cooldowns shared across chains; nil makes a private set.
	Cooldowns *Cooldowns
	Retry     RetryPolicy
	Guard     ContextGuard
	Logger    *slog.Logger

	// Now, Sleep and Rand replace the clock, the wait and the jitter source
	// (tests). Sleep must return ctx.Err() when ctx ends first.
	Now   func() time.Time
	Sleep func(ctx context.Context, d time.Duration) error
	Rand  func() float64
}

// Chain calls candidates in order: each with its key pool, retries and
// backoff, moving on when a candidate fails in a way another might not.
type Chain struct {
	cfg        ChainConfig
	candidates []Candidate
}

// NewChain checks the candidates against the context guard: candidates below
// the block threshold are dropped (and logged); if none remain the error
// wraps ErrContextWindowTooSmall.
func NewChain(cfg ChainConfig) (*Chain, error) {
	if len(cfg.Candidates) == 0 {
		return nil, ErrNoCandidates
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Cooldowns == nil {
		cfg.Cooldowns = NewCooldowns()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Sleep == nil {
		cfg.Sleep = sleepCtx
	}
	if cfg.Rand == nil {
		cfg.Rand = rand.Float64
	}
	cfg.Retry = cfg.Retry.withDefaults()
	ch := &Chain{cfg: cfg}
	var guardErr error
	for _, c := range cfg.Candidates {
		if c.Provider == nil || c.Model == "" {
			return nil, fmt.Errorf("candidate %q: provider and model are required", c.Model)
		}
		warn, err := cfg.Guard.Check(c.ContextWindow)
		if err != nil {
			cfg.Logger.Warn("model refused by context guard", "provider", c.Provider.Name(), "model", c.Model, "context_window", c.ContextWindow)
			guardErr = fmt.Errorf("%s: %w", c.ID(), err)
			continue
		}
		if warn {
			cfg.Logger.Warn("model context window is small", "provider", c.Provider.Name(), "model", c.Model, "context_window", c.ContextWindow)
		}
		ch.candidates = append(ch.candidates, c)
	}
	if len(ch.candidates) == 0 {
		return nil, guardErr
	}
	return ch, nil
}

// Candidates returns the candidates that passed the guard, in order.
func (ch *Chain) Candidates() []Candidate { return append([]Candidate(nil), ch.candidates...) }

func sleepCtx(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// order returns the candidates to try now: those not cooling down, in
// preference order; if all are cooling, the one that recovers first.
func (ch *Chain) order(now time.Time) (try []Candidate, skipped []Candidate) {
	type cooling struct {
		c     Candidate
		until time.Time
	}
	var cool []cooling
	for _, c := range ch.candidates {
		if until, ok := ch.cfg.Cooldowns.Until(c.ID(), now); ok {
			cool = append(cool, cooling{c, until})
			skipped = append(skipped, c)
			continue
		}
		try = append(try, c)
	}
	if len(try) == 0 && len(cool) > 0 {
		sort.SliceStable(cool, func(i, j int) bool { return cool[i].until.Before(cool[j].until) })
		try = []Candidate{cool[0].c}
		skipped = skipped[:0]
		for _, c := range cool[1:] {
			skipped = append(skipped, c.c)
		}
	}
	return try, skipped
}

// Notice describes what the chain did between attempts.
type Notice struct {
	What     string // "retry", "rotate_key", "fallback", "skip_cooldown"
	Provider string
	Model    string
	Class    Class
	Wait     time.Duration
}

// StreamNotice carries a *Notice in StreamEvent.Notice.
const StreamNotice StreamKind = "notice"

// Stream sends req to the first candidate that answers. on receives the
// stream increments, a StreamReset before any retry or fallback that follows
// partial output, and StreamNotice events. It returns the response and the
// candidate that produced it. Context overflow and format errors are
// returned at once (another model would not help with a malformed request;
// the caller compacts on overflow); other failures move on to the next
// candidate and start a cooldown for the failed one. When every candidate
// fails the error is a *ChainError.
func (ch *Chain) Stream(ctx context.Context, req *Request, on func(StreamEvent)) (*Response, Candidate, error) {
	if on == nil {
		on = func(StreamEvent) {}
	}
	try, skipped := ch.order(ch.cfg.Now())
	for _, c := range skipped {
		on(StreamEvent{Kind: StreamNotice, Notice: &Notice{What: "skip_cooldown", Provider: c.Provider.Name(), Model: c.Model}})
	}
	var cerr ChainError
	for i, c := range try {
		resp, err := ch.tryCandidate(ctx, c, req, on)
		if err == nil {
			ch.cfg.Cooldowns.Succeed(c.ID())
			return resp, c, nil
		}
		if ctx.Err() != nil {
			return nil, c, fmt.Errorf("%s: %w", c.ID(), ctx.Err())
		}
		cls := Classify(err)
		cerr.Attempts = append(cerr.Attempts, CandidateError{Provider: c.Provider.Name(), Model: c.Model, Class: cls, Err: err})
		if !cls.FallsBack() {
			return nil, c, err
		}
		until := ch.cfg.Cooldowns.Fail(c.ID(), cls, RetryAfter(err), ch.cfg.Now())
		ch.cfg.Logger.Warn("model candidate failed", "provider", c.Provider.Name(), "model", c.Model,
			"class", string(cls), "cooldown_until", until, "err", err)
		if i+1 < len(try) {
			n := try[i+1]
			on(StreamEvent{Kind: StreamNotice, Notice: &Notice{What: "fallback", Provider: n.Provider.Name(), Model: n.Model, Class: cls}})
		}
	}
	return nil, Candidate{}, &cerr
}

// tryCandidate calls one candidate with key rotation and retries.
func (ch *Chain) tryCandidate(ctx context.Context, c Candidate, req *Request, on func(StreamEvent)) (*Response, error) {
	r := *req
	r.Model = c.Model
	if r.MaxTokens <= 0 {
		r.MaxTokens = c.MaxTokens
	}
	pool := ch.cfg.Keys[c.Provider.Name()]
	emitted := false
	wrapped := func(ev StreamEvent) {
		emitted = true
		on(ev)
	}
	retries := 0
	rotations := 0
	for {
		var key Secret
		if pool != nil {
			k, wait, err := pool.Acquire(ch.cfg.Now())
			if err != nil {
				return nil, err
			}
			if wait > 0 {
				// Every key is cooling down: wait if it is short, else let
				// the chain move on.
				if wait > ch.cfg.Retry.MaxRetryAfter || retries >= ch.cfg.Retry.MaxRetries {
					return nil, &APIError{Provider: c.Provider.Name(), Model: c.Model, Status: 429, Type: "rate_limit_error",
						Message: "every api key is cooling down", RetryAfter: wait}
				}
				retries++
				if err := ch.cfg.Sleep(ctx, wait); err != nil {
					return nil, err
				}
			}
			key = k
		}
		if emitted {
			on(StreamEvent{Kind: StreamReset})
			emitted = false
		}
		resp, err := c.Provider.Stream(ctx, key, &r, wrapped)
		if err == nil {
			return resp, nil
		}
		if ctx.Err() != nil {
			return nil, err
		}
		cls := Classify(err)
		ra := RetryAfter(err)
		now := ch.cfg.Now()
		switch cls {
		case ClassRateLimit, ClassAuth, ClassAuthPermanent:
			if pool == nil {
				if cls != ClassRateLimit {
					return nil, err
				}
				break // retried below like an overload
			}
			switch cls {
			case ClassRateLimit:
				cool := ra
				if cool <= 0 {
					cool = ch.cfg.Retry.Backoff(retries+1, 0, ch.cfg.Rand())
				}
				pool.CoolDown(key, now.Add(cool))
			case ClassAuth:
				pool.CoolDown(key, now.Add(time.Hour))
			case ClassAuthPermanent:
				pool.Disable(key)
			}
			if pool.Usable(now) > 0 && rotations < pool.Len() {
				rotations++
				on(StreamEvent{Kind: StreamNotice, Notice: &Notice{What: "rotate_key", Provider: c.Provider.Name(), Model: c.Model, Class: cls}})
				continue
			}
			if cls != ClassRateLimit {
				return nil, err
			}
			// Rate limited on every key: the next Acquire waits for the
			// first to recover (bounded by MaxRetryAfter).
			on(StreamEvent{Kind: StreamNotice, Notice: &Notice{What: "retry", Provider: c.Provider.Name(), Model: c.Model, Class: cls, Wait: ra}})
			continue
		}
		if !cls.Retryable() || retries >= ch.cfg.Retry.MaxRetries || ra > ch.cfg.Retry.MaxRetryAfter {
			return nil, err
		}
		retries++
		wait := ch.cfg.Retry.Backoff(retries, ra, ch.cfg.Rand())
		on(StreamEvent{Kind: StreamNotice, Notice: &Notice{What: "retry", Provider: c.Provider.Name(), Model: c.Model, Class: cls, Wait: wait}})
		if err := ch.cfg.Sleep(ctx, wait); err != nil {
			return nil, err
		}
	}
}
