package llmtest

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
)

type errorSpec struct {
	status int
	typ    string // Anthropic error.type / OpenAI error.type
	code   string // OpenAI error.code ("" = null)
	param  string // OpenAI error.param ("" = null)
	msg    string
}

// anthropicError is the status and body Anthropic sends for kind.
func anthropicError(kind ErrorKind, model string) errorSpec {
	switch kind {
	case RateLimited:
		return errorSpec{429, "rate_limit_error", "", "", "This request would exceed the rate limit for your organization of 50 requests per minute. For details, refer to: https://docs.claude.com/en/api/rate-limits. You can see the response headers for current usage. Please reduce the prompt length or the maximum tokens requested, or try again later."}
	case Overloaded:
		return errorSpec{529, "overloaded_error", "", "", "Overloaded"}
	case Unavailable:
		return errorSpec{503, "api_error", "", "", "Service Unavailable"}
	case ServerError:
		return errorSpec{500, "api_error", "", "", "Internal server error"}
	case ContextOverflow:
		return errorSpec{400, "invalid_request_error", "", "", "prompt is too long: 208310 tokens > 200000 maximum"}
	case InvalidKey:
		return errorSpec{401, "authentication_error", "", "", "invalid x-api-key"}
	case PermissionDenied:
		return errorSpec{403, "permission_error", "", "", "Your API key does not have permission to use the specified resource."}
	case Billing:
		return errorSpec{400, "invalid_request_error", "", "", "Your credit balance is too low to access the Anthropic API. Please go to Plans & Billing to upgrade or purchase credits."}
	case ModelNotFound:
		return errorSpec{404, "not_found_error", "", "", "model: " + model}
	default:
		return errorSpec{400, "invalid_request_error", "", "", "Invalid request"}
	}
}

// openaiError is the status and body OpenAI sends for kind.
func openaiError(kind ErrorKind, model string) errorSpec {
	switch kind {
	case RateLimited:
		return errorSpec{429, "requests", "rate_limit_exceeded", "", fmt.Sprintf("Rate limit reached for %s in organization org-llmtest on requests per min (RPM): Limit 3, Used 3, Requested 1. Please try again in 20s. Visit https://platform.openai.com/account/rate-limits to learn more.", model)}
	case Overloaded:
		return errorSpec{503, "server_error", "", "", "The engine is currently overloaded, please try again later."}
	case Unavailable:
		return errorSpec{503, "server_error", "", "", "The server is overloaded or not ready yet."}
	case ServerError:
		return errorSpec{500, "server_error", "", "", "The server had an error while processing your request. Sorry about that!"}
	case ContextOverflow:
		return errorSpec{400, "invalid_request_error", "context_length_exceeded", "messages", "This model's maximum context length is 128000 tokens. However, your messages resulted in 131072 tokens. Please reduce the length of the messages."}
	case InvalidKey:
		return errorSpec{401, "invalid_request_error", "invalid_api_key", "", "Incorrect API key provided: sk-llmt*****-key. You can find your API key at https://platform.openai.com/account/api-keys."}
	case PermissionDenied:
		return errorSpec{401, "invalid_request_error", "", "", "You have insufficient permissions for this operation. Missing scopes: model.request. Check that you have the correct role in your organization (Reader, Writer, Owner) and project (Member, Owner), and if you're using a restricted API key, that it has the necessary scopes."}
	case Billing:
		return errorSpec{429, "insufficient_quota", "insufficient_quota", "", "You exceeded your current quota, please check your plan and billing details. For more information on this error, read the docs: https://platform.openai.com/docs/guides/error-codes/api-errors."}
	case ModelNotFound:
		return errorSpec{404, "invalid_request_error", "model_not_found", "", fmt.Sprintf("The model `%s` does not exist or you do not have access to it.", model)}
	default:
		return errorSpec{400, "invalid_request_error", "", "", "Invalid request"}
	}
}

func specFor(p Protocol, e *Error, model string) errorSpec {
	var sp errorSpec
	if p == Anthropic {
		sp = anthropicError(e.Kind, model)
	} else {
		sp = openaiError(e.Kind, model)
	}
	if e.Message != "" {
		sp.msg = e.Message
	}
	return sp
}

func anthropicErrorBody(sp errorSpec) string {
	return mustJSON(map[string]any{
		"type":       "error",
		"error":      map[string]any{"type": sp.typ, "message": sp.msg},
		"request_id": "req_llmtest",
	})
}

