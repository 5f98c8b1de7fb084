package workspace

import (
	"context"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/bulkhead-dev/bulkhead/internal/testutil"
)

// The FUSE view is mounted allow_other so the sandbox's uid can use it; no
// other host user may, and edits made through the host-side Tree show in
// the sandbox at once.
func TestViewWiring(t *testing.T) {
	testutil.RequireRoot(t)
	testutil.RequireFUSE(t)
	testutil.RequireUserNS(t)
	ctx := context.Background()
	s := openService(t, t.TempDir(), "pw")
	defer s.Close()
	if _, err := s.Create(ctx, "carol", nil); err != nil {
		t.Fatal(err)
	}
	tree, err := s.Files(ctx, "carol")
	if err != nil {
		t.Fatal(err)
	}
	defer tree.Close()
	if err := tree.WriteFile("plan.md", []byte("v1"), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, res := execOut(t, s, "carol", "stat", "-c", "%s", "/workspace/plan.md"); res.ExitCode != 0 || strings.TrimSpace(out) != "2" {
		t.Fatalf("size in the sandbox: %q %+v", out, res)
	}
	if err := tree.WriteFile("plan.md", []byte("version two"), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, _ := execOut(t, s, "carol", "stat", "-c", "%s", "/workspace/plan.md"); strings.TrimSpace(out) != "11" {
		t.Errorf("host edit not seen in the sandbox at once: size %q", out)
	}

	l := s.liveFor("carol")
	l.mu.Lock()
	mp := l.view.Mountpoint()
	l.mu.Unlock()
	cmd := exec.Command("cat", filepath.Join(mp, "plan.md"))
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	if out, err := cmd.CombinedOutput(); err == nil || strings.Contains(string(out), "version") {
		t.Errorf("another host user read the view: %q %v", out, err)
	}
}
