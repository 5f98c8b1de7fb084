package escape

import (
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// int80 makes an i386 system call through int 0x80 (see int80_amd64.s).
func int80(trap uintptr) uintptr

func errnoName(err error) string {
	if err == nil {
		return "success"
	}
	var en syscall.Errno
	if errors.As(err, &en) {
		if en == 0 {
			return "success"
		}
		if n := unix.ErrnoName(en); n != "" {
			return n
		}
		return "errno " + strconv.Itoa(int(en))
	}
	return err.Error()
}

func sys(trap uintptr, a ...uintptr) func() string {
	return func() string {
		var args [6]uintptr
		copy(args[:], a)
		_, _, e := unix.Syscall6(trap, args[0], args[1], args[2], args[3], args[4], args[5])
		return errnoName(e)
	}
}

func ptr(s string) uintptr {
	b, _ := unix.BytePtrFromString(s)
	return uintptr(unsafe.Pointer(b))
}

func open(path string, flags int) func() string {
	return func() string {
		fd, err := unix.Open(path, flags|unix.O_CLOEXEC, 0o644)
		if err == nil {
			unix.Close(fd)
		}
		return errnoName(err)
	}
}

// read opens and reads: masked files may open on some kernels but must not
// yield data.
func read(path string) func() string {
	return func() string {
		f, err := os.Open(path)
		if err != nil {
			return errnoName(err)
		}
		defer f.Close()
		b := make([]byte, 64)
		n, err := f.Read(b)
		if n > 0 {
			return fmt.Sprintf("read %d bytes", n)
		}
		if err == io.EOF {
			return "empty"
		}
		return errnoName(err)
	}
}

func sock(domain, typ, proto int) func() string {
	return func() string {
		fd, err := unix.Socket(domain, typ|unix.SOCK_CLOEXEC, proto)
		if err == nil {
			unix.Close(fd)
		}
		return errnoName(err)
	}
}

func connectTCP(ap netip.AddrPort) func() string {
	return func() string {
		dom := unix.AF_INET6
		var sa unix.Sockaddr = &unix.SockaddrInet6{Port: int(ap.Port()), Addr: ap.Addr().As16()}
		if ap.Addr().Is4() {
			dom = unix.AF_INET
			sa = &unix.SockaddrInet4{Port: int(ap.Port()), Addr: ap.Addr().As4()}
		}
		fd, err := unix.Socket(dom, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			return "socket: " + errnoName(err)
		}
		defer unix.Close(fd)
		return errnoName(unix.Connect(fd, sa))
	}
}

func sendUDP(ap netip.AddrPort) func() string {
	return func() string {
		fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			return "socket: " + errnoName(err)
		}
		defer unix.Close(fd)
		return errnoName(unix.Sendto(fd, []byte("x"), 0, &unix.SockaddrInet4{Port: int(ap.Port()), Addr: ap.Addr().As4()}))
	}
}

func connectUnix(name string) func() string {
	return func() string {
		fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			return "socket: " + errnoName(err)
		}
		defer unix.Close(fd)
		return errnoName(unix.Connect(fd, &unix.SockaddrUnix{Name: name}))
	}
}

func ioctlOnPTY(cmd uintptr) func() string {
	return func() string {
		fd, err := unix.Open("/dev/ptmx", unix.O_RDWR|unix.O_NOCTTY|unix.O_CLOEXEC, 0)
		if err != nil {
			return "open ptmx: " + errnoName(err)
		}
		defer unix.Close(fd)
		c := byte('x')
		_, _, e := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), cmd, uintptr(unsafe.Pointer(&c)))
		return errnoName(e)
	}
}

// statusField checks one /proc/self/status line: "refused" when it shows the
// locked-down value.
func statusField(key, want string) func() string {
	return func() string {
		b, err := os.ReadFile("/proc/self/status")
		if err != nil {
			return errnoName(err)
		}
		for _, line := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && k == key {
				if strings.TrimSpace(v) == want {
					return "refused"
				}
				return key + "=" + strings.TrimSpace(v)
			}
		}
		return key + " missing"
	}
}

