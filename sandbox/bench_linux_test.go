package sandbox_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/bulkhead-dev/bulkhead/internal/testutil"
	"github.com/bulkhead-dev/bulkhead/sandbox"
)

func median(d []time.Duration) time.Duration {
	s := append([]time.Duration(nil), d...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[len(s)/2]
}

// smapsKB returns Pss and private (clean+dirty) kB of a process.
func smapsKB(pid int) (pss, private int) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/smaps_rollup", pid))
	if err != nil {
		return 0, 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		n, _ := strconv.Atoi(f[1])
		switch f[0] {
		case "Pss:":
			pss = n
		case "Private_Clean:", "Private_Dirty:":
			private += n
		}
	}
	return pss, private
}

func rssKB(pid int) int {
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			n, _ := strconv.Atoi(strings.Fields(v)[0])
			return n
		}
	}
	return 0
}

func benchConfig(b *testing.B, id string) sandbox.Config {
	uid, gid := testIDs()
	return sandbox.Config{ID: id, HostUID: uid, HostGID: gid, WorkspaceDir: workspaceDir(b, uid, gid), IdleTimeout: -1}
}

// BenchmarkSandbox measures, side by side in one run: cold start to a
// finished `true` against bubblewrap, a warm exec against plain fork+exec
// on the host, the memory of an idle sandbox, and 200 live sandboxes.
// Run with `make bench-sandbox`.
func BenchmarkSandbox(b *testing.B) {
	requireSandbox(b)
	bwrap := testutil.RequireBinary(b, "bwrap")
	for b.Loop() {
		benchCold(b, bwrap)
		benchWarm(b)
		benchIdleMemory(b)
		benchMany(b, 200)
	}
}

func benchCold(b *testing.B, bwrap string) {
	const n = 31
	ctx := context.Background()
	var ours, theirs, closes []time.Duration
	bwrapArgs := []string{"--unshare-all", "--die-with-parent", "--ro-bind", "/usr", "/usr"}
	for _, d := range []string{"bin", "sbin", "lib", "lib64"} {
		if l, err := os.Readlink("/" + d); err == nil {
			bwrapArgs = append(bwrapArgs, "--symlink", l, "/"+d)
		}
	}
	bwrapArgs = append(bwrapArgs, "--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp", "--chdir", "/", "/usr/bin/true")
	for i := range n {
		cfg := benchConfig(b, "cold")
		t0 := time.Now()
		sb, err := sandbox.Start(ctx, cfg)
		if err != nil {
			b.Fatal(err)
		}
		if res, err := sb.Exec(ctx, sandbox.Command{Args: []string{"/usr/bin/true"}}); err != nil || res.ExitCode != 0 {
			b.Fatalf("true: %v %+v", err, res)
		}
		ours = append(ours, time.Since(t0))
		t1 := time.Now()
		sb.Close()
		closes = append(closes, time.Since(t1))

		t2 := time.Now()
		if out, err := exec.Command(bwrap, bwrapArgs...).CombinedOutput(); err != nil {
			b.Fatalf("bwrap: %v %s", err, out)
		}
		theirs = append(theirs, time.Since(t2))
		_ = i
	}
	// Where the time goes: the same clone (namespaces, id maps) running
	// /usr/bin/true instead of the init, and this binary re-executed with no
	// namespaces (Go runtime start and every package initializer).
	var nsOnly, reexec []time.Duration
	for range n {
		c := exec.Command("/usr/bin/true")
		c.SysProcAttr = &syscall.SysProcAttr{
			Cloneflags: syscall.CLONE_NEWUSER | syscall.CLONE_NEWNS | syscall.CLONE_NEWPID | syscall.CLONE_NEWUTS |
				syscall.CLONE_NEWIPC | syscall.CLONE_NEWNET | syscall.CLONE_NEWCGROUP,
			UidMappings: []syscall.SysProcIDMap{{ContainerID: 0, HostID: 65534, Size: 1}},
			GidMappings: []syscall.SysProcIDMap{{ContainerID: 0, HostID: 65534, Size: 1}},
		}
		t0 := time.Now()
		if err := c.Run(); err != nil {
			b.Fatal(err)
		}
		nsOnly = append(nsOnly, time.Since(t0))
		exe, _ := os.Executable()
		t1 := time.Now()
		exec.Command(exe, sandbox.InitArg).Run() // refuses (not PID 1) after package init
		reexec = append(reexec, time.Since(t1))
	}
	mo, mt := median(ours), median(theirs)
	// Each round's own ratio too: the load on a shared machine drifts
	// between rounds, less within one.
	ratios := make([]time.Duration, n)
	for i := range n {
		ratios[i] = time.Duration(1000 * float64(ours[i]) / float64(theirs[i]))
	}
	fmt.Printf("cold start to finished true (n=%d, medians): bulkhead %v, bwrap --unshare-all %v, ratio %.2fx, median of per-round ratios %.2fx (bulkhead close %v, not counted)\n",
		n, mo.Round(time.Microsecond), mt.Round(time.Microsecond), float64(mo)/float64(mt), float64(median(ratios))/1000, median(closes).Round(time.Microsecond))
	fmt.Printf("  of which, measured apart: clone with the same namespaces running true %v; re-exec of this binary (Go runtime + package init) %v\n",
		median(nsOnly).Round(time.Microsecond), median(reexec).Round(time.Microsecond))
	if l := sandbox.LauncherPID(); l > 0 {
		pss, _ := smapsKB(l)
		fmt.Printf("  the launcher that clones inits starts once per bulkhead process, with its first sandbox (the first of the %d above: %v); launcher PSS %d kB\n",
			n, ours[0].Round(time.Microsecond), pss)
	}
	b.ReportMetric(float64(mo.Microseconds()), "cold-us")
	b.ReportMetric(float64(mt.Microseconds()), "bwrap-cold-us")
}

