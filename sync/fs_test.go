package sync_test

import (
	"bytes"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
	"testing/fstest"

	bsync "github.com/bulkhead-dev/bulkhead/sync"
)

func TestSnapshotFS(t *testing.T) {
	t.Parallel()
	repo, _ := newRepo(t)
	src := t.TempDir()
	write(t, filepath.Join(src, "a/big.bin"), randBytes(5<<20+17, 1), 0o644)
	write(t, filepath.Join(src, "a/small.txt"), []byte("small"), 0o600)
	write(t, filepath.Join(src, "empty"), nil, 0o644)
	os.Mkdir(filepath.Join(src, "emptydir"), 0o755)
	os.Symlink("a/small.txt", filepath.Join(src, "in-link"))
	os.Symlink("a", filepath.Join(src, "dir-link"))
	snap, err := repo.Backup(t.Context(), src, bsync.BackupOptions{})
	if err != nil {
		t.Fatal(err)
	}
	fsys, err := repo.FS(t.Context(), snap)
	if err != nil {
		t.Fatal(err)
	}
	// Everything the standard checker expects of an fs.FS.
	if err := fstest.TestFS(fsys, "a/big.bin", "a/small.txt", "empty", "emptydir", "in-link", "dir-link"); err != nil {
		t.Fatal(err)
	}
	if b, err := fs.ReadFile(fsys, "dir-link/small.txt"); err != nil || string(b) != "small" {
		t.Fatalf("through a directory symlink: %q %v", b, err)
	}
	got, err := fs.ReadFile(fsys, "a/big.bin")
	want, _ := os.ReadFile(filepath.Join(src, "a/big.bin"))
	if err != nil || !bytes.Equal(got, want) {
		t.Fatalf("big file: %d bytes, %v", len(got), err)
	}
	f, _ := fsys.Open("a/big.bin")
	ra := f.(io.ReaderAt)
	buf := make([]byte, 3<<20)
	if n, err := ra.ReadAt(buf, 1<<20+5); n != len(buf) || err != nil || !bytes.Equal(buf, want[1<<20+5:4<<20+5]) {
		t.Fatalf("ReadAt across chunks: %d %v", n, err)
	}
	// A symlink that leaves the snapshot is kept but never followed.
	os.Symlink("/etc/passwd", filepath.Join(src, "out-link"))
	os.Symlink("../../etc", filepath.Join(src, "a/up-link"))
	snap, err = repo.Backup(t.Context(), src, bsync.BackupOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if fsys, err = repo.FS(t.Context(), snap); err != nil {
		t.Fatal(err)
	}
	if _, err := fs.ReadFile(fsys, "a/up-link/passwd"); err == nil {
		t.Fatal("a relative symlink out of the snapshot was followed")
	}
	if _, err := fsys.Open("out-link"); err == nil {
		t.Fatal("a symlink out of the snapshot opened")
	}
	if target, err := fsys.ReadLink("out-link"); err != nil || target != "/etc/passwd" {
		t.Fatalf("readlink: %q %v", target, err)
	}
	if fi, err := fsys.Lstat("in-link"); err != nil || fi.Mode()&fs.ModeSymlink == 0 {
		t.Fatalf("lstat: %v %v", fi, err)
	}
	if fi, err := fsys.Stat("a/small.txt"); err != nil || fi.Mode().Perm() != 0o600 || fi.Size() != 5 {
		t.Fatalf("stat: %v %v", fi, err)
	}
	for _, bad := range []string{"../x", "/a", "a/../a", "nope"} {
		if _, err := fsys.Open(bad); err == nil {
			t.Errorf("open %q succeeded", bad)
		}
	}
}
