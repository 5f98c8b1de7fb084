package sandbox_test

import (
	"context"
	"errors"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/bulkhead-dev/bulkhead/sandbox"
)

// statusField reads one field of /proc/pid/status.
func statusField(t *testing.T, pid int, key string) string {
	t.Helper()
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, key+":"); ok {
			return strings.TrimSpace(v)
		}
	}
	t.Fatalf("no %s in /proc/%d/status", key, pid)
	return ""
}

func fdCount(t *testing.T, pid int) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/" + strconv.Itoa(pid) + "/fd")
	if err != nil {
		t.Fatal(err)
	}
	return len(ents)
}

// TestLauncherClonesInits: inits are children of the launcher (not of
// bulkhead, whose memory a fork would copy), the launcher is a child of
// bulkhead outside every sandbox namespace, and it keeps nothing of a
// sandbox once the init is cloned.
func TestLauncherClonesInits(t *testing.T) {
	first := startSandbox(t, "launch-a", nil)
	l := sandbox.LauncherPID()
	if l == 0 {
		t.Fatal("no launcher after Start")
	}
	if got := statusField(t, first.InitPID(), "PPid"); got != strconv.Itoa(l) {
		t.Fatalf("init's parent is %s, want the launcher %d", got, l)
	}
	if got := statusField(t, l, "PPid"); got != strconv.Itoa(os.Getpid()) {
		t.Fatalf("launcher's parent is %s, want bulkhead %d", got, os.Getpid())
	}
	for _, ns := range []string{"user", "mnt", "pid", "net", "uts", "ipc", "cgroup"} {
		host, _ := os.Readlink("/proc/self/ns/" + ns)
		got, err := os.Readlink("/proc/" + strconv.Itoa(l) + "/ns/" + ns)
		if err != nil || got != host {
			t.Errorf("launcher %s namespace %s (%v), want the host's %s", ns, got, err, host)
		}
	}
	before := fdCount(t, l)
	var more []*sandbox.Sandbox
	for i := range 3 {
		more = append(more, startSandbox(t, "launch-more-"+strconv.Itoa(i), nil))
	}
	if after := fdCount(t, l); after != before {
		t.Errorf("launcher holds %d descriptors with 4 sandboxes, %d with 1", after, before)
	}
	if sandbox.LauncherPID() != l {
		t.Errorf("launcher replaced while alive: %d, then %d", l, sandbox.LauncherPID())
	}
	for _, sb := range append(more, first) {
		must(t, run(t, sb, "/usr/bin/true"), 0)
	}
}

// TestLauncherDeath: if the launcher dies, every sandbox it cloned dies
// with it (PDEATHSIG) and is reported closed; nothing is left in their
// groups, and the next Start brings up a new launcher.
func TestLauncherDeath(t *testing.T) {
	a := startSandbox(t, "ldeath-a", nil)
	b := startSandbox(t, "ldeath-b", nil)
	run(t, a, "/bin/sh", "-c", "setsid sleep 1000 >/dev/null 2>&1 &")
	old := sandbox.LauncherPID()
	if err := syscall.Kill(old, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	for _, sb := range []*sandbox.Sandbox{a, b} {
		select {
		case <-sb.Done():
		case <-time.After(10 * time.Second):
			t.Fatalf("sandbox %d still alive 10s after its launcher died", sb.InitPID())
		}
		if _, err := sb.Exec(context.Background(), sandbox.Command{Args: []string{"/usr/bin/true"}}); !errors.Is(err, sandbox.ErrClosed) {
			t.Fatalf("exec after launcher death: %v, want ErrClosed", err)
		}
		waitEmpty(t, sb)
	}
	c := startSandbox(t, "ldeath-c", nil)
	if l := sandbox.LauncherPID(); l == old || l == 0 {
		t.Fatalf("launcher after restart %d (old %d)", l, old)
	}
	must(t, run(t, c, "/usr/bin/true"), 0)
}

// waitEmpty polls until the sandbox's cgroup holds no process.
func waitEmpty(t *testing.T, sb *sandbox.Sandbox) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		ps, err := sb.Processes()
		if err == nil && len(ps) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("processes left in the sandbox's group: %v (%v)", ps, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestInitKeepsNoHostDescriptors: the cgroup.procs descriptors the init
// joins its group through (v1) are closed once it has, and it holds no
// other host file either: only its socket, stdio and what it opened inside.
func TestInitKeepsNoHostDescriptors(t *testing.T) {
	sb := startSandbox(t, "init-fds", nil)
	dir := "/proc/" + strconv.Itoa(sb.InitPID()) + "/fd"
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		target, err := os.Readlink(dir + "/" + e.Name())
		if err != nil {
			continue // closed meanwhile
		}
		if strings.Contains(target, "cgroup") || strings.HasPrefix(target, "/sys/") {
			t.Errorf("init fd %s is %s", e.Name(), target)
		}
	}
	if ps, err := sb.Processes(); err != nil || len(ps) != 1 || ps[0] != sb.InitPID() {
		t.Fatalf("group members %v (%v), want the init %d alone", ps, err, sb.InitPID())
	}
}
