package cli

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/bulkhead-dev/bulkhead/internal/testutil"
)

// `bulkhead mount ws@latest DIR` shows the snapshot, not the live files,
// read-only, with symlinks, straight from the repository.
func TestMountSnapshot(t *testing.T) {
	testutil.RequireRoot(t)
	testutil.RequireFUSE(t)
	state := setup(t)
	if r := run(t, "", "workspace", "create", "alice"); r.code != 0 {
		t.Fatal(r)
	}
	files := filepath.Join(state, "workspaces", "alice", "files")
	os.MkdirAll(filepath.Join(files, "docs"), 0o755)
	os.WriteFile(filepath.Join(files, "docs", "a.txt"), []byte("version one"), 0o644)
	os.Symlink("docs/a.txt", filepath.Join(files, "link"))
	if r := run(t, "", "backup", "alice"); r.code != 0 {
		t.Fatalf("backup: %+v", r)
	}
	os.WriteFile(filepath.Join(files, "docs", "a.txt"), []byte("version two"), 0o644)

	mnt := t.TempDir()
	done := make(chan result, 1)
	go func() { done <- run(t, "", "mount", "alice@latest", mnt) }()
	deadline := time.Now().Add(15 * time.Second)
	for {
		if b, err := os.ReadFile(filepath.Join(mnt, "docs", "a.txt")); err == nil {
			if string(b) != "version one" {
				t.Fatalf("snapshot view shows %q", b)
			}
			break
		}
		select {
		case r := <-done:
			t.Fatalf("mount exited: %+v", r)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatal("snapshot mount did not come up")
		}
		time.Sleep(50 * time.Millisecond)
	}
	if target, err := os.Readlink(filepath.Join(mnt, "link")); err != nil || target != "docs/a.txt" {
		t.Errorf("symlink: %q %v", target, err)
	}
	if entries, err := os.ReadDir(mnt); err != nil || len(entries) < 2 {
		t.Errorf("readdir: %v %v", entries, err)
	}
	if err := os.WriteFile(filepath.Join(mnt, "new.txt"), []byte("x"), 0o644); !errors.Is(err, syscall.EROFS) {
		t.Errorf("write into a snapshot: %v, want EROFS", err)
	}
	if r := run(t, "", "umount", mnt); r.code != 0 {
		t.Fatalf("umount: %+v", r)
	}
	select {
	case r := <-done:
		if r.code != 0 {
			t.Fatalf("mount exit: %+v", r)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("mount did not exit after umount")
	}
	if r := run(t, "", "mount", "alice@", mnt); r.code != 2 || !strings.Contains(r.stderr, "latest") {
		t.Errorf("empty snapshot ref: %+v", r)
	}
	if r := run(t, "", "mount", "alice@nope", mnt); r.code == 0 {
		t.Errorf("unknown snapshot mounted: %+v", r)
	}
}
