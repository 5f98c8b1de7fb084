package workspace

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/bulkhead-dev/bulkhead/agent/llmtest"
)

// A run indexes the workspace's MEMORY.md first, so memory_search finds
// what the file says.
func TestRunIndexesMemoryFiles(t *testing.T) {
	llm := llmtest.Start(t)
	f := newAgentFixture(t, t.TempDir(), llm)
	createAgentWorkspace(t, f.s, "alice")
	if err := os.WriteFile(filepath.Join(f.s.FilesDir("alice"), "MEMORY.md"), []byte("# Notes\n\nThe staging database is called heron.\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	llm.Push(llmtest.ToolCall("c1", "memory_search", `{"query":"staging database"}`), llmtest.Text("it is heron"))
	r, err := f.s.StartRun(context.Background(), "alice", RunRequest{Message: "what is the staging database called?"})
	if err != nil {
		t.Fatal(err)
	}
	if got := wait(t, f.s, "alice", r.ID); got.Status != RunSucceeded {
		t.Fatalf("run: %+v", got)
	}
	reqs := llm.Requests()
	if len(reqs) < 2 || !bytes.Contains(reqs[len(reqs)-1].Body, []byte("heron")) {
		t.Fatal("memory_search did not return what MEMORY.md says")
	}
}
