package cli

import (
	"errors"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/bulkhead-dev/bulkhead/internal/testutil"
)

func TestMountUmount(t *testing.T) {
	testutil.RequireRoot(t)
	testutil.RequireFUSE(t)
	state := setup(t)
	if r := run(t, "", "workspace", "create", "alice", "--set", `files.deny=["secrets"]`); r.code != 0 {
		t.Fatalf("create: %+v", r)
	}
	files := filepath.Join(state, "workspaces", "alice", "files")
	for p, content := range map[string]string{"a.txt": "hello", "secrets/key": "k", ".bulkhead/SOUL.md": "soul"} {
		if err := os.MkdirAll(filepath.Join(files, filepath.Dir(p)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(files, p), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, rw := range []bool{false, true} {
		mnt := t.TempDir()
		args := []string{"mount", "alice", mnt}
		if rw {
			args = append(args, "--rw")
		}
		done := make(chan result, 1)
		go func() { done <- run(t, "", args...) }()
		deadline := time.Now().Add(10 * time.Second)
		for {
			if b, err := os.ReadFile(filepath.Join(mnt, "a.txt")); err == nil && string(b) == "hello" {
				break
			}
			select {
			case r := <-done:
				t.Fatalf("mount exited early: %+v", r)
			default:
			}
			if time.Now().After(deadline) {
				t.Fatal("mount did not come up")
			}
			time.Sleep(20 * time.Millisecond)
		}
		// The state dir is free again while the mount serves.
		if r := run(t, "", "workspace", "show", "alice"); r.code != 0 {
			t.Errorf("show while mounted: %+v", r)
		}
		if _, err := os.Stat(filepath.Join(mnt, "secrets")); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("denied dir visible: %v", err)
		}
		err := os.WriteFile(filepath.Join(mnt, "b.txt"), []byte("b"), 0o644)
		if rw && err != nil {
			t.Errorf("write with --rw: %v", err)
		}
		if !rw && !errors.Is(err, syscall.EROFS) {
			t.Errorf("write without --rw: %v, want EROFS", err)
		}
		if err := os.WriteFile(filepath.Join(mnt, ".bulkhead", "SOUL.md"), nil, 0o644); !errors.Is(err, syscall.EROFS) {
			t.Errorf("write .bulkhead (rw=%v): %v, want EROFS", rw, err)
		}
		if r := run(t, "", "umount", mnt); r.code != 0 {
			t.Fatalf("umount: %+v", r)
		}
		select {
		case r := <-done:
			if r.code != 0 {
				t.Fatalf("mount exit: %+v", r)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("mount did not exit after umount")
		}
	}
	if r := run(t, "", "umount", t.TempDir()); r.code != 2 {
		t.Errorf("umount of a plain dir: %+v", r)
	}
}
