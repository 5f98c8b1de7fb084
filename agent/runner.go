package agent

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"
)

// Model is what a Runner calls; *Chain implements it.
type Model interface {
	Stream(ctx context.Context, req *Request, on func(StreamEvent)) (*Response, Candidate, error)
}

// Limits bound one run.
type Limits struct {
	// MaxTurns is the most model calls in a run; default 32.
	MaxTurns int
	// MaxTokens is the most input+output tokens a run may use over all its
	// model calls; 0 means no limit.
	MaxTokens int
	// MaxWallTime is the longest a run may take; default 10 minutes.
	MaxWallTime time.Duration
	// ToolTimeout is the longest one tool call may take; default 2 minutes.
	ToolTimeout time.Duration
	// MaxToolOutput is the most bytes of one tool result kept (cut in the
	// middle with a marker); default 32 KiB.
	MaxToolOutput int
}

func (l Limits) withDefaults() Limits {
	if l.MaxTurns <= 0 {
		l.MaxTurns = 32
	}
	if l.MaxWallTime <= 0 {
		l.MaxWallTime = 10 * time.Minute
	}
	if l.ToolTimeout <= 0 {
		l.ToolTimeout = 2 * time.Minute
	}
	if l.MaxToolOutput <= 0 {
		l.MaxToolOutput = 32 << 10
	}
	return l
}

// CompactionConfig controls how the conversation is kept inside the model's
// context window.
type CompactionConfig struct {
	// Threshold is the fraction of the context window at which the runner
	// compacts before calling the model; default 0.8. Compaction also runs
	// when the model answers with a context-overflow error.
	Threshold float64
	// KeepRecent is how many of the latest messages compaction keeps
	// verbatim; default 6.
	KeepRecent int
	// PruneAfterTurns: tool results older than this many assistant turns
	// are trimmed in what is sent to the model (the transcript keeps them
	// whole); default 3.
	PruneAfterTurns int
	// PruneKeepBytes is what an old tool result is trimmed to; default 1 KiB.
	PruneKeepBytes int
	// Disabled turns compaction off (pruning stays on).
	Disabled bool
}

func (c CompactionConfig) withDefaults() CompactionConfig {
	if c.Threshold <= 0 || c.Threshold > 1 {
		c.Threshold = 0.8
	}
	if c.KeepRecent <= 0 {
		c.KeepRecent = 6
	}
	if c.PruneAfterTurns <= 0 {
		c.PruneAfterTurns = 3
	}
	if c.PruneKeepBytes <= 0 {
		c.PruneKeepBytes = 1 << 10
	}
	return c
}

// RunnerConfig configures a Runner.
type RunnerConfig struct {
	Model Model
	Tools *Registry
	// System is the system prompt (see BuildSystemPrompt).
	System string
	// MaxOutputTokens per model call; 0 leaves it to the candidate.
	MaxOutputTokens int
	// ContextWindow is assumed until a response says which candidate
	// answered; 0 means unknown.
	ContextWindow int
	Limits        Limits
	Compaction    CompactionConfig
	Hooks         Hooks
	// Journal receives every finished step; nil keeps none.
	Journal Journal
	// Flusher is called before compaction; nil skips the flush.
	Flusher MemoryFlusher
	Logger  *slog.Logger
}

// Runner runs the agent loop. One Runner serves any number of concurrent
// runs.
type Runner struct {
	cfg RunnerConfig
}