func openaiErrorBody(sp errorSpec) string {
	nullable := func(s string) any {
		if s == "" {
			return nil
		}
		return s
	}
	return mustJSON(map[string]any{"error": map[string]any{
		"message": sp.msg, "type": sp.typ, "param": nullable(sp.param), "code": nullable(sp.code),
	}})
}

func writeError(w http.ResponseWriter, p Protocol, e *Error, model string) {
	sp := specFor(p, e, model)
	if e.RetryAfter != "" {
		w.Header().Set("Retry-After", e.RetryAfter)
	}
	if e.RetryAfterMS != "" {
		w.Header().Set("retry-after-ms", e.RetryAfterMS)
	}
	w.Header().Set("Content-Type", "application/json")
	var body string
	if p == Anthropic {
		w.Header().Set("request-id", "req_llmtest")
		body = anthropicErrorBody(sp)
	} else {
		body = openaiErrorBody(sp)
	}
	w.WriteHeader(sp.status)
	_, _ = w.Write([]byte(body))
}

func outputTokens(r Reply) int {
	if r.Usage.OutputTokens > 0 {
		return r.Usage.OutputTokens
	}
	n := 0
	for _, b := range r.Blocks {
		n += len(b.Text) + len(b.ToolInput) + len(b.ToolName)
	}
	return n/4 + 1
}

func inputTokens(r Reply) int {
	if r.Usage.InputTokens > 0 {
		return r.Usage.InputTokens
	}
	return 10
}

func toolID(p Protocol, b Block, i int) string {
	if b.ToolID != "" {
		return b.ToolID
	}
	if p == Anthropic {
		return fmt.Sprintf("toolu_llmtest_%d", i)
	}
	return fmt.Sprintf("call_llmtest_%d", i)
}

func sse(event, data string) string {
	if event == "" {
		return "data: " + data + "\n\n"
	}
	return "event: " + event + "\ndata: " + data + "\n\n"
}

// anthropicEvents renders a reply as a Messages API event stream.
func anthropicEvents(id, model string, r Reply) []string {
	stop := r.StopReason
	if stop == "" {
		stop = "end_turn"
		if hasTool(r) {
			stop = "tool_use"
		}
	}
	ev := []string{
		sse("message_start", mustJSON(map[string]any{"type": "message_start", "message": map[string]any{
			"id": "msg_llmtest_" + id, "type": "message", "role": "assistant", "model": model,
			"content": []any{}, "stop_reason": nil, "stop_sequence": nil,
			"usage": map[string]any{"input_tokens": inputTokens(r), "output_tokens": 1},
		}})),
		sse("ping", `{"type": "ping"}`),
	}
	if r.Err != nil {
		sp := specFor(Anthropic, r.Err, model)
		return append(ev, sse("error", mustJSON(map[string]any{"type": "error", "error": map[string]any{"type": sp.typ, "message": sp.msg}})))
	}
	for i, b := range r.Blocks {
		if b.ToolName != "" {
			ev = append(ev, sse("content_block_start", mustJSON(map[string]any{"type": "content_block_start", "index": i,
				"content_block": map[string]any{"type": "tool_use", "id": toolID(Anthropic, b, i), "name": b.ToolName, "input": map[string]any{}}})))
			for _, frag := range split(b.ToolInput, r.Chunk) {
				ev = append(ev, sse("content_block_delta", mustJSON(map[string]any{"type": "content_block_delta", "index": i,
					"delta": map[string]any{"type": "input_json_delta", "partial_json": frag}})))
			}
		} else {
			ev = append(ev, sse("content_block_start", mustJSON(map[string]any{"type": "content_block_start", "index": i,
				"content_block": map[string]any{"type": "text", "text": ""}})))
			for _, frag := range split(b.Text, r.Chunk) {
				ev = append(ev, sse("content_block_delta", mustJSON(map[string]any{"type": "content_block_delta", "index": i,
					"delta": map[string]any{"type": "text_delta", "text": frag}})))
			}
		}
		ev = append(ev, sse("content_block_stop", mustJSON(map[string]any{"type": "content_block_stop", "index": i})))
	}
	ev = append(ev,
		sse("message_delta", mustJSON(map[string]any{"type": "message_delta",
			"delta": map[string]any{"stop_reason": stop, "stop_sequence": nil},
			"usage": map[string]any{"output_tokens": outputTokens(r)}})),
		sse("message_stop", `{"type":"message_stop"}`),
	)
	return ev
}

