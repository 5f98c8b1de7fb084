package kv

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"
)

// The test binary doubles as the child process of the lock and crash tests.
func TestMain(m *testing.M) {
	switch os.Getenv("KV_TEST_CHILD") {
	case "lock":
		l, err := LockDir(os.Getenv("KV_TEST_DIR"))
		if err != nil {
			fmt.Println("ERR", err)
			os.Exit(1)
		}
		fmt.Println("LOCKED")
		time.Sleep(time.Minute)
		l.Unlock()
		os.Exit(0)
	case "writer":
		crashWriter(os.Getenv("KV_TEST_DIR"))
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func child(t *testing.T, kind, dir string) (*exec.Cmd, *bufio.Scanner) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "KV_TEST_CHILD="+kind, "KV_TEST_DIR="+dir)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	return cmd, bufio.NewScanner(out)
}

func TestLockNamesHolderPID(t *testing.T) {
	dir := t.TempDir()
	cmd, sc := child(t, "lock", dir)
	if !sc.Scan() || sc.Text() != "LOCKED" {
		t.Fatalf("child did not lock: %q", sc.Text())
	}
	_, err := LockDir(dir)
	var le *LockedError
	if !errors.As(err, &le) || !errors.Is(err, ErrLocked) {
		t.Fatalf("got %v, want LockedError", err)
	}
	if le.PID != cmd.Process.Pid {
		t.Fatalf("error names pid %d, holder is %d", le.PID, cmd.Process.Pid)
	}
	if want := fmt.Sprintf("in use by pid %d", cmd.Process.Pid); !strings.Contains(err.Error(), want) {
		t.Fatalf("error %q does not say %q", err, want)
	}
	// The lock dies with its holder, even on SIGKILL.
	cmd.Process.Kill()
	cmd.Wait()
	l, err := LockDir(dir)
	if err != nil {
		t.Fatalf("lock after holder died: %v", err)
	}
	if HolderPID(dir) != os.Getpid() {
		t.Fatalf("lock file names %d, want %d", HolderPID(dir), os.Getpid())
	}
	l.Unlock()
}

// crashWriter commits numbered keys forever, printing each number after its
// commit returned. The parent kills it with SIGKILL mid-stream.
func crashWriter(dir string) {
	p := NewPool(Options{})
	db, _, err := p.Acquire(context.Background(), dir, bytes.Repeat([]byte{7}, 32))
	if err != nil {
		fmt.Println("ERR", err)
		os.Exit(1)
	}
	w := bufio.NewWriter(os.Stdout)
	for i := 0; ; i++ {
		err := db.Update(func(txn *badger.Txn) error {
			return txn.Set([]byte(fmt.Sprintf("k%08d", i)), bytes.Repeat([]byte{byte(i)}, 100+i%5000))
		})
		if err != nil {
			fmt.Println("ERR", err)
			os.Exit(1)
		}
		fmt.Fprintln(w, i)
		w.Flush()
	}
}

func TestCommittedWritesSurviveKill9(t *testing.T) {
	dir := t.TempDir()
	cmd, sc := child(t, "writer", dir)
	last := -1
	for sc.Scan() {
		n, err := strconv.Atoi(sc.Text())
		if err != nil {
			t.Fatalf("child: %s", sc.Text())
		}
		last = n
		if n == 3000 {
			cmd.Process.Signal(syscall.SIGKILL)
			break
		}
	}
	cmd.Wait()
	if last < 0 {
		t.Fatal("child committed nothing")
	}
	p := NewPool(Options{})
	defer p.Shutdown()
	db, release, err := p.Acquire(context.Background(), dir, bytes.Repeat([]byte{7}, 32))
	if err != nil {
		t.Fatalf("reopen after kill -9: %v", err)
	}
	defer release()
	err = db.View(func(txn *badger.Txn) error {
		for i := 0; i <= last; i++ {
			item, err := txn.Get([]byte(fmt.Sprintf("k%08d", i)))
			if err != nil {
				return fmt.Errorf("key %d of %d acknowledged: %w", i, last, err)
			}
			if item.ValueSize() != int64(100+i%5000) {
				return fmt.Errorf("key %d: value size %d", i, item.ValueSize())
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("all %d acknowledged writes present after SIGKILL", last+1)
}

func TestPoolLRUKeepsInUse(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	p := NewPool(Options{MaxOpen: 2, IdleGC: -1})
	defer p.Shutdown()
	ctx := context.Background()
	var releases []func()
	for i := range 4 {
		_, rel, err := p.Acquire(ctx, filepath.Join(root, strconv.Itoa(i)), nil)
		if err != nil {
			t.Fatal(err)
		}
		releases = append(releases, rel)
	}
	if p.OpenCount() != 4 {
		t.Fatalf("in-use databases closed: %d open", p.OpenCount())
	}
	for _, r := range releases {
		r()
		r() // a second call is a no-op
	}
	if p.OpenCount() != 2 {
		t.Fatalf("LRU kept %d open, want 2", p.OpenCount())
	}
	// The most recently released ones (2, 3) stay; 0 reopens from disk.
	db, rel, err := p.Acquire(ctx, filepath.Join(root, "0"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Update(func(txn *badger.Txn) error { return txn.Set([]byte("a"), []byte("b")) }); err != nil {
		t.Fatal(err)
	}
	if err := p.Close(filepath.Join(root, "0")); err == nil {
		t.Fatal("Close of an in-use database succeeded")
	}
	rel()
	if err := p.Close(filepath.Join(root, "0")); err != nil {
		t.Fatal(err)
	}
}

func TestEncryptedNeedsKey(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	p := NewPool(Options{IdleGC: -1})
	defer p.Shutdown()
	ctx := context.Background()
	key := bytes.Repeat([]byte{1}, 32)
	db, rel, err := p.Acquire(ctx, dir, key)
	if err != nil {
		t.Fatal(err)
	}
	secret := []byte("plaintext-marker-4242")
	if err := UpdateSync(db, func(txn *badger.Txn) error { return txn.Set([]byte("k"), secret) }); err != nil {
		t.Fatal(err)
	}
	rel()
	if err := p.Close(dir); err != nil {
		t.Fatal(err)
	}
	filepath.Walk(dir, func(path string, info os.FileInfo, err error) error {
		if err == nil && !info.IsDir() {
			b, _ := os.ReadFile(path)
			if bytes.Contains(b, secret) {
				t.Errorf("plaintext in %s", path)
			}
		}
		return nil
	})
	if _, _, err := p.Acquire(ctx, dir, bytes.Repeat([]byte{2}, 32)); err == nil {
		t.Fatal("opened with the wrong key")
	}
	if _, _, err := p.Acquire(ctx, dir, []byte("short")); !errors.Is(err, ErrBadKey) {
		t.Fatalf("short key: %v", err)
	}
}

func TestIdleGCRuns(t *testing.T) {
	t.Parallel()
	p := NewPool(Options{IdleGC: 10 * time.Millisecond})
	defer p.Shutdown()
	dir := t.TempDir()
	_, rel, err := p.Acquire(context.Background(), dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	rel()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		p.mu.Lock()
		e := p.dbs[dir]
		done := e != nil && e.gcDone
		p.mu.Unlock()
		if done {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatal("janitor never ran value-log GC on an idle database")
}
