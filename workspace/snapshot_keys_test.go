package workspace

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/bulkhead-dev/bulkhead/credentials"
	bsync "github.com/bulkhead-dev/bulkhead/sync"
)

// Deleting a workspace shreds its snapshots: nothing this node has opens
// them. A key exported first (wrapped, or the bare snapshot key) reads them
// and forks them into a new workspace; only the wrapped one brings the
// credentials back.
func TestExportedKeyOutlivesDelete(t *testing.T) {
	ctx := context.Background()
	s := openService(t, t.TempDir(), "pw")
	defer s.Close()
	if _, err := s.Create(ctx, "alice", nil); err != nil {
		t.Fatal(err)
	}
	if err := s.SetCredential(ctx, "alice", "github", []byte("tok")); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(s.FilesDir("alice"), "a.txt"), []byte("kept"), 0o644)
	stores := LocalSnapshotStores(t.TempDir())
	repo, err := s.SnapshotRepo(ctx, stores, "alice", true)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Backup(ctx, repo, "alice", BackupOptions{}); err != nil {
		t.Fatal(err)
	}
	cheap := credentials.KDFParams{Time: 1, MemoryKiB: 8 << 10, Threads: 1}
	wrapped, err := s.ExportKey(ctx, "alice", []byte("export pass"), cheap)
	if err != nil {
		t.Fatal(err)
	}
	plain, err := s.ExportKey(ctx, "alice", nil, cheap)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Delete(ctx, "alice"); err != nil {
		t.Fatal(err)
	}

	// Shredded: the node no longer has a key for alice, and a key of the
	// same shape that is not alice's is refused.
	if _, err := s.SnapshotRepo(ctx, stores, "alice", false); !errors.Is(err, ErrNotFound) {
		t.Fatalf("deleted workspace's repository opened: %v", err)
	}
	if _, err := s.Create(ctx, "alice", nil); err != nil { // same id, new key
		t.Fatal(err)
	}
	if _, err := s.SnapshotRepo(ctx, stores, "alice", false); !errors.Is(err, bsync.ErrWrongKey) {
		t.Fatalf("new alice read the old alice's snapshots: %v", err)
	}

	// The bare snapshot key reads files; credentials are dropped.
	if _, err := ParseExportedKey(mustJSONBytes(t, plain), "bob"); !errors.Is(err, ErrKeyFile) {
		t.Fatalf("key accepted for another workspace: %v", err)
	}
	k, err := ParseExportedKey(mustJSONBytes(t, plain), "alice")
	if err != nil {
		t.Fatal(err)
	}
	sk, dk, err := k.Open(nil)
	if err != nil || dk != nil {
		t.Fatalf("open plain key: %v %v", dk, err)
	}
	old, err := OpenSnapshotRepo(ctx, stores, "alice", sk, false, bsync.Options{})
	if err != nil {
		t.Fatal(err)
	}
	snap, err := old.FindSnapshot(ctx, "latest")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Restore(ctx, old, "alice", snap, RestoreOptions{To: "plainfork", DropCredentials: true}); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(filepath.Join(s.FilesDir("plainfork"), "a.txt")); string(b) != "kept" {
		t.Fatalf("plain-key fork file: %q", b)
	}
	if list, _ := s.ListCredentials(ctx, "plainfork"); len(list) != 0 {
		t.Fatalf("plain-key fork kept unopenable credentials: %v", list)
	}

	// The wrapped key needs its passphrase, and brings the credentials.
	k, err = ParseExportedKey(mustJSONBytes(t, wrapped), "alice")
	if err != nil || !k.NeedsPassphrase() {
		t.Fatal(err)
	}
	if _, _, err := k.Open([]byte("wrong")); err == nil {
		t.Fatal("wrapped key opened with the wrong passphrase")
	}
	sk, dk, err = k.Open([]byte("export pass"))
	if err != nil || dk == nil {
		t.Fatalf("open wrapped key: %v", err)
	}
	old, err = OpenSnapshotRepo(ctx, stores, "alice", sk, false, bsync.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Restore(ctx, old, "alice", snap, RestoreOptions{To: "fork", SourceKey: dk}); err != nil {
		t.Fatal(err)
	}
	v, err := s.Credential(ctx, "fork", "github")
	if err != nil || string(v.Reveal()) != "tok" {
		t.Fatalf("credential in the fork from the exported key: %v", err)
	}
}

func mustJSONBytes(t *testing.T, v any) []byte { return []byte(mustJSON(t, v)) }

// An in-place restore is refused while the agent holds the workspace's
// memory store open (a run in progress), and works once it is released.
func TestRestoreInPlaceRefusedWhileBusy(t *testing.T) {
	ctx := context.Background()
	s := openService(t, t.TempDir(), "pw")
	defer s.Close()
	if _, err := s.Create(ctx, "alice", nil); err != nil {
		t.Fatal(err)
	}
	repo, err := s.SnapshotRepo(ctx, LocalSnapshotStores(t.TempDir()), "alice", true)
	if err != nil {
		t.Fatal(err)
	}
	snap, err := s.Backup(ctx, repo, "alice", BackupOptions{})
	if err != nil {
		t.Fatal(err)
	}
	_, release, err := s.sharedMemory(ctx, "alice")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Restore(ctx, repo, "alice", snap, RestoreOptions{}); !errors.Is(err, ErrInUse) {
		release()
		t.Fatalf("restore while busy: %v", err)
	}
	release()
	if _, err := s.Restore(ctx, repo, "alice", snap, RestoreOptions{}); err != nil {
		t.Fatalf("restore once idle: %v", err)
	}
}
