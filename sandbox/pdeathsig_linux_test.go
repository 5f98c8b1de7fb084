package sandbox_test

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/bulkhead-dev/bulkhead/sandbox"
)

const hostArg = "__bulkhead-test-host"

// hostChild plays a bulkhead process: it starts a sandbox with a background
// process in it, reports the init's pid and cgroup, and waits to be killed.
func hostChild() int {
	sb, err := sandbox.Start(context.Background(), sandbox.Config{ID: "orphan", HostUID: 65534, HostGID: 65534, IdleTimeout: -1})
	if err != nil {
		fmt.Println("start:", err)
		return 1
	}
	if _, err := sb.Exec(context.Background(), sandbox.Command{Args: []string{"/bin/sh", "-c", "setsid sleep 1000 >/dev/null 2>&1 &"}}); err != nil {
		fmt.Println("exec:", err)
		return 1
	}
	fmt.Printf("init %d cgroup %s\n", sb.InitPID(), sb.CgroupPath())
	time.Sleep(time.Hour)
	return 0
}

// TestHostDeathKillsSandbox: when the bulkhead process dies without
// cleaning up (SIGKILL), PDEATHSIG takes the init down and the pid
// namespace takes everything in it: nothing is left running.
func TestHostDeathKillsSandbox(t *testing.T) {
	requireSandbox(t)
	exe, _ := os.Executable()
	cmd := exec.Command(exe, hostArg)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		cmd.Process.Kill()
		t.Fatalf("host child: %v %q", err, line)
	}
	var pid int
	var cg string
	if _, err := fmt.Sscanf(line, "init %d cgroup %s", &pid, &cg); err != nil {
		cmd.Process.Kill()
		t.Fatalf("host child said %q", line)
	}
	procsFile := filepath.Join(cg, "cgroup.procs")
	before, _ := os.ReadFile(procsFile)
	if n := len(strings.Fields(string(before))); n < 2 {
		t.Fatalf("expected init and a background process in %s, got %q", cg, before)
	}
	cmd.Process.Kill()
	cmd.Wait()
	deadline := time.Now().Add(10 * time.Second)
	for {
		b, err := os.ReadFile(procsFile)
		alive := running(pid)
		if err == nil && len(strings.TrimSpace(string(b))) == 0 && !alive {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after the host died: init alive=%v, cgroup procs %q", alive, b)
		}
		time.Sleep(20 * time.Millisecond)
	}
	// The dead host could not remove its sandbox's group; the next bulkhead
	// process sweeps it (here after a second instead of staleAge; a group
	// that young with no process could only be another process's sandbox in
	// the instant between creating its group and its init joining it).
	time.Sleep(1100 * time.Millisecond)
	sandbox.SetStaleAge(time.Second)
	defer sandbox.SetStaleAge(2 * time.Minute)
	sandbox.SweepStale()
	base := filepath.Base(cg)
	left, _ := filepath.Glob("/sys/fs/cgroup/*/" + base)
	deeper, _ := filepath.Glob("/sys/fs/cgroup/*/*/" + base)
	deepest, _ := filepath.Glob("/sys/fs/cgroup/*/*/*/" + base)
	if all := append(append(left, deeper...), deepest...); len(all) > 0 {
		t.Fatalf("stale groups not swept: %v", all)
	}
}

// running reports whether pid exists and is not a zombie (an orphan's
// status waits for whoever reaps orphans on this host).
func running(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i < 0 || i+2 >= len(s) || s[i+2] != 'Z'
}
