package sandbox

import (
	"encoding/binary"
	"testing"

	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"
)

// seccompVM runs the filter in x/net/bpf's userspace VM. That VM loads
// words big-endian, so each 32-bit field of seccomp_data is encoded
// big-endian at its offset; every load the filter makes is one such word.
func seccompVM(t *testing.T) *bpf.VM {
	t.Helper()
	prog, err := buildFilter(policy())
	if err != nil {
		t.Fatal(err)
	}
	raw := make([]bpf.RawInstruction, len(prog))
	for i, ins := range prog {
		raw[i] = bpf.RawInstruction{Op: ins.Code, Jt: ins.Jt, Jf: ins.Jf, K: ins.K}
	}
	insts, ok := bpf.Disassemble(raw)
	if !ok {
		t.Fatal("filter does not disassemble")
	}
	vm, err := bpf.NewVM(insts)
	if err != nil {
		t.Fatal(err)
	}
	return vm
}

func seccompData(arch, nr uint32, args ...uint64) []byte {
	b := make([]byte, 64)
	binary.BigEndian.PutUint32(b[0:], nr)
	binary.BigEndian.PutUint32(b[4:], arch)
	for i, a := range args {
		binary.BigEndian.PutUint32(b[16+8*i:], uint32(a))       // low word
		binary.BigEndian.PutUint32(b[16+8*i+4:], uint32(a>>32)) // high word
	}
	return b
}

func TestSeccompFilterInVM(t *testing.T) {
	vm := seccompVM(t)
	const (
		allow = retAllow
		eperm = retErrno | 1
		nosys = retErrno | 38
		kill  = retKillProcess
	)
	cases := []struct {
		name string
		arch uint32
		nr   uint32
		args []uint64
		want uint32
	}{
		{"read", auditArchX8664, unix.SYS_READ, nil, allow},
		{"execve", auditArchX8664, unix.SYS_EXECVE, nil, allow},
		{"ptrace", auditArchX8664, unix.SYS_PTRACE, nil, eperm},
		{"mount", auditArchX8664, unix.SYS_MOUNT, nil, eperm},
		{"unknown syscall 1000", auditArchX8664, 1000, nil, eperm},
		{"i386 arch", 0x40000003, 20, nil, kill},
		{"x32 bit", auditArchX8664, 0x40000000 | unix.SYS_GETPID, nil, kill},
		{"clone thread flags", auditArchX8664, unix.SYS_CLONE, []uint64{unix.CLONE_VM | unix.CLONE_FS | unix.CLONE_FILES | unix.CLONE_SIGHAND | unix.CLONE_THREAD}, allow},
		{"clone fork", auditArchX8664, unix.SYS_CLONE, []uint64{uint64(unix.SIGCHLD)}, allow},
		{"clone newuser", auditArchX8664, unix.SYS_CLONE, []uint64{unix.CLONE_NEWUSER | uint64(unix.SIGCHLD)}, eperm},
		{"clone newnet", auditArchX8664, unix.SYS_CLONE, []uint64{unix.CLONE_NEWNET}, eperm},
		{"clone3", auditArchX8664, unix.SYS_CLONE3, nil, nosys},
		{"ioctl TCGETS", auditArchX8664, unix.SYS_IOCTL, []uint64{0, unix.TCGETS}, allow},
		{"ioctl TIOCSTI", auditArchX8664, unix.SYS_IOCTL, []uint64{0, tiocsti}, eperm},
		{"ioctl TIOCSTI high bits", auditArchX8664, unix.SYS_IOCTL, []uint64{0, 0xdead_0000_0000_0000 | tiocsti}, eperm},
		{"socket unix", auditArchX8664, unix.SYS_SOCKET, []uint64{unix.AF_UNIX, unix.SOCK_STREAM | unix.SOCK_CLOEXEC}, allow},
		{"socket inet dgram", auditArchX8664, unix.SYS_SOCKET, []uint64{unix.AF_INET, unix.SOCK_DGRAM | unix.SOCK_NONBLOCK}, allow},
		{"socket inet raw", auditArchX8664, unix.SYS_SOCKET, []uint64{unix.AF_INET, unix.SOCK_RAW}, eperm},
		{"socket netlink", auditArchX8664, unix.SYS_SOCKET, []uint64{unix.AF_NETLINK, unix.SOCK_DGRAM}, eperm},
		{"socket packet", auditArchX8664, unix.SYS_SOCKET, []uint64{unix.AF_PACKET, unix.SOCK_DGRAM}, eperm},
		{"socketpair unix", auditArchX8664, unix.SYS_SOCKETPAIR, []uint64{unix.AF_UNIX}, allow},
		{"socketpair inet", auditArchX8664, unix.SYS_SOCKETPAIR, []uint64{unix.AF_INET}, eperm},
		{"personality query", auditArchX8664, unix.SYS_PERSONALITY, []uint64{0xffffffff}, allow},
		{"personality linux", auditArchX8664, unix.SYS_PERSONALITY, []uint64{0}, allow},
		{"personality read_implies_exec", auditArchX8664, unix.SYS_PERSONALITY, []uint64{0x0400000}, eperm},
	}
	for _, c := range cases {
		got, err := vm.Run(seccompData(c.arch, c.nr, c.args...))
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if uint32(got) != c.want {
			t.Errorf("%s: action %#x, want %#x", c.name, uint32(got), c.want)
		}
	}
}

func TestSeccompPolicyCoversRuntime(t *testing.T) {
	// Every syscall the init's Go runtime and common programs need is
	// allowed; the dangerous ones are not listed at all.
	names := map[string]bool{}
	for _, a := range allowed {
		names[a.name] = true
	}
	for _, need := range []string{"futex", "mmap", "rt_sigaction", "epoll_pwait", "wait4", "execve", "openat", "recvmsg", "sendmsg"} {
		if !names[need] {
			t.Errorf("%s not allowed", need)
		}
	}
	for _, never := range []string{"ptrace", "mount", "umount2", "unshare", "setns", "bpf", "keyctl", "add_key", "perf_event_open",
		"userfaultfd", "io_uring_setup", "kexec_load", "init_module", "finit_module", "open_by_handle_at", "process_vm_readv", "syslog",
		"pivot_root", "chroot", "open_tree", "fsopen", "move_mount"} {
		if names[never] {
			t.Errorf("%s must not be allowed", never)
		}
	}
}
