package agent

import (
	"context"
	"strings"
	"testing"

	"github.com/bulkhead-dev/bulkhead/agent/llmtest"
)

func TestSubagentRunsAndReturns(t *testing.T) {
	e := newRunEnv(t, llmtest.Anthropic, nil)
	if err := e.runner.cfg.Tools.Add(SubagentTool(e.runner, SubagentLimits{})); err != nil {
		t.Fatal(err)
	}
	e.srv.Push(
		llmtest.ToolCall("s1", "spawn_subagent", `{"task":"CHILD-TASK count files"}`),
		llmtest.Text("child says 3 files"), // the child's only turn
		llmtest.Text("There are 3 files."),
	)
	res, err := e.run(context.Background(), "how many files?")
	if err != nil {
		t.Fatal(err)
	}
	if r := res.Transcript[2].Parts[0]; r.IsError || r.Text != "child says 3 files" || res.Text != "There are 3 files." {
		t.Fatalf("result %+v text %q", r, res.Text)
	}
	reqs := e.srv.Requests()
	if !strings.Contains(string(reqs[1].Body), "CHILD-TASK") || strings.Contains(string(reqs[1].Body), "how many files?") {
		t.Fatalf("child request: %s", reqs[1].Body)
	}
	// The child's events reach the parent's stream under the child's run id.
	childEvents := 0
	for _, ev := range e.events {
		if ev.RunID == "run1.sub1" {
			childEvents++
		}
	}
	if childEvents == 0 {
		t.Fatal("child events not forwarded")
	}
	// The child is journaled under its own run id.
	if es, _ := e.journal.Read(context.Background(), "run1.sub1", 0); len(es) == 0 {
		t.Fatal("child run not journaled")
	}
}

// A prompt-injected agent tries to fan out and to nest subagents past the
// limits; every call past them is refused before any model call.
func TestSubagentLimitsFromTheAttackersSide(t *testing.T) {
	e := newRunEnv(t, llmtest.Anthropic, nil)
	if err := e.runner.cfg.Tools.Add(SubagentTool(e.runner, SubagentLimits{MaxDepth: 1, MaxChildren: 2})); err != nil {
		t.Fatal(err)
	}
	// Turn 1 of the parent: three spawns at once (breadth 2).
	e.srv.Push(llmtest.Reply{Blocks: []llmtest.Block{
		{ToolID: "a", ToolName: "spawn_subagent", ToolInput: `{"task":"one"}`},
		{ToolID: "b", ToolName: "spawn_subagent", ToolInput: `{"task":"two"}`},
		{ToolID: "c", ToolName: "spawn_subagent", ToolInput: `{"task":"three","max_children":100}`},
	}})
	// Child 1 tries to nest (depth 1 forbids it), then answers.
	e.srv.Push(llmtest.ToolCall("n", "spawn_subagent", `{"task":"grandchild"}`), llmtest.Text("child one done"))
	// Child 2 answers.
	e.srv.Push(llmtest.Text("child two done"))
	// Parent's final turn.
	e.srv.Push(llmtest.Text("all done"))
	res, err := e.run(context.Background(), "fan out")
	if err != nil {
		t.Fatal(err)
	}
	results := res.Transcript[2].Parts
	if results[0].Text != "child one done" || results[1].Text != "child two done" {
		t.Fatalf("children: %+v", results)
	}
	if !results[2].IsError || !strings.Contains(results[2].Text, "at most 2 subagents") {
		t.Fatalf("third spawn not refused: %+v", results[2])
	}
	// The grandchild spawn was refused inside child 1.
	es, _ := e.journal.Read(context.Background(), "run1.sub1", 0)
	child := Replay(nil, es)
	if r := child[2].Parts[0]; !r.IsError || !strings.Contains(r.Text, "no deeper subagents") {
		t.Fatalf("nested spawn not refused: %+v", r)
	}
	if got := len(e.srv.Requests()); got != 5 {
		t.Fatalf("%d model calls, want 5 (refused spawns must not call the model)", got)
	}
}
