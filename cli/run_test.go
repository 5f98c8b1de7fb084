package cli

import (
	"context"
	"encoding/json"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bulkhead-dev/bulkhead/agent/llmtest"
	"github.com/bulkhead-dev/bulkhead/netguard"
	"github.com/bulkhead-dev/bulkhead/workspace"
)

func agentSetup(t *testing.T) (*llmtest.Server, string) {
	setup(t)
	llm := llmtest.Start(t)
	t.Setenv("OPENAI_BASE_URL", llm.URL+"/v1")
	t.Setenv("OPENAI_API_KEY", llmtest.Key)
	if r := run(t, "", "workspace", "create", "alice", "--set", "provider=openai", "--set", "model=m1"); r.code != 0 {
		t.Fatalf("create: %+v", r)
	}
	u, _ := url.Parse(llm.URL)
	return llm, u.Host
}

// bulkhead run streams text and tool activity, records the session, and
// exits non-zero when the run fails; session list/show/rm see it.
func TestRunAndSessionCommands(t *testing.T) {
	llm, host := agentSetup(t)
	llm.Push(llmtest.ToolCall("c1", "write_file", `{"path":"a.txt","content":"x"}`), llmtest.Text("all done"))
	r := run(t, "", "run", "alice", "write a.txt", "--session", "s1", "--allow-endpoint", host)
	if r.code != 0 || !strings.Contains(r.stdout, "all done") || !strings.Contains(r.stderr, "→ write_file") || !strings.Contains(r.stderr, "succeeded") {
		t.Fatalf("run: %+v", r)
	}
	if r := run(t, "", "session", "list", "alice"); r.code != 0 || !strings.Contains(r.stdout, "session:s1") {
		t.Fatalf("session list: %+v", r)
	}
	if r := run(t, "", "session", "show", "alice", "s1"); r.code != 0 || !strings.Contains(r.stdout, "assistant: all done") || !strings.Contains(r.stdout, "write_file") {
		t.Fatalf("session show: %+v", r)
	}
	// --json: one event per line.
	llm.Push(llmtest.Text("again"))
	r = run(t, "", "run", "alice", "hi", "--session", "s1", "--json", "--allow-endpoint", host)
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	var last workspace.RunEvent
	if r.code != 0 || json.Unmarshal([]byte(lines[len(lines)-1]), &last) != nil || last.Kind != "run_end" {
		t.Fatalf("run --json: %+v", r)
	}
	// A failing model: non-zero exit with the reason.
	llm.Push(llmtest.Fail(llmtest.InvalidKey))
	if r := run(t, "", "run", "alice", "hi", "--allow-endpoint", host); r.code != 1 || !strings.Contains(r.stderr, "failed") {
		t.Fatalf("failed run: %+v", r)
	}
	// Bad input.
	for _, args := range [][]string{
		{"run", "alice", " "},
		{"run", "alice", "hi", "--session", "../x"},
		{"run", "alice", "hi", "--model", "other", "--allow-endpoint", host},
		{"session", "show", "alice", "bad kind:x"},
	} {
		if r := run(t, "", args...); r.code != 2 {
			t.Errorf("%v: %+v", args, r)
		}
	}
	if r := run(t, "", "session", "rm", "alice", "s1"); r.code != 0 {
		t.Fatalf("session rm: %+v", r)
	}
	if r := run(t, "", "session", "show", "alice", "s1"); r.code != 1 || !strings.Contains(r.stderr, "session not found") {
		t.Fatalf("removed session: %+v", r)
	}
}

// Through a running server: the run happens in the server and the CLI
// follows it over the socket.
func TestRunThroughServer(t *testing.T) {
	llm, host := agentSetup(t)
	dir := os.Getenv("BULKHEAD_STATE_DIR")
	svc, err := workspace.Open(context.Background(), workspace.Options{StateDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer svc.Close()
	g, _ := netguard.New(netguard.Config{Allow: []string{host}})
	svc.SetAgentOptions(workspace.AgentOptions{Guard: g})
	defer svc.StopRuns()
	defer serveSocket(t, svc)()
	llm.Push(llmtest.Reply{Blocks: []llmtest.Block{{Text: "streamed through the socket"}}, Chunk: 4})
	r := run(t, "", "run", "alice", "hi", "--session", "web")
	if r.code != 0 || !strings.Contains(r.stdout, "streamed through the socket") {
		t.Fatalf("run via socket: %+v", r)
	}
	if r := run(t, "", "session", "show", "alice", "web", "--json"); r.code != 0 || !strings.Contains(r.stdout, "streamed through the socket") {
		t.Fatalf("session via socket: %+v", r)
	}
	_ = filepath.Join
}

func TestSkillCommands(t *testing.T) {
	setup(t)
	if r := run(t, "", "workspace", "create", "alice"); r.code != 0 {
		t.Fatalf("create: %+v", r)
	}
	src := filepath.Join(t.TempDir(), "hello")
	os.MkdirAll(src, 0o755)
	os.WriteFile(filepath.Join(src, "SKILL.md"), []byte("---\nname: hello\ndescription: says hello\ncredentials: hello_token\n---\n"), 0o644)
	os.WriteFile(filepath.Join(src, "run"), []byte("#!/bin/sh\necho hello\n"), 0o755)
	if r := run(t, "", "skill", "add", src); r.code != 0 || !strings.Contains(r.stdout, "added skill hello") {
		t.Fatalf("add: %+v", r)
	}
	if r := run(t, "", "skill", "enable", "alice", "hello"); r.code != 0 || !strings.Contains(r.stderr, "hello_token") {
		t.Fatalf("enable: %+v", r)
	}
	if r := run(t, "", "skill", "list", "alice"); r.code != 0 || !strings.Contains(r.stdout, "hello") || !strings.Contains(r.stdout, "true") {
		t.Fatalf("list: %+v", r)
	}
	if r := run(t, "", "skill", "disable", "alice", "hello"); r.code != 0 {
		t.Fatalf("disable: %+v", r)
	}
	if r := run(t, "", "skill", "rm", "hello"); r.code != 0 {
		t.Fatalf("rm: %+v", r)
	}
	bad := filepath.Join(t.TempDir(), "bad")
	os.MkdirAll(bad, 0o755)
	os.WriteFile(filepath.Join(bad, "SKILL.md"), []byte("---\nname: bad\ndescription: d\ncredentials: openai_api_key\n---\n"), 0o644)
	if r := run(t, "", "skill", "add", bad); r.code != 2 || !strings.Contains(r.stderr, "model provider key") {
		t.Fatalf("skill asking for the provider key: %+v", r)
	}
}
