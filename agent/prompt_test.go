package agent

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"testing/fstest"
	"unicode/utf8"

	"github.com/bulkhead-dev/bulkhead/agent/llmtest"
)

func TestTruncateMiddle(t *testing.T) {
	s := strings.Repeat("é", 1000) // 2000 bytes
	for _, max := range []int{100, 301, 999, 1500} {
		out := TruncateMiddle(s, max, "X")
		if len(out) > max || !utf8.ValidString(out) || !strings.Contains(out, "bytes of X truncated") {
			t.Fatalf("max %d: len %d valid %v: %q", max, len(out), utf8.ValidString(out), out)
		}
		if !strings.HasPrefix(out, "é") || !strings.HasSuffix(out, "é") {
			t.Fatalf("max %d: head or tail lost", max)
		}
	}
	if TruncateMiddle("short", 10, "X") != "short" {
		t.Fatal("short string changed")
	}
}

func TestBuildSystemPromptCaps(t *testing.T) {
	fsys := fstest.MapFS{
		"SOUL.md":     {Data: []byte("SOUL-START " + strings.Repeat("s", 5000) + " SOUL-END")},
		"IDENTITY.md": {Data: []byte("I am Bulk.")},
		"TOOLS.md":    {Data: []byte(strings.Repeat("t", 3000))},
		"USER.md":     {Data: []byte(strings.Repeat("u", 3000))},
		"MEMORY.md":   {Data: []byte("remember this")},
		"OTHER.md":    {Data: []byte("not a bootstrap file")},
	}
	files, err := LoadBootstrap(fsys)
	if err != nil {
		t.Fatal(err)
	}
	if len(files) != 5 || files[0].Name != "SOUL.md" || files[1].Name != "IDENTITY.md" || files[2].Name != "TOOLS.md" {
		t.Fatalf("files %v", files)
	}
	p := BuildSystemPrompt(PromptInput{
		Base: "You are an agent.", Files: files, Workspace: "workspace alice",
		Skills: []SkillInfo{{Name: "weather", Description: "get the weather"}},
	}, PromptConfig{PerFileMax: 2000, TotalMax: 5000})
	for _, want := range []string{"You are an agent.", "## SOUL.md", "SOUL-START", "SOUL-END", "bytes of SOUL.md truncated",
		"I am Bulk.", "## Workspace\nworkspace alice", "- weather: get the weather"} {
		if !strings.Contains(p, want) {
			t.Fatalf("prompt lacks %q:\n%s", want, p)
		}
	}
	if strings.Contains(p, "not a bootstrap file") {
		t.Fatal("non-bootstrap file included")
	}
	// The total cap: SOUL 2000 + IDENTITY + TOOLS 2000 leave < 1000 for
	// USER, and nothing for MEMORY.
	if !strings.Contains(p, "bytes of USER.md truncated") || !strings.Contains(p, "[MEMORY.md omitted") {
		t.Fatalf("total cap not applied:\n%s", p)
	}
	if len(p) > 5000+600 {
		t.Fatalf("prompt %d bytes", len(p))
	}
}

func TestSystemPromptReachesModel(t *testing.T) {
	files := []BootstrapFile{{Name: "SOUL.md", Content: "You love tidy code."}}
	sys := BuildSystemPrompt(PromptInput{Base: "Base.", Files: files}, PromptConfig{})
	for _, pc := range protos {
		e := newRunEnv(t, pc.proto, func(c *RunnerConfig) { c.System = sys })
		e.srv.Push(llmtest.Text("ok"))
		if _, err := e.run(context.Background(), "hi"); err != nil {
			t.Fatal(err)
		}
		if got := e.srv.Requests()[0].System; got != sys || !strings.Contains(got, "You love tidy code.") {
			t.Fatalf("%s: system %q", pc.name, got)
		}
	}
}

type fakeExec struct {
	got Command
	res CommandResult
	err error
}

func (f *fakeExec) Exec(_ context.Context, c Command) (CommandResult, error) {
	f.got = c
	return f.res, f.err
}

func TestBashToolGoesThroughExecutor(t *testing.T) {
	fe := &fakeExec{res: CommandResult{Stdout: []byte("hello\n"), Stderr: []byte("warn"), ExitCode: 3}}
	tool := BashTool(fe, 0, 0)
	out, err := tool.Call(context.Background(), json.RawMessage(`{"command":"echo hello; exit 3"}`))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(fe.got.Args, " ") != "bash -c echo hello; exit 3" || out != "hello\n[stderr]\nwarn\n[exit code 3]" {
		t.Fatalf("args %q out %q", fe.got.Args, out)
	}
	if _, err := tool.Call(context.Background(), json.RawMessage(`{"command":"  "}`)); err == nil {
		t.Fatal("empty command accepted")
	}
	fe.err = errors.New("sandbox gone")
	if _, err := tool.Call(context.Background(), json.RawMessage(`{"command":"ls"}`)); err == nil {
		t.Fatal("executor error swallowed")
	}
}

type fakeMemory struct {
	stored []string
}

func (m *fakeMemory) Search(_ context.Context, q string, limit int) ([]MemoryHit, error) {
	var out []MemoryHit
	for _, s := range m.stored {
		if strings.Contains(s, q) && len(out) < limit {
			out = append(out, MemoryHit{Text: s, Score: 1})
		}
	}
	return out, nil
}

func (m *fakeMemory) Store(_ context.Context, text string, _ []string) error {
	m.stored = append(m.stored, text)
	return nil
}