// anthropicMessage renders a reply as a non-streaming Messages API response.
func anthropicMessage(id, model string, r Reply) string {
	stop := r.StopReason
	if stop == "" {
		stop = "end_turn"
		if hasTool(r) {
			stop = "tool_use"
		}
	}
	content := []any{}
	for i, b := range r.Blocks {
		if b.ToolName != "" {
			content = append(content, map[string]any{"type": "tool_use", "id": toolID(Anthropic, b, i), "name": b.ToolName, "input": rawOrString(b.ToolInput)})
		} else {
			content = append(content, map[string]any{"type": "text", "text": b.Text})
		}
	}
	return mustJSON(map[string]any{"id": "msg_llmtest_" + id, "type": "message", "role": "assistant", "model": model,
		"content": content, "stop_reason": stop, "stop_sequence": nil,
		"usage": map[string]any{"input_tokens": inputTokens(r), "output_tokens": outputTokens(r)}})
}

type rawJSON string

func (r rawJSON) MarshalJSON() ([]byte, error) { return []byte(r), nil }

func rawOrString(s string) any {
	if strings.TrimSpace(s) == "" {
		return map[string]any{}
	}
	if isJSON(s) {
		return rawJSON(s)
	}
	return s
}

// openaiEvents renders a reply as a Chat Completions chunk stream.
func openaiEvents(id, model string, r Reply, includeUsage bool) []string {
	base := func(choices []any) map[string]any {
		return map[string]any{"id": "chatcmpl-llmtest" + id, "object": "chat.completion.chunk", "created": 1700000000,
			"model": model, "system_fingerprint": "fp_llmtest", "choices": choices}
	}
	chunk := func(delta map[string]any, finish any) string {
		return sse("", mustJSON(base([]any{map[string]any{"index": 0, "delta": delta, "logprobs": nil, "finish_reason": finish}})))
	}
	ev := []string{chunk(map[string]any{"role": "assistant", "content": "", "refusal": nil}, nil)}
	if r.Err != nil {
		sp := specFor(OpenAI, r.Err, model)
		return append(ev, sse("", openaiErrorBody(sp)))
	}
	toolIndex := 0
	for i, b := range r.Blocks {
		if b.ToolName == "" {
			for _, frag := range split(b.Text, r.Chunk) {
				ev = append(ev, chunk(map[string]any{"content": frag}, nil))
			}
			continue
		}
		ev = append(ev, chunk(map[string]any{"tool_calls": []any{map[string]any{"index": toolIndex, "id": toolID(OpenAI, b, i), "type": "function",
			"function": map[string]any{"name": b.ToolName, "arguments": ""}}}}, nil))
		for _, frag := range split(b.ToolInput, r.Chunk) {
			ev = append(ev, chunk(map[string]any{"tool_calls": []any{map[string]any{"index": toolIndex,
				"function": map[string]any{"arguments": frag}}}}, nil))
		}
		toolIndex++
	}
	finish := r.StopReason
	if finish == "" {
		finish = "stop"
		if hasTool(r) {
			finish = "tool_calls"
		}
	}
	ev = append(ev, chunk(map[string]any{}, finish))
	if includeUsage {
		u := base([]any{})
		in, out := inputTokens(r), outputTokens(r)
		u["usage"] = map[string]any{"prompt_tokens": in, "completion_tokens": out, "total_tokens": in + out}
		ev = append(ev, sse("", mustJSON(u)))
	}
	return append(ev, "data: [DONE]\n\n")
}

// openaiMessage renders a reply as a non-streaming chat completion.
func openaiMessage(id, model string, r Reply) string {
	var text strings.Builder
	var calls []any
	for i, b := range r.Blocks {
		if b.ToolName == "" {
			text.WriteString(b.Text)
			continue
		}
		calls = append(calls, map[string]any{"id": toolID(OpenAI, b, i), "type": "function",
			"function": map[string]any{"name": b.ToolName, "arguments": b.ToolInput}})
	}
	finish := r.StopReason
	if finish == "" {
		finish = "stop"
		if hasTool(r) {
			finish = "tool_calls"
		}
	}
	msg := map[string]any{"role": "assistant", "content": text.String(), "refusal": nil}
	if text.Len() == 0 && len(calls) > 0 {
		msg["content"] = nil
	}
	if len(calls) > 0 {
		msg["tool_calls"] = calls
	}
	in, out := inputTokens(r), outputTokens(r)
	return mustJSON(map[string]any{"id": "chatcmpl-llmtest" + id, "object": "chat.completion", "created": 1700000000, "model": model,
		"choices": []any{map[string]any{"index": 0, "message": msg, "logprobs": nil, "finish_reason": finish}},
		"usage":   map[string]any{"prompt_tokens": in, "completion_tokens": out, "total_tokens": in + out}})
}

func isJSON(s string) bool { return json.Valid([]byte(s)) }
