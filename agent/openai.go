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

// OpenAIConfig configures the OpenAI Chat Completions adapter. The same
// adapter serves every compatible endpoint (Groq, Cerebras, Mistral, xAI,
// OpenRouter, Ollama, vLLM, Gemini's OpenAI endpoint) by BaseURL and Name.
type OpenAIConfig struct {
	// Name is the provider name for key pools and cooldowns; default "openai".
	Name string
	// BaseURL is the API root including /v1; default https://api.openai.com/v1.
	BaseURL string
	// HTTPClient sends the requests; the wiring passes the SSRF-guarded
	// client here. Default http.DefaultClient. Its transport is used as is;
	// redirects are always refused (see noRedirects).
	HTTPClient *http.Client
	// MaxTokensField is the request field for the output limit:
	// "max_completion_tokens" (OpenAI's current name, default) or
	// "max_tokens" (what most compatible servers read).
	MaxTokensField string
	// NoStreamUsage leaves out stream_options.include_usage for servers that
	// reject it.
	NoStreamUsage bool
	// IdleTimeout: see DefaultIdleTimeout.
	IdleTimeout time.Duration
}

// OpenAI is a Provider for the Chat Completions API with SSE streaming.
type OpenAI struct{ cfg OpenAIConfig }

// NewOpenAI returns an OpenAI-compatible adapter.
func NewOpenAI(cfg OpenAIConfig) *OpenAI {
	if cfg.Name == "" {
		cfg.Name = "openai"
	}
	if cfg.BaseURL == "" {
		cfg.BaseURL = "https://api.openai.com/v1"
	}
	cfg.BaseURL = strings.TrimRight(cfg.BaseURL, "/")
	if cfg.MaxTokensField == "" {
		cfg.MaxTokensField = "max_completion_tokens"
	}
	cfg.HTTPClient = noRedirects(cfg.HTTPClient)
	return &OpenAI{cfg: cfg}
}

// Name implements Provider.
func (o *OpenAI) Name() string { return o.cfg.Name }

type oaiFunction struct {
	Name      string `json:"name"`
	Arguments string `json:"arguments"`
}

type oaiToolCall struct {
	ID       string      `json:"id"`
	Type     string      `json:"type"`
	Function oaiFunction `json:"function"`
}

type oaiMessage struct {
	Role       string        `json:"role"`
	Content    *string       `json:"content"`
	ToolCalls  []oaiToolCall `json:"tool_calls,omitempty"`
	ToolCallID string        `json:"tool_call_id,omitempty"`
}

type oaiTool struct {
	Type     string `json:"type"`
	Function struct {
		Name        string          `json:"name"`
		Description string          `json:"description,omitempty"`
		Parameters  json.RawMessage `json:"parameters"`
	} `json:"function"`
}

func strp(s string) *string { return &s }

func (o *OpenAI) encode(req *Request) ([]byte, error) {
	msgs := make([]oaiMessage, 0, len(req.Messages)+1)
	if req.System != "" {
		msgs = append(msgs, oaiMessage{Role: "system", Content: strp(req.System)})
	}
	for _, m := range req.Messages {
		var text strings.Builder
		var calls []oaiToolCall
		for _, p := range m.Parts {
			switch p.Type {
			case PartText:
				text.WriteString(p.Text)
			case PartToolUse:
				calls = append(calls, oaiToolCall{ID: p.ID, Type: "function", Function: oaiFunction{Name: p.Name, Arguments: argumentsText(p.Input)}})
			case PartToolResult:
				msgs = append(msgs, oaiMessage{Role: "tool", ToolCallID: p.ID, Content: strp(p.Text)})
			}
		}
		switch {
		case m.Role == RoleAssistant:
			om := oaiMessage{Role: "assistant", ToolCalls: calls}
			if text.Len() > 0 || len(calls) == 0 {
				om.Content = strp(text.String())
			}
			msgs = append(msgs, om)
		case text.Len() > 0:
			msgs = append(msgs, oaiMessage{Role: "user", Content: strp(text.String())})
		}
	}
	body := map[string]any{"model": req.Model, "messages": msgs, "stream": true}
	if !o.cfg.NoStreamUsage {
		body["stream_options"] = map[string]bool{"include_usage": true}
	}
	if req.MaxTokens > 0 {
		body[o.cfg.MaxTokensField] = req.MaxTokens
	}
	if len(req.Tools) > 0 {
		tools := make([]oaiTool, len(req.Tools))
		for i, t := range req.Tools {
			tools[i].Type = "function"
			tools[i].Function.Name = t.Name
			tools[i].Function.Description = t.Description
			tools[i].Function.Parameters = t.Schema
			if len(t.Schema) == 0 {
				tools[i].Function.Parameters = json.RawMessage(`{"type":"object"}`)
			}
		}
		body["tools"] = tools
	}
	return json.Marshal(body)
}

// argumentsText turns a Part's Input back into the arguments string: a JSON
// string value (malformed arguments kept verbatim) is unquoted.
func argumentsText(in json.RawMessage) string {
	if len(in) == 0 {
		return "{}"
	}
	if in[0] == '"' {
		var s string
		if json.Unmarshal(in, &s) == nil {
			return s
		}
	}
	return string(in)
}

