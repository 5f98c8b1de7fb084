package cli

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestSnapshotCommands(t *testing.T) {
	dir := setup(t)
	if r := run(t, "", "workspace", "create", "alice", "--set", "limits.pids=77"); r.code != 0 {
		t.Fatal(r)
	}
	files := filepath.Join(dir, "workspaces", "alice", "files")
	if err := os.MkdirAll(filepath.Join(files, "src"), 0o755); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(files, "src", "main.go"), []byte("package main\n"), 0o644)
	os.WriteFile(filepath.Join(files, "notes.md"), []byte("v1\n"), 0o644)
	if r := run(t, "", "memory", "add", "alice", "the deploy key rotates on fridays"); r.code != 0 {
		t.Fatalf("memory add: %+v", r)
	}

	r := run(t, "", "backup", "alice", "--json", "--tag", "first")
	var first snapshotSummary
	if r.code != 0 || json.Unmarshal([]byte(r.stdout), &first) != nil || first.Stats.Files != 2 {
		t.Fatalf("backup: %+v", r)
	}
	os.WriteFile(filepath.Join(files, "notes.md"), []byte("v2\n"), 0o644)
	os.WriteFile(filepath.Join(files, "new.txt"), []byte("new\n"), 0o644)
	if r := run(t, "", "backup", "alice"); r.code != 0 || !strings.Contains(r.stdout, "snapshot ") {
		t.Fatalf("second backup: %+v", r)
	}
	r = run(t, "", "snapshots", "alice", "--json")
	var list []snapshotSummary
	if r.code != 0 || json.Unmarshal([]byte(r.stdout), &list) != nil || len(list) != 2 || list[0].Tags[0] != "first" {
		t.Fatalf("snapshots: %+v", r)
	}
	r = run(t, "", "diff", "alice", first.ID, "latest")
	if r.code != 0 || !strings.Contains(r.stdout, "M notes.md") || !strings.Contains(r.stdout, "+ new.txt") {
		t.Fatalf("diff: %+v", r)
	}

	// Fork the first snapshot into a new workspace: files, memory, config.
	if r := run(t, "", "restore", "alice", first.ID[:6], "--to", "bob"); r.code != 0 {
		t.Fatalf("restore --to: %+v", r)
	}
	bobFiles := filepath.Join(dir, "workspaces", "bob", "files")
	if b, err := os.ReadFile(filepath.Join(bobFiles, "notes.md")); err != nil || string(b) != "v1\n" {
		t.Fatalf("fork files: %q %v", b, err)
	}
	if _, err := os.Stat(filepath.Join(bobFiles, "new.txt")); !os.IsNotExist(err) {
		t.Fatal("fork has a file from a later snapshot")
	}
	if r := run(t, "", "memory", "search", "bob", "deploy key"); r.code != 0 || !strings.Contains(r.stdout, "fridays") {
		t.Fatalf("fork memory: %+v", r)
	}
	if r := run(t, "", "workspace", "show", "bob", "--json"); !strings.Contains(r.stdout, `"pids": 77`) {
		t.Fatalf("fork config: %+v", r)
	}

	// In place needs --yes; then the tree is exactly the snapshot's.
	if r := run(t, "", "restore", "alice", first.ID); r.code != 2 || !strings.Contains(r.stderr, "--yes") {
		t.Fatalf("in-place restore without --yes: %+v", r)
	}
	if r := run(t, "", "restore", "alice", first.ID, "--yes"); r.code != 0 {
		t.Fatalf("in-place restore: %+v", r)
	}
	if _, err := os.Stat(filepath.Join(files, "new.txt")); !os.IsNotExist(err) {
		t.Fatal("in-place restore kept a file the snapshot does not have")
	}

	if r := run(t, "", "verify", "alice", "--read-data", "1"); r.code != 0 || !strings.Contains(r.stdout, "2 snapshots") {
		t.Fatalf("verify: %+v", r)
	}
	idx, _ := filepath.Glob(filepath.Join(dir, "snapshots", "alice", "index", "*"))
	for _, p := range idx {
		os.WriteFile(p, []byte("truncated"), 0o600)
	}
	if r := run(t, "", "verify", "alice", "--read-data", "0"); r.code != 1 || !strings.Contains(r.stdout, "problem:") {
		t.Fatalf("verify of a damaged index: %+v", r)
	}
	if r := run(t, "", "verify", "alice", "--rebuild-index"); r.code != 0 || !strings.Contains(r.stdout, "index rebuilt") {
		t.Fatalf("verify --rebuild-index: %+v", r)
	}
	if r := run(t, "", "prune", "alice"); r.code != 2 {
		t.Fatalf("prune without a policy: %+v", r)
	}
	if r := run(t, "", "prune", "alice", "--keep-last", "1"); r.code != 0 || !strings.Contains(r.stdout, "kept 1 snapshots") {
		t.Fatalf("prune: %+v", r)
	}

	// Crypto-shredding: once alice is deleted nothing opens her snapshots,
	// though the repository's bytes are still on disk.
	if r := run(t, "", "workspace", "delete", "alice", "--yes"); r.code != 0 {
		t.Fatal(r)
	}
	if r := run(t, "", "restore", "alice", "latest", "--to", "carol"); r.code == 0 {
		t.Fatalf("restore of a deleted workspace's snapshot: %+v", r)
	}
	if _, err := os.Stat(filepath.Join(dir, "snapshots", "alice", "config")); err != nil {
		t.Fatalf("repository bytes: %v", err)
	}
}

