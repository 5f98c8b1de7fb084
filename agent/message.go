package agent

import (
	"context"
	"encoding/json"
	"strings"
)

// Role is who wrote a message.
type Role string

const (
	RoleUser      Role = "user"
	RoleAssistant Role = "assistant"
)

// PartType is the kind of a message part.
type PartType string

const (
	PartText       PartType = "text"
	PartToolUse    PartType = "tool_use"
	PartToolResult PartType = "tool_result"
)

// Part is one piece of a message. For PartToolUse, ID, Name and Input are set;
// Input is always valid JSON: the arguments object as the model sent it, or, if
// the model sent text that is not JSON, that text as a JSON string (so the
// loop can answer with an error and the transcript still encodes). For
// PartToolResult, ID is the id of the tool use it answers, Text the output and
// IsError whether the call failed.
type Part struct {
	Type    PartType        `json:"type"`
	Text    string          `json:"text,omitempty"`
	ID      string          `json:"id,omitempty"`
	Name    string          `json:"name,omitempty"`
	Input   json.RawMessage `json:"input,omitempty"`
	IsError bool            `json:"is_error,omitempty"`
}

// Message is one turn of the conversation. Tool results travel in user
// messages, as in the Anthropic API; the OpenAI adapter turns them into
// role "tool" messages.
type Message struct {
	Role  Role   `json:"role"`
	Parts []Part `json:"parts"`
}

// UserText is a user message with one text part.
func UserText(s string) Message {
	return Message{Role: RoleUser, Parts: []Part{{Type: PartText, Text: s}}}
}

// Text returns the concatenated text parts of m.
func (m Message) Text() string {
	var b strings.Builder
	for _, p := range m.Parts {
		if p.Type == PartText {
			b.WriteString(p.Text)
		}
	}
	return b.String()
}

// ToolUses returns the tool-use parts of m.
func (m Message) ToolUses() []Part {
	var out []Part
	for _, p := range m.Parts {
		if p.Type == PartToolUse {
			out = append(out, p)
		}
	}
	return out
}

// ToolSpec describes a tool to the model. Schema is a JSON Schema object.
type ToolSpec struct {
	Name        string          `json:"name"`
	Description string          `json:"description"`
	Schema      json.RawMessage `json:"schema"`
}

// Request is one model call, independent of the wire protocol.
type Request struct {
	Model     string
	System    string
	Messages  []Message
	Tools     []ToolSpec
	MaxTokens int
}

// Usage is the token usage of one or more model calls.
type Usage struct {
	InputTokens  int `json:"input_tokens"`
	OutputTokens int `json:"output_tokens"`
}

// Add adds o to u.
func (u *Usage) Add(o Usage) {
	u.InputTokens += o.InputTokens
	u.OutputTokens += o.OutputTokens
}

// Total is input plus output tokens.
func (u Usage) Total() int { return u.InputTokens + u.OutputTokens }

// StopReason says why the model stopped.
type StopReason string

const (
	StopEndTurn   StopReason = "end_turn"
	StopToolUse   StopReason = "tool_use"
	StopMaxTokens StopReason = "max_tokens"
	StopSequence  StopReason = "stop_sequence"
	StopRefusal   StopReason = "refusal"
	StopOther     StopReason = "other"
)

// Response is a completed model call.
type Response struct {
	Message    Message
	StopReason StopReason
	Usage      Usage
	Model      string
}

// StreamKind is the kind of a StreamEvent.
type StreamKind string

const (
	// StreamText carries a text fragment in Text.
	StreamText StreamKind = "text_delta"
	// StreamToolStart announces a tool call (Part has ID and Name).
	StreamToolStart StreamKind = "tool_use_start"
	// StreamToolDelta carries an argument fragment in Text.
	StreamToolDelta StreamKind = "tool_input_delta"
	// StreamReset tells the consumer to discard the partial output of the
	// current attempt: the call is being retried or falling back.
	StreamReset StreamKind = "reset"
)

// StreamEvent is one increment of a streaming model call.
type StreamEvent struct {
	Kind  StreamKind
	Index int
	Text  string
	Part  *Part
	// Notice is set for StreamNotice events from a Chain.
	Notice *Notice
}

// Provider is one model API. Stream sends req with key and calls on for each
// increment as it arrives; it returns the assembled response when the stream
// ends normally, and an *APIError (or a transport error) otherwise. on is
// called from the calling goroutine and must not block for long.
type Provider interface {
	// Name is the provider's name as used for key pools and cooldowns
	// ("anthropic", "openai", "groq", ...).
	Name() string
	Stream(ctx context.Context, key Secret, req *Request, on func(StreamEvent)) (*Response, error)
}
