package sandbox

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Credentials are per thread in Linux and the init is a multi-threaded Go
// program. Commands are forked only from one goroutine locked to one OS
// thread (the spawner, see init_linux.go); that thread drops every
// capability and locks its securebits, so every command starts without
// capabilities and cannot regain them on execve. no_new_privs and the
// seccomp filter are installed with SECCOMP_FILTER_FLAG_TSYNC, which applies
// both to every thread of the init. Threads created later inherit all of it.
// (syscall.AllThreadsSyscall would drop capabilities on every thread, but it
// is unavailable in binaries that link cgo, test binaries included.)

const (
	// SECBIT_NOROOT|_LOCKED, SECBIT_NO_SETUID_FIXUP|_LOCKED, SECBIT_KEEP_CAPS_LOCKED,
	// SECBIT_NO_CAP_AMBIENT_RAISE|_LOCKED: uid 0 gains nothing on execve.
	securebits = 0x01 | 0x02 | 0x04 | 0x08 | 0x20 | 0x40 | 0x80

	capV3 = 0x20080522 // _LINUX_CAPABILITY_VERSION_3
)

func lastCap() (int, error) {
	b, err := os.ReadFile("/proc/sys/kernel/cap_last_cap")
	if err != nil {
		return 0, err
	}
	return strconv.Atoi(strings.TrimSpace(string(b)))
}

// setRlimits applies the command limits (process-wide, inherited).
func setRlimits(p *setupParams) error {
	for _, r := range []struct {
		res int
		v   uint64
		n   string
	}{
		{unix.RLIMIT_NOFILE, p.NoFile, "nofile"},
		{unix.RLIMIT_NPROC, p.NProc + InitReserve, "nproc"},
		{unix.RLIMIT_FSIZE, p.FileBytes, "fsize"},
		{unix.RLIMIT_CORE, 0, "core"},
	} {
		// syscall.Setrlimit keeps the Go runtime's record of NOFILE in step.
		if err := syscall.Setrlimit(r.res, &syscall.Rlimit{Cur: r.v, Max: r.v}); err != nil {
			return &SetupError{Layer: "rlimits", Err: fmt.Errorf("%s=%d: %w", r.n, r.v, err)}
		}
	}
	return nil
}

// dropPrivileges must run on a locked OS thread. It clears every
// capability set of that thread (bounding, ambient, effective, permitted,
// inheritable), locks its securebits, makes the process non-dumpable, and
// loads the seccomp filter with no_new_privs on every thread.
func dropPrivileges(filter []sockFilter) error {
	last, err := lastCap()
	if err != nil {
		return &SetupError{Layer: "capabilities", Err: fmt.Errorf("read cap_last_cap: %w", err)}
	}
	if err := unix.Prctl(unix.PR_SET_SECUREBITS, securebits, 0, 0, 0); err != nil {
		return &SetupError{Layer: "capabilities", Err: fmt.Errorf("set securebits: %w", err)}
	}
	if err := unix.Prctl(unix.PR_CAP_AMBIENT, unix.PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0); err != nil {
		return &SetupError{Layer: "capabilities", Err: fmt.Errorf("clear ambient: %w", err)}
	}
	for c := 0; c <= last; c++ {
		if err := unix.Prctl(unix.PR_CAPBSET_DROP, uintptr(c), 0, 0, 0); err != nil {
			return &SetupError{Layer: "capabilities", Err: fmt.Errorf("drop bounding cap %d: %w", c, err)}
		}
	}
	hdr := unix.CapUserHeader{Version: capV3}
	var data [2]unix.CapUserData
	if err := unix.Capset(&hdr, &data[0]); err != nil {
		return &SetupError{Layer: "capabilities", Err: fmt.Errorf("capset: %w", err)}
	}
	// Not dumpable: a command cannot open /proc/1/mem or ptrace-attach to the
	// init even with the same uid.
	if err := unix.Prctl(unix.PR_SET_DUMPABLE, 0, 0, 0, 0); err != nil {
		return &SetupError{Layer: "dumpable", Err: err}
	}
	if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
		return &SetupError{Layer: "no_new_privs", Err: err}
	}
	prog := unix.SockFprog{Len: uint16(len(filter)), Filter: (*unix.SockFilter)(unsafe.Pointer(&filter[0]))}
	r, _, e := unix.Syscall(unix.SYS_SECCOMP, unix.SECCOMP_SET_MODE_FILTER, unix.SECCOMP_FILTER_FLAG_TSYNC, uintptr(unsafe.Pointer(&prog)))
	runtime.KeepAlive(filter)
	if e != 0 {
		return &SetupError{Layer: "seccomp", Err: fmt.Errorf("load filter: %w", e)}
	}
	if r != 0 {
		return &SetupError{Layer: "seccomp", Err: fmt.Errorf("thread %d could not be synchronized", r)}
	}
	return verifyThreads()
}

