package sync_test

import (
	"bufio"
	"context"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	bsync "github.com/bulkhead-dev/bulkhead/sync"
	"github.com/bulkhead-dev/bulkhead/sync/local"
)

const crashHelperEnv = "BULKHEAD_SYNC_CRASH_HELPER"

func TestMain(m *testing.M) {
	if os.Getenv(crashHelperEnv) == "1" {
		crashHelper()
		return
	}
	os.Exit(m.Run())
}

// crashHelper runs a backup whose state stream announces itself on stdout
// and then blocks forever, so the parent can kill -9 it mid-backup.
func crashHelper() {
	key, _ := hex.DecodeString(os.Getenv("SYNC_KEY"))
	store, err := local.Open(os.Getenv("SYNC_STORE"))
	if err != nil {
		fmt.Println("ERR", err)
		os.Exit(2)
	}
	repo, err := bsync.Open(context.Background(), store, key, bsync.Options{})
	if err != nil {
		fmt.Println("ERR", err)
		os.Exit(2)
	}
	_, err = repo.Backup(context.Background(), os.Getenv("SYNC_SRC"), bsync.BackupOptions{State: blockForever{}})
	fmt.Println("ERR backup returned", err)
	os.Exit(2)
}

type blockForever struct{}

func (blockForever) Read([]byte) (int, error) {
	fmt.Println("READING STATE")
	select {}
}

func TestKill9DuringBackup(t *testing.T) {
	t.Parallel()
	storeDir := t.TempDir()
	store, err := local.Open(storeDir)
	if err != nil {
		t.Fatal(err)
	}
	key := newKey(t)
	initRepo(t, store, key)
	src := t.TempDir()
	for i := range 3 {
		write(t, filepath.Join(src, fmt.Sprintf("big%d", i)), randBytes(14<<20, uint64(i)), 0o644)
	}
	write(t, filepath.Join(src, "small"), []byte("small"), 0o644)

	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), crashHelperEnv+"=1", "SYNC_KEY="+hex.EncodeToString(key), "SYNC_STORE="+storeDir, "SYNC_SRC="+src)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil || !strings.HasPrefix(line, "READING STATE") {
		cmd.Process.Kill()
		cmd.Wait()
		t.Fatalf("helper: %q, %v", line, err)
	}
	// Packs are being written and the lock is held: kill it hard.
	deadline := time.Now().Add(30 * time.Second)
	for n, _ := storeBytes(t, store, "data/"); n < 2 && time.Now().Before(deadline); n, _ = storeBytes(t, store, "data/") {
		time.Sleep(50 * time.Millisecond)
	}
	cmd.Process.Kill()
	cmd.Wait()
	packs, _ := storeBytes(t, store, "data/")
	if packs == 0 {
		t.Fatal("helper was killed before it wrote any pack; the test proves nothing")
	}

	store, err = local.Open(storeDir) // as the next process would
	if err != nil {
		t.Fatal(err)
	}
	repo, err := bsync.Open(t.Context(), store, key, bsync.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if snaps, err := repo.Snapshots(t.Context()); err != nil || len(snaps) != 0 {
		t.Fatalf("killed backup left %d snapshots (%v)", len(snaps), err)
	}
	rep, err := repo.Verify(t.Context(), bsync.VerifyOptions{ReadData: 1})
	if err != nil || !rep.OK() {
		t.Fatalf("verify after kill -9: %v\n%s", err, problemsText(rep))
	}
	snap, err := repo.Backup(t.Context(), src, bsync.BackupOptions{})
	if err != nil {
		t.Fatalf("backup after kill -9: %v", err)
	}
	dst := t.TempDir()
	if err := repo.Restore(t.Context(), snap, dst, bsync.RestoreOptions{}); err != nil {
		t.Fatal(err)
	}
	compareTrees(t, src, dst)
	// The dead backup's lock blocks prune until it goes stale.
	if _, err := repo.Prune(t.Context(), bsync.PruneOptions{Keep: bsync.Retention{Last: 1}}); err == nil {
		t.Fatal("prune ran while a dead backup's lock was still fresh")
	}
	t.Logf("killed after %d packs; %d unused packs left for prune", packs, rep.UnusedPacks)
}
