package sandbox_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bulkhead-dev/bulkhead/sandbox"
)

func readInt(t *testing.T, path string) int64 {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	n, err := strconv.ParseInt(strings.Fields(string(b))[0], 10, 64)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return n
}

// TestCgroupLimitsOnHost reads the limits back from the host's cgroup files,
// and checks the group is nested under the test's own cgroup.
func TestCgroupLimitsOnHost(t *testing.T) {
	sb := startSandbox(t, "cglimits", func(c *sandbox.Config) {
		c.Limits = sandbox.Limits{MemoryBytes: 96 << 20, Pids: 77, CPUs: 0.5}
	})
	dir := sb.CgroupPath()
	own, _ := os.ReadFile("/proc/self/cgroup")
	if _, err := os.Stat(filepath.Join(dir, "memory.max")); err == nil { // v2
		if got := readInt(t, filepath.Join(dir, "memory.max")); got != 96<<20 {
			t.Errorf("memory.max = %d", got)
		}
		if got := readInt(t, filepath.Join(dir, "pids.max")); got != 77+sandbox.InitReserve {
			t.Errorf("pids.max = %d", got)
		}
		if got := readInt(t, filepath.Join(dir, "cpu.max")); got != 50000 {
			t.Errorf("cpu.max quota = %d", got)
		}
		ownV2 := filepath.Join("/sys/fs/cgroup", ownV1(string(own), ""))
		if filepath.Base(ownV2) == "supervisor" { // moved into a leaf to satisfy no-internal-processes
			ownV2 = filepath.Dir(ownV2)
		}
		if filepath.Dir(dir) != ownV2 {
			t.Errorf("cgroup %s not directly under own cgroup %s", dir, ownV2)
		}
	} else { // v1: dir is the memory controller's group
		if got := readInt(t, filepath.Join(dir, "memory.limit_in_bytes")); got != 96<<20 {
			t.Errorf("memory.limit_in_bytes = %d", got)
		}
		if _, err := os.Stat(filepath.Join(dir, "memory.memsw.limit_in_bytes")); err == nil {
			if got := readInt(t, filepath.Join(dir, "memory.memsw.limit_in_bytes")); got != 96<<20 {
				t.Errorf("memory.memsw.limit_in_bytes = %d", got)
			}
		}
		var memOwn string
		for _, l := range strings.Split(string(own), "\n") {
			if f := strings.SplitN(l, ":", 3); len(f) == 3 && f[1] == "memory" {
				memOwn = f[2]
			}
		}
		if want := filepath.Join("/sys/fs/cgroup/memory", memOwn); filepath.Dir(dir) != want {
			t.Errorf("cgroup %s not directly under own memory cgroup %s", dir, want)
		}
		pidsDir := filepath.Join("/sys/fs/cgroup/pids", ownV1(string(own), "pids"), filepath.Base(dir))
		if got := readInt(t, filepath.Join(pidsDir, "pids.max")); got != 77+sandbox.InitReserve {
			t.Errorf("pids.max = %d", got)
		}
		cpuDir := filepath.Join("/sys/fs/cgroup/cpu", ownV1(string(own), "cpu"), filepath.Base(dir))
		if got := readInt(t, filepath.Join(cpuDir, "cpu.cfs_quota_us")); got != 50000 {
			t.Errorf("cpu.cfs_quota_us = %d", got)
		}
	}
	ps, err := sb.Processes()
	if err != nil || len(ps) != 1 || ps[0] != sb.InitPID() {
		t.Fatalf("cgroup members %v (%v), want the init %d", ps, err, sb.InitPID())
	}
	if err := sb.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("cgroup %s left after Close: %v", dir, err)
	}
}

// ownV1 returns this process's cgroup for controller ctl ("" = the v2 entry).
func ownV1(procCgroup, ctl string) string {
	for _, l := range strings.Split(procCgroup, "\n") {
		if f := strings.SplitN(l, ":", 3); len(f) == 3 {
			if ctl == "" && f[0] == "0" {
				return f[2]
			}
			for _, c := range strings.Split(f[1], ",") {
				if c == ctl {
					return f[2]
				}
			}
		}
	}
	return "/"
}