// After delete, a workspace's snapshots open only with a key exported
// before; the wrapped export brings back its credentials too.
func TestExportKeyRestoresDeletedWorkspace(t *testing.T) {
	dir := setup(t)
	if r := run(t, "", "workspace", "create", "alice"); r.code != 0 {
		t.Fatal(r)
	}
	if r := run(t, "s3cret\n", "creds", "set", "alice", "github"); r.code != 0 {
		t.Fatal(r)
	}
	os.WriteFile(filepath.Join(dir, "workspaces", "alice", "files", "a.txt"), []byte("kept"), 0o644)
	if r := run(t, "", "backup", "alice"); r.code != 0 {
		t.Fatal(r)
	}
	r := run(t, "export pass\n", "creds", "export-key", "alice")
	if r.code != 0 || !strings.Contains(r.stderr, "warning") || strings.Contains(r.stdout, "export pass") {
		t.Fatalf("export-key: %+v", r)
	}
	wrapped := filepath.Join(t.TempDir(), "alice.key")
	os.WriteFile(wrapped, []byte(r.stdout), 0o600)
	r = run(t, "", "creds", "export-key", "alice", "--plain")
	plain := filepath.Join(t.TempDir(), "alice.plain")
	os.WriteFile(plain, []byte(r.stdout), 0o600)
	if r.code != 0 || !strings.Contains(r.stdout, "snapshot_key") {
		t.Fatalf("export-key --plain: %+v", r)
	}
	if r := run(t, "", "workspace", "delete", "alice", "--yes"); r.code != 0 {
		t.Fatal(r)
	}
	if r := run(t, "", "restore", "alice", "latest", "--to", "bob"); r.code == 0 {
		t.Fatalf("restored a deleted workspace without its key: %+v", r)
	}
	if r := run(t, "wrong\n", "restore", "alice", "latest", "--to", "bob", "--key-file", wrapped); r.code == 0 {
		t.Fatalf("wrong passphrase opened the key: %+v", r)
	}
	if r := run(t, "", "restore", "alice", "latest", "--key-file", wrapped, "--yes"); r.code != 2 {
		t.Fatalf("--key-file without --to: %+v", r)
	}
	if r := run(t, "export pass\n", "restore", "alice", "latest", "--to", "bob", "--key-file", wrapped); r.code != 0 {
		t.Fatalf("restore with the wrapped key: %+v", r)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "workspaces", "bob", "files", "a.txt")); string(b) != "kept" {
		t.Fatalf("bob's file: %q", b)
	}
	if r := run(t, "", "creds", "ls", "bob"); r.code != 0 || !strings.Contains(r.stdout, "github") {
		t.Fatalf("bob's credentials: %+v", r)
	}
	if r := run(t, "", "restore", "alice", "latest", "--to", "carol", "--key-file", plain); r.code != 0 || !strings.Contains(r.stderr, "cannot open") {
		t.Fatalf("restore with the plain key: %+v", r)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "workspaces", "carol", "files", "a.txt")); string(b) != "kept" {
		t.Fatalf("carol's file: %q", b)
	}
}

// An in-place restore drops the derived memory index: a memory added after
// the snapshot is not found afterwards, even once the store's sequence has
// caught up with the index's again.
func TestRestoreInPlaceResetsMemoryIndex(t *testing.T) {
	setup(t)
	if r := run(t, "", "workspace", "create", "alice"); r.code != 0 {
		t.Fatal(r)
	}
	if r := run(t, "", "memory", "add", "alice", "the staging database lives in frankfurt"); r.code != 0 {
		t.Fatal(r)
	}
	if r := run(t, "", "backup", "alice"); r.code != 0 {
		t.Fatal(r)
	}
	if r := run(t, "", "memory", "add", "alice", "the pelican password rotates weekly"); r.code != 0 {
		t.Fatal(r)
	}
	if r := run(t, "", "memory", "search", "alice", "pelican"); !strings.Contains(r.stdout, "pelican") {
		t.Fatalf("search before restore: %+v", r)
	}
	if r := run(t, "", "restore", "alice", "latest", "--yes"); r.code != 0 {
		t.Fatalf("restore: %+v", r)
	}
	if r := run(t, "", "memory", "add", "alice", "lunch is at noon"); r.code != 0 {
		t.Fatal(r)
	}
	if r := run(t, "", "memory", "search", "alice", "pelican"); strings.Contains(r.stdout, "pelican") {
		t.Fatalf("memory from after the snapshot found after the restore: %+v", r)
	}
	if r := run(t, "", "memory", "search", "alice", "staging database"); !strings.Contains(r.stdout, "frankfurt") {
		t.Fatalf("restored memory not found: %+v", r)
	}
}
