package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strings"
	"time"
)

// AnthropicConfig configures the Anthropic Messages adapter.
type AnthropicConfig struct {
	// Name is the provider name for key pools and cooldowns; default "anthropic".
	Name string
	// BaseURL is the API root without /v1; default https://api.anthropic.com.
	BaseURL string
	// HTTPClient sends the requests; the wiring passes the SSRF-guarded
	// client here. Default http.DefaultClient. Its transport is used as is;
	// redirects are always refused (see noRedirects).
	HTTPClient *http.Client
	// Version is the anthropic-version header; default 2023-06-01.
	Version string
	// MaxTokens is used when a Request has none; default 8192.
	MaxTokens int
	// IdleTimeout: see DefaultIdleTimeout.
	IdleTimeout time.Duration
}

// Anthropic is a Provider for the Anthropic Messages API with SSE streaming.
type Anthropic struct{ cfg AnthropicConfig }

// NewAnthropic returns an Anthropic adapter.
func NewAnthropic(cfg AnthropicConfig) *Anthropic {
	if cfg.Name == "" {
		cfg.Name = "anthropic"
	}
	if cfg.BaseURL == "" {
		cfg.BaseURL = "https://api.anthropic.com"
	}
	cfg.BaseURL = strings.TrimRight(cfg.BaseURL, "/")
	if cfg.Version == "" {
		cfg.Version = "2023-06-01"
	}
	if cfg.MaxTokens <= 0 {
		cfg.MaxTokens = 8192
	}
	cfg.HTTPClient = noRedirects(cfg.HTTPClient)
	return &Anthropic{cfg: cfg}
}

// Name implements Provider.
func (a *Anthropic) Name() string { return a.cfg.Name }

type anthContent struct {
	Type      string          `json:"type"`
	Text      string          `json:"text,omitempty"`
	ID        string          `json:"id,omitempty"`
	Name      string          `json:"name,omitempty"`
	Input     json.RawMessage `json:"input,omitempty"`
	ToolUseID string          `json:"tool_use_id,omitempty"`
	Content   *string         `json:"content,omitempty"`
	IsError   bool            `json:"is_error,omitempty"`
}

type anthMessage struct {
	Role    Role          `json:"role"`
	Content []anthContent `json:"content"`
}

type anthTool struct {
	Name        string          `json:"name"`
	Description string          `json:"description,omitempty"`
	InputSchema json.RawMessage `json:"input_schema"`
}

type anthRequest struct {
	Model     string        `json:"model"`
	MaxTokens int           `json:"max_tokens"`
	System    string        `json:"system,omitempty"`
	Messages  []anthMessage `json:"messages"`
	Tools     []anthTool    `json:"tools,omitempty"`
	Stream    bool          `json:"stream"`
}

func (a *Anthropic) encode(req *Request) ([]byte, error) {
	out := anthRequest{Model: req.Model, MaxTokens: req.MaxTokens, System: req.System, Stream: true}
	if out.MaxTokens <= 0 {
		out.MaxTokens = a.cfg.MaxTokens
	}
	for _, t := range req.Tools {
		schema := t.Schema
		if len(schema) == 0 {
			schema = json.RawMessage(`{"type":"object"}`)
		}
		out.Tools = append(out.Tools, anthTool{Name: t.Name, Description: t.Description, InputSchema: schema})
	}
	for _, m := range req.Messages {
		am := anthMessage{Role: m.Role}
		for _, p := range m.Parts {
			switch p.Type {
			case PartText:
				if p.Text != "" {
					am.Content = append(am.Content, anthContent{Type: "text", Text: p.Text})
				}
			case PartToolUse:
				in := p.Input
				if len(in) == 0 || in[0] != '{' {
					in = json.RawMessage(`{}`)
				}
				am.Content = append(am.Content, anthContent{Type: "tool_use", ID: p.ID, Name: p.Name, Input: in})
			case PartToolResult:
				text := p.Text
				am.Content = append(am.Content, anthContent{Type: "tool_result", ToolUseID: p.ID, Content: &text, IsError: p.IsError})
			}
		}
		if len(am.Content) == 0 {
			am.Content = []anthContent{{Type: "text", Text: "(empty)"}}
		}
		out.Messages = append(out.Messages, am)
	}
	return json.Marshal(out)
}

// Stream implements Provider.
func (a *Anthropic) Stream(ctx context.Context, key Secret, req *Request, on func(StreamEvent)) (*Response, error) {
	if on == nil {
		on = func(StreamEvent) {}
	}
	body, err := a.encode(req)
	if err != nil {
		return nil, fmt.Errorf("%s: encode request: %w", a.cfg.Name, err)
	}
	hdr := http.Header{}
	hdr.Set("Content-Type", "application/json")
	hdr.Set("Accept", "text/event-stream")
	hdr.Set("x-api-key", key.Reveal())
	hdr.Set("anthropic-version", a.cfg.Version)
	c, err := startCall(ctx, a.cfg.HTTPClient, a.cfg.Name, req.Model, a.cfg.BaseURL+"/v1/messages", hdr, body, key, a.cfg.IdleTimeout)
	if err != nil {
		return nil, err
	}
	defer c.close()
	return a.read(c, key, on)
}

