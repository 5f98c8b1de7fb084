package workspace

import (
	"bytes"
	"context"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/bulkhead-dev/bulkhead/internal/testutil"
	"github.com/bulkhead-dev/bulkhead/sandbox"
)

// A backup taken while a process in the sandbox keeps appending line i to
// one file and then writing i to another holds one moment of both: the
// count file says the log's last number, or one less (frozen between the
// two writes), or nothing (frozen between truncate and write). Without the
// freeze the two files are read at different moments and drift apart.
func TestBackupFreezesSandbox(t *testing.T) {
	testutil.RequireRoot(t)
	testutil.RequireFUSE(t)
	testutil.RequireUserNS(t)
	ctx := context.Background()
	s := openService(t, t.TempDir(), "pw")
	defer s.Close()
	if _, err := s.Create(ctx, "alice", nil); err != nil {
		t.Fatal(err)
	}
	writer := `i=0; while :; do i=$((i+1)); echo $i >> /workspace/z_log; echo $i > /workspace/a_count; done`
	done := make(chan error, 1)
	wctx, stop := context.WithCancel(ctx)
	defer stop()
	go func() {
		_, err := s.Exec(wctx, "alice", sandbox.Command{Args: []string{"sh", "-c", writer}, Timeout: 5 * time.Minute})
		done <- err
	}()
	f := filepath.Join(s.FilesDir("alice"), "a_count")
	// Files read between a_count and z_log (paths are read in order), each
	// touched before every backup so it is read again: without the freeze
	// the writer moves on meanwhile.
	fill := filepath.Join(s.FilesDir("alice"), "m")
	if err := os.Mkdir(fill, 0o755); err != nil {
		t.Fatal(err)
	}
	for k := range 2000 {
		if err := os.WriteFile(filepath.Join(fill, strconv.Itoa(k)), []byte(strconv.Itoa(k)), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		if fi, err := os.Stat(f); err == nil && fi.Size() > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the writer never wrote")
		}
		time.Sleep(10 * time.Millisecond)
	}
	repo, err := s.SnapshotRepo(ctx, LocalSnapshotStores(t.TempDir()), "alice", true)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 6 {
		now := time.Now()
		for k := range 2000 {
			os.Chtimes(filepath.Join(fill, strconv.Itoa(k)), now, now.Add(time.Duration(i+1)*time.Second))
		}
		start := time.Now()
		snap, err := s.Backup(ctx, repo, "alice", BackupOptions{})
		if err != nil {
			t.Fatal(err)
		}
		fsys, err := repo.FS(ctx, snap)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("backup %d: %v", i, time.Since(start))
		logb, err := fs.ReadFile(fsys, "z_log")
		if err != nil {
			t.Fatal(err)
		}
		countb, err := fs.ReadFile(fsys, "a_count")
		if err != nil {
			t.Fatal(err)
		}
		lines := strings.Split(strings.TrimSuffix(string(logb), "\n"), "\n")
		last, err1 := strconv.Atoi(lines[len(lines)-1])
		count, err2 := strconv.Atoi(strings.TrimSpace(string(countb)))
		switch {
		case err1 != nil || !strings.HasSuffix(string(logb), "\n"):
			t.Errorf("backup %d: log ends in a partial line %q", i, lines[len(lines)-1])
		case len(countb) == 0:
		case err2 != nil || (count != last && count != last-1):
			t.Errorf("backup %d: count %q but the log ends at %d: two moments", i, countb, last)
		}
		// The sandbox runs again after each backup.
		if frozen, _ := s.liveFor("alice").sb.Frozen(); frozen {
			t.Fatalf("backup %d left the sandbox frozen", i)
		}
	}
	before, _ := os.ReadFile(f)
	deadline = time.Now().Add(10 * time.Second)
	for after, _ := os.ReadFile(f); bytes.Equal(before, after); after, _ = os.ReadFile(f) {
		if time.Now().After(deadline) {
			t.Fatal("the writer stopped after the backups")
		}
		time.Sleep(10 * time.Millisecond)
	}
	stop()
	<-done
}
