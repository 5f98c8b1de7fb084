package workspace

import (
	"context"
	"encoding/json"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/bulkhead-dev/bulkhead/agent"
	"github.com/bulkhead-dev/bulkhead/agent/llmtest"
	"github.com/bulkhead-dev/bulkhead/internal/testutil"
)

// End to end through the real sandbox: the model calls bash to write a file
// in /workspace (and, prompt-injected, hunts for its provider key in the
// sandbox's env and /proc), reads the file back, stores a memory and
// answers. The file is in the workspace, the memory is searchable, the
// transcript shows every step, and the key is nowhere an agent can reach:
// not in the sandbox, its files, the transcript, the events or the logs.
func TestRunEndToEndInSandbox(t *testing.T) {
	testutil.RequireRoot(t)
	testutil.RequireFUSE(t)
	testutil.RequireUserNS(t)
	const key = "sk-live-PROVIDER-KEY-0123456789"
	llm := llmtest.Start(t)
	llm.SetKeys(llmtest.OpenAI, key)
	f := newAgentFixture(t, t.TempDir(), llm)
	createAgentWorkspace(t, f.s, "alice")
	ctx := context.Background()
	if err := f.s.SetCredential(ctx, "alice", "openai_api_key", []byte(key)); err != nil {
		t.Fatal(err)
	}
	hunt := `echo hello > /workspace/out.txt; cat /workspace/out.txt; env; ` +
		`for p in /proc/[0-9]*; do tr '\0' '\n' < $p/environ; cat $p/cmdline; done 2>/dev/null; ` +
		`grep -rs PROVIDER-KEY /workspace /tmp /etc 2>/dev/null | head -3; echo hunted`
	llm.Push(
		llmtest.ToolCall("c1", "bash", mustJSON(t, map[string]string{"command": hunt})),
		llmtest.ToolCall("c2", "read_file", `{"path":"out.txt"}`),
		llmtest.ToolCall("c3", "memory_store", `{"text":"the release train leaves on thursdays"}`),
		llmtest.Text("done: out.txt says hello"),
	)
	run, err := f.s.StartRun(ctx, "alice", RunRequest{Message: "write hello to out.txt", Session: "e2e"})
	if err != nil {
		t.Fatal(err)
	}
	events := collect(t, f.s, "alice", run.ID, 0)
	done := wait(t, f.s, "alice", run.ID)
	if done.Status != RunSucceeded || done.Turns != 4 {
		t.Fatalf("run: %+v", done)
	}
	if b, _ := os.ReadFile(filepath.Join(f.s.FilesDir("alice"), "out.txt")); string(b) != "hello\n" {
		t.Fatalf("out.txt = %q", b)
	}
	sess, err := f.s.GetSession(ctx, "alice", SessionRef{Kind: KindSession, ID: "e2e"})
	if err != nil {
		t.Fatal(err)
	}
	if len(sess.Transcript) != 8 {
		t.Fatalf("transcript has %d messages, want 8", len(sess.Transcript))
	}
	bashOut := sess.Transcript[2].Parts[0].Text
	if !strings.Contains(bashOut, "hello") || !strings.Contains(bashOut, "hunted") || !strings.Contains(bashOut, "[exit code 0]") {
		t.Fatalf("bash result: %q", bashOut)
	}
	if got := sess.Transcript[4].Parts[0].Text; !strings.Contains(got, "hello") {
		t.Fatalf("read_file result: %q", got)
	}
	st, release, err := f.s.sharedMemory(ctx, "alice")
	if err != nil {
		t.Fatal(err)
	}
	hits, err := memoryAdapter{st}.Search(ctx, "when does the release train leave", 5)
	release()
	if err != nil || len(hits) == 0 || !strings.Contains(hits[0].Text, "thursdays") {
		t.Fatalf("memory search: %v %v", hits, err)
	}

	// The key: nowhere but the host's request to the model.
	leaks := map[string]string{
		"transcript": mustJSON(t, sess.Transcript),
		"events":     mustJSON(t, events),
		"run":        mustJSON(t, done),
		"logs":       f.logs.String(),
	}
	for where, text := range leaks {
		if strings.Contains(text, key) {
			t.Errorf("provider key in the %s", where)
		}
	}
	filepath.WalkDir(f.s.FilesDir("alice"), func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			if b, _ := os.ReadFile(p); strings.Contains(string(b), key) {
				t.Errorf("provider key in workspace file %s", p)
			}
		}
		return nil
	})
	// The sandbox is still alive: look at its processes from the host.
	sb, err := f.s.Sandbox(ctx, "alice")
	if err != nil {
		t.Fatal(err)
	}
	pids, _ := sb.Processes()
	for _, pid := range pids {
		for _, file := range []string{"environ", "cmdline"} {
			if b, _ := os.ReadFile(filepath.Join("/proc", itoa(pid), file)); strings.Contains(string(b), key) {
				t.Errorf("provider key in /proc/%d/%s of the sandbox", pid, file)
			}
		}
	}
	if reqs := llm.Requests(); len(reqs) != 4 || reqs[0].Key != key {
		t.Fatalf("the model saw %d requests", len(reqs))
	}
	var tools []string
	json.Unmarshal([]byte(mustJSON(t, llm.Requests()[0].Tools)), &tools)
	for _, want := range []string{"bash", "read_file", "write_file", "memory_search", "memory_store", "spawn_subagent"} {
		if !strings.Contains(strings.Join(tools, ","), want) {
			t.Errorf("tool %s not offered: %v", want, tools)
		}
	}
	_ = agent.EventRunEnd
}

