package agent

import (
	"context"
	"encoding/json"
	"time"
)

// RunInfo describes a run to hooks. BeforeAgentStart may change System
// (for example to add context) and Message; other hooks get a copy.
type RunInfo struct {
	RunID     string
	SessionID string
	Message   string
	System    string
}

// ToolCall is one tool call the model asked for. BeforeToolCall may rewrite
// Input; the runner checks it is still a JSON object.
type ToolCall struct {
	RunID string          `json:"run_id"`
	ID    string          `json:"id"`
	Name  string          `json:"name"`
	Input json.RawMessage `json:"input"`
}

// ToolOutcome is what a tool call produced. AfterToolCall may rewrite
// Output (for example to redact) and IsError.
type ToolOutcome struct {
	Output   string        `json:"output"`
	IsError  bool          `json:"is_error,omitempty"`
	Duration time.Duration `json:"duration"`
}

// Hooks are called at the points of a run's life. Any may be nil. A hook
// that returns an error vetoes: BeforeAgentStart stops the run before the
// model is called (the error wraps ErrVetoed); SessionStart refuses the
// session; BeforeToolCall stops that tool call, and the model is told the
// call was refused with the hook's error text. Hooks run on the run's
// goroutine and must return promptly.
type Hooks struct {
	SessionStart     func(ctx context.Context, sessionID string) error
	SessionEnd       func(ctx context.Context, sessionID string)
	BeforeAgentStart func(ctx context.Context, info *RunInfo) error
	AfterAgentEnd    func(ctx context.Context, info RunInfo, res *RunResult, err error)
	BeforeToolCall   func(ctx context.Context, call *ToolCall) error
	AfterToolCall    func(ctx context.Context, call ToolCall, out *ToolOutcome)
}