func TestMemoryToolsInARun(t *testing.T) {
	mem := &fakeMemory{}
	e := newRunEnv(t, llmtest.OpenAI, nil, MemoryTools(mem)...)
	e.srv.Push(
		llmtest.ToolCall("m1", "memory_store", `{"text":"the deploy key lives in vault"}`),
		llmtest.ToolCall("m2", "memory_search", `{"query":"deploy key"}`),
		llmtest.Text("It is in vault."))
	res, err := e.run(context.Background(), "remember and recall")
	if err != nil {
		t.Fatal(err)
	}
	if len(mem.stored) != 1 || !strings.Contains(res.Transcript[4].Parts[0].Text, "lives in vault") {
		t.Fatalf("stored %v transcript %+v", mem.stored, res.Transcript[4])
	}
}

func TestReplayFillsInterruptedToolCalls(t *testing.T) {
	asst := Message{Role: RoleAssistant, Parts: []Part{{Type: PartToolUse, ID: "a", Name: "x", Input: json.RawMessage(`{}`)}, {Type: PartToolUse, ID: "b", Name: "x", Input: json.RawMessage(`{}`)}}}
	user := UserText("go")
	done := Part{Type: PartToolResult, ID: "a", Text: "ok"}
	// A crash after the first tool result was journaled.
	entries := []Entry{{Kind: EntryRunStart}, {Kind: EntryMessage, Message: &user}, {Kind: EntryMessage, Message: &asst}, {Kind: EntryToolResult, Part: &done}}
	msgs := Replay([]Message{UserText("earlier")}, entries)
	if len(msgs) != 4 {
		t.Fatalf("%d messages", len(msgs))
	}
	last := msgs[3].Parts
	if len(last) != 2 || last[0].Text != "ok" || last[1].ID != "b" || !last[1].IsError {
		t.Fatalf("results %+v", last)
	}
}

func TestMemJournalOrder(t *testing.T) {
	j := NewMemJournal()
	ctx := context.Background()
	if err := j.Append(ctx, Entry{RunID: "r", Seq: 2}); err == nil {
		t.Fatal("gap accepted")
	}
	for i := uint64(1); i <= 3; i++ {
		if err := j.Append(ctx, Entry{RunID: "r", Seq: i}); err != nil {
			t.Fatal(err)
		}
	}
	es, _ := j.Read(ctx, "r", 1)
	if len(es) != 2 || es[0].Seq != 2 {
		t.Fatalf("%+v", es)
	}
}

func TestRegistryRejectsBadTools(t *testing.T) {
	ok := FuncTool{ToolName: "ok", ToolSchema: json.RawMessage(`{"type":"object"}`)}
	for _, bad := range []Tool{
		FuncTool{ToolName: "has space"},
		FuncTool{ToolName: strings.Repeat("a", 65)},
		FuncTool{ToolName: "s", ToolSchema: json.RawMessage(`[1]`)},
	} {
		if _, err := NewRegistry(bad); err == nil {
			t.Fatalf("accepted %q", bad.Name())
		}
	}
	if _, err := NewRegistry(ok, ok); err == nil {
		t.Fatal("duplicate accepted")
	}
}

// History with a dangling tool call (a crash between steps) and an orphan
// tool result is repaired before it is sent, so the API accepts the request.
func TestRunRepairsBrokenHistory(t *testing.T) {
	for _, pc := range protos {
		e := newRunEnv(t, pc.proto, nil)
		e.srv.Push(llmtest.Text("fine"))
		history := []Message{
			UserText("first"),
			{Role: RoleAssistant, Parts: []Part{{Type: PartToolUse, ID: "lost", Name: "echo", Input: json.RawMessage(`{}`)}}},
			// no tool result: the process died here
			{Role: RoleAssistant, Parts: []Part{{Type: PartText, Text: "resumed"}}},
			{Role: RoleUser, Parts: []Part{{Type: PartToolResult, ID: "orphan", Text: "x"}, {Type: PartText, Text: "and then"}}},
			{Role: RoleAssistant, Parts: []Part{{Type: PartToolUse, ID: "last", Name: "echo", Input: json.RawMessage(`{}`)}}},
		}
		res, err := e.runner.Run(context.Background(), RunInput{History: history, Message: "continue"})
		if err != nil {
			t.Fatalf("%s: %v", pc.name, err)
		}
		if res.Text != "fine" || strings.Contains(string(e.srv.Requests()[0].Body), "orphan") {
			t.Fatalf("%s: %s", pc.name, e.srv.Requests()[0].Body)
		}
	}
}

type fakeSkills struct {
	got []string
}

func (f *fakeSkills) RunSkill(_ context.Context, skill string, params json.RawMessage) (string, error) {
	f.got = append(f.got, skill+" "+string(params))
	return "sunny, 21C", nil
}

func TestSkillToolInARun(t *testing.T) {
	sk := &fakeSkills{}
	tool := SkillTool(SkillInfo{Name: "weather", Description: "current weather"}, nil, sk)
	e := newRunEnv(t, llmtest.OpenAI, nil, tool)
	e.srv.Push(llmtest.ToolCall("s", "skill_weather", `{"city":"Lisbon"}`), llmtest.Text("Sunny."))
	res, err := e.run(context.Background(), "weather?")
	if err != nil {
		t.Fatal(err)
	}
	if len(sk.got) != 1 || sk.got[0] != `weather {"city":"Lisbon"}` || res.Transcript[2].Parts[0].Text != "sunny, 21C" {
		t.Fatalf("%v %+v", sk.got, res.Transcript[2])
	}
	if tools := e.srv.Requests()[0].Tools; !strings.Contains(strings.Join(tools, ","), "skill_weather") {
		t.Fatalf("tools offered %v", tools)
	}
}
