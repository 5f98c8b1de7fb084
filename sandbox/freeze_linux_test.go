package sandbox_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/bulkhead-dev/bulkhead/sandbox"
)

// A frozen sandbox runs nothing: a loop rewriting a file stops changing it
// until Thaw, and then goes on.
func TestFreezeThaw(t *testing.T) {
	var dir string
	sb := startSandbox(t, "freeze", func(c *sandbox.Config) { dir = c.WorkspaceDir })
	done := make(chan error, 1)
	go func() {
		_, err := runErr(sb, sandbox.Command{Args: []string{"sh", "-c", `i=0; while :; do i=$((i+1)); echo $i > /workspace/counter; done`}, Timeout: 60 * time.Second})
		done <- err
	}()
	defer sb.Thaw()
	counter := filepath.Join(dir, "counter")
	read := func() string { b, _ := os.ReadFile(counter); return string(b) }
	deadline := time.Now().Add(20 * time.Second)
	for len(read()) < 3 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if time.Now().After(deadline) {
		t.Fatal("the loop never wrote")
	}
	start := time.Now()
	if err := sb.Freeze(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Logf("freeze of a busy sandbox took %v", time.Since(start))
	if frozen, err := sb.Frozen(); err != nil || !frozen {
		t.Fatalf("frozen = %v, %v", frozen, err)
	}
	a := read()
	time.Sleep(200 * time.Millisecond)
	if b := read(); a != b {
		t.Fatalf("file changed while frozen: %q -> %q", a, b)
	}
	start = time.Now()
	if err := sb.Thaw(); err != nil {
		t.Fatal(err)
	}
	t.Logf("thaw took %v", time.Since(start))
	if frozen, _ := sb.Frozen(); frozen {
		t.Fatal("still frozen after Thaw")
	}
	deadline = time.Now().Add(10 * time.Second)
	resumed := false
	for !resumed && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
		resumed = read() != a
	}
	if !resumed {
		t.Fatal("loop did not resume after Thaw")
	}
	// A cancelled freeze leaves the sandbox running.
	cctx, ccancel := context.WithCancel(context.Background())
	ccancel()
	if err := sb.Freeze(cctx); err == nil {
		// The kernel may freeze at the first write; then thaw ourselves.
		sb.Thaw()
	}
	if frozen, _ := sb.Frozen(); frozen {
		t.Fatal("a failed Freeze left the sandbox frozen")
	}
	// Exec still works after all that.
	if o := run(t, sb, "true"); o.res.ExitCode != 0 {
		t.Fatalf("exec after thaw: %+v", o.res)
	}
	sb.Close()
	<-done
}
