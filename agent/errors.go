package agent

import (
	"errors"
	"fmt"
	"strings"
	"time"
)

var (
	// ErrNoCandidates means the fallback chain has no (provider, model) to try.
	ErrNoCandidates = errors.New("no model candidates")
	// ErrNoKeys means a provider has no usable API key.
	ErrNoKeys = errors.New("no usable api key")
	// ErrContextWindowTooSmall means a model's context window is below the
	// guard's block threshold.
	ErrContextWindowTooSmall = errors.New("model context window too small")
	// ErrStreamIncomplete means a stream ended before its final event.
	ErrStreamIncomplete = errors.New("stream ended before completion")
	// ErrEmptyInput means a run was started without a message.
	ErrEmptyInput = errors.New("empty input message")
	// ErrVetoed means a hook refused to let something happen.
	ErrVetoed = errors.New("vetoed by hook")
	// ErrUnknownTool means the model called a tool that is not registered.
	ErrUnknownTool = errors.New("unknown tool")
	// ErrToolTimeout means a tool call ran past its timeout.
	ErrToolTimeout = errors.New("tool call timed out")
)

// APIError is an error response from a model API (an HTTP error status, or
// an error event inside a stream).
type APIError struct {
	Provider string
	Model    string
	Status   int    // HTTP status; 0 for an error event inside a 200 stream
	Type     string // provider error type (Anthropic error.type, OpenAI error.type)
	Code     string // provider error code (OpenAI error.code, Anthropic error.details.error_code)
	Message  string // with anything that looks like a key removed
	// RetryAfter is the server's Retry-After (or retry-after-ms) hint; 0 if none.
	RetryAfter time.Duration
	RequestID  string
}

func (e *APIError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s", e.Provider)
	if e.Model != "" {
		fmt.Fprintf(&b, " model %s", e.Model)
	}
	if e.Status != 0 {
		fmt.Fprintf(&b, ": status %d", e.Status)
	} else {
		b.WriteString(": stream error")
	}
	if e.Type != "" {
		fmt.Fprintf(&b, " %s", e.Type)
	}
	if e.Code != "" && e.Code != e.Type {
		fmt.Fprintf(&b, " (%s)", e.Code)
	}
	if e.Message != "" {
		fmt.Fprintf(&b, ": %s", e.Message)
	}
	return b.String()
}

// TransportError is a failure to reach the API or to read its stream to the
// end (connection refused or reset, idle timeout, truncated stream).
type TransportError struct {
	Provider string
	Op       string
	Timeout  bool
	Err      error
}

func (e *TransportError) Error() string {
	return fmt.Sprintf("%s: %s: %v", e.Provider, e.Op, e.Err)
}

func (e *TransportError) Unwrap() error { return e.Err }

// LimitError says which run limit stopped a run.
type LimitError struct {
	Limit string // "turns", "tokens", "wall_time"
	Value string
}

func (e *LimitError) Error() string {
	return fmt.Sprintf("run limit reached: %s (%s)", e.Limit, e.Value)
}

// ChainError is returned when every candidate of a fallback chain failed. It
// unwraps to every attempt's error; Class is the class of the last one.
type ChainError struct {
	Attempts []CandidateError
}

// CandidateError is one candidate's failure in a chain.
type CandidateError struct {
	Provider, Model string
	Class           Class
	Err             error
}

func (e *ChainError) Error() string {
	parts := make([]string, 0, len(e.Attempts))
	for _, a := range e.Attempts {
		parts = append(parts, fmt.Sprintf("%s/%s [%s]: %v", a.Provider, a.Model, a.Class, a.Err))
	}
	return "all model candidates failed: " + strings.Join(parts, "; ")
}

func (e *ChainError) Unwrap() []error {
	out := make([]error, len(e.Attempts))
	for i, a := range e.Attempts {
		out[i] = a.Err
	}
	return out
}

// Class returns the class of the last attempt.
func (e *ChainError) Class() Class {
	if len(e.Attempts) == 0 {
		return ClassUnknown
	}
	return e.Attempts[len(e.Attempts)-1].Class
}
