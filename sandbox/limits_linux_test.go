package sandbox_test

import (
	"context"
	"errors"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/bulkhead-dev/bulkhead/sandbox"
	"github.com/bulkhead-dev/bulkhead/sandbox/internal/escape"
)

// waitOnlyInit polls until the sandbox's cgroup holds the init alone.
func waitOnlyInit(t *testing.T, sb *sandbox.Sandbox) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		ps, err := sb.Processes()
		if err != nil {
			t.Fatal(err)
		}
		if len(ps) == 1 && ps[0] == sb.InitPID() {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("processes left behind: %v (init %d)", ps, sb.InitPID())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func hostAndNeighbourFine(t *testing.T, neighbour *sandbox.Sandbox) {
	t.Helper()
	if err := exec.Command("/bin/true").Run(); err != nil {
		t.Fatalf("host cannot fork+exec: %v", err)
	}
	must(t, sh(t, neighbour, "echo fine > /tmp/x && cat /tmp/x"), 0)
}

func TestForkBombContained(t *testing.T) {
	neighbour := startSandbox(t, "fb-neighbour", nil)
	sb := startSandbox(t, "forkbomb", func(c *sandbox.Config) { c.Limits.Pids = 64 })
	done := make(chan output, 1)
	go func() {
		o, err := runErr(sb, sandbox.Command{Args: []string{"/bin/sh", "-c", "f(){ f | f & }; f; sleep 100"}, Timeout: 3 * time.Second})
		if err != nil {
			t.Errorf("fork bomb exec: %v", err)
		}
		done <- o
	}()
	time.Sleep(time.Second)
	hostAndNeighbourFine(t, neighbour)
	o := <-done
	if !o.res.TimedOut {
		t.Fatalf("fork bomb not reported as timed out: %+v", o.res)
	}
	waitOnlyInit(t, sb)
	must(t, sh(t, sb, "echo alive"), 0)
	// Commands get the Pids share as RLIMIT_NPROC; the init keeps a reserve.
	o = sh(t, sb, "grep 'Max processes' /proc/self/limits")
	if f := strings.Fields(o.stdout); len(f) < 4 || f[2] != "64" || f[3] != strconv.Itoa(64+sandbox.InitReserve) {
		t.Fatalf("command nproc limits: %q", o.stdout)
	}
}

func TestMemoryBombOOM(t *testing.T) {
	neighbour := startSandbox(t, "mb-neighbour", nil)
	sb := startSandbox(t, "membomb", func(c *sandbox.Config) {
		c.Limits.MemoryBytes = 64 << 20
		bindSelf(c)
	})
	o, err := runErr(sb, sandbox.Command{Args: []string{selfPath(), escape.ProbeArg, "alloc", "512"}})
	if err != nil {
		t.Fatal(err)
	}
	if !o.res.OOMKilled || o.res.Signal != int(syscall.SIGKILL) || o.res.ExitCode != 137 || o.res.TimedOut {
		t.Fatalf("memory bomb result %+v, want OOMKilled by SIGKILL (stdout %q)", o.res, o.stdout)
	}
	hostAndNeighbourFine(t, neighbour)
	// The sandbox survives its command's OOM, and a small command is not
	// reported as OOM-killed afterwards.
	o = sh(t, sb, "echo alive")
	if o.res.OOMKilled || o.res.ExitCode != 0 {
		t.Fatalf("after OOM: %+v", o.res)
	}
}

func TestTmpFillerContained(t *testing.T) {
	neighbour := startSandbox(t, "tf-neighbour", nil)
	sb := startSandbox(t, "tmpfill", func(c *sandbox.Config) { c.Limits.TmpBytes = 8 << 20 })
	o := sh(t, sb, "dd if=/dev/zero of=/tmp/fill bs=1M count=64 2>&1; echo rc=$?")
	if !strings.Contains(o.stdout, "No space left on device") || !strings.Contains(o.stdout, "rc=1") {
		t.Fatalf("tmp filler not stopped: %q", o.stdout)
	}
	o = sh(t, sb, "dd if=/dev/zero of=/dev/shm/fill bs=1M count=64 2>&1; echo rc=$?")
	if !strings.Contains(o.stdout, "No space left on device") {
		t.Fatalf("shm filler not stopped: %q", o.stdout)
	}
	hostAndNeighbourFine(t, neighbour)
	must(t, sh(t, neighbour, "dd if=/dev/zero of=/tmp/ok bs=1M count=16 2>/dev/null"), 0)
}

func TestTimeoutKillsWholeTree(t *testing.T) {
	sb := startSandbox(t, "timeout", nil)
	start := time.Now()
	o, err := runErr(sb, sandbox.Command{
		Args:    []string{"/bin/sh", "-c", "sleep 100 & setsid sleep 100 & (trap '' TERM HUP; exec sleep 100) & sleep 100"},
		Timeout: 500 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	if !o.res.TimedOut || o.res.Signal != int(syscall.SIGKILL) {
		t.Fatalf("result %+v, want TimedOut by SIGKILL", o.res)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("timeout took %v", d)
	}
	waitOnlyInit(t, sb)
}

func TestContextCancelKills(t *testing.T) {
	sb := startSandbox(t, "cancel", nil)
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(300*time.Millisecond, cancel)
	res, err := sb.Exec(ctx, sandbox.Command{Args: []string{"/bin/sleep", "100"}})
	if err != nil {
		t.Fatal(err)
	}
	if !res.TimedOut {
		t.Fatalf("cancel not reported: %+v", res)
	}
	waitOnlyInit(t, sb)
}

func TestBadInput(t *testing.T) {
	sb := startSandbox(t, "badinput", nil)
	o, err := runErr(sb, sandbox.Command{Args: []string{"no-such-command-xyz"}})
	if !errors.Is(err, sandbox.ErrCommandNotFound) || o.res.ExitCode != 127 || !strings.Contains(err.Error(), "no-such-command-xyz") {
		t.Fatalf("unknown command: res %+v err %v", o.res, err)
	}
	o, err = runErr(sb, sandbox.Command{Args: []string{"/etc/passwd"}})
	if !errors.Is(err, sandbox.ErrNotExecutable) || o.res.ExitCode != 126 {
		t.Fatalf("non-executable: res %+v err %v", o.res, err)
	}
	if _, err := runErr(sb, sandbox.Command{Args: []string{"/bin/true"}, Dir: "/nonexistent"}); err == nil {
		t.Fatal("bad working directory accepted")
	}
	if _, err := runErr(sb, sandbox.Command{Args: []string{"/bin/echo", strings.Repeat("x", sandbox.MaxMessageSize)}}); !errors.Is(err, sandbox.ErrRequestTooLarge) {
		t.Fatalf("oversized request: %v", err)
	}
	must(t, sh(t, sb, "exit 0"), 0) // still serving after the refusals

	uid, gid := testIDs()
	for name, cfg := range map[string]sandbox.Config{
		"memory":    {ID: "low", HostUID: uid, HostGID: gid, Limits: sandbox.Limits{MemoryBytes: 1 << 20}},
		"pids":      {ID: "low", HostUID: uid, HostGID: gid, Limits: sandbox.Limits{Pids: 2}},
		"tmp":       {ID: "low", HostUID: uid, HostGID: gid, Limits: sandbox.Limits{TmpBytes: 1024}},
		"host root": {ID: "root", HostUID: 0, HostGID: 0},
		"bad id":    {ID: "../x", HostUID: uid, HostGID: gid},
	} {
		_, err := sandbox.Start(context.Background(), cfg)
		want := sandbox.ErrLimitTooLow
		if name == "host root" || name == "bad id" {
			want = sandbox.ErrInvalidConfig
		}
		if !errors.Is(err, want) {
			t.Errorf("%s: got %v, want %v", name, err, want)
		}
	}
	if err := sb.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := sb.Exec(context.Background(), sandbox.Command{Args: []string{"/bin/true"}}); !errors.Is(err, sandbox.ErrClosed) {
		t.Fatalf("exec on closed sandbox: %v", err)
	}
}

func TestSetupFailureNamesLayer(t *testing.T) {
	requireSandbox(t)
	uid, gid := testIDs()
	_, err := sandbox.Start(context.Background(), sandbox.Config{ID: "nows", HostUID: uid, HostGID: gid, WorkspaceDir: "/nonexistent/workspace"})
	var se *sandbox.SetupError
	if !errors.As(err, &se) || se.Layer != "workspace" {
		t.Fatalf("got %v, want a SetupError for layer workspace", err)
	}
}

// Commands are the OOM killer's preferred victims, never the init: the
// sandbox outlives a memory bomb.
func TestCommandsPreferredOOMVictims(t *testing.T) {
	sb := startSandbox(t, "oomadj", nil)
	o := sh(t, sb, "cat /proc/self/oom_score_adj /proc/1/oom_score_adj")
	if f := strings.Fields(o.stdout); len(f) != 2 || f[0] != "500" || f[1] != "0" {
		t.Fatalf("oom_score_adj of a command and of the init: %q, want 500 and 0", o.stdout)
	}
}