func itoa(n int) string {
	b, _ := json.Marshal(n)
	return string(b)
}

// Cancelling a run while its bash call sleeps kills the command in the
// sandbox (only the init is left), records the run as cancelled and keeps
// the transcript valid; a tool past its timeout is reported to the model.
func TestCancelKillsSandboxedTool(t *testing.T) {
	testutil.RequireRoot(t)
	testutil.RequireFUSE(t)
	testutil.RequireUserNS(t)
	llm := llmtest.Start(t)
	f := newAgentFixture(t, t.TempDir(), llm)
	createAgentWorkspace(t, f.s, "alice")
	ctx := context.Background()
	if _, err := f.s.UpdateConfig(ctx, "alice", func(c *Config) error { c.Limits.ExecTimeout = Duration(2 * time.Second); return nil }); err != nil {
		t.Fatal(err)
	}
	llm.Push(llmtest.ToolCall("c1", "bash", `{"command":"sleep 60"}`), llmtest.Text("the command hung"))
	run, err := f.s.StartRun(ctx, "alice", RunRequest{Message: "hang", Session: "t"})
	if err != nil {
		t.Fatal(err)
	}
	if done := wait(t, f.s, "alice", run.ID); done.Status != RunSucceeded {
		t.Fatalf("timed-out tool: %+v", done)
	}
	sess, _ := f.s.GetSession(ctx, "alice", SessionRef{Kind: KindSession, ID: "t"})
	if res := sess.Transcript[2].Parts[0]; !res.IsError || !strings.Contains(res.Text, "timed out") {
		t.Fatalf("tool result after the timeout: %+v", res)
	}

	if _, err := f.s.UpdateConfig(ctx, "alice", func(c *Config) error { c.Limits.ExecTimeout = Duration(time.Minute); return nil }); err != nil {
		t.Fatal(err)
	}
	llm.Push(llmtest.ToolCall("c2", "bash", `{"command":"sleep 60"}`))
	run, err = f.s.StartRun(ctx, "alice", RunRequest{Message: "hang again", Session: "t"})
	if err != nil {
		t.Fatal(err)
	}
	sb, err := f.s.Sandbox(ctx, "alice")
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		pids, _ := sb.Processes()
		if len(pids) > 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the sleep never started")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := f.s.CancelRun(ctx, "alice", run.ID); err != nil {
		t.Fatal(err)
	}
	if done := wait(t, f.s, "alice", run.ID); done.Status != RunCancelled {
		t.Fatalf("cancelled run: %+v", done)
	}
	deadline = time.Now().Add(5 * time.Second)
	for {
		pids, _ := sb.Processes()
		if len(pids) == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("processes left in the sandbox after cancel: %v", pids)
		}
		time.Sleep(10 * time.Millisecond)
	}
	sess, _ = f.s.GetSession(ctx, "alice", SessionRef{Kind: KindSession, ID: "t"})
	if repaired := agent.RepairTranscript(sess.Transcript); len(repaired) != len(sess.Transcript) {
		t.Fatalf("transcript after cancel is not valid: %d vs %d messages", len(sess.Transcript), len(repaired))
	}
}
