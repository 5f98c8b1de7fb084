package llmtest

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
)

// parseRequest decodes and validates a request body. It returns a non-empty
// message (the provider's 400 text) when the request is invalid.
func parseRequest(p Protocol, r *http.Request, key string, body []byte) (*Request, string) {
	req := &Request{Protocol: p, Path: r.URL.Path, Key: key, Header: r.Header.Clone(), Body: body}
	if p == Anthropic {
		return req, parseAnthropic(req, body)
	}
	return req, parseOpenAI(req, body)
}

type anthropicReq struct {
	Model     string          `json:"model"`
	MaxTokens *int            `json:"max_tokens"`
	System    json.RawMessage `json:"system"`
	Messages  []struct {
		Role    string          `json:"role"`
		Content json.RawMessage `json:"content"`
	} `json:"messages"`
	Tools []struct {
		Name string `json:"name"`
	} `json:"tools"`
	Stream bool `json:"stream"`
}

type anthropicBlock struct {
	Type      string `json:"type"`
	Text      string `json:"text"`
	ID        string `json:"id"`
	Name      string `json:"name"`
	ToolUseID string `json:"tool_use_id"`
}

func parseAnthropic(req *Request, body []byte) string {
	var in anthropicReq
	if err := json.Unmarshal(body, &in); err != nil {
		return "There was an error parsing the body of your request: " + err.Error()
	}
	if in.Model == "" {
		return "model: Field required"
	}
	if in.MaxTokens == nil {
		return "max_tokens: Field required"
	}
	if len(in.Messages) == 0 {
		return "messages: at least one message is required"
	}
	req.Model, req.Stream = in.Model, in.Stream
	if len(in.System) > 0 && string(in.System) != "null" {
		var s string
		if json.Unmarshal(in.System, &s) == nil {
			req.System = s
		} else {
			var blocks []anthropicBlock
			if err := json.Unmarshal(in.System, &blocks); err != nil {
				return "system: Input should be a valid string or list of text blocks"
			}
			var parts []string
			for _, b := range blocks {
				parts = append(parts, b.Text)
			}
			req.System = strings.Join(parts, "\n")
		}
	}
	for _, t := range in.Tools {
		req.Tools = append(req.Tools, t.Name)
	}
	var pending []string // tool_use ids of the previous assistant message
	for i, m := range in.Messages {
		raw, _ := json.Marshal(m)
		req.Messages = append(req.Messages, raw)
		if m.Role != "user" && m.Role != "assistant" {
			return fmt.Sprintf("messages.%d.role: Input should be 'user' or 'assistant'", i)
		}
		var blocks []anthropicBlock
		var s string
		if json.Unmarshal(m.Content, &s) != nil {
			if err := json.Unmarshal(m.Content, &blocks); err != nil {
				return fmt.Sprintf("messages.%d.content: Input should be a valid list", i)
			}
		}
		answered := map[string]bool{}
		for j, b := range blocks {
			if b.Type == "tool_result" {
				if m.Role != "user" || !contains(pending, b.ToolUseID) {
					return fmt.Sprintf("messages.%d.content.%d: unexpected `tool_use_id` found in `tool_result` blocks: %s. Each `tool_result` block must have a corresponding `tool_use` block in the previous message.", i, j, b.ToolUseID)
				}
				answered[b.ToolUseID] = true
			}
		}
		var missing []string
		for _, id := range pending {
			if !answered[id] {
				missing = append(missing, id)
			}
		}
		if len(missing) > 0 {
			return fmt.Sprintf("messages.%d: `tool_use` ids were found without `tool_result` blocks immediately after: %s. Each `tool_use` block must have a corresponding `tool_result` block in the next message.", i-1, strings.Join(missing, ", "))
		}
		pending = nil
		if m.Role == "assistant" {
			for _, b := range blocks {
				if b.Type == "tool_use" {
					pending = append(pending, b.ID)
				}
			}
		}
	}
	if len(pending) > 0 {
		return fmt.Sprintf("messages.%d: `tool_use` ids were found without `tool_result` blocks immediately after: %s. Each `tool_use` block must have a corresponding `tool_result` block in the next message.", len(in.Messages)-1, strings.Join(pending, ", "))
	}
	return ""
}