func TestEnvAllowlist(t *testing.T) {
	sb := startSandbox(t, "env", func(c *sandbox.Config) {
		c.Env = []string{"FIXED=1"}
		c.EnvAllow = []string{"TERM", "LC_*"}
	})
	o, err := runErr(sb, sandbox.Command{
		Args: []string{"/usr/bin/env"},
		Env:  []string{"TERM=xterm-256color", "LC_ALL=C", "OPENAI_API_KEY=sk-secret", "BULKHEAD_CREDENTIAL_KEY=pass", "PATH=/evil"},
	})
	if err != nil {
		t.Fatal(err)
	}
	env := o.stdout
	for _, want := range []string{"TERM=xterm-256color", "LC_ALL=C", "FIXED=1", "HOME=/workspace", "PATH=/usr/local/sbin:"} {
		if !strings.Contains(env, want) {
			t.Errorf("env lacks %q:\n%s", want, env)
		}
	}
	for _, bad := range []string{"sk-secret", "BULKHEAD_CREDENTIAL_KEY", "/evil"} {
		if strings.Contains(env, bad) {
			t.Errorf("env leaks %q:\n%s", bad, env)
		}
	}
}

func TestStdinAndTTY(t *testing.T) {
	sb := startSandbox(t, "stdio", nil)
	var out bytes.Buffer
	res, err := sb.Exec(context.Background(), sandbox.Command{Args: []string{"/usr/bin/wc", "-c"}, Stdin: strings.NewReader(strings.Repeat("y", 100000)), Stdout: &out})
	if err != nil || res.ExitCode != 0 || strings.TrimSpace(out.String()) != "100000" {
		t.Fatalf("stdin: %v %+v %q", err, res, out.String())
	}
	out.Reset()
	var resized bool
	res, err = sb.Exec(context.Background(), sandbox.Command{
		Args: []string{"/bin/sh", "-c", "tty; test -t 0 && echo stdin-is-tty; stty size"},
		TTY:  true, Rows: 33, Cols: 111, Stdout: &out,
		OnStart: func(c sandbox.TTYControl) { resized = c != nil },
	})
	if err != nil || res.ExitCode != 0 {
		t.Fatalf("tty: %v %+v %q", err, res, out.String())
	}
	got := strings.ReplaceAll(out.String(), "\r", "")
	if !strings.Contains(got, "/dev/pts/0") || !strings.Contains(got, "stdin-is-tty") || !strings.Contains(got, "33 111") || !resized {
		t.Fatalf("tty output %q (resize control %v)", got, resized)
	}
}

func TestIdleReap(t *testing.T) {
	sb := startSandbox(t, "idle", func(c *sandbox.Config) { c.IdleTimeout = 300 * time.Millisecond })
	must(t, sh(t, sb, "true"), 0)
	select {
	case <-sb.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("idle sandbox not reaped")
	}
	if _, err := sb.Exec(context.Background(), sandbox.Command{Args: []string{"/bin/true"}}); !errors.Is(err, sandbox.ErrClosed) {
		t.Fatalf("exec after reap: %v", err)
	}
}

func TestConcurrentExecAndRateLimit(t *testing.T) {
	sb := startSandbox(t, "concurrent", func(c *sandbox.Config) { c.RequestsPerSecond, c.RequestBurst = 20, 30 })
	var wg sync.WaitGroup
	errs := make(chan error, 20)
	for i := range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			o, err := runErr(sb, sandbox.Command{Args: []string{"/bin/sh", "-c", "echo $0", strconv.Itoa(i)}})
			if err == nil && strings.TrimSpace(o.stdout) != strconv.Itoa(i) {
				err = errors.New("wrong output " + o.stdout)
			}
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	// A flood of requests is refused by the init's rate limit, not queued,
	// and the sandbox keeps serving.
	var limited, ok int
	var mu sync.Mutex
	for range 300 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := sb.Ping(context.Background())
			mu.Lock()
			defer mu.Unlock()
			if err != nil && strings.Contains(err.Error(), "rate limited") {
				limited++
			} else if err == nil {
				ok++
			}
		}()
	}
	wg.Wait()
	if limited == 0 || ok == 0 {
		t.Fatalf("flood: %d ok, %d rate limited", ok, limited)
	}
	time.Sleep(time.Second)
	must(t, sh(t, sb, "true"), 0)
}

func TestCombinedOutput(t *testing.T) {
	sb := startSandbox(t, "combined", nil)
	var out bytes.Buffer
	res, err := sb.Exec(context.Background(), sandbox.Command{
		Args:   []string{"/bin/sh", "-c", "for i in 1 2 3 4 5; do echo out$i; echo err$i >&2; done"},
		Stdout: &out, Stderr: &out,
	})
	if err != nil || res.ExitCode != 0 {
		t.Fatal(err, res)
	}
	if got := strings.ReplaceAll(out.String(), "\n", " "); got != "out1 err1 out2 err2 out3 err3 out4 err4 out5 err5 " {
		t.Fatalf("combined output %q", got)
	}
}