// Stream implements Provider.
func (o *OpenAI) Stream(ctx context.Context, key Secret, req *Request, on func(StreamEvent)) (*Response, error) {
	if on == nil {
		on = func(StreamEvent) {}
	}
	body, err := o.encode(req)
	if err != nil {
		return nil, fmt.Errorf("%s: encode request: %w", o.cfg.Name, err)
	}
	hdr := http.Header{}
	hdr.Set("Content-Type", "application/json")
	hdr.Set("Accept", "text/event-stream")
	if !key.Empty() {
		hdr.Set("Authorization", "Bearer "+key.Reveal())
	}
	c, err := startCall(ctx, o.cfg.HTTPClient, o.cfg.Name, req.Model, o.cfg.BaseURL+"/chat/completions", hdr, body, key, o.cfg.IdleTimeout)
	if err != nil {
		return nil, err
	}
	defer c.close()
	return o.read(c, key, on)
}

type oaiChunk struct {
	Model   string `json:"model"`
	Choices []struct {
		Index int `json:"index"`
		Delta struct {
			Content   *string `json:"content"`
			ToolCalls []struct {
				Index    int    `json:"index"`
				ID       string `json:"id"`
				Function struct {
					Name      string `json:"name"`
					Arguments string `json:"arguments"`
				} `json:"function"`
			} `json:"tool_calls"`
		} `json:"delta"`
		FinishReason *string `json:"finish_reason"`
	} `json:"choices"`
	Usage *struct {
		PromptTokens     int `json:"prompt_tokens"`
		CompletionTokens int `json:"completion_tokens"`
	} `json:"usage"`
	Error json.RawMessage `json:"error"`
}

type oaiCall struct {
	part    Part
	args    []byte
	started bool
}

func (o *OpenAI) read(c *call, key Secret, on func(StreamEvent)) (*Response, error) {
	sr := newSSEReader(c.reader())
	resp := &Response{Model: c.model}
	var text strings.Builder
	calls := map[int]*oaiCall{}
	finished := false
	finish := func() (*Response, error) {
		resp.Message.Role = RoleAssistant
		if text.Len() > 0 {
			resp.Message.Parts = append(resp.Message.Parts, Part{Type: PartText, Text: text.String()})
		}
		idx := make([]int, 0, len(calls))
		for i := range calls {
			idx = append(idx, i)
		}
		sort.Ints(idx)
		for _, i := range idx {
			tc := calls[i]
			if tc.part.ID == "" {
				tc.part.ID = fmt.Sprintf("call_%d", i)
			}
			tc.part.Input = normalizeInput(tc.args)
			resp.Message.Parts = append(resp.Message.Parts, tc.part)
		}
		if resp.StopReason == "" {
			resp.StopReason = StopEndTurn
		}
		if resp.StopReason == StopEndTurn && len(calls) > 0 {
			resp.StopReason = StopToolUse
		}
		return resp, nil
	}
	for {
		_, data, err := sr.next()
		if err != nil {
			if errors.Is(err, io.EOF) {
				if finished {
					return finish()
				}
				err = ErrStreamIncomplete
			}
			return nil, c.transportErr("read stream", err)
		}
		if string(data) == "[DONE]" {
			if !finished && text.Len() == 0 && len(calls) == 0 {
				return nil, c.transportErr("read stream", ErrStreamIncomplete)
			}
			c.drain()
			return finish()
		}
		var ch oaiChunk
		if err := json.Unmarshal(data, &ch); err != nil {
			return nil, &APIError{Provider: o.cfg.Name, Model: c.model, Type: "malformed_stream", Message: fmt.Sprintf("decode chunk: %v", err)}
		}
		if len(ch.Error) > 0 && string(ch.Error) != "null" {
			ae := &APIError{Provider: o.cfg.Name, Model: c.model}
			ae.fillFromBody(append(append([]byte(`{"error":`), ch.Error...), '}'), key)
			return nil, ae
		}
		if ch.Model != "" {
			resp.Model = ch.Model
		}
		if ch.Usage != nil {
			resp.Usage = Usage{InputTokens: ch.Usage.PromptTokens, OutputTokens: ch.Usage.CompletionTokens}
		}
		for _, choice := range ch.Choices {
			if choice.Index != 0 {
				continue
			}
			if d := choice.Delta.Content; d != nil && *d != "" {
				text.WriteString(*d)
				on(StreamEvent{Kind: StreamText, Text: *d})
			}
			for _, tc := range choice.Delta.ToolCalls {
				st := calls[tc.Index]
				if st == nil {
					st = &oaiCall{part: Part{Type: PartToolUse}}
					calls[tc.Index] = st
				}
				if tc.ID != "" {
					st.part.ID = tc.ID
				}
				if tc.Function.Name != "" && st.part.Name == "" {
					st.part.Name = tc.Function.Name
				}
				if !st.started && st.part.Name != "" {
					st.started = true
					p := st.part
					on(StreamEvent{Kind: StreamToolStart, Index: tc.Index, Part: &p})
				}
				if tc.Function.Arguments != "" {
					st.args = append(st.args, tc.Function.Arguments...)
					on(StreamEvent{Kind: StreamToolDelta, Index: tc.Index, Text: tc.Function.Arguments})
				}
			}
			if choice.FinishReason != nil && *choice.FinishReason != "" {
				finished = true
				resp.StopReason = oaiStop(*choice.FinishReason)
			}
		}
	}
}

func oaiStop(s string) StopReason {
	switch s {
	case "stop":
		return StopEndTurn
	case "tool_calls", "function_call":
		return StopToolUse
	case "length":
		return StopMaxTokens
	case "content_filter":
		return StopRefusal
	}
	return StopOther
}
