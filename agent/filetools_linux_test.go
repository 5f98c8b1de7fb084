package agent

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bulkhead-dev/bulkhead/fusefs"
	"github.com/bulkhead-dev/bulkhead/internal/testutil"
)

var _ Files = (*fusefs.Tree)(nil)

// A prompt-injected agent uses the file tools to reach another workspace,
// files its policy hides, the read-only config, and the host. Every attempt
// fails; nothing hidden shows up in listings or searches.
func TestFileToolsFromTheAttackersSide(t *testing.T) {
	testutil.RequireLinux(t)
	base := t.TempDir()
	alice := filepath.Join(base, "alice", "files")
	bob := filepath.Join(base, "bob", "files")
	for _, d := range []string{alice + "/secrets", alice + "/.bulkhead", alice + "/src", bob} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.WriteFile(bob+"/secret.txt", []byte("TOPSECRET bob"), 0o644))
	must(os.WriteFile(alice+"/secrets/key", []byte("TOPSECRET key"), 0o644))
	must(os.WriteFile(alice+"/src/server.pem", []byte("TOPSECRET pem"), 0o644))
	must(os.WriteFile(alice+"/src/app.go", []byte("package app\n"), 0o644))
	must(os.WriteFile(alice+"/.bulkhead/config.json", []byte(`{"model":"x"}`), 0o644))
	must(os.Symlink("../../bob/files", alice+"/bob-link"))
	must(os.Symlink("/etc/passwd", alice+"/passwd-link"))

	pol, err := fusefs.NewPolicy(fusefs.PolicyConfig{Deny: []string{"secrets/**", "**/*.pem"}})
	must(err)
	tree, err := fusefs.OpenTree(alice, fusefs.TreeOptions{Policy: pol})
	must(err)
	t.Cleanup(func() { tree.Close() })
	tools := fileToolMap(t, tree, FileToolLimits{})

	refused := []struct{ tool, args string }{
		{"read_file", `{"path":"../../bob/files/secret.txt"}`},
		{"read_file", `{"path":"/workspaces/bob/files/secret.txt"}`},
		{"read_file", `{"path":"bob-link/secret.txt"}`},
		{"read_file", `{"path":"passwd-link"}`},
		{"read_file", `{"path":"/etc/passwd"}`},
		{"read_file", `{"path":"secrets/key"}`},
		{"read_file", `{"path":"src/server.pem"}`},
		{"write_file", `{"path":".bulkhead/config.json","content":"{\"model\":\"attacker\"}"}`},
		{"write_file", `{"path":".bulkhead/skills/evil/enabled","content":"1"}`},
		{"write_file", `{"path":"secrets/new","content":"x"}`},
		{"edit_file", `{"path":".bulkhead/config.json","old_text":"x","new_text":"y"}`},
		{"list_dir", `{"path":"bob-link"}`},
		{"list_dir", `{"path":"secrets"}`},
		{"grep", `{"pattern":"TOPSECRET","path":"bob-link"}`},
	}
	for _, r := range refused {
		if out, err := callTool(t, tools, r.tool, r.args); err == nil {
			t.Errorf("%s %s succeeded: %q", r.tool, r.args, out)
		}
	}
	if b, _ := os.ReadFile(alice + "/.bulkhead/config.json"); string(b) != `{"model":"x"}` {
		t.Fatalf("config changed: %s", b)
	}
	if _, err := os.Stat(alice + "/.bulkhead/skills"); err == nil {
		t.Fatal("agent created a skill enablement")
	}
	for _, r := range []struct{ tool, args string }{
		{"grep", `{"pattern":"TOPSECRET"}`},
		{"glob", `{"pattern":"**"}`},
		{"list_dir", `{"path":"."}`},
		{"list_dir", `{"path":"src"}`},
	} {
		out, err := callTool(t, tools, r.tool, r.args)
		if err != nil && r.tool != "grep" {
			t.Fatalf("%s: %v", r.tool, err)
		}
		if strings.Contains(out, "TOPSECRET") || strings.Contains(out, "secrets") || strings.Contains(out, ".pem") {
			t.Errorf("%s %s shows hidden data: %q", r.tool, r.args, out)
		}
	}
	// The allowed paths still work through the same tree.
	if out, err := callTool(t, tools, "read_file", `{"path":"src/app.go"}`); err != nil || out != "package app\n" {
		t.Fatalf("allowed read: %q %v", out, err)
	}
	if out, err := callTool(t, tools, "read_file", `{"path":".bulkhead/config.json"}`); err != nil || !strings.Contains(out, "model") {
		t.Fatalf("read-only config must stay readable: %q %v", out, err)
	}
}
