package agent

import (
	"context"
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bulkhead-dev/bulkhead/agent/llmtest"
)

// rootFiles is Files over os.Root (no policy; the policy tests use the
// real fusefs.Tree).
type rootFiles struct{ r *os.Root }

func (f rootFiles) ReadFile(rel string) ([]byte, error) { return f.r.ReadFile(rel) }
func (f rootFiles) WriteFile(rel string, b []byte, perm fs.FileMode) error {
	return f.r.WriteFile(rel, b, perm)
}
func (f rootFiles) MkdirAll(rel string, perm fs.FileMode) error { return f.r.MkdirAll(rel, perm) }
func (f rootFiles) Stat(rel string) (fs.FileInfo, error)        { return f.r.Stat(rel) }
func (f rootFiles) ReadDir(rel string) ([]fs.DirEntry, error)   { return fs.ReadDir(f.r.FS(), rel) }
func (f rootFiles) WalkDir(rel string, fn fs.WalkDirFunc) error { return fs.WalkDir(f.r.FS(), rel, fn) }

func fileToolMap(t *testing.T, files Files, lim FileToolLimits) map[string]Tool {
	t.Helper()
	m := map[string]Tool{}
	for _, tl := range FileTools(files, lim) {
		m[tl.Name()] = tl
	}
	return m
}

func callTool(t *testing.T, tools map[string]Tool, name, args string) (string, error) {
	t.Helper()
	return tools[name].Call(context.Background(), json.RawMessage(args))
}

