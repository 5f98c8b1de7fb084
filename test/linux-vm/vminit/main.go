// Package main (vminit) is PID 1 of the test VM (see package linuxvm): it moves the
// initramfs into a tmpfs root (pivot_root, which the sandbox uses, refuses
// the initial rootfs), mounts a pure cgroup v2 hierarchy, runs the sandbox
// test binary and prints a result marker on the console, then powers off.
package main

import (
	"crypto/sha256"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"time"
)

// Marker is printed on the console with PASS or FAIL.
const Marker = "BULKHEAD-VM-RESULT:"

func main() {
	err := run()
	if err != nil {
		fmt.Printf("\n%s FAIL: %v\n", Marker, err)
	} else {
		fmt.Printf("\n%s PASS\n", Marker)
	}
	syscall.Sync()
	time.Sleep(200 * time.Millisecond)
	syscall.Reboot(syscall.LINUX_REBOOT_CMD_POWER_OFF)
}

func mount(src, target, fstype string, flags uintptr, data string) error {
	os.MkdirAll(target, 0o755)
	if err := syscall.Mount(src, target, fstype, flags, data); err != nil {
		return fmt.Errorf("mount %s on %s: %w", fstype, target, err)
	}
	return nil
}

func run() error {
	if os.Getenv("BULKHEAD_VM_STAGE") == "" {
		// Stage 1: copy the initramfs into a tmpfs and make it the root.
		if err := mount("tmpfs", "/newroot", "tmpfs", 0, "mode=0755"); err != nil {
			return err
		}
		if err := copyTree("/", "/newroot"); err != nil {
			return fmt.Errorf("copy rootfs: %w", err)
		}
		if err := os.Chdir("/newroot"); err != nil {
			return err
		}
		if err := syscall.Mount(".", "/", "", syscall.MS_MOVE, ""); err != nil {
			return fmt.Errorf("move root: %w", err)
		}
		if err := syscall.Chroot("."); err != nil {
			return err
		}
		os.Chdir("/")
		os.Setenv("BULKHEAD_VM_STAGE", "2")
		return syscall.Exec("/init", []string{"/init"}, os.Environ())
	}
	for _, m := range []struct{ src, target, fstype, data string }{
		{"proc", "/proc", "proc", ""},
		{"sysfs", "/sys", "sysfs", ""},
		{"devtmpfs", "/dev", "devtmpfs", ""},
		{"tmpfs", "/tmp", "tmpfs", "mode=1777"},
		{"cgroup2", "/sys/fs/cgroup", "cgroup2", ""},
	} {
		if err := mount(m.src, m.target, m.fstype, 0, m.data); err != nil {
			return err
		}
	}
	os.Symlink("/proc/self/fd", "/dev/fd")
	// With hung_task_panic=1 on the command line, a task stuck in the kernel
	// for a minute prints its stack and powers the VM off.
	os.WriteFile("/proc/sys/kernel/hung_task_timeout_secs", []byte("60"), 0)
	b, _ := os.ReadFile("/proc/version")
	fmt.Printf("vm: %s", b)
	if b, err := os.ReadFile("/usr/bin/busybox"); err == nil {
		fmt.Printf("vm: busybox sha256 %x\n", sha256.Sum256(b))
	}
	for _, pre := range [][]string{{"/bin/true"}, {"/bin/sh", "-c", "echo shell ok"}} {
		out, err := exec.Command(pre[0], pre[1:]...).CombinedOutput()
		fmt.Printf("vm: preflight %v: %v %s\n", pre, err, out)
	}
	cmd := exec.Command("/sandbox.test", "-test.v", "-test.count=1", "-test.timeout=10m")
	cmd.Env = []string{"PATH=/usr/bin:/bin:/usr/sbin:/sbin", "BULKHEAD_TEST_NO_SKIP=1", "HOME=/root", "TMPDIR=/tmp"}
	cmd.Stdout, cmd.Stderr, cmd.Dir = os.Stdout, os.Stdout, "/"
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("sandbox tests: %w", err)
	}
	// As PID 1, reap every orphan (the tests kill processes whose children
	// are then reparented here) and watch for the test binary's own exit.
	for {
		var ws syscall.WaitStatus
		pid, err := syscall.Wait4(-1, &ws, 0, nil)
		if err != nil {
			return fmt.Errorf("wait: %w", err)
		}
		if pid == cmd.Process.Pid {
			if ws.ExitStatus() != 0 || ws.Signaled() {
				return fmt.Errorf("sandbox tests: exit status %d (signal %v)", ws.ExitStatus(), ws.Signal())
			}
			return nil
		}
	}
}

// copyTree copies files, directories and symlinks of the initramfs.
func copyTree(src, dst string) error {
	return filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p == "/newroot" || p == "/proc" || p == "/sys" || p == "/dev" {
			return fs.SkipDir
		}
		target := filepath.Join(dst, p)
		info, err := d.Info()
		if err != nil {
			return err
		}
		switch {
		case d.IsDir():
			return os.MkdirAll(target, info.Mode().Perm())
		case info.Mode()&fs.ModeSymlink != 0:
			l, err := os.Readlink(p)
			if err != nil {
				return err
			}
			return os.Symlink(l, target)
		case info.Mode().IsRegular():
			in, err := os.Open(p)
			if err != nil {
				return err
			}
			defer in.Close()
			out, err := os.OpenFile(target, os.O_CREATE|os.O_WRONLY, info.Mode().Perm())
			if err != nil {
				return err
			}
			if _, err := io.Copy(out, in); err != nil {
				out.Close()
				return err
			}
			return out.Close()
		}
		return nil
	})
}