// NewRunner checks cfg and returns a Runner.
func NewRunner(cfg RunnerConfig) (*Runner, error) {
	if cfg.Model == nil {
		return nil, errors.New("new runner: model is required")
	}
	if cfg.Tools == nil {
		cfg.Tools, _ = NewRegistry()
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	cfg.Limits = cfg.Limits.withDefaults()
	cfg.Compaction = cfg.Compaction.withDefaults()
	return &Runner{cfg: cfg}, nil
}

// EventKind is the kind of a run Event.
type EventKind string

const (
	EventRunStart   EventKind = "run_start"
	EventText       EventKind = "text_delta"
	EventReset      EventKind = "reset" // discard the partial text of the current turn
	EventToolCall   EventKind = "tool_call"
	EventToolResult EventKind = "tool_result"
	EventTurnEnd    EventKind = "turn_end"
	EventNotice     EventKind = "notice" // retry, key rotation, fallback
	EventCompaction EventKind = "compaction"
	EventRunEnd     EventKind = "run_end"
)

// Event is one thing that happened in a run, for streaming to a client.
type Event struct {
	Kind   EventKind    `json:"kind"`
	RunID  string       `json:"run_id"`
	Turn   int          `json:"turn,omitempty"`
	Text   string       `json:"text,omitempty"`
	Tool   *ToolCall    `json:"tool,omitempty"`
	Result *ToolOutcome `json:"result,omitempty"`
	Notice *Notice      `json:"notice,omitempty"`
	Usage  *Usage       `json:"usage,omitempty"`
	Model  string       `json:"model,omitempty"`
	Stop   string       `json:"stop,omitempty"`
	Err    string       `json:"error,omitempty"`
}

// RunInput is one run's input.
type RunInput struct {
	// RunID identifies the run in the journal; empty makes a random one.
	RunID     string
	SessionID string
	// History is the session transcript before this run.
	History []Message
	Message string
	// OnEvent receives the run's events; nil drops them.
	OnEvent func(Event)
}

// Stop reasons of a run.
const (
	StopDone     = "done"
	StopLimit    = "limit"
	StopCanceled = "canceled"
	StopVetoed   = "vetoed"
	StopError    = "error"
)

// RunResult is how a run ended. It is returned with the error too, so a
// failed or cancelled run still has a consistent transcript.
type RunResult struct {
	RunID string
	// Transcript is the session transcript after the run: History (possibly
	// compacted), the user message, and every finished step.
	Transcript   []Message
	Text         string // the final assistant text
	Usage        Usage
	UsageByModel map[string]Usage // by "provider/model"
	Turns        int
	Compactions  int
	Stop         string
}

type runState struct {
	r      *Runner
	id     string
	seq    uint64
	msgs   []Message
	res    *RunResult
	window int
	emit   func(Event)
}

func newRunID() string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

func (st *runState) journal(ctx context.Context, e Entry) error {
	if st.r.cfg.Journal == nil {
		return nil
	}
	st.seq++
	e.RunID, e.Seq, e.Time = st.id, st.seq, time.Now()
	// Finish the record even when the run is being cancelled.
	if err := st.r.cfg.Journal.Append(context.WithoutCancel(ctx), e); err != nil {
		return fmt.Errorf("journal %s: %w", e.Kind, err)
	}
	return nil
}

func jsonData(v any) json.RawMessage {
	b, _ := json.Marshal(v)
	return b
}

// Run runs the loop for one user message.
func (r *Runner) Run(ctx context.Context, in RunInput) (*RunResult, error) {
	if strings.TrimSpace(in.Message) == "" {
		return nil, ErrEmptyInput
	}
	if in.RunID == "" {
		in.RunID = newRunID()
	}
	emit := in.OnEvent
	if emit == nil {
		emit = func(Event) {}
	}
	info := RunInfo{RunID: in.RunID, SessionID: in.SessionID, Message: in.Message, System: r.cfg.System}
	res := &RunResult{RunID: in.RunID, UsageByModel: map[string]Usage{}, Transcript: in.History}
	if h := r.cfg.Hooks.BeforeAgentStart; h != nil {
		if err := h(ctx, &info); err != nil {
			res.Stop = StopVetoed
			return res, fmt.Errorf("run %s: %w: %w", in.RunID, ErrVetoed, err)
		}
		if strings.TrimSpace(info.Message) == "" {
			return nil, ErrEmptyInput
		}
	}
	st := &runState{r: r, id: in.RunID, res: res, window: r.cfg.ContextWindow, emit: emit}
	st.msgs = append(append(make([]Message, 0, len(in.History)+8), RepairTranscript(in.History)...), UserText(info.Message))

	runCtx, cancel := context.WithTimeoutCause(ctx, r.cfg.Limits.MaxWallTime,
		&LimitError{Limit: "wall_time", Value: r.cfg.Limits.MaxWallTime.String()})
	defer cancel()
	depth, _ := ctx.Value(depthKey{}).(int)
	runCtx = context.WithValue(runCtx, scopeKey{}, &runScope{runID: in.RunID, sessionID: in.SessionID, depth: depth, emit: emit})

	err := st.journal(ctx, Entry{Kind: EntryRunStart, Data: jsonData(map[string]string{"session_id": in.SessionID, "input": info.Message})})
	if err == nil {
		err = st.journal(ctx, Entry{Kind: EntryMessage, Message: &st.msgs[len(st.msgs)-1]})
	}
	if err == nil {
		emit(Event{Kind: EventRunStart, RunID: st.id})
		err = st.loop(runCtx, info.System)
	}
	if err != nil && ctx.Err() == nil && runCtx.Err() != nil {
		// The wall-time limit, not the caller, ended the run.
		err = context.Cause(runCtx)
	}
	var le *LimitError
	switch {
	case err == nil:
		res.Stop = StopDone
	case errors.As(err, &le):
		res.Stop = StopLimit
	case ctx.Err() != nil:
		res.Stop = StopCanceled
	default:
		res.Stop = StopError
	}
	res.Transcript = st.msgs
	end := map[string]any{"stop": res.Stop, "usage": res.Usage}
	if err != nil {
		end["error"] = err.Error()
	}
	if jerr := st.journal(ctx, Entry{Kind: EntryRunEnd, Data: jsonData(end)}); jerr != nil && err == nil {
		err = jerr
		res.Stop = StopError
	}
	ev := Event{Kind: EventRunEnd, RunID: st.id, Stop: res.Stop, Usage: &res.Usage, Text: res.Text}
	if err != nil {
		ev.Err = err.Error()
	}
	emit(ev)
	if h := r.cfg.Hooks.AfterAgentEnd; h != nil {
		h(context.WithoutCancel(ctx), info, res, err)
	}
	if err != nil {
		return res, fmt.Errorf("run %s: %w", st.id, err)
	}
	return res, nil
}

func (st *runState) loop(ctx context.Context, system string) error {
	cfg := &st.r.cfg
	specs := cfg.Tools.Specs()
	for turn := 1; ; turn++ {
		if turn > cfg.Limits.MaxTurns {
			return &LimitError{Limit: "turns", Value: fmt.Sprint(cfg.Limits.MaxTurns)}
		}
		if cfg.Limits.MaxTokens > 0 && st.res.Usage.Total() >= cfg.Limits.MaxTokens {
			return &LimitError{Limit: "tokens", Value: fmt.Sprintf("%d of %d", st.res.Usage.Total(), cfg.Limits.MaxTokens)}
		}
		if !cfg.Compaction.Disabled && st.window > 0 &&
			float64(estimateTokens(system, st.msgs)) > cfg.Compaction.Threshold*float64(st.window) {
			if err := st.compact(ctx); err != nil && !errors.Is(err, errNothingToCompact) {
				return err
			}
		}
		resp, cand, err := st.call(ctx, system, specs, turn)
		for attempt := 0; err != nil && Classify(err) == ClassContextOverflow && !cfg.Compaction.Disabled && attempt < 2; attempt++ {
			if cerr := st.compact(ctx); cerr != nil {
				return fmt.Errorf("compact after overflow: %w (model error: %w)", cerr, err)
			}
			resp, cand, err = st.call(ctx, system, specs, turn)
		}
		if err != nil {
			return err
		}
		st.res.Turns = turn
		st.res.Usage.Add(resp.Usage)
		u := st.res.UsageByModel[cand.ID()]
		u.Add(resp.Usage)
		st.res.UsageByModel[cand.ID()] = u
		if cand.ContextWindow > 0 {
			st.window = cand.ContextWindow
		}
		if len(resp.Message.Parts) == 0 {
			resp.Message.Parts = []Part{{Type: PartText, Text: ""}}
		}
		resp.Message.Role = RoleAssistant
		st.msgs = append(st.msgs, resp.Message)
		if err := st.journal(ctx, Entry{Kind: EntryMessage, Message: &st.msgs[len(st.msgs)-1]}); err != nil {
			return err
		}
		st.emit(Event{Kind: EventTurnEnd, RunID: st.id, Turn: turn, Usage: &resp.Usage, Model: cand.ID(), Stop: string(resp.StopReason)})
		uses := resp.Message.ToolUses()
		if len(uses) == 0 {
			st.res.Text = resp.Message.Text()
			return nil
		}
		if err := st.runTools(ctx, uses); err != nil {
			return err
		}
	}
}

// call makes one model call for the current messages.
func (st *runState) call(ctx context.Context, system string, specs []ToolSpec, turn int) (*Response, Candidate, error) {
	cfg := &st.r.cfg
	req := &Request{
		System:    system,
		Messages:  pruneToolResults(st.msgs, cfg.Compaction.PruneAfterTurns, cfg.Compaction.PruneKeepBytes),
		Tools:     specs,
		MaxTokens: cfg.MaxOutputTokens,
	}
	return cfg.Model.Stream(ctx, req, func(ev StreamEvent) {
		switch ev.Kind {
		case StreamText:
			st.emit(Event{Kind: EventText, RunID: st.id, Turn: turn, Text: ev.Text})
		case StreamReset:
			st.emit(Event{Kind: EventReset, RunID: st.id, Turn: turn})
		case StreamNotice:
			st.emit(Event{Kind: EventNotice, RunID: st.id, Turn: turn, Notice: ev.Notice})
		}
	})
}

// runTools runs the turn's tool calls in order and appends their results as
// one user message. On cancellation the calls not yet run are answered as
// cancelled, so the transcript stays valid.
func (st *runState) runTools(ctx context.Context, uses []Part) error {
	results := make([]Part, 0, len(uses))
	var stopErr error
	for _, use := range uses {
		var part Part
		if stopErr == nil && ctx.Err() == nil {
			part = st.callTool(ctx, use)
		} else {
			part = Part{Type: PartToolResult, ID: use.ID, Text: "cancelled: the run stopped before this tool call", IsError: true}
		}
		if err := st.journal(ctx, Entry{Kind: EntryToolResult, Part: &part}); err != nil && stopErr == nil {
			stopErr = err
		}
		results = append(results, part)
		if stopErr == nil && ctx.Err() != nil {
			stopErr = ctx.Err()
		}
	}
	st.msgs = append(st.msgs, Message{Role: RoleUser, Parts: results})
	return stopErr
}

func (st *runState) callTool(ctx context.Context, use Part) Part {
	cfg := &st.r.cfg
	call := &ToolCall{RunID: st.id, ID: use.ID, Name: use.Name, Input: use.Input}
	st.emit(Event{Kind: EventToolCall, RunID: st.id, Tool: call})
	start := time.Now()
	out := st.execute(ctx, call)
	out.Duration = time.Since(start)
	out.Output = TruncateMiddle(out.Output, cfg.Limits.MaxToolOutput, "tool output")
	if h := cfg.Hooks.AfterToolCall; h != nil {
		h(ctx, *call, out)
		out.Output = TruncateMiddle(out.Output, cfg.Limits.MaxToolOutput, "tool output")
	}
	st.emit(Event{Kind: EventToolResult, RunID: st.id, Tool: call, Result: out})
	return Part{Type: PartToolResult, ID: use.ID, Text: out.Output, IsError: out.IsError}
}

func isJSONObject(b json.RawMessage) bool {
	var obj map[string]json.RawMessage
	return json.Unmarshal(b, &obj) == nil && obj != nil
}

func (st *runState) execute(ctx context.Context, call *ToolCall) *ToolOutcome {
	cfg := &st.r.cfg
	fail := func(format string, args ...any) *ToolOutcome {
		return &ToolOutcome{Output: fmt.Sprintf(format, args...), IsError: true}
	}
	tool, ok := cfg.Tools.Get(call.Name)
	if !ok {
		return fail("error: %v: %q", ErrUnknownTool, call.Name)
	}
	if !isJSONObject(call.Input) {
		return fail("error: the arguments for %s are not a JSON object: %s", call.Name, TruncateMiddle(argumentsText(call.Input), 300, "arguments"))
	}
	if h := cfg.Hooks.BeforeToolCall; h != nil {
		if err := h(ctx, call); err != nil {
			cfg.Logger.Info("tool call vetoed", "run", st.id, "tool", call.Name, "reason", err.Error())
			return fail("refused: %v", err)
		}
		if !isJSONObject(call.Input) {
			return fail("error: the arguments for %s are not a JSON object", call.Name)
		}
	}
	tctx, cancel := context.WithTimeoutCause(ctx, cfg.Limits.ToolTimeout, ErrToolTimeout)
	defer cancel()
	type result struct {
		out string
		err error
	}
	done := make(chan result, 1)
	go func() {
		defer func() {
			if p := recover(); p != nil {
				done <- result{err: fmt.Errorf("tool panicked: %v", p)}
			}
		}()
		out, err := tool.Call(tctx, call.Input)
		done <- result{out, err}
	}()
	select {
	case res := <-done:
		if res.err != nil {
			text := "error: " + res.err.Error()
			if res.out != "" {
				text = res.out + "\n" + text
			}
			return &ToolOutcome{Output: text, IsError: true}
		}
		return &ToolOutcome{Output: res.out}
	case <-tctx.Done():
		// A tool that ignores its context is abandoned here; its goroutine
		// ends when the tool returns. ToolExecutor implementations kill the
		// sandboxed process tree on cancel.
		if ctx.Err() != nil {
			return fail("cancelled: the run stopped during this tool call")
		}
		return fail("error: %s timed out after %s", call.Name, cfg.Limits.ToolTimeout)
	}
}

// Session is a conversation: runs share its transcript, one at a time.
type Session struct {
	r          *Runner
	id         string
	mu         sync.Mutex
	transcript []Message
	closed     bool
}

// StartSession opens a session with an existing transcript (nil for a new
// one). The SessionStart hook may refuse it.
func (r *Runner) StartSession(ctx context.Context, id string, history []Message) (*Session, error) {
	if h := r.cfg.Hooks.SessionStart; h != nil {
		if err := h(ctx, id); err != nil {
			return nil, fmt.Errorf("start session %s: %w: %w", id, ErrVetoed, err)
		}
	}
	return &Session{r: r, id: id, transcript: append([]Message(nil), history...)}, nil
}

// ID is the session id.
func (s *Session) ID() string { return s.id }

// Run runs one message in the session; runs in a session are serialized.
// The transcript advances even when the run fails (it stays consistent).
func (s *Session) Run(ctx context.Context, runID, message string, onEvent func(Event)) (*RunResult, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, fmt.Errorf("session %s is closed", s.id)
	}
	res, err := s.r.Run(ctx, RunInput{RunID: runID, SessionID: s.id, History: s.transcript, Message: message, OnEvent: onEvent})
	if res != nil && res.Transcript != nil {
		s.transcript = res.Transcript
	}
	return res, err
}

// Transcript returns a copy of the transcript.
func (s *Session) Transcript() []Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Message(nil), s.transcript...)
}

// Close ends the session and calls the SessionEnd hook once.
func (s *Session) Close(ctx context.Context) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return
	}
	s.closed = true
	if h := s.r.cfg.Hooks.SessionEnd; h != nil {
		h(ctx, s.id)
	}
}
