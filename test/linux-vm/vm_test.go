package linuxvm

import (
	"bufio"
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/bulkhead-dev/bulkhead/internal/testutil"
)

// busyboxApplets are the tools the sandbox tests call inside and outside
// the sandbox.
var busyboxApplets = []string{"sh", "true", "false", "echo", "cat", "sleep", "env", "wc", "dd", "id", "hostname", "pwd",
	"ls", "grep", "tty", "stty", "setsid", "head", "tr", "test", "mkdir", "rm"}

func TestSandboxSuiteInVM(t *testing.T) {
	if os.Getenv("BULKHEAD_TEST_VM") != "1" {
		t.Skip("boots a VM for minutes; run with BULKHEAD_TEST_VM=1 (make test-vm)")
	}
	qemu := testutil.RequireBinary(t, "qemu-system-x86_64")
	kernels, _ := filepath.Glob("/boot/vmlinuz-*-amd64")
	if len(kernels) == 0 {
		testutil.SkipOrFail(t, "needs a Debian kernel in /boot (apt-get install linux-image-amd64)")
		return
	}
	kernel := kernels[len(kernels)-1]
	busybox := "/bin/busybox"
	if out, err := exec.Command("file", "-L", busybox).Output(); err != nil || !strings.Contains(string(out), "statically linked") {
		testutil.SkipOrFail(t, "needs a static busybox at %s (apt-get install busybox-static): %s", busybox, out)
		return
	}
	dir := t.TempDir()
	goBuild := func(args ...string) {
		cmd := exec.Command("go", args...)
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		cmd.Dir = "../.."
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("go %v: %v\n%s", args, err, out)
		}
	}
	goBuild("test", "-c", "-o", filepath.Join(dir, "sandbox.test"), "./sandbox")
	goBuild("build", "-o", filepath.Join(dir, "init"), "./test/linux-vm/vminit")

	a := newArchive()
	a.file("init", filepath.Join(dir, "init"))
	a.file("sandbox.test", filepath.Join(dir, "sandbox.test"))
	a.file("usr/bin/busybox", busybox)
	for _, app := range busyboxApplets {
		a.link("usr/bin/"+app, "busybox")
	}
	// A merged-/usr layout, like Debian's.
	a.link("bin", "usr/bin")
	a.link("sbin", "usr/bin")
	a.link("lib", "usr/lib")
	a.dir("usr/lib")
	a.dir("etc")
	for _, d := range []string{"proc", "sys", "dev", "tmp", "root"} {
		a.dir(d)
	}
	initrd := filepath.Join(dir, "initrd.cpio")
	f, err := os.Create(initrd)
	if err != nil {
		t.Fatal(err)
	}
	bw := bufio.NewWriterSize(f, 1<<20)
	if err := a.writeTo(bw); err != nil {
		t.Fatal(err)
	}
	if err := bw.Flush(); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}

	bb, err := os.ReadFile(busybox)
	if err != nil {
		t.Fatal(err)
	}
	wantSum := fmt.Sprintf("busybox sha256 %x", sha256.Sum256(bb))
	var b boot
	for attempt := 1; ; attempt++ {
		b = bootVM(t, qemu, kernel, initrd, wantSum)
		if !b.stalled || attempt == 2 {
			break
		}
		// A guest that prints nothing for minutes is frozen, not failing:
		// under TCG on a loaded host the emulator itself can starve. Boot
		// once more; a second stall fails the test.
		t.Logf("GUEST STALLED: no console output for %v after %q; booting the VM once more", stallAfter, b.lastLine)
	}
	if b.stalled {
		t.Fatalf("guest stalled twice (no console output for %v); last line %q", stallAfter, b.lastLine)
	}
	if b.scanErr != nil {
		t.Errorf("reading the console: %v", b.scanErr)
	}
	sawSum, result := b.sawSum, b.result
	if !sawSum {
		t.Errorf("the VM's busybox differs from the host's (initramfs damaged?): want %q on the console", wantSum)
	}
	if result != "PASS" {
		t.Fatalf("VM result %q (no PASS marker)", result)
	}
}

// stallAfter is how long the guest may print nothing before it is deemed
// frozen. The whole suite prints a line every few seconds.
const stallAfter = 4 * time.Minute

// boot is what one VM boot printed.
type boot struct {
	sawSum   bool   // the busybox checksum matched the host's
	result   string // after the result marker
	lastLine string
	stalled  bool // killed after stallAfter without output
	scanErr  error
}

// bootVM boots the kernel with the initramfs and logs its console.
func bootVM(t *testing.T, qemu, kernel, initrd, wantSum string) boot {
	ctx, cancel := context.WithTimeout(context.Background(), 12*time.Minute)
	defer cancel()
	// hung_task_panic and softlockup_panic turn a kernel hang into a stack
	// trace and a power-off instead of silence.
	cmd := exec.CommandContext(ctx, qemu,
		"-accel", "tcg,thread=multi", "-cpu", "qemu64", "-smp", "2", "-m", "2048",
		"-kernel", kernel, "-initrd", initrd,
		"-append", "console=ttyS0 panic=-1 quiet hung_task_panic=1 softlockup_panic=1 cgroup_no_v1=all systemd.unified_cgroup_hierarchy=1",
		"-nographic", "-no-reboot", "-nic", "none", "-serial", "stdio", "-monitor", "none", "-display", "none")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	start := time.Now()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	lines := make(chan string)
	var b boot
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(stdout)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			lines <- strings.TrimRight(sc.Text(), "\r")
		}
		b.scanErr = sc.Err()
		// Keep draining so qemu never blocks on a full pipe.
		io.Copy(io.Discard, stdout)
	}()
	stall := time.NewTimer(stallAfter)
	defer stall.Stop()
read:
	for {
		select {
		case line, ok := <-lines:
			if !ok {
				break read
			}
			stall.Reset(stallAfter)
			t.Log(line)
			b.lastLine = line
			b.sawSum = b.sawSum || strings.Contains(line, wantSum)
			if i := strings.Index(line, "BULKHEAD-VM-RESULT:"); i >= 0 {
				b.result = strings.TrimSpace(line[i+len("BULKHEAD-VM-RESULT:"):])
			}
		case <-stall.C:
			b.stalled = true
			cmd.Process.Kill()
			for range lines { // until the reader sees EOF
			}
			break read
		}
	}
	cmd.Wait()
	t.Logf("VM ran %v", time.Since(start).Round(time.Second))
	return b
}
