package agent

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"testing"
	"time"
)

func fakeCall(body []byte) *call {
	c := &call{provider: "fuzz", model: "m", idle: time.Minute,
		resp: &http.Response{Body: io.NopCloser(bytes.NewReader(body))}}
	c.ctx, c.cancel = context.WithCancelCause(context.Background())
	c.timer = time.AfterFunc(time.Minute, func() { c.cancel(errIdle) })
	return c
}

// FuzzStreamDecoders feeds arbitrary bytes to both stream decoders: they
// must not panic, and a stream they accept must yield a message whose tool
// inputs are valid JSON (the transcript must always encode).
func FuzzStreamDecoders(f *testing.F) {
	f.Add([]byte("event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"usage\":{\"input_tokens\":3}}}\n\n" +
		"event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"tool_use\",\"id\":\"t\",\"name\":\"x\"}}\n\n" +
		"event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\"{\\\"a\\\":\"}}\n\n" +
		"event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n"))
	f.Add([]byte("data: {\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"id\":\"c\",\"function\":{\"name\":\"x\",\"arguments\":\"{\\\"a\"}}]}}]}\n\n" +
		"data: {\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"tool_calls\"}]}\n\ndata: [DONE]\n\n"))
	f.Add([]byte("data: {\"error\":{\"message\":\"x\"}}\r\n\r\n"))
	f.Add([]byte(": comment\nevent: ping\ndata: {}\n\n"))
	a := NewAnthropic(AnthropicConfig{})
	o := NewOpenAI(OpenAIConfig{})
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, read := range []func(*call) (*Response, error){
			func(c *call) (*Response, error) { return a.read(c, Secret{}, func(StreamEvent) {}) },
			func(c *call) (*Response, error) { return o.read(c, Secret{}, func(StreamEvent) {}) },
		} {
			c := fakeCall(data)
			resp, err := read(c)
			c.close()
			if err != nil {
				continue
			}
			for _, p := range resp.Message.Parts {
				if p.Type == PartToolUse && !json.Valid(p.Input) {
					t.Fatalf("invalid tool input %q", p.Input)
				}
			}
			if _, err := json.Marshal(resp.Message); err != nil {
				t.Fatalf("message does not encode: %v", err)
			}
		}
	})
}