// killedBy runs this binary in a child mode and reports its fate.
func killedBy(mode string) func() string {
	return func() string {
		cmd := exec.Command("/proc/self/exe", ProbeArg, mode)
		err := cmd.Run()
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
				return "killed by " + unix.SignalName(ws.Signal())
			}
			return fmt.Sprintf("exit %d", ee.ExitCode())
		}
		if err != nil {
			return err.Error()
		}
		return "exit 0"
	}
}

func childInt80() int {
	int80(20) // i386 getpid
	return 0
}

func childX32() int {
	unix.RawSyscall(0x40000000|unix.SYS_GETPID, 0, 0, 0)
	return 0
}

// childFDCheck reports descriptors above 2 without close-on-exec: anything
// the init let through to the command (the Go runtime's own descriptors are
// all close-on-exec).
func childFDCheck(w io.Writer) int {
	if leaked := leakedFDs(); leaked != "" {
		fmt.Fprintln(w, "leaked", leaked)
		return 1
	}
	return 0
}

func leakedFDs() string {
	var leaked []string
	for fd := 3; fd < 1024; fd++ {
		flags, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0)
		if err == nil && flags&unix.FD_CLOEXEC == 0 {
			leaked = append(leaked, strconv.Itoa(fd))
		}
	}
	return strings.Join(leaked, ",")
}

// startupLeaks is taken when the probe starts, before it opens anything
// (not in a package initializer: every sandbox init of the test binary
// would pay its thousand fcntl calls).
var startupLeaks string

func recordStartupLeaks() { startupLeaks = leakedFDs() }

func fdLeak() func() string {
	return func() string {
		if startupLeaks != "" {
			return "leaked " + startupLeaks
		}
		return "EBADF"
	}
}

func readlink(path, want string) func() string {
	return func() string {
		got, err := os.Readlink(path)
		if err != nil {
			return errnoName(err)
		}
		if got == want {
			return "refused"
		}
		return "points at " + got
	}
}