type anthEvent struct {
	Type    string `json:"type"`
	Index   int    `json:"index"`
	Message struct {
		Model string        `json:"model"`
		Usage anthUsageJSON `json:"usage"`
	} `json:"message"`
	ContentBlock struct {
		Type string `json:"type"`
		Text string `json:"text"`
		ID   string `json:"id"`
		Name string `json:"name"`
	} `json:"content_block"`
	Delta struct {
		Type        string `json:"type"`
		Text        string `json:"text"`
		PartialJSON string `json:"partial_json"`
		StopReason  string `json:"stop_reason"`
	} `json:"delta"`
	Usage *anthUsageJSON `json:"usage"`
	Error *errorObject   `json:"error"`
}

type anthUsageJSON struct {
	InputTokens              int `json:"input_tokens"`
	OutputTokens             int `json:"output_tokens"`
	CacheCreationInputTokens int `json:"cache_creation_input_tokens"`
	CacheReadInputTokens     int `json:"cache_read_input_tokens"`
}

type anthBlock struct {
	part  Part
	input []byte
}

func (a *Anthropic) read(c *call, key Secret, on func(StreamEvent)) (*Response, error) {
	sr := newSSEReader(c.reader())
	blocks := map[int]*anthBlock{}
	resp := &Response{Model: c.model}
	for {
		name, data, err := sr.next()
		if err != nil {
			if errors.Is(err, io.EOF) {
				err = ErrStreamIncomplete
			}
			return nil, c.transportErr("read stream", err)
		}
		var ev anthEvent
		if err := json.Unmarshal(data, &ev); err != nil {
			return nil, &APIError{Provider: a.cfg.Name, Model: c.model, Type: "malformed_stream",
				Message: fmt.Sprintf("decode %s event: %v", name, err)}
		}
		if ev.Type == "" {
			ev.Type = name
		}
		switch ev.Type {
		case "message_start":
			u := ev.Message.Usage
			resp.Usage.InputTokens = u.InputTokens + u.CacheCreationInputTokens + u.CacheReadInputTokens
			resp.Usage.OutputTokens = u.OutputTokens
			if ev.Message.Model != "" {
				resp.Model = ev.Message.Model
			}
		case "content_block_start":
			b := &anthBlock{}
			switch ev.ContentBlock.Type {
			case "text":
				b.part = Part{Type: PartText, Text: ev.ContentBlock.Text}
			case "tool_use":
				b.part = Part{Type: PartToolUse, ID: ev.ContentBlock.ID, Name: ev.ContentBlock.Name}
				p := b.part
				on(StreamEvent{Kind: StreamToolStart, Index: ev.Index, Part: &p})
			default:
				continue // thinking and other block types are not kept
			}
			blocks[ev.Index] = b
		case "content_block_delta":
			b := blocks[ev.Index]
			if b == nil {
				continue
			}
			switch ev.Delta.Type {
			case "text_delta":
				b.part.Text += ev.Delta.Text
				on(StreamEvent{Kind: StreamText, Index: ev.Index, Text: ev.Delta.Text})
			case "input_json_delta":
				b.input = append(b.input, ev.Delta.PartialJSON...)
				on(StreamEvent{Kind: StreamToolDelta, Index: ev.Index, Text: ev.Delta.PartialJSON})
			}
		case "content_block_stop":
		case "message_delta":
			if ev.Delta.StopReason != "" {
				resp.StopReason = anthStop(ev.Delta.StopReason)
			}
			if ev.Usage != nil {
				resp.Usage.OutputTokens = ev.Usage.OutputTokens
				if in := ev.Usage.InputTokens + ev.Usage.CacheCreationInputTokens + ev.Usage.CacheReadInputTokens; in > 0 {
					resp.Usage.InputTokens = in
				}
			}
		case "message_stop":
			idx := make([]int, 0, len(blocks))
			for i := range blocks {
				idx = append(idx, i)
			}
			sort.Ints(idx)
			resp.Message.Role = RoleAssistant
			for _, i := range idx {
				b := blocks[i]
				if b.part.Type == PartToolUse {
					b.part.Input = normalizeInput(b.input)
				}
				resp.Message.Parts = append(resp.Message.Parts, b.part)
			}
			if resp.StopReason == "" {
				resp.StopReason = StopEndTurn
			}
			c.drain()
			return resp, nil
		case "error":
			ae := &APIError{Provider: a.cfg.Name, Model: c.model}
			if ev.Error != nil {
				ae.Type, ae.Message = ev.Error.Type, scrub(ev.Error.Message, key)
			}
			return nil, ae
		}
	}
}

func anthStop(s string) StopReason {
	switch s {
	case "end_turn", "pause_turn":
		return StopEndTurn
	case "tool_use":
		return StopToolUse
	case "max_tokens", "model_context_window_exceeded":
		return StopMaxTokens
	case "stop_sequence":
		return StopSequence
	case "refusal":
		return StopRefusal
	}
	return StopOther
}
