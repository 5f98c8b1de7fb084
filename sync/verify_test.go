package sync_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"path/filepath"
	"strings"
	"testing"
	"time"

	bsync "github.com/bulkhead-dev/bulkhead/sync"
)

// backupSmall makes a repository with one snapshot of a small tree.
func backupSmall(t *testing.T) (*bsync.Repository, *bsync.Snapshot, bsync.Store) {
	t.Helper()
	repo, store := newRepo(t)
	src := t.TempDir()
	write(t, filepath.Join(src, "a.txt"), textBytes(200<<10, 1), 0o644)
	write(t, filepath.Join(src, "dir/b.bin"), randBytes(3<<20, 2), 0o644)
	snap, err := repo.Backup(t.Context(), src, bsync.BackupOptions{State: bytes.NewReader([]byte("state"))})
	if err != nil {
		t.Fatal(err)
	}
	rep, err := repo.Verify(t.Context(), bsync.VerifyOptions{ReadData: 1})
	if err != nil || !rep.OK() || rep.PacksRead == 0 || rep.BlobsRead == 0 {
		t.Fatalf("verify of a fresh repository: %+v, %v", rep, err)
	}
	return repo, snap, store
}

func problemsText(rep *bsync.VerifyReport) string {
	var b strings.Builder
	for _, p := range rep.Problems {
		b.WriteString(p.String())
		b.WriteByte('\n')
	}
	return b.String()
}

func TestVerifyFlippedByte(t *testing.T) {
	t.Parallel()
	repo, snap, store := backupSmall(t)
	packs := listNames(t, store, "data/")
	for _, name := range packs {
		b := readObject(t, store, name)
		b[100] ^= 0x01 // inside the first blob
		putObject(t, store, name, b)
	}
	rep, err := repo.Verify(t.Context(), bsync.VerifyOptions{ReadData: 1})
	if err != nil {
		t.Fatal(err)
	}
	text := problemsText(rep)
	if rep.OK() || !strings.Contains(text, "snapshot "+snap.ID) || !strings.Contains(text, "authentication failed") {
		t.Fatalf("flipped byte not reported with its snapshot:\n%s", text)
	}
	found := false
	for _, p := range rep.Problems {
		if p.Snapshot == snap.ID && (p.Path == "a.txt" || p.Path == "dir/b.bin" || p.Path == "") && strings.HasPrefix(p.Object, "data/") {
			found = true
		}
	}
	if !found {
		t.Fatalf("no problem names the affected file:\n%s", text)
	}
	// Restore refuses the damaged data rather than writing it.
	err = repo.Restore(t.Context(), snap, t.TempDir(), bsync.RestoreOptions{})
	if !errors.Is(err, bsync.ErrCorrupt) {
		t.Fatalf("restore of a damaged pack: %v, want ErrCorrupt", err)
	}
}

func TestVerifyMissingPack(t *testing.T) {
	t.Parallel()
	repo, snap, store := backupSmall(t)
	for _, name := range listNames(t, store, "data/") {
		store.Delete(t.Context(), name)
	}
	rep, err := repo.Verify(t.Context(), bsync.VerifyOptions{})
	if err != nil {
		t.Fatal(err)
	}
	text := problemsText(rep)
	if !strings.Contains(text, "snapshot "+snap.ID+` file "a.txt"`) || !strings.Contains(text, "pack is missing") {
		t.Fatalf("missing pack not reported against a.txt:\n%s", text)
	}
}

func TestVerifyTruncatedIndex(t *testing.T) {
	t.Parallel()
	repo, snap, store := backupSmall(t)
	for _, name := range listNames(t, store, "index/") {
		b := readObject(t, store, name)
		putObject(t, store, name, b[:len(b)/2])
	}
	rep, err := repo.Verify(t.Context(), bsync.VerifyOptions{})
	if err != nil {
		t.Fatal(err)
	}
	text := problemsText(rep)
	if !strings.Contains(text, "index/") || !strings.Contains(text, "snapshot "+snap.ID+` file "dir/b.bin": blob`) {
		t.Fatalf("truncated index not reported with the files it leaves unindexed:\n%s", text)
	}
	// Prune refuses to run on a repository it cannot fully read.
	if _, err := repo.Prune(t.Context(), bsync.PruneOptions{Keep: bsync.Retention{Last: 1}}); !errors.Is(err, bsync.ErrCorrupt) {
		t.Fatalf("prune with a broken index: %v, want ErrCorrupt", err)
	}
}

func TestCorruptManifest(t *testing.T) {
	t.Parallel()
	repo, snap, store := backupSmall(t)
	name := "snapshots/" + snap.ID
	orig := readObject(t, store, name)
	for _, bad := range [][]byte{orig[:len(orig)-1], orig[:10], nil, append(bytes.Clone(orig), 0)} {
		putObject(t, store, name, bad)
		_, err := repo.LoadSnapshot(t.Context(), snap.ID)
		if !errors.Is(err, bsync.ErrCorrupt) || !strings.Contains(err.Error(), snap.ID) {
			t.Fatalf("load of a %d-byte manifest: %v, want ErrCorrupt naming the snapshot", len(bad), err)
		}
		snaps, err := repo.Snapshots(t.Context())
		if len(snaps) != 0 || !errors.Is(err, bsync.ErrCorrupt) {
			t.Fatalf("list with a corrupt manifest: %d snapshots, err %v", len(snaps), err)
		}
	}
	// A manifest moved to another snapshot's name does not load as that one.
	putObject(t, store, name, orig)
	// File times come from the kernel's coarse clock (a few ms): make the
	// renamed copy clearly the newest, as the rest of the test needs.
	time.Sleep(50 * time.Millisecond)
	putObject(t, store, "snapshots/0123456789abcdef", orig)
	if _, err := repo.LoadSnapshot(t.Context(), "0123456789abcdef"); !errors.Is(err, bsync.ErrCorrupt) {
		t.Fatalf("renamed manifest: %v", err)
	}
	// The damaged manifest is now the latest: backups still work, without
	// a parent.
	next, err := repo.Backup(t.Context(), t.TempDir(), bsync.BackupOptions{})
	if err != nil {
		t.Fatalf("backup with a damaged latest manifest: %v", err)
	}
	if next.Parent != "" {
		t.Fatalf("backup took damaged %s as its parent", next.Parent)
	}
}