func attempts(o Options) []attempt {
	ro := unix.O_RDONLY
	wr := unix.O_WRONLY | unix.O_CREAT
	as := []attempt{
		// writes outside /workspace and /tmp
		{"write /etc/passwd", "EROFS", open("/etc/passwd", unix.O_WRONLY)},
		{"create /etc/evil", "EROFS", open("/etc/evil", wr)},
		{"create /usr/bin/evil", "EROFS", open("/usr/bin/evil", wr)},
		{"create /evil", "EROFS", open("/evil", wr)},
		{"create /dev/evil", "EROFS", open("/dev/evil", wr)},
		{"write /proc/sys/kernel/hostname", "EACCES", open("/proc/sys/kernel/hostname", unix.O_WRONLY)},
		{"/proc/sys mounted read-only", "refused", mountedRO("/proc/sys")},
		{"write /proc/sysrq-trigger", masked(o, "sysrq-trigger"), open("/proc/sysrq-trigger", unix.O_WRONLY)},
		{"mkdir /sys", "EROFS", sys(unix.SYS_MKDIR, ptr("/sys"), 0o755)},
		{"mknod /tmp/mem (char 1:1)", "EPERM", sys(unix.SYS_MKNOD, ptr("/tmp/mem"), unix.S_IFCHR|0o666, uintptr(unix.Mkdev(1, 1)))},
		{"chmod masked /proc/kallsyms", "EROFS", sys(unix.SYS_CHMOD, ptr("/proc/kallsyms"), 0o444)},
		// secrets and kernel state
		{"read /etc/shadow", "ENOENT", read("/etc/shadow")},
		{"read /proc/kcore", masked(o, "kcore"), read("/proc/kcore")},
		{"read /proc/kallsyms", masked(o, "kallsyms"), read("/proc/kallsyms")},
		{"read /proc/keys", masked(o, "keys"), read("/proc/keys")},
		{"read /proc/kmsg", masked(o, "kmsg"), read("/proc/kmsg")},
		{"read /dev/kmsg", "ENOENT", read("/dev/kmsg")},
		{"syslog(READ_ALL) (dmesg)", "EPERM", sys(unix.SYS_SYSLOG, 3, 0, 0)},
		{"read /sys/kernel/notes", "ENOENT", read("/sys/kernel/notes")},
		// /proc/self and /proc/1 tricks
		{"/proc/self/root is /", "refused", readlink("/proc/self/root", "/")},
		{"read /proc/self/root/../../etc/shadow", "ENOENT", read("/proc/self/root/../../etc/shadow")},
		{"read /proc/self/cwd/../../../etc/shadow", "ENOENT", read("/proc/self/cwd/../../../etc/shadow")},
		{"read /proc/1/root/etc/passwd", "EACCES", read("/proc/1/root/etc/passwd")},
		{"readlink /proc/1/cwd", "EACCES", readlink("/proc/1/cwd", "")},
		{"read /proc/1/environ", "EACCES", read("/proc/1/environ")},
		{"inherited descriptors above 2", "EBADF", fdLeak()},
		// namespaces and mounts
		{"unshare(CLONE_NEWUSER)", "EPERM", sys(unix.SYS_UNSHARE, unix.CLONE_NEWUSER)},
		{"unshare(CLONE_NEWNS)", "EPERM", sys(unix.SYS_UNSHARE, unix.CLONE_NEWNS)},
		{"unshare(CLONE_NEWNET)", "EPERM", sys(unix.SYS_UNSHARE, unix.CLONE_NEWNET)},
		{"clone(CLONE_NEWUSER)", "EPERM", sys(unix.SYS_CLONE, unix.CLONE_NEWUSER|unix.CLONE_THREAD)},
		{"clone(CLONE_NEWNS|CLONE_NEWPID)", "EPERM", sys(unix.SYS_CLONE, unix.CLONE_NEWNS|unix.CLONE_NEWPID|unix.CLONE_THREAD)},
		{"clone3", "ENOSYS", sys(unix.SYS_CLONE3, 0, 0)},
		{"setns", "EPERM", sys(unix.SYS_SETNS, 0, 0)},
		{"mount tmpfs", "EPERM", sys(unix.SYS_MOUNT, ptr("none"), ptr("/tmp"), ptr("tmpfs"), 0, 0)},
		{"mount --bind / /tmp", "EPERM", sys(unix.SYS_MOUNT, ptr("/"), ptr("/tmp"), 0, unix.MS_BIND, 0)},
		{"umount2 /proc/kcore", "EPERM", sys(unix.SYS_UMOUNT2, ptr("/proc/kcore"), unix.MNT_DETACH)},
		{"pivot_root", "EPERM", sys(unix.SYS_PIVOT_ROOT, ptr("/tmp"), ptr("/tmp"))},
		{"chroot /tmp", "EPERM", sys(unix.SYS_CHROOT, ptr("/tmp"))},
		{"open_tree", "EPERM", sys(unix.SYS_OPEN_TREE, atFDCWD, ptr("/"), unix.OPEN_TREE_CLONE)},
		{"fsopen tmpfs", "EPERM", sys(unix.SYS_FSOPEN, ptr("tmpfs"), 0)},
		{"move_mount", "EPERM", sys(unix.SYS_MOVE_MOUNT, 0, ptr(""), atFDCWD, ptr("/tmp"), 0)},
		{"mount_setattr", "EPERM", sys(unix.SYS_MOUNT_SETATTR, atFDCWD, ptr("/"), 0, 0, 0)},
		// other processes
		{"ptrace(ATTACH, 1)", "EPERM", sys(unix.SYS_PTRACE, unix.PTRACE_ATTACH, 1)},
		{"ptrace(TRACEME)", "EPERM", sys(unix.SYS_PTRACE, unix.PTRACE_TRACEME)},
		{"process_vm_readv(1)", "EPERM", sys(unix.SYS_PROCESS_VM_READV, 1, 0, 0, 0, 0, 0)},
		{"process_vm_writev(1)", "EPERM", sys(unix.SYS_PROCESS_VM_WRITEV, 1, 0, 0, 0, 0, 0)},
		{"open /proc/1/mem", "EACCES", open("/proc/1/mem", unix.O_RDWR)},
		{"pidfd_getfd", "EPERM", sys(unix.SYS_PIDFD_GETFD, 0, 0, 0)},
		{"kcmp", "EPERM", sys(unix.SYS_KCMP, 1, 1, 0, 0, 0)},
		// kernel attack surface
		{"keyctl", "EPERM", sys(unix.SYS_KEYCTL, unix.KEYCTL_GET_KEYRING_ID, 0)},
		{"add_key", "EPERM", sys(unix.SYS_ADD_KEY, ptr("user"), ptr("k"), 0, 0, 0)},
		{"request_key", "EPERM", sys(unix.SYS_REQUEST_KEY, ptr("user"), ptr("k"), 0, 0)},
		{"bpf", "EPERM", sys(unix.SYS_BPF, 0, 0, 0)},
		{"perf_event_open", "EPERM", sys(unix.SYS_PERF_EVENT_OPEN, 0, 0, 0, 0, 0)},
		{"userfaultfd", "EPERM", sys(unix.SYS_USERFAULTFD, 0)},
		{"io_uring_setup", "EPERM", sys(unix.SYS_IO_URING_SETUP, 1, 0)},
		{"kexec_load", "EPERM", sys(unix.SYS_KEXEC_LOAD, 0, 0, 0, 0)},
		{"kexec_file_load", "EPERM", sys(unix.SYS_KEXEC_FILE_LOAD, 0, 0, 0, 0, 0)},
		{"init_module", "EPERM", sys(unix.SYS_INIT_MODULE, 0, 0, 0)},
		{"finit_module", "EPERM", sys(unix.SYS_FINIT_MODULE, 0, 0, 0)},
		{"delete_module", "EPERM", sys(unix.SYS_DELETE_MODULE, ptr("ext4"), 0)},
		{"personality(READ_IMPLIES_EXEC)", "EPERM", sys(unix.SYS_PERSONALITY, 0x0400000)},
		{"personality(ADDR_NO_RANDOMIZE)", "EPERM", sys(unix.SYS_PERSONALITY, 0x0040000)},
		{"open_by_handle_at", "EPERM", sys(unix.SYS_OPEN_BY_HANDLE_AT, atFDCWD, 0, 0)},
		{"name_to_handle_at", "EPERM", sys(unix.SYS_NAME_TO_HANDLE_AT, atFDCWD, ptr("/"), 0, 0, 0)},
		{"iopl(3)", "EPERM", sys(unix.SYS_IOPL, 3)},
		{"ioperm", "EPERM", sys(unix.SYS_IOPERM, 0x80, 1, 1)},
		{"swapon", "EPERM", sys(unix.SYS_SWAPON, ptr("/tmp/swap"), 0)},
		{"reboot", "EPERM", sys(unix.SYS_REBOOT, unix.LINUX_REBOOT_MAGIC1, unix.LINUX_REBOOT_MAGIC2, unix.LINUX_REBOOT_CMD_RESTART)},
		{"settimeofday", "EPERM", sys(unix.SYS_SETTIMEOFDAY, 0, 0)},
		{"setuid(1000) (unmapped uid)", "EINVAL", sys(unix.SYS_SETUID, 1000)},
		// terminal injection
		{"ioctl(TIOCSTI)", "EPERM", ioctlOnPTY(0x5412)},
		{"ioctl(TIOCSTI | 1<<32)", "EPERM", ioctlOnPTY(1<<32 | 0x5412)},
		{"ioctl(TIOCLINUX)", "EPERM", ioctlOnPTY(0x541c)},
		// foreign syscall ABIs
		{"int 0x80 (i386 ABI)", ia32Want(o), killedBy("int80")},
		{"x32 syscall", "killed by SIGSYS", killedBy("x32")},
		// socket families
		{"socket(AF_PACKET)", "EPERM", sock(unix.AF_PACKET, unix.SOCK_RAW, 0)},
		{"socket(AF_NETLINK)", "EPERM", sock(unix.AF_NETLINK, unix.SOCK_RAW, unix.NETLINK_ROUTE)},
		{"socket(AF_VSOCK)", "EPERM", sock(unix.AF_VSOCK, unix.SOCK_STREAM, 0)},
		{"socket(AF_ALG)", "EPERM", sock(unix.AF_ALG, unix.SOCK_SEQPACKET, 0)},
		{"socket(AF_KEY)", "EPERM", sock(unix.AF_KEY, unix.SOCK_RAW, 2)},
		{"socket(AF_INET, SOCK_RAW)", "EPERM", sock(unix.AF_INET, unix.SOCK_RAW, unix.IPPROTO_ICMP)},
		{"socket(AF_INET6, SOCK_RAW)", "EPERM", sock(unix.AF_INET6, unix.SOCK_RAW, unix.IPPROTO_ICMPV6)},
		{"socket(AF_INET, SOCK_PACKET)", "EPERM", sock(unix.AF_INET, unix.SOCK_PACKET, 0)},
		{"socket(AF_INET, SOCK_DGRAM, ICMP) (ping)", "EACCES", sock(unix.AF_INET, unix.SOCK_DGRAM, unix.IPPROTO_ICMP)},
		{"socketpair(AF_INET)", "EPERM", sys(unix.SYS_SOCKETPAIR, unix.AF_INET, unix.SOCK_STREAM, 0, 0)},
		// network
		{"tcp 169.254.169.254:80 (metadata)", "ENETUNREACH", connectTCP(netip.MustParseAddrPort("169.254.169.254:80"))},
		{"udp 169.254.169.254:53", "ENETUNREACH", sendUDP(netip.MustParseAddrPort("169.254.169.254:53"))},
		{"tcp 1.1.1.1:443", "ENETUNREACH", connectTCP(netip.MustParseAddrPort("1.1.1.1:443"))},
		{"tcp [2606:4700::1111]:443", "ENETUNREACH", connectTCP(netip.MustParseAddrPort("[2606:4700::1111]:443"))},
	}
	for _, ip := range o.HostIPs {
		a, err := netip.ParseAddr(ip)
		if err != nil || !a.Is4() {
			continue
		}
		as = append(as,
			attempt{"tcp " + ip + ":22 (host)", "ENETUNREACH", connectTCP(netip.AddrPortFrom(a, 22))},
			attempt{"udp " + ip + ":53 (host)", "ENETUNREACH", sendUDP(netip.AddrPortFrom(a, 53))},
		)
	}
	if o.HostLoopbackPort > 0 {
		// The host listens on its loopback; the sandbox's loopback is another one.
		as = append(as, attempt{"tcp host loopback service", "ECONNREFUSED",
			connectTCP(netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), uint16(o.HostLoopbackPort)))})
	}
	if o.HostUnix != "" {
		as = append(as, attempt{"connect host unix socket", "ENOENT", connectUnix(o.HostUnix)})
	}
	if o.HostAbstract != "" {
		as = append(as, attempt{"connect host abstract socket", "ECONNREFUSED", connectUnix("@" + o.HostAbstract)})
	}
	if o.HostFile != "" {
		as = append(as, attempt{"read host file " + filepath.Base(o.HostFile), "ENOENT", read(o.HostFile)})
	}
	if o.NeighbourDir != "" {
		as = append(as, attempt{"list neighbour workspace", "ENOENT", open(o.NeighbourDir, ro|unix.O_DIRECTORY)})
	}
	if o.NeighbourPID > 0 {
		as = append(as,
			attempt{"kill(neighbour init, 0)", "ESRCH", sys(unix.SYS_KILL, uintptr(o.NeighbourPID), 0)},
			attempt{"read /proc/<neighbour>/cmdline", "ENOENT", read(fmt.Sprintf("/proc/%d/cmdline", o.NeighbourPID))},
		)
	}
	if o.NeighbourTmp != "" {
		as = append(as, attempt{"read neighbour /tmp file", "ENOENT", read("/tmp/" + o.NeighbourTmp)})
	}
	if o.NeighbourShm != "" {
		as = append(as, attempt{"read neighbour /dev/shm file", "ENOENT", read("/dev/shm/" + o.NeighbourShm)})
	}
	if o.NeighbourSysV != 0 {
		as = append(as, attempt{"shmget(neighbour key)", "ENOENT", sys(unix.SYS_SHMGET, uintptr(o.NeighbourSysV), 0, 0)})
	}
	as = append(as,
		attempt{"status CapEff=0", "refused", statusField("CapEff", "0000000000000000")},
		attempt{"status CapPrm=0", "refused", statusField("CapPrm", "0000000000000000")},
		attempt{"status CapBnd=0", "refused", statusField("CapBnd", "0000000000000000")},
		attempt{"status CapAmb=0", "refused", statusField("CapAmb", "0000000000000000")},
		attempt{"status NoNewPrivs=1", "refused", statusField("NoNewPrivs", "1")},
		attempt{"status Seccomp=2", "refused", statusField("Seccomp", "2")},
	)
	return as
}

