package llmtest

import (
	"bufio"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

func post(t *testing.T, s *Server, path string, hdr map[string]string, body string) *http.Response {
	t.Helper()
	req, err := http.NewRequest("POST", s.URL+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := s.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	return resp
}

var anthropicHdr = map[string]string{"x-api-key": Key, "anthropic-version": AnthropicVersion, "content-type": "application/json"}
var openaiHdr = map[string]string{"Authorization": "Bearer " + Key, "content-type": "application/json"}

const anthropicBody = `{"model":"claude-test","max_tokens":100,"stream":true,"system":"be brief","messages":[{"role":"user","content":"hi"}],"tools":[{"name":"bash","input_schema":{"type":"object"}}]}`
const openaiBody = `{"model":"gpt-test","stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"system","content":"be brief"},{"role":"user","content":"hi"}],"tools":[{"type":"function","function":{"name":"bash","parameters":{"type":"object"}}}]}`

type sseEvent struct{ name, data string }

func readSSE(t *testing.T, r io.Reader) []sseEvent {
	t.Helper()
	var out []sseEvent
	sc := bufio.NewScanner(r)
	var cur sseEvent
	for sc.Scan() {
		line := sc.Text()
		switch {
		case line == "":
			if cur.data != "" {
				out = append(out, cur)
			}
			cur = sseEvent{}
		case strings.HasPrefix(line, "event: "):
			cur.name = line[7:]
		case strings.HasPrefix(line, "data: "):
			cur.data = line[6:]
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatalf("read stream: %v", err)
	}
	return out
}

func TestAnthropicStreamShape(t *testing.T) {
	s := Start(t)
	s.Push(Reply{Blocks: []Block{{Text: "héllo wörld"}, {ToolID: "toolu_1", ToolName: "bash", ToolInput: `{"cmd":"ls -la"}`}}, Chunk: 3, WriteSize: 1})
	resp := post(t, s, "/v1/messages", anthropicHdr, anthropicBody)
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
		t.Fatalf("status %d type %q", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	evs := readSSE(t, resp.Body)
	var names []string
	var text, args, stop string
	for _, e := range evs {
		names = append(names, e.name)
		var v struct {
			Type  string `json:"type"`
			Delta struct {
				Type        string `json:"type"`
				Text        string `json:"text"`
				PartialJSON string `json:"partial_json"`
				StopReason  string `json:"stop_reason"`
			} `json:"delta"`
		}
		if err := json.Unmarshal([]byte(e.data), &v); err != nil {
			t.Fatalf("event %s: %v: %s", e.name, err, e.data)
		}
		if v.Type != e.name {
			t.Errorf("event name %q, data type %q", e.name, v.Type)
		}
		text += v.Delta.Text
		args += v.Delta.PartialJSON
		if v.Delta.StopReason != "" {
			stop = v.Delta.StopReason
		}
	}
	if text != "héllo wörld" || args != `{"cmd":"ls -la"}` || stop != "tool_use" {
		t.Fatalf("text %q args %q stop %q", text, args, stop)
	}
	if names[0] != "message_start" || names[1] != "ping" || names[len(names)-1] != "message_stop" || names[len(names)-2] != "message_delta" {
		t.Fatalf("event order %v", names)
	}
	reqs := s.Requests()
	if len(reqs) != 1 || reqs[0].System != "be brief" || reqs[0].Model != "claude-test" || reqs[0].Tools[0] != "bash" || reqs[0].Key != Key {
		t.Fatalf("recorded %+v", reqs)
	}
}

func TestOpenAIStreamShape(t *testing.T) {
	s := Start(t)
	s.Push(Reply{Blocks: []Block{{Text: "hello"}, {ToolName: "bash", ToolInput: `{"cmd":"ls"}`}}, Chunk: 2, Usage: Usage{InputTokens: 7, OutputTokens: 3}})
	resp := post(t, s, "/v1/chat/completions", openaiHdr, openaiBody)
	evs := readSSE(t, resp.Body)
	if evs[len(evs)-1].data != "[DONE]" {
		t.Fatalf("last event %q", evs[len(evs)-1].data)
	}
	var text, args, finish string
	var usage int
	for _, e := range evs[:len(evs)-1] {
		var v struct {
			Choices []struct {
				Delta struct {
					Content   string `json:"content"`
					ToolCalls []struct {
						Index    int `json:"index"`
						Function struct {
							Arguments string `json:"arguments"`
						} `json:"function"`
					} `json:"tool_calls"`
				} `json:"delta"`
				FinishReason *string `json:"finish_reason"`
			} `json:"choices"`
			Usage *struct {
				Total int `json:"total_tokens"`
			} `json:"usage"`
		}
		if err := json.Unmarshal([]byte(e.data), &v); err != nil {
			t.Fatal(err)
		}
		for _, c := range v.Choices {
			text += c.Delta.Content
			for _, tc := range c.Delta.ToolCalls {
				args += tc.Function.Arguments
			}
			if c.FinishReason != nil {
				finish = *c.FinishReason
			}
		}
		if v.Usage != nil {
			usage = v.Usage.Total
		}
	}
	if text != "hello" || args != `{"cmd":"ls"}` || finish != "tool_calls" || usage != 10 {
		t.Fatalf("text %q args %q finish %q usage %d", text, args, finish, usage)
	}
	if r := s.Requests()[0]; r.System != "be brief" || len(r.Messages) != 1 || !r.IncludeUsage {
		t.Fatalf("recorded %+v", r)
	}
}

func TestAuthChecked(t *testing.T) {
	s := Start(t)
	s.Push(Text("never"))
	cases := []struct {
		path string
		hdr  map[string]string
		body string
		want int
		msg  string
	}{
		{"/v1/messages", map[string]string{"x-api-key": "wrong", "anthropic-version": AnthropicVersion}, anthropicBody, 401, "authentication_error"},
		{"/v1/messages", map[string]string{"x-api-key": Key}, anthropicBody, 400, "anthropic-version"},
		{"/v1/messages", map[string]string{"Authorization": "Bearer " + Key, "anthropic-version": AnthropicVersion}, anthropicBody, 401, "invalid x-api-key"},
		{"/v1/chat/completions", map[string]string{"Authorization": "Bearer nope"}, openaiBody, 401, "invalid_api_key"},
		{"/v1/chat/completions", map[string]string{"x-api-key": Key}, openaiBody, 401, "invalid_api_key"},
	}
	for _, c := range cases {
		resp := post(t, s, c.path, c.hdr, c.body)
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != c.want || !strings.Contains(string(b), c.msg) {
			t.Errorf("%s %v: %d %s", c.path, c.hdr, resp.StatusCode, b)
		}
	}
	if s.Pending() != 1 || len(s.Requests()) != 0 {
		t.Fatalf("rejected requests consumed replies or were recorded")
	}
}

func TestErrorShapes(t *testing.T) {
	s := Start(t)
	kinds := []struct {
		kind         ErrorKind
		aStatus      int
		aType, oCode string
		oStatus      int
	}{
		{RateLimited, 429, "rate_limit_error", "rate_limit_exceeded", 429},
		{Overloaded, 529, "overloaded_error", "", 503},
		{ContextOverflow, 400, "invalid_request_error", "context_length_exceeded", 400},
		{ModelNotFound, 404, "not_found_error", "model_not_found", 404},
		{Billing, 400, "invalid_request_error", "insufficient_quota", 429},
	}
	for _, k := range kinds {
		s.Push(Reply{Err: &Error{Kind: k.kind, RetryAfter: "3"}}, Reply{Err: &Error{Kind: k.kind}})
		resp := post(t, s, "/v1/messages", anthropicHdr, anthropicBody)
		var a struct {
			Type  string `json:"type"`
			Error struct{ Type, Message string }
		}
		if err := json.NewDecoder(resp.Body).Decode(&a); err != nil {
			t.Fatal(err)
		}
		if resp.StatusCode != k.aStatus || a.Type != "error" || a.Error.Type != k.aType || a.Error.Message == "" || resp.Header.Get("Retry-After") != "3" {
			t.Errorf("anthropic %v: %d %+v", k.kind, resp.StatusCode, a)
		}
		resp = post(t, s, "/v1/chat/completions", openaiHdr, openaiBody)
		var o struct {
			Error struct {
				Message string
				Code    *string
			}
		}
		if err := json.NewDecoder(resp.Body).Decode(&o); err != nil {
			t.Fatal(err)
		}
		code := ""
		if o.Error.Code != nil {
			code = *o.Error.Code
		}
		if resp.StatusCode != k.oStatus || code != k.oCode || o.Error.Message == "" {
			t.Errorf("openai %v: %d %+v", k.kind, resp.StatusCode, o)
		}
	}
}

func TestMidStreamErrorAndDrop(t *testing.T) {
	s := Start(t)
	s.Push(Reply{Err: &Error{Kind: Overloaded, MidStream: true}})
	resp := post(t, s, "/v1/messages", anthropicHdr, anthropicBody)
	evs := readSSE(t, resp.Body)
	if last := evs[len(evs)-1]; resp.StatusCode != 200 || last.name != "error" || !strings.Contains(last.data, "overloaded_error") {
		t.Fatalf("mid-stream error: %d %+v", resp.StatusCode, evs)
	}

	s.Push(Reply{Blocks: []Block{{Text: "abcdefgh"}}, Chunk: 1, DropAfter: 4})
	resp = post(t, s, "/v1/chat/completions", openaiHdr, openaiBody)
	_, err := io.ReadAll(resp.Body)
	if !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("dropped stream read: %v", err)
	}
}

func TestSlowStream(t *testing.T) {
	s := Start(t)
	s.Push(Reply{Blocks: []Block{{Text: "abc"}}, Chunk: 1, Delay: 20 * time.Millisecond})
	start := time.Now()
	resp := post(t, s, "/v1/messages", anthropicHdr, anthropicBody)
	readSSE(t, resp.Body)
	if d := time.Since(start); d < 8*20*time.Millisecond {
		t.Fatalf("stream took %v, want >= 160ms", d)
	}
}

func TestToolPairingValidated(t *testing.T) {
	s := Start(t)
	bad := `{"model":"m","max_tokens":10,"messages":[{"role":"user","content":"hi"},{"role":"assistant","content":[{"type":"tool_use","id":"toolu_1","name":"bash","input":{}}]},{"role":"user","content":"no result"}]}`
	resp := post(t, s, "/v1/messages", anthropicHdr, bad)
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 400 || !strings.Contains(string(b), "without `tool_result`") {
		t.Fatalf("anthropic unpaired tool_use: %d %s", resp.StatusCode, b)
	}
	badO := `{"model":"m","messages":[{"role":"user","content":"hi"},{"role":"assistant","content":null,"tool_calls":[{"id":"call_1","type":"function","function":{"name":"bash","arguments":"{}"}}]},{"role":"user","content":"x"}]}`
	resp = post(t, s, "/v1/chat/completions", openaiHdr, badO)
	b, _ = io.ReadAll(resp.Body)
	if resp.StatusCode != 400 || !strings.Contains(string(b), "call_1") {
		t.Fatalf("openai unpaired tool call: %d %s", resp.StatusCode, b)
	}
}

func TestNonStreaming(t *testing.T) {
	s := Start(t)
	s.Push(ToolCall("toolu_9", "bash", `{"cmd":"ls"}`))
	resp := post(t, s, "/v1/messages", anthropicHdr, strings.Replace(anthropicBody, `"stream":true`, `"stream":false`, 1))
	var m struct {
		Content []struct {
			Type  string
			ID    string
			Input map[string]string
		}
		StopReason string `json:"stop_reason"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&m); err != nil {
		t.Fatal(err)
	}
	if m.StopReason != "tool_use" || m.Content[0].ID != "toolu_9" || m.Content[0].Input["cmd"] != "ls" {
		t.Fatalf("%+v", m)
	}
}