func TestStateOnly(t *testing.T) {
	t.Parallel()
	repo, snap, _ := backupSmall(t)
	var buf bytes.Buffer
	if err := repo.RestoreState(t.Context(), snap, &buf); err != nil || buf.String() != "state" {
		t.Fatalf("state %q, %v", buf.String(), err)
	}
	snap2, err := repo.Backup(t.Context(), t.TempDir(), bsync.BackupOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := repo.RestoreState(t.Context(), snap2, io.Discard); !errors.Is(err, bsync.ErrNotFound) {
		t.Fatalf("state of a snapshot without one: %v", err)
	}
	d := bsync.Diff(snap, snap2)
	if !d.StateChanged || len(d.Changes) != 3 {
		t.Fatalf("diff: %+v", d)
	}
	for _, c := range d.Changes {
		if c.Kind != bsync.Removed {
			t.Fatalf("diff to an empty tree: %+v", c)
		}
	}
}

// Index objects are a cache of the pack headers: losing them all is
// repaired from the packs alone.
func TestRebuildIndex(t *testing.T) {
	t.Parallel()
	repo, snap, store := backupSmall(t)
	for _, name := range listNames(t, store, "index/") {
		store.Delete(t.Context(), name)
	}
	// One pack also loses its header: it is reported, not deleted.
	junk := "data/00/00" + strings.Repeat("0", 62)
	putObject(t, store, junk, []byte("not a pack at all"))
	res, err := repo.RebuildIndex(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if res.Packs == 0 || res.Blobs < 3 || len(res.BadPacks) != 1 || res.BadPacks[0] != junk {
		t.Fatalf("rebuild: %+v", res)
	}
	store.Delete(t.Context(), junk)
	other, err := bsync.Open(t.Context(), store, keyOf(t, repo), bsync.Options{})
	if err != nil {
		t.Fatal(err)
	}
	rep, err := other.Verify(t.Context(), bsync.VerifyOptions{ReadData: 1})
	if err != nil || !rep.OK() {
		t.Fatalf("verify after rebuild: %v\n%s", err, problemsText(rep))
	}
	if err := other.Restore(t.Context(), snap, t.TempDir(), bsync.RestoreOptions{}); err != nil {
		t.Fatal(err)
	}
}

// Pack names commit to the pack's tail (its sealed header); a pack stored
// under another pack's name is reported, and packs named by the hash of
// their whole content (written before that rule) still verify.
func TestVerifyPackNames(t *testing.T) {
	t.Parallel()
	repo, store := newRepo(t)
	src := t.TempDir()
	// One blob below the minimum chunk size per pack: both packs have the
	// same size, so only their names can tell them apart.
	write(t, filepath.Join(src, "a.bin"), randBytes(200<<10, 1), 0o644)
	snap1, err := repo.Backup(t.Context(), src, bsync.BackupOptions{})
	if err != nil {
		t.Fatal(err)
	}
	write(t, filepath.Join(src, "b.bin"), randBytes(200<<10, 2), 0o644)
	if _, err := repo.Backup(t.Context(), src, bsync.BackupOptions{}); err != nil {
		t.Fatal(err)
	}
	packs := listNames(t, store, "data/")
	if len(packs) != 2 {
		t.Fatalf("%d packs, want 2", len(packs))
	}

	// Old naming: rename every pack to the SHA-256 of its whole content and
	// rebuild the index from the pack headers.
	for _, name := range packs {
		b := readObject(t, store, name)
		sum := sha256.Sum256(b)
		h := hex.EncodeToString(sum[:])
		putObject(t, store, "data/"+h[:2]+"/"+h, b)
		store.Delete(t.Context(), name)
	}
	for _, name := range listNames(t, store, "index/") {
		store.Delete(t.Context(), name)
	}
	if _, err := repo.RebuildIndex(t.Context()); err != nil {
		t.Fatal(err)
	}
	rep, err := repo.Verify(t.Context(), bsync.VerifyOptions{ReadData: 1})
	if err != nil || !rep.OK() || rep.PacksRead != 2 {
		t.Fatalf("verify of whole-hash-named packs: %+v %v\n%s", rep, err, problemsText(rep))
	}

	// Swap the two packs' contents: both names stop matching.
	packs = listNames(t, store, "data/")
	a, b := readObject(t, store, packs[0]), readObject(t, store, packs[1])
	putObject(t, store, packs[0], b)
	putObject(t, store, packs[1], a)
	rep, err = repo.Verify(t.Context(), bsync.VerifyOptions{ReadData: 1})
	if err != nil {
		t.Fatal(err)
	}
	text := problemsText(rep)
	if rep.OK() || strings.Count(text, "does not match the pack's name") < 2 || !strings.Contains(text, "snapshot "+snap1.ID) {
		t.Fatalf("swapped packs not reported against their snapshots:\n%s", text)
	}
}