// sanity checks what a sandbox must allow, so the attempts above are not
// refused merely because nothing works.
func sanity(r *report) {
	r.check("write /workspace", os.WriteFile("/workspace/.probe", []byte("x"), 0o644))
	os.Remove("/workspace/.probe")
	r.check("write /tmp", os.WriteFile("/tmp/.probe", []byte("x"), 0o644))
	os.Remove("/tmp/.probe")
	r.check("read /etc/passwd", func() error { _, err := os.ReadFile("/etc/passwd"); return err }())
	r.check("tcp on loopback", func() error {
		fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			return err
		}
		defer unix.Close(fd)
		if err := unix.Bind(fd, &unix.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
			return err
		}
		if err := unix.Listen(fd, 1); err != nil {
			return err
		}
		sa, err := unix.Getsockname(fd)
		if err != nil {
			return err
		}
		c, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			return err
		}
		defer unix.Close(c)
		return unix.Connect(c, sa)
	}())
	r.check("fork+exec /bin/true", exec.Command("/bin/true").Run())
	r.check("pty allocation", func() error {
		fd, err := unix.Open("/dev/ptmx", unix.O_RDWR|unix.O_CLOEXEC, 0)
		if err == nil {
			unix.Close(fd)
		}
		return err
	}())
}

// atFDCWD is AT_FDCWD (-100) as a raw syscall argument.
var atFDCWD = func() uintptr { v := unix.AT_FDCWD; return uintptr(v) }()

