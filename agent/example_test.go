package agent_test

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/bulkhead-dev/bulkhead/agent"
	"github.com/bulkhead-dev/bulkhead/agent/llmtest"
)

// A run with one tool call against the loopback model server.
func ExampleRunner() {
	srv := llmtest.New()
	defer srv.Close()
	srv.Push(llmtest.ToolCall("t1", "add", `{"a":2,"b":3}`), llmtest.Text("2 + 3 = 5"))

	provider := agent.NewAnthropic(agent.AnthropicConfig{BaseURL: srv.URL, HTTPClient: srv.Client()})
	chain, err := agent.NewChain(agent.ChainConfig{
		Candidates: []agent.Candidate{{Provider: provider, Model: "claude-test", ContextWindow: 200_000}},
		Keys:       map[string]*agent.KeyPool{"anthropic": agent.NewKeyPool("anthropic", agent.NewSecret(llmtest.Key))},
	})
	if err != nil {
		panic(err)
	}
	add := agent.FuncTool{
		ToolName:   "add",
		ToolSchema: json.RawMessage(`{"type":"object","properties":{"a":{"type":"number"},"b":{"type":"number"}}}`),
		Fn: func(ctx context.Context, args json.RawMessage) (string, error) {
			var in struct{ A, B float64 }
			if err := json.Unmarshal(args, &in); err != nil {
				return "", err
			}
			return fmt.Sprint(in.A + in.B), nil
		},
	}
	tools, _ := agent.NewRegistry(add)
	runner, _ := agent.NewRunner(agent.RunnerConfig{Model: chain, Tools: tools, System: "You add numbers."})

	res, err := runner.Run(context.Background(), agent.RunInput{
		Message: "what is 2 + 3?",
		OnEvent: func(ev agent.Event) {
			if ev.Kind == agent.EventToolResult {
				fmt.Printf("tool %s -> %s\n", ev.Tool.Name, ev.Result.Output)
			}
		},
	})
	if err != nil {
		panic(err)
	}
	fmt.Println(res.Text, "| turns:", res.Turns)
	// Output:
	// tool add -> 5
	// 2 + 3 = 5 | turns: 2
}