func benchWarm(b *testing.B) {
	const n = 300
	ctx := context.Background()
	sb, err := sandbox.Start(ctx, benchConfig(b, "warm"))
	if err != nil {
		b.Fatal(err)
	}
	defer sb.Close()
	var ours, host []time.Duration
	for range n {
		t0 := time.Now()
		if res, err := sb.Exec(ctx, sandbox.Command{Args: []string{"/usr/bin/true"}}); err != nil || res.ExitCode != 0 {
			b.Fatalf("true: %v %+v", err, res)
		}
		ours = append(ours, time.Since(t0))
		t1 := time.Now()
		if err := exec.Command("/usr/bin/true").Run(); err != nil {
			b.Fatal(err)
		}
		host = append(host, time.Since(t1))
	}
	mo, mh := median(ours), median(host)
	fmt.Printf("warm exec of true (n=%d, medians): in sandbox %v, host fork+exec %v, ratio %.2fx\n",
		n, mo.Round(time.Microsecond), mh.Round(time.Microsecond), float64(mo)/float64(mh))
	b.ReportMetric(float64(mo.Microseconds()), "warm-us")
	b.ReportMetric(float64(mh.Microseconds()), "host-exec-us")
}

func benchIdleMemory(b *testing.B) {
	ctx := context.Background()
	sb, err := sandbox.Start(ctx, benchConfig(b, "idle"))
	if err != nil {
		b.Fatal(err)
	}
	defer sb.Close()
	sb.Exec(ctx, sandbox.Command{Args: []string{"/usr/bin/true"}})
	time.Sleep(500 * time.Millisecond)
	pss, priv := smapsKB(sb.InitPID())
	fmt.Printf("idle sandbox: init RSS %d kB, PSS %d kB, private %d kB; cgroup charge %d kB\n",
		rssKB(sb.InitPID()), pss, priv, sb.MemoryUsage()/1024)
	b.ReportMetric(float64(priv), "idle-private-kB")
}

func benchMany(b *testing.B, n int) {
	ctx := context.Background()
	before := rssKB(os.Getpid())
	boxes := make([]*sandbox.Sandbox, n)
	var wg sync.WaitGroup
	sem := make(chan struct{}, 8)
	errs := make(chan error, n)
	t0 := time.Now()
	for i := range n {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			sb, err := sandbox.Start(ctx, benchConfig(b, "many-"+strconv.Itoa(i)))
			if err != nil {
				errs <- err
				return
			}
			boxes[i] = sb
		}()
	}
	wg.Wait()
	startAll := time.Since(t0)
	defer func() {
		for _, sb := range boxes {
			if sb != nil {
				sb.Close()
			}
		}
	}()
	select {
	case err := <-errs:
		b.Fatalf("start: %v", err)
	default:
	}
	time.Sleep(time.Second)
	var pss, priv, cg, rss int
	for _, sb := range boxes {
		p, v := smapsKB(sb.InitPID())
		pss += p
		priv += v
		rss += rssKB(sb.InitPID())
		cg += int(sb.MemoryUsage() / 1024)
	}
	hostDelta := rssKB(os.Getpid()) - before
	t1 := time.Now()
	for _, sb := range boxes {
		if res, err := sb.Exec(ctx, sandbox.Command{Args: []string{"/usr/bin/true"}}); err != nil || res.ExitCode != 0 {
			b.Fatalf("sandbox not responsive: %v %+v", err, res)
		}
	}
	round := time.Since(t1)
	perBox := float64(pss+max(hostDelta, 0)) / float64(n) / 1024
	fmt.Printf("%d live sandboxes: started in %v; inits RSS %d MB, PSS %d MB, private %d MB; cgroup charge %d MB; host process +%d MB; per sandbox %.2f MB (init PSS + host share); all %d answered an exec of true in %v\n",
		n, startAll.Round(time.Millisecond), rss/1024, pss/1024, priv/1024, cg/1024, hostDelta/1024, perBox, n, round.Round(time.Millisecond))
	b.ReportMetric(perBox, "MB/sandbox")
	_ = filepath.Join
}
