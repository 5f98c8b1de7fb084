package sandbox_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/bulkhead-dev/bulkhead/sandbox"
)

func TestPool(t *testing.T) {
	requireSandbox(t)
	pool := sandbox.NewPool()
	defer pool.Close()
	uid, gid := testIDs()
	cfg := sandbox.Config{ID: "pooled", HostUID: uid, HostGID: gid, WorkspaceDir: workspaceDir(t, uid, gid), IdleTimeout: 400 * time.Millisecond}
	ctx := context.Background()

	// Concurrent first uses start one sandbox.
	var wg sync.WaitGroup
	pids := make(chan int, 8)
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sb, err := pool.Get(ctx, cfg)
			if err != nil {
				t.Error(err)
				return
			}
			pids <- sb.InitPID()
		}()
	}
	wg.Wait()
	close(pids)
	first := -1
	for pid := range pids {
		if first == -1 {
			first = pid
		} else if pid != first {
			t.Fatalf("two sandboxes for one id: %d and %d", first, pid)
		}
	}
	if res, err := pool.Exec(ctx, cfg, sandbox.Command{Args: []string{"/bin/true"}}); err != nil || res.ExitCode != 0 {
		t.Fatalf("exec: %v %+v", err, res)
	}
	// After the idle timeout the sandbox is reaped; the next Exec starts a
	// new one transparently.
	sb, _ := pool.Get(ctx, cfg)
	select {
	case <-sb.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("not reaped")
	}
	if pool.Len() != 0 {
		t.Fatalf("reaped sandbox still counted: %d", pool.Len())
	}
	if res, err := pool.Exec(ctx, cfg, sandbox.Command{Args: []string{"/bin/true"}}); err != nil || res.ExitCode != 0 {
		t.Fatalf("exec after reap: %v %+v", err, res)
	}
	sb2, _ := pool.Get(ctx, cfg)
	if sb2.InitPID() == first {
		t.Fatal("reaped sandbox reused")
	}
	if err := pool.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := pool.Get(ctx, cfg); !errors.Is(err, sandbox.ErrClosed) {
		t.Fatalf("get after close: %v", err)
	}
}
