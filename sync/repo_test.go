package sync_test

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/bulkhead-dev/bulkhead/internal/testutil"

	bsync "github.com/bulkhead-dev/bulkhead/sync"
)

func TestRoundTrip(t *testing.T) {
	t.Parallel()
	repo, _ := newRepo(t)
	src := t.TempDir()
	makeTree(t, src, 300)
	state := textBytes(3<<20, 9)
	var calls []bsync.Progress
	snap, err := repo.Backup(t.Context(), src, bsync.BackupOptions{
		State: bytes.NewReader(state), Config: []byte(`{"model":"x"}`), Host: "node1", Tags: []string{"t"},
		Progress: func(p bsync.Progress) { calls = append(calls, p) },
	})
	if err != nil {
		t.Fatalf("backup: %v", err)
	}
	if len(calls) == 0 || !calls[len(calls)-1].Done || calls[len(calls)-1].Files != calls[len(calls)-1].TotalFiles {
		t.Fatalf("progress: %d calls, last %+v", len(calls), calls[len(calls)-1])
	}
	if snap.Stats.Skipped != 0 || snap.Stats.Symlinks != 4 {
		t.Fatalf("stats %+v", snap.Stats)
	}

	// Through a freshly opened handle, as another process would.
	repo2, err := bsync.Open(t.Context(), repo.Store(), keyOf(t, repo), bsync.Options{})
	if err != nil {
		t.Fatal(err)
	}
	got, err := repo2.LoadSnapshot(t.Context(), snap.ID)
	if err != nil {
		t.Fatal(err)
	}
	dst := filepath.Join(t.TempDir(), "restored")
	var st bytes.Buffer
	if err := repo2.Restore(t.Context(), got, dst, bsync.RestoreOptions{State: &st}); err != nil {
		t.Fatalf("restore: %v", err)
	}
	compareTrees(t, src, dst)
	if !bytes.Equal(st.Bytes(), state) {
		t.Fatalf("state stream: got %d bytes, want %d", st.Len(), len(state))
	}
	if string(got.Config) != `{"model":"x"}` || got.Host != "node1" {
		t.Fatalf("config %q host %q", got.Config, got.Host)
	}
	for _, l := range []string{"link-rel", "link-abs", "link-dangling", "bin/link-up"} {
		a, _ := os.Lstat(filepath.Join(src, l))
		b, _ := os.Lstat(filepath.Join(dst, l))
		if !a.ModTime().Equal(b.ModTime()) {
			t.Errorf("%s: symlink mtime %v, want %v", l, b.ModTime(), a.ModTime())
		}
	}
	// The sparse file stays sparse.
	if n := allocated(t, filepath.Join(dst, "sparse.img")); n > 8<<20 {
		t.Errorf("sparse file restored with %d bytes allocated", n)
	}
}

// keys are not retrievable from a Repository; tests keep them by handle.
var testKeys = map[*bsync.Repository][]byte{}

func keyOf(t *testing.T, r *bsync.Repository) []byte {
	testKeysMu.Lock()
	k, ok := testKeys[r]
	testKeysMu.Unlock()
	if !ok {
		t.Fatal("key of repository unknown")
	}
	return k
}

func TestRestoreInPlace(t *testing.T) {
	t.Parallel()
	repo, _ := newRepo(t)
	src := t.TempDir()
	makeTree(t, src, 20)
	snap, err := repo.Backup(t.Context(), src, bsync.BackupOptions{})
	if err != nil {
		t.Fatal(err)
	}
	want := snapshotDir(t, src, true)
	// Damage the tree: modify, delete, add, change types.
	os.WriteFile(filepath.Join(src, "text.txt"), []byte("overwritten"), 0o644)
	os.Remove(filepath.Join(src, "random.bin"))
	os.WriteFile(filepath.Join(src, "extra"), []byte("new"), 0o644)
	os.Remove(filepath.Join(src, "link-rel"))
	os.Mkdir(filepath.Join(src, "link-rel"), 0o755)
	os.RemoveAll(filepath.Join(src, "empty-dir"))
	os.WriteFile(filepath.Join(src, "empty-dir"), []byte("now a file"), 0o644)
	if err := repo.Restore(t.Context(), snap, src, bsync.RestoreOptions{Delete: true}); err != nil {
		t.Fatalf("restore in place: %v", err)
	}
	got := snapshotDir(t, src, true)
	for k, w := range want {
		if got[k] != w {
			t.Errorf("%s: got %+v want %+v", k, got[k], w)
		}
	}
	if _, ok := got["extra"]; ok {
		t.Error("extra file survived an in-place restore with Delete")
	}
}

