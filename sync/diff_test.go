package sync_test

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	bsync "github.com/bulkhead-dev/bulkhead/sync"
)

func TestDiff(t *testing.T) {
	t.Parallel()
	repo, _ := newRepo(t)
	src := t.TempDir()
	write(t, filepath.Join(src, "same"), []byte("same"), 0o644)
	write(t, filepath.Join(src, "edit"), []byte("v1"), 0o644)
	write(t, filepath.Join(src, "gone"), []byte("x"), 0o644)
	write(t, filepath.Join(src, "chmod"), []byte("x"), 0o644)
	write(t, filepath.Join(src, "retype"), []byte("x"), 0o644)
	os.Symlink("same", filepath.Join(src, "link"))
	a, err := repo.Backup(t.Context(), src, bsync.BackupOptions{Config: []byte("c1")})
	if err != nil {
		t.Fatal(err)
	}
	write(t, filepath.Join(src, "edit"), []byte("v2"), 0o644)
	os.Remove(filepath.Join(src, "gone"))
	write(t, filepath.Join(src, "new/file"), []byte("n"), 0o644)
	os.Chmod(filepath.Join(src, "chmod"), 0o600)
	os.Remove(filepath.Join(src, "retype"))
	os.Mkdir(filepath.Join(src, "retype"), 0o755)
	os.Remove(filepath.Join(src, "link"))
	os.Symlink("edit", filepath.Join(src, "link"))
	ts := time.Now().Add(-time.Hour)
	os.Chtimes(filepath.Join(src, "same"), ts, ts)
	b, err := repo.Backup(t.Context(), src, bsync.BackupOptions{Config: []byte("c1")})
	if err != nil {
		t.Fatal(err)
	}
	d := bsync.Diff(a, b)
	got := map[string]bsync.ChangeKind{}
	for _, c := range d.Changes {
		got[c.Path] = c.Kind
	}
	want := map[string]bsync.ChangeKind{
		"edit": bsync.Modified, "gone": bsync.Removed, "new": bsync.Added, "new/file": bsync.Added,
		"chmod": bsync.MetaChanged, "retype": bsync.TypeChanged, "link": bsync.Modified, "same": bsync.MetaChanged,
	}
	if len(got) != len(want) {
		t.Errorf("diff has %d changes, want %d: %v", len(got), len(want), got)
	}
	for p, k := range want {
		if got[p] != k {
			t.Errorf("%s: %q, want %q", p, got[p], k)
		}
	}
	if d.ConfigChanged || d.StateChanged {
		t.Errorf("config/state reported changed: %+v", d)
	}
	if d := bsync.Diff(a, a); len(d.Changes) != 0 {
		t.Errorf("diff of a snapshot with itself: %v", d.Changes)
	}
}