type openaiReq struct {
	Model    string `json:"model"`
	Messages []struct {
		Role      string          `json:"role"`
		Content   json.RawMessage `json:"content"`
		ToolCalls []struct {
			ID       string `json:"id"`
			Type     string `json:"type"`
			Function struct {
				Name      string          `json:"name"`
				Arguments json.RawMessage `json:"arguments"`
			} `json:"function"`
		} `json:"tool_calls"`
		ToolCallID string `json:"tool_call_id"`
	} `json:"messages"`
	Tools []struct {
		Type     string `json:"type"`
		Function struct {
			Name string `json:"name"`
		} `json:"function"`
	} `json:"tools"`
	Stream        bool `json:"stream"`
	StreamOptions *struct {
		IncludeUsage bool `json:"include_usage"`
	} `json:"stream_options"`
}

func parseOpenAI(req *Request, body []byte) string {
	var in openaiReq
	if err := json.Unmarshal(body, &in); err != nil {
		return "We could not parse the JSON body of your request. (HINT: This likely means you aren't using your HTTP library correctly. The OpenAI API expects a JSON payload, but what was sent was not valid JSON.)"
	}
	if in.Model == "" {
		return "you must provide a model parameter"
	}
	if len(in.Messages) == 0 {
		return "[] is too short - 'messages'"
	}
	req.Model, req.Stream = in.Model, in.Stream
	req.IncludeUsage = in.StreamOptions != nil && in.StreamOptions.IncludeUsage
	if in.StreamOptions != nil && !in.Stream {
		return "The 'stream_options' parameter is only allowed when 'stream' is enabled."
	}
	for _, t := range in.Tools {
		req.Tools = append(req.Tools, t.Function.Name)
	}
	var sys []string
	var pending []string
	for i, m := range in.Messages {
		if m.Role == "tool" {
			if !contains(pending, m.ToolCallID) {
				return "Invalid parameter: messages with role 'tool' must be a response to a preceeding message with 'tool_calls'."
			}
			pending = remove(pending, m.ToolCallID)
		} else if len(pending) > 0 {
			return "An assistant message with 'tool_calls' must be followed by tool messages responding to each 'tool_call_id'. The following tool_call_ids did not have response messages: " + strings.Join(pending, ", ")
		}
		switch m.Role {
		case "system", "developer":
			var s string
			if err := json.Unmarshal(m.Content, &s); err != nil {
				return fmt.Sprintf("Invalid type for 'messages[%d].content': expected a string.", i)
			}
			sys = append(sys, s)
			continue
		case "assistant":
			for j, tc := range m.ToolCalls {
				var args string
				if err := json.Unmarshal(tc.Function.Arguments, &args); err != nil {
					return fmt.Sprintf("Invalid type for 'messages[%d].tool_calls[%d].function.arguments': expected a string, but got an object instead.", i, j)
				}
				pending = append(pending, tc.ID)
			}
		case "user", "tool":
		default:
			return fmt.Sprintf("Invalid value: '%s'. Supported values are: 'system', 'assistant', 'user', 'function', 'tool', and 'developer'.", m.Role)
		}
		raw, _ := json.Marshal(m)
		req.Messages = append(req.Messages, raw)
	}
	if len(pending) > 0 {
		return "An assistant message with 'tool_calls' must be followed by tool messages responding to each 'tool_call_id'. The following tool_call_ids did not have response messages: " + strings.Join(pending, ", ")
	}
	req.System = strings.Join(sys, "\n")
	return ""
}

func contains(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

func remove(s []string, v string) []string {
	out := s[:0:0]
	for _, x := range s {
		if x != v {
			out = append(out, x)
		}
	}
	return out
}