// verifyThreads fails unless the calling (spawner) thread shows no
// capabilities, no_new_privs and seccomp filter mode, and every other thread
// no_new_privs and seccomp filter mode.
func verifyThreads() error {
	if err := checkStatus("/proc/thread-self/status", wantStatus); err != nil {
		return &SetupError{Layer: "verify", Err: err}
	}
	tasks, err := filepath.Glob("/proc/self/task/*/status")
	if err != nil || len(tasks) == 0 {
		return &SetupError{Layer: "verify", Err: fmt.Errorf("list threads: %v", err)}
	}
	for _, st := range tasks {
		if err := checkStatus(st, wantAllThreads); err != nil {
			return &SetupError{Layer: "verify", Err: err}
		}
	}
	return nil
}

var wantAllThreads = map[string]string{"NoNewPrivs": "1", "Seccomp": "2"}

var wantStatus = map[string]string{
	"CapInh": "0000000000000000", "CapPrm": "0000000000000000", "CapEff": "0000000000000000",
	"CapBnd": "0000000000000000", "CapAmb": "0000000000000000", "NoNewPrivs": "1", "Seccomp": "2",
}

func checkStatus(path string, want map[string]string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	seen := 0
	s := bufio.NewScanner(f)
	for s.Scan() {
		k, v, ok := strings.Cut(s.Text(), ":")
		if !ok {
			continue
		}
		w, check := want[k]
		if !check {
			continue
		}
		seen++
		if got := strings.TrimSpace(v); got != w {
			return fmt.Errorf("%s: %s is %s, want %s", path, k, got, w)
		}
	}
	if seen != len(want) {
		return fmt.Errorf("%s: %d of %d fields found", path, seen, len(want))
	}
	return s.Err()
}

// upLoopback brings lo up in the sandbox's fresh network namespace; it is
// the only interface there.
func upLoopback() error {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return &SetupError{Layer: "network", Err: fmt.Errorf("socket: %w", err)}
	}
	defer unix.Close(fd)
	ifr, err := unix.NewIfreq("lo")
	if err != nil {
		return &SetupError{Layer: "network", Err: err}
	}
	if err := unix.IoctlIfreq(fd, unix.SIOCGIFFLAGS, ifr); err != nil {
		return &SetupError{Layer: "network", Err: fmt.Errorf("get lo flags: %w", err)}
	}
	ifr.SetUint16(ifr.Uint16() | unix.IFF_UP)
	if err := unix.IoctlIfreq(fd, unix.SIOCSIFFLAGS, ifr); err != nil {
		return &SetupError{Layer: "network", Err: fmt.Errorf("set lo up: %w", err)}
	}
	return nil
}

// setNProcSoft sets the init's soft RLIMIT_NPROC (the hard limit stays at
// NProc+InitReserve). The spawner lowers it to the commands' share around
// each fork, so a command inherits NProc while the init keeps its reserve.
func setNProcSoft(v uint64) error {
	var cur unix.Rlimit
	if err := unix.Prlimit(0, unix.RLIMIT_NPROC, nil, &cur); err != nil {
		return err
	}
	cur.Cur = min(v, cur.Max)
	return unix.Prlimit(0, unix.RLIMIT_NPROC, &cur, nil)
}
