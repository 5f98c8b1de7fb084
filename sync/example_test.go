package sync_test

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"

	bsync "github.com/bulkhead-dev/bulkhead/sync"
	"github.com/bulkhead-dev/bulkhead/sync/local"
)

// Back a directory up into a local repository and restore it elsewhere.
func Example() {
	ctx := context.Background()
	tmp, _ := os.MkdirTemp("", "sync-example")
	defer os.RemoveAll(tmp)
	src := filepath.Join(tmp, "src")
	os.MkdirAll(src, 0o755)
	os.WriteFile(filepath.Join(src, "hello.txt"), []byte("hello"), 0o644)

	store, err := local.Open(filepath.Join(tmp, "repo"))
	if err != nil {
		panic(err)
	}
	key := make([]byte, bsync.KeySize) // bulkhead passes a subkey of the workspace's data key
	repo, err := bsync.Init(ctx, store, key, bsync.Options{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		panic(err)
	}
	snap, err := repo.Backup(ctx, src, bsync.BackupOptions{})
	if err != nil {
		panic(err)
	}
	fmt.Println("files:", snap.Stats.Files)

	dst := filepath.Join(tmp, "dst")
	if err := repo.Restore(ctx, snap, dst, bsync.RestoreOptions{}); err != nil {
		panic(err)
	}
	b, _ := os.ReadFile(filepath.Join(dst, "hello.txt"))
	fmt.Println(string(b))
	// Output:
	// files: 1
	// hello
}
