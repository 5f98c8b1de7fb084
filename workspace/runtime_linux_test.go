package workspace

import (
	"bytes"
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bulkhead-dev/bulkhead/fusefs"
	"github.com/bulkhead-dev/bulkhead/internal/testutil"
	"github.com/bulkhead-dev/bulkhead/sandbox"
)

func execOut(t *testing.T, s *Service, id string, args ...string) (string, sandbox.Result) {
	t.Helper()
	var out bytes.Buffer
	res, err := s.Exec(context.Background(), id, sandbox.Command{Args: args, Stdout: &out, Stderr: &out})
	if err != nil {
		t.Fatalf("exec %v in %s: %v", args, id, err)
	}
	return out.String(), res
}

// A workspace's sandbox sees its files through the FUSE view under the
// workspace's policy, and the host-side Tree obeys the same rules.
func TestSandboxSeesPolicyView(t *testing.T) {
	testutil.RequireRoot(t)
	testutil.RequireFUSE(t)
	testutil.RequireUserNS(t)
	ctx := context.Background()
	s := openService(t, t.TempDir(), "pw")
	defer s.Close()
	cfg := DefaultConfig()
	cfg.Files.Deny = []string{"secrets/**"}
	if _, err := s.Create(ctx, "alice", &cfg); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Create(ctx, "bob", nil); err != nil {
		t.Fatal(err)
	}
	files := s.FilesDir("alice")
	os.MkdirAll(filepath.Join(files, "secrets"), 0o755)
	os.WriteFile(filepath.Join(files, "secrets", "key.pem"), []byte("PRIVATE"), 0o644)
	os.MkdirAll(filepath.Join(files, ".bulkhead"), 0o755)
	os.WriteFile(filepath.Join(files, ".bulkhead", "SOUL.md"), []byte("persona"), 0o644)
	os.WriteFile(filepath.Join(s.FilesDir("bob"), "bob.txt"), []byte("bob's"), 0o644)

	out, res := execOut(t, s, "alice", "sh", "-c", "echo hello > /workspace/note.txt && cat /workspace/note.txt && id -u")
	if res.ExitCode != 0 || !strings.HasPrefix(out, "hello\n0\n") {
		t.Fatalf("write through the view: %q %+v", out, res)
	}
	if b, err := os.ReadFile(filepath.Join(files, "note.txt")); err != nil || string(b) != "hello\n" {
		t.Fatalf("file written in the sandbox not in the files dir: %q %v", b, err)
	}
	out, _ = execOut(t, s, "alice", "sh", "-c", "ls -a /workspace | tr '\\n' ' '; echo; cat /workspace/secrets/key.pem; (echo x > /workspace/.bulkhead/SOUL.md) 2>&1; echo rc=$?")
	lines := strings.Split(out, "\n")
	if strings.Contains(lines[0], "secrets") || strings.Contains(out, "PRIVATE") || !strings.Contains(out, "secrets/key.pem: No such file") {
		t.Fatalf("denied path visible in the sandbox: %q", out)
	}
	if !strings.Contains(out, "Read-only file system") || strings.Contains(out, "rc=0") {
		t.Fatalf(".bulkhead writable from the sandbox: %q", out)
	}
	if b, _ := os.ReadFile(filepath.Join(files, ".bulkhead", "SOUL.md")); string(b) != "persona" {
		t.Fatalf("SOUL.md changed: %q", b)
	}
	// bob's files are nowhere in alice's sandbox.
	bobFile := filepath.Join(s.FilesDir("bob"), "bob.txt")
	out, _ = execOut(t, s, "alice", "sh", "-c", "cat "+bobFile+" /oldroot"+bobFile+" 2>&1; ls /oldroot 2>&1")
	if strings.Contains(out, "bob's") || !strings.Contains(out, "No such file") {
		t.Fatalf("alice's sandbox reaches bob's files: %q", out)
	}

	// The host-side route obeys the same policy.
	tree, err := s.Files(ctx, "alice")
	if err != nil {
		t.Fatal(err)
	}
	defer tree.Close()
	if _, err := fs.ReadFile(tree.FS(), "secrets/key.pem"); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("Tree read a denied file: %v", err)
	}
	if err := tree.WriteFile(".bulkhead/SOUL.md", []byte("hijack"), 0o644); !errors.Is(err, fusefs.ErrReadOnly) {
		t.Fatalf("Tree wrote a read-only file: %v", err)
	}

	// A policy change reaches the running sandbox at once.
	if _, err := s.Configure(ctx, "alice", nil, []string{`files.deny=["secrets/**","note.txt"]`}); err != nil {
		t.Fatal(err)
	}
	out, _ = execOut(t, s, "alice", "sh", "-c", "echo ls: $(ls /workspace); cat /workspace/note.txt 2>&1")
	if strings.Contains(out, "hello") || strings.Contains(strings.Split(out, "\n")[0], "note.txt") {
		t.Fatalf("newly denied file still visible in the live sandbox: %q", out)
	}

	// Deleting the workspace stops its sandbox and unmounts its view.
	if err := s.Delete(ctx, "alice"); err != nil {
		t.Fatal(err)
	}
	entries, _ := os.ReadDir(s.mountRoot())
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), "alice.") {
			t.Fatalf("mountpoint left after delete: %s", e.Name())
		}
	}
}