func newRootFiles(t *testing.T) (string, Files) {
	dir := t.TempDir()
	r, err := os.OpenRoot(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return dir, rootFiles{r}
}

func TestToolPath(t *testing.T) {
	good := map[string]string{"": ".", ".": ".", "/workspace": ".", "/workspace/a/b": "a/b", "a/../b": "b", "./x/": "x"}
	for in, want := range good {
		if got, err := toolPath(in); err != nil || got != want {
			t.Errorf("%q: %q %v", in, got, err)
		}
	}
	for _, bad := range []string{"..", "../bob/files", "a/../../x", "/etc/passwd", "/workspace/../etc", "/workspaces/bob", "a\x00b"} {
		if _, err := toolPath(bad); !errors.Is(err, ErrBadPath) {
			t.Errorf("%q accepted", bad)
		}
	}
}

func TestFileTools(t *testing.T) {
	dir, files := newRootFiles(t)
	tools := fileToolMap(t, files, FileToolLimits{MaxEntries: 3})
	if out, err := callTool(t, tools, "write_file", `{"path":"/workspace/src/main.go","content":"package main\n\nfunc main() {\n\tprintln(\"hi\")\n}\n"}`); err != nil || !strings.Contains(out, "wrote") {
		t.Fatalf("write: %q %v", out, err)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "src/main.go")); !strings.Contains(string(b), "println") {
		t.Fatalf("file on disk: %q", b)
	}
	if out, _ := callTool(t, tools, "read_file", `{"path":"src/main.go","start_line":3,"end_line":4}`); out != "func main() {\n\tprintln(\"hi\")\n" {
		t.Fatalf("read range: %q", out)
	}
	if _, err := callTool(t, tools, "edit_file", `{"path":"src/main.go","old_text":"nothere","new_text":"x"}`); err == nil {
		t.Fatal("edit of missing text succeeded")
	}
	os.WriteFile(filepath.Join(dir, "dup.txt"), []byte("a a a"), 0o644)
	if _, err := callTool(t, tools, "edit_file", `{"path":"dup.txt","old_text":"a","new_text":"b"}`); err == nil || !strings.Contains(err.Error(), "3 times") {
		t.Fatalf("ambiguous edit: %v", err)
	}
	if _, err := callTool(t, tools, "edit_file", `{"path":"dup.txt","old_text":"a","new_text":"b","replace_all":true}`); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "dup.txt")); string(b) != "b b b" {
		t.Fatalf("replace_all: %q", b)
	}
	if _, err := callTool(t, tools, "edit_file", `{"path":"src/main.go","old_text":"\"hi\"","new_text":"\"bye\""}`); err != nil {
		t.Fatal(err)
	}
	os.MkdirAll(filepath.Join(dir, "src/deep/er"), 0o755)
	os.WriteFile(filepath.Join(dir, "src/deep/er/x.go"), []byte("package er // bye\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "bin.dat"), []byte("bye\x00\x01"), 0o644)
	if out, _ := callTool(t, tools, "list_dir", `{}`); out != "bin.dat\t5\ndup.txt\t5\nsrc/\n" {
		t.Fatalf("list: %q", out)
	}
	if out, _ := callTool(t, tools, "glob", `{"pattern":"**/*.go"}`); out != "src/deep/er/x.go\nsrc/main.go" {
		t.Fatalf("glob: %q", out)
	}
	if out, _ := callTool(t, tools, "glob", `{"pattern":"*.go","path":"src"}`); out != "src/main.go" {
		t.Fatalf("glob below path: %q", out)
	}
	if out, _ := callTool(t, tools, "grep", `{"pattern":"BYE","ignore_case":true,"glob":"**/*.go"}`); out != "src/deep/er/x.go:1:package er // bye\nsrc/main.go:4:\tprintln(\"bye\")\n" {
		t.Fatalf("grep: %q", out)
	}
	if out, _ := callTool(t, tools, "read_file", `{"path":"bin.dat"}`); !strings.Contains(out, "binary") {
		t.Fatalf("binary read: %q", out)
	}
	for i := range 5 {
		os.WriteFile(filepath.Join(dir, "many"+string(rune('a'+i))+".txt"), nil, 0o644)
	}
	if out, _ := callTool(t, tools, "glob", `{"pattern":"many*"}`); !strings.HasSuffix(out, "[... 2 more matches]") {
		t.Fatalf("glob cap: %q", out)
	}
	if _, err := callTool(t, tools, "read_file", `{"path":"../../etc/passwd"}`); !errors.Is(err, ErrBadPath) {
		t.Fatalf("escape: %v", err)
	}
}

// The end-to-end shape from the issue, minus the sandbox: the model writes a
// file, reads it back, stores a memory and answers; the file is on disk, the
// memory is stored and the transcript shows every step.
func TestRunWritesReadsAndRemembers(t *testing.T) {
	dir, files := newRootFiles(t)
	mem := &fakeMemory{}
	e := newRunEnv(t, llmtest.Anthropic, nil, append(FileTools(files, FileToolLimits{}), MemoryTools(mem)...)...)
	e.srv.Push(
		llmtest.ToolCall("w", "write_file", `{"path":"notes/todo.md","content":"- ship it\n"}`),
		llmtest.ToolCall("r", "read_file", `{"path":"/workspace/notes/todo.md"}`),
		llmtest.ToolCall("m", "memory_store", `{"text":"todo list lives in notes/todo.md"}`),
		llmtest.Text("Done: notes/todo.md says ship it."),
	)
	res, err := e.run(context.Background(), "write a todo, read it back, remember where it is")
	if err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "notes/todo.md")); string(b) != "- ship it\n" {
		t.Fatalf("file %q", b)
	}
	if hits, _ := mem.Search(context.Background(), "todo", 5); len(hits) != 1 {
		t.Fatalf("memory %v", mem.stored)
	}
	var steps []string
	for _, m := range res.Transcript {
		for _, p := range m.Parts {
			switch p.Type {
			case PartToolUse:
				steps = append(steps, "call:"+p.Name)
			case PartToolResult:
				steps = append(steps, "result:"+strings.SplitN(p.Text, "\n", 2)[0])
			}
		}
	}
	want := "call:write_file result:wrote 10 bytes to notes/todo.md call:read_file result:- ship it call:memory_store result:stored"
	if strings.Join(steps, " ") != want {
		t.Fatalf("steps %q", strings.Join(steps, " "))
	}
	e.checkReplay(t, res)
}