// childMkShm creates a SysV shared memory segment with the given key (the
// neighbour's side of the IPC isolation check).
func childMkShm(key string) int {
	k, err := strconv.Atoi(key)
	if err != nil {
		return 2
	}
	if _, _, e := unix.Syscall(unix.SYS_SHMGET, uintptr(k), 4096, unix.IPC_CREAT|0o600); e != 0 {
		fmt.Fprintln(os.Stderr, "shmget:", e)
		return 1
	}
	return 0
}

// masked is the errno a masked /proc entry gives: EACCES where the host
// kernel has it (covered by a mode-0 file), ENOENT where it does not exist
// at all.
func masked(o Options, name string) string {
	for _, a := range o.ProcAbsent {
		if a == name {
			return "ENOENT"
		}
	}
	return "EACCES"
}

// ia32Want: with the i386 ABI in the kernel, seccomp kills the process;
// without it, int 0x80 faults (SIGSEGV, which the Go runtime turns into exit 2)
// exactly as on the host.
func ia32Want(o Options) string {
	if o.NoIA32 {
		return "exit 2"
	}
	return "killed by SIGSYS"
}

// ia32Status, run on the host, tells whether the kernel has the i386 ABI:
// exit 0 if int 0x80 getpid works. Without the ABI the process faults.
func ia32Status() int {
	if int(int80(20)) == os.Getpid() {
		return 0
	}
	return 1
}

// mountedRO reports "refused" when the mount at path is read-only.
func mountedRO(path string) func() string {
	return func() string {
		b, err := os.ReadFile("/proc/self/mountinfo")
		if err != nil {
			return errnoName(err)
		}
		for _, line := range strings.Split(string(b), "\n") {
			f := strings.Fields(line)
			if len(f) > 5 && f[4] == path {
				for _, opt := range strings.Split(f[5], ",") {
					if opt == "ro" {
						return "refused"
					}
				}
				return "mounted " + f[5]
			}
		}
		return "not a mount"
	}
}

// childAlloc touches N MiB of anonymous memory, one page at a time (the
// memory bomb; the sandbox's cgroup must OOM-kill it).
func childAlloc(mib string) int {
	n, err := strconv.Atoi(mib)
	if err != nil {
		return 2
	}
	var keep [][]byte
	for range n {
		b := make([]byte, 1<<20)
		for i := 0; i < len(b); i += 4096 {
			b[i] = 1
		}
		keep = append(keep, b)
	}
	fmt.Println("allocated", len(keep), "MiB")
	return 0
}