// An attacker who controls the target directory (e.g. the tenant, between
// backup and restore) plants symlinks where the snapshot has a directory and
// a file. Restore must replace them, never write through them.
func TestRestoreDoesNotFollowPlantedSymlinks(t *testing.T) {
	t.Parallel()
	repo, _ := newRepo(t)
	src, dst, outside := t.TempDir(), t.TempDir(), t.TempDir()
	write(t, filepath.Join(src, "sub/f"), []byte("payload"), 0o644)
	write(t, filepath.Join(src, "g"), []byte("payload"), 0o644)
	snap, err := repo.Backup(t.Context(), src, bsync.BackupOptions{})
	if err != nil {
		t.Fatal(err)
	}
	victim := filepath.Join(outside, "victim")
	write(t, victim, []byte("keep me"), 0o644)
	os.Symlink(outside, filepath.Join(dst, "sub"))
	os.Symlink(victim, filepath.Join(dst, "g"))
	if err := repo.Restore(t.Context(), snap, dst, bsync.RestoreOptions{}); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(victim); string(b) != "keep me" {
		t.Fatalf("restore wrote through a planted symlink: victim now %q", b)
	}
	if _, err := os.Stat(filepath.Join(outside, "f")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("restore created a file through a planted directory symlink: %v", err)
	}
	if fi, err := os.Lstat(filepath.Join(dst, "sub")); err != nil || !fi.IsDir() {
		t.Fatalf("sub is not a real directory after restore: %v %v", fi, err)
	}
}

