// Package sandbox runs commands under kernel-enforced isolation: one
// long-lived sandbox per caller-chosen identity, commands executed inside it
// over IPC. It is a lower package: it knows nothing of workspaces or tenants.
// The caller passes a Config (an ID, the unprivileged host uid/gid that
// sandbox root maps to, a directory to show at /workspace, limits, an
// environment allowlist).
//
// # Terms
//
//   - init: the sandbox's PID 1, the bulkhead binary re-executed as
//     /proc/self/exe with the hidden argument InitArg. main (and TestMain)
//     must call RunInitIfRequested first thing. The host process never
//     unshares anything itself: namespaces, uid/gid maps and (on cgroup v2)
//     cgroup membership come from clone flags (SysProcAttr).
//   - launcher: a small helper process (the same binary with a hidden
//     argument, one per bulkhead process, PDEATHSIG to bulkhead) that clones
//     every init. A clone into a new user namespace cannot share memory with
//     its parent in Go, so cloning from bulkhead would copy the page tables of
//     bulkhead's whole heap at every Start; the launcher's are tiny. Inits die
//     with the launcher (PDEATHSIG); the next Start starts a new one.
//   - command: one program the init forks and execs on request; a tool call
//     is one Exec, which costs one fork+exec inside an existing sandbox.
//
// # Layers
//
// All are fail-closed: if one cannot be applied, Start returns a
// *SetupError whose Layer names it and nothing is left running.
//
//  1. user: sandbox root is Config.HostUID/HostGID on the host (a one-id
//     map, checked again from inside); never host root.
//  2. mount: a private mount namespace and pivot_root into a fresh tmpfs
//     root: read-only /usr and the host's /bin, /sbin, /lib* as symlinks
//     (merged /usr) or read-only binds, a synthesized /etc (passwd, group,
//     hosts, resolv.conf, nsswitch.conf; certificates, ld.so cache and
//     Debian alternatives bound read-only; no shadow), a new /proc with
//     kcore, kallsyms, keys, kmsg, sysrq-trigger and friends masked (mode 0,
//     EACCES) and sys, bus, fs, irq read-only, a minimal read-only /dev (null
//     zero full random urandom tty, a private devpts, a size-capped shm), a
//     size-capped /tmp, Config.WorkspaceDir at /workspace (nosuid, nodev),
//     Config.Binds. Bind sources are cloned by the host as detached mounts
//     (open_tree) and attached inside (move_mount), so sandbox root needs no
//     search permission on the host path (the state dir stays 0700). The
//     old root is detached; the root is read-only.
//  3. pid, uts, ipc, cgroup namespaces: the init is PID 1 and reaps
//     orphans; the hostname is Config.Hostname.
//  4. net: a fresh network namespace with only loopback, brought up. The
//     host may open listeners inside it (Sandbox.ListenTCP) and serve them
//     itself; that is how a workspace's egress proxy gets in.
//  5. cgroup: memory (swap capped too: memsw on v1, swap.max=0 on v2), pids
//     (Limits.Pids for the commands, enforced as their RLIMIT_NPROC, plus
//     InitReserve so a fork bomb cannot starve the init of threads;
//     commands run with oom_score_adj 500, so at the memory limit the
//     kernel kills a command rather than the init), cpu,
//     nested under the cgroup bulkhead runs in (per controller on v1;
//     on v2 bulkhead moves itself into a "supervisor" leaf if its own group
//     holds processes). On v2 the init is cloned straight into its group
//     (CLONE_INTO_CGROUP); on v1 it writes itself into the group, through
//     cgroup.procs descriptors bulkhead opened and sent with the setup,
//     before it does anything else, and bulkhead checks it did. Groups are
//     made by writing cgroupfs directly (see cgroup_linux.go for why).
//  6. seccomp: an allowlist BPF program built in pure Go (default EPERM;
//     clone with namespace flags EPERM, clone3 ENOSYS so libc falls back to
//     clone; ioctl TIOCSTI/TIOCLINUX EPERM on the low 32 bits; socket only
//     AF_UNIX/INET/INET6 and never raw or packet; personality only query or
//     PER_LINUX; i386 and x32 ABIs kill the process).
//  7. credentials: commands are forked from one locked OS thread that has
//     dropped every capability set and locked its securebits
//     (SECBIT_NOROOT), so uid 0 inside gains nothing on execve;
//     no_new_privs and seccomp are synchronized to every init thread; the
//     init is not dumpable (no /proc/1/mem); rlimits (nofile, nproc, fsize,
//     core=0); every descriptor but a command's stdio is close-on-exec
//     (close_range); the environment is a base PATH/HOME plus the caller's
//     variables that pass Config.EnvAllow plus Config.Env; PDEATHSIG ties
//     the init to bulkhead and commands to the init.
//
// # IPC
//
// The host and the init speak JSON-RPC 2.0 over a SOCK_SEQPACKET socket
// pair (one message per packet, MaxMessageSize cap, a token-bucket rate
// limit in the init); stdio descriptors travel as SCM_RIGHTS, so output
// streams without copies through the init. See protocol.go.
//
// # Limits and results
//
// A command's timeout (Command.Timeout, else Limits.Timeout) or the end of
// its ctx kills every process in the sandbox but the init (a command's
// descendants can leave its process group and session, but not the pid
// namespace), and Result.TimedOut says so. Result.OOMKilled reports that the
// kernel OOM-killed a process of the sandbox while the command ran. Both are
// apart from ExitCode. A sandbox idle for Config.IdleTimeout is closed;
// Exec then returns ErrClosed and the caller starts a new one.
//
// Pool keeps one live sandbox per ID for a long-running process and starts
// a new one on demand after a reap.
//
// # Concurrency and errors
//
// A Sandbox is safe for concurrent use; Exec calls run side by side.
// Errors are wrapped with the step; sentinels are in errors.go. The package
// is Linux/amd64 only; elsewhere Start returns errors.ErrUnsupported.
package sandbox