func TestDedup(t *testing.T) {
	t.Parallel()
	repo, store := newRepo(t)
	src := t.TempDir()
	makeTree(t, src, 200)
	first, err := repo.Backup(t.Context(), src, bsync.BackupOptions{})
	if err != nil {
		t.Fatal(err)
	}
	// dup-a and dup-b share content: stored once.
	if first.Stats.BytesNew >= first.Stats.Bytes-1<<20 {
		t.Errorf("first backup stored %d new of %d bytes: duplicate content not deduplicated", first.Stats.BytesNew, first.Stats.Bytes)
	}
	packs0, _ := storeBytes(t, store, "data/")

	second, err := repo.Backup(t.Context(), src, bsync.BackupOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if second.Parent != first.ID || second.Stats.BytesRead != 0 || second.Stats.BytesUploaded != 0 {
		t.Fatalf("unchanged backup: parent %s, read %d, uploaded %d", second.Parent, second.Stats.BytesRead, second.Stats.BytesUploaded)
	}
	// Without a parent every byte is read, and still nothing is uploaded.
	third, err := repo.Backup(t.Context(), src, bsync.BackupOptions{Parent: "none"})
	if err != nil {
		t.Fatal(err)
	}
	if third.Stats.BytesRead != third.Stats.Bytes || third.Stats.NewBlobs != 0 || third.Stats.BytesUploaded != 0 {
		t.Fatalf("parentless unchanged backup: %+v", third.Stats)
	}
	if packs, _ := storeBytes(t, store, "data/"); packs != packs0 {
		t.Fatalf("packs grew from %d to %d without changes", packs0, packs)
	}
	// Insert bytes in the middle of a large file: only the chunks around
	// the edit are new.
	p := filepath.Join(src, "random.bin")
	b, _ := os.ReadFile(p)
	b = append(b[:2<<20:2<<20], append([]byte("INSERTED"), b[2<<20:]...)...)
	os.WriteFile(p, b, 0o600)
	fourth, err := repo.Backup(t.Context(), src, bsync.BackupOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if fourth.Stats.BytesRead != int64(len(b)) || fourth.Stats.BytesNew > 3*bsync.MaxChunkSize/2 || fourth.Stats.NewBlobs > 3 {
		t.Fatalf("after a small insert: read %d, new %d bytes in %d blobs", fourth.Stats.BytesRead, fourth.Stats.BytesNew, fourth.Stats.NewBlobs)
	}
}

func TestWrongKey(t *testing.T) {
	t.Parallel()
	repo, store := newRepo(t)
	src := t.TempDir()
	write(t, filepath.Join(src, "secret"), []byte("tenant secret"), 0o600)
	if _, err := repo.Backup(t.Context(), src, bsync.BackupOptions{}); err != nil {
		t.Fatal(err)
	}
	_, err := bsync.Open(t.Context(), store, newKey(t), bsync.Options{})
	if !errors.Is(err, bsync.ErrWrongKey) {
		t.Fatalf("open with another key: %v, want ErrWrongKey", err)
	}
	if _, err := bsync.Open(t.Context(), store, []byte("short"), bsync.Options{}); err == nil {
		t.Fatal("open with a short key succeeded")
	}
	if _, err := bsync.Open(t.Context(), newLocalStore(t), newKey(t), bsync.Options{}); !errors.Is(err, bsync.ErrNoRepository) {
		t.Fatalf("open of an empty store: %v", err)
	}
	if _, err := bsync.Init(t.Context(), store, newKey(t), bsync.Options{}); !errors.Is(err, bsync.ErrExists) {
		t.Fatalf("init over an existing repository: %v", err)
	}
	// Nothing in the store shows the plaintext.
	for _, name := range listNames(t, store, "") {
		if bytes.Contains(readObject(t, store, name), []byte("tenant secret")) {
			t.Fatalf("%s holds the plaintext", name)
		}
	}
}

func TestRestoreOwner(t *testing.T) {
	t.Parallel()
	testutil.RequireRoot(t)
	repo, _ := newRepo(t)
	src := t.TempDir()
	write(t, filepath.Join(src, "d/f"), []byte("x"), fs.ModeSetuid|0o755)
	os.Symlink("d/f", filepath.Join(src, "l"))
	snap, err := repo.Backup(t.Context(), src, bsync.BackupOptions{})
	if err != nil {
		t.Fatal(err)
	}
	dst := t.TempDir()
	if err := repo.Restore(t.Context(), snap, dst, bsync.RestoreOptions{Owner: &bsync.Owner{UID: 54321, GID: 54322}}); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{".", "d", "d/f", "l"} {
		fi, err := os.Lstat(filepath.Join(dst, p))
		if err != nil {
			t.Fatal(err)
		}
		st := fi.Sys().(*syscall.Stat_t)
		if st.Uid != 54321 || st.Gid != 54322 {
			t.Errorf("%s owned by %d:%d", p, st.Uid, st.Gid)
		}
	}
	// chown clears set-id bits; the mode is applied after it.
	if fi, _ := os.Stat(filepath.Join(dst, "d/f")); fi.Mode()&os.ModeSetuid == 0 {
		t.Errorf("setuid bit lost: %v", fi.Mode())
	}
}

// Names need not be UTF-8 on Linux, may hold backslashes and newlines: a
// tenant's odd file name must neither break backups nor be renamed.
func TestOddNames(t *testing.T) {
	t.Parallel()
	repo, _ := newRepo(t)
	src := t.TempDir()
	for _, name := range []string{"bad-\xff\xfe", "bad-\xff\xfd", "back\\slash", "new\nline", "%41", "-dash", " space "} {
		write(t, filepath.Join(src, name), []byte(name), 0o644)
	}
	os.Symlink("target-\xff", filepath.Join(src, "link-\x80"))
	snap, err := repo.Backup(t.Context(), src, bsync.BackupOptions{})
	if err != nil {
		t.Fatalf("backup of odd names: %v", err)
	}
	again, err := repo.LoadSnapshot(t.Context(), snap.ID)
	if err != nil {
		t.Fatal(err)
	}
	dst := t.TempDir()
	if err := repo.Restore(t.Context(), again, dst, bsync.RestoreOptions{}); err != nil {
		t.Fatal(err)
	}
	compareTrees(t, src, dst)
}
