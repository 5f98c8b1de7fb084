package sandbox

import (
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"time"
)

// InitArg is the hidden first argument that turns the bulkhead binary (or a
// test binary) into a sandbox init. Programs call RunInitIfRequested before
// anything else in main (or TestMain).
const InitArg = "__bulkhead-sandbox-init"

// MaxMessageSize caps one JSON-RPC message on the init's fd pair, in both
// directions. A command whose argv and env encode larger is refused with
// ErrRequestTooLarge.
const MaxMessageSize = 128 << 10

// MaxBinds is the most extra directories one sandbox may have.
const MaxBinds = 8

// InitReserve is how many tasks the sandbox's cgroup allows beyond
// Limits.Pids: room for the init's own threads, so a fork bomb that uses up
// the commands' share (RLIMIT_NPROC = Limits.Pids) cannot starve the init.
const InitReserve = 16

// Minimums below which a sandbox cannot start: the init itself is a small Go
// program with a few threads and a few MiB of memory.
const (
	MinMemoryBytes = 32 << 20
	MinPids        = 16
	MinTmpBytes    = 1 << 20
)

// Defaults applied by Start to zero-valued limits.
const (
	DefaultMemoryBytes = 512 << 20
	DefaultPids        = 256
	DefaultTmpBytes    = 64 << 20
	DefaultNoFile      = 1024
	DefaultFileBytes   = 1 << 30
	DefaultTimeout     = 10 * time.Minute
	DefaultIdleTimeout = 5 * time.Minute
)

// DefaultEnvAllow is the allowlist used when Config.EnvAllow is nil: terminal
// and locale settings only. Nothing else of the caller's environment enters a
// sandbox unless the caller names it.
var DefaultEnvAllow = []string{"TERM", "COLORTERM", "NO_COLOR", "LANG", "LANGUAGE", "LC_*", "TZ"}

// idRule is the pattern an ID must match; validID checks it without a
// regexp, so the init (which runs every package initializer) stays cheap.
const idRule = `^[a-z0-9][a-z0-9_-]{0,63}$`

func validID(id string) bool {
	if len(id) == 0 || len(id) > 64 {
		return false
	}
	for i, r := range id {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9':
		case (r == '_' || r == '-') && i > 0:
		default:
			return false
		}
	}
	return true
}

// Limits are the resources one sandbox may use. Memory, Pids and CPUs are
// enforced by cgroups on the whole sandbox (init included), TmpBytes by the
// size of the /tmp tmpfs (whose pages also count against MemoryBytes).
type Limits struct {
	MemoryBytes int64         // memory+swap ceiling of the whole sandbox; 0 = DefaultMemoryBytes
	Pids        int64         // tasks (processes and threads) of the commands; the cgroup allows InitReserve more for the init; 0 = DefaultPids
	CPUs        float64       // CPU bandwidth in cores (1.5 = one and a half); 0 = unlimited
	TmpBytes    int64         // size of /tmp (and of /dev/shm); 0 = DefaultTmpBytes
	NoFile      uint64        // RLIMIT_NOFILE of commands; 0 = DefaultNoFile
	FileBytes   uint64        // RLIMIT_FSIZE of commands; 0 = DefaultFileBytes
	Timeout     time.Duration // wall clock per command unless Command.Timeout is set; 0 = DefaultTimeout
}

// Bind is an extra host directory shown inside the sandbox.
type Bind struct {
	Source   string // absolute host path
	Target   string // absolute path inside the sandbox, not under /proc, /dev, /tmp
	Writable bool   // read-only unless set
}

// Config describes one sandbox. The sandbox package knows nothing of
// workspaces: the caller supplies the identity, the host ids and the
// directory to show at /workspace.
type Config struct {
	// ID names the sandbox's cgroup and hostname; it must match
	// ^[a-z0-9][a-z0-9_-]{0,63}$ (a workspace id does).
	ID string
	// HostUID and HostGID are the unprivileged host ids that sandbox root
	// (uid 0 inside) maps to. Zero is refused: sandbox root is never host root.
	// When bulkhead itself is not root they must be its own ids.
	HostUID, HostGID uint32
	// WorkspaceDir is bind-mounted read-write at /workspace (nosuid, nodev).
	// It must be writable by HostUID. Empty means no /workspace.
	WorkspaceDir string
	// Binds are extra directories (read-only unless Writable).
	Binds []Bind
	// Limits bound the sandbox's resources.
	Limits Limits
	// Env is set in every command ("KEY=value"), after the allowlisted part of
	// Command.Env.
	Env []string
	// EnvAllow lists the names (exact, or a prefix ending in "*") that may pass
	// from Command.Env; nil means DefaultEnvAllow.
	EnvAllow []string
	// IdleTimeout reaps the sandbox after this long without a running command;
	// 0 means DefaultIdleTimeout, negative means never.
	IdleTimeout time.Duration
	// Hostname inside the sandbox; empty means ID.
	Hostname string
	// RequestsPerSecond and RequestBurst bound the requests the init accepts
	// (a token bucket; a request over the limit is refused, not queued).
	// Zero means 2000 per second with a burst of 200.
	RequestsPerSecond, RequestBurst int
}

// Command is one program to run inside a live sandbox.
type Command struct {
	Args    []string      // argv; Args[0] is looked up in PATH inside the sandbox unless it has a slash
	Env     []string      // caller's environment; filtered through Config.EnvAllow
	Dir     string        // absolute working directory inside the sandbox; "" = /workspace if present, else /tmp
	Timeout time.Duration // overrides Limits.Timeout when positive
	Stdin   io.Reader     // nil = /dev/null
	Stdout  io.Writer     // nil = discarded
	Stderr  io.Writer     // nil = discarded
	// TTY runs the command on a pseudo-terminal allocated inside the sandbox:
	// Stdin feeds it, Stdout receives its output (Stderr is unused). Rows and
	// Cols set its initial size when non-zero.
	TTY        bool
	Rows, Cols uint16
	// OnStart, if set, is called once the command runs; with TTY it receives
	// the terminal's master side (for resizes), otherwise nil.
	OnStart func(tty TTYControl)
}

// TTYControl lets the caller resize a command's terminal.
type TTYControl interface {
	Resize(rows, cols uint16) error
}

// Result is how a command ended. A command killed for exceeding the sandbox's
// memory or its timeout reports that in OOMKilled / TimedOut, apart from the
// exit code it would otherwise carry.
type Result struct {
	ExitCode  int           // 0..255, or 128+signal when killed by a signal
	Signal    int           // terminating signal, 0 if it exited
	TimedOut  bool          // killed because the wall-clock timeout passed (or ctx ended)
	OOMKilled bool          // the sandbox hit its memory limit and the kernel killed a process of it while the command ran
	Duration  time.Duration // from request to exit as seen by the host
}

func (c *Config) withDefaults() (Config, error) {
	out := *c
	if !validID(out.ID) {
		return out, fmt.Errorf("%w: id %q must match %s", ErrInvalidConfig, out.ID, idRule)
	}
	if out.HostUID == 0 || out.HostGID == 0 {
		return out, fmt.Errorf("%w: host uid/gid must not be 0 (sandbox root is never host root)", ErrInvalidConfig)
	}
	if out.WorkspaceDir != "" && !filepath.IsAbs(out.WorkspaceDir) {
		return out, fmt.Errorf("%w: workspace dir %q is not absolute", ErrInvalidConfig, out.WorkspaceDir)
	}
	if len(out.Binds) > MaxBinds {
		return out, fmt.Errorf("%w: %d binds, at most %d", ErrInvalidConfig, len(out.Binds), MaxBinds)
	}
	for _, b := range out.Binds {
		if !filepath.IsAbs(b.Source) || !filepath.IsAbs(b.Target) {
			return out, fmt.Errorf("%w: bind %q -> %q must use absolute paths", ErrInvalidConfig, b.Source, b.Target)
		}
		if reservedTarget(filepath.Clean(b.Target)) {
			return out, fmt.Errorf("%w: bind target %q is reserved", ErrInvalidConfig, b.Target)
		}
	}
	l := &out.Limits
	if l.MemoryBytes == 0 {
		l.MemoryBytes = DefaultMemoryBytes
	}
	if l.Pids == 0 {
		l.Pids = DefaultPids
	}
	if l.TmpBytes == 0 {
		l.TmpBytes = DefaultTmpBytes
	}
	if l.NoFile == 0 {
		l.NoFile = DefaultNoFile
	}
	if l.FileBytes == 0 {
		l.FileBytes = DefaultFileBytes
	}
	if l.Timeout == 0 {
		l.Timeout = DefaultTimeout
	}
	switch {
	case l.MemoryBytes < MinMemoryBytes:
		return out, fmt.Errorf("%w: memory %d bytes < %d", ErrLimitTooLow, l.MemoryBytes, MinMemoryBytes)
	case l.Pids < MinPids:
		return out, fmt.Errorf("%w: pids %d < %d", ErrLimitTooLow, l.Pids, MinPids)
	case l.TmpBytes < MinTmpBytes:
		return out, fmt.Errorf("%w: tmp %d bytes < %d", ErrLimitTooLow, l.TmpBytes, MinTmpBytes)
	case l.CPUs < 0 || (l.CPUs > 0 && l.CPUs < 0.01):
		return out, fmt.Errorf("%w: cpus %g < 0.01", ErrLimitTooLow, l.CPUs)
	case l.Timeout < 0:
		return out, fmt.Errorf("%w: timeout %v", ErrLimitTooLow, l.Timeout)
	case l.NoFile < 16:
		return out, fmt.Errorf("%w: nofile %d < 16", ErrLimitTooLow, l.NoFile)
	}
	if out.IdleTimeout == 0 {
		out.IdleTimeout = DefaultIdleTimeout
	}
	if out.EnvAllow == nil {
		out.EnvAllow = DefaultEnvAllow
	}
	for _, kv := range out.Env {
		if !strings.Contains(kv, "=") {
			return out, fmt.Errorf("%w: env entry %q has no '='", ErrInvalidConfig, kv)
		}
	}
	if out.Hostname == "" {
		out.Hostname = out.ID
	}
	return out, nil
}

// basePath is PATH inside every sandbox.
const basePath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// commandEnv builds a command's environment: fixed base values, the caller's
// variables that pass the allowlist, then Config.Env. Later entries win.
func commandEnv(cfg *Config, cmd *Command, home string) []string {
	vals := map[string]string{"PATH": basePath, "HOME": home, "USER": "root", "LOGNAME": "root", "SHELL": "/bin/sh"}
	order := []string{"PATH", "HOME", "USER", "LOGNAME", "SHELL"}
	set := func(kv string) {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return
		}
		if _, seen := vals[k]; !seen {
			order = append(order, k)
		}
		vals[k] = v
	}
	for _, kv := range cmd.Env {
		k, _, _ := strings.Cut(kv, "=")
		if envAllowed(cfg.EnvAllow, k) {
			set(kv)
		}
	}
	for _, kv := range cfg.Env {
		set(kv)
	}
	if cmd.TTY {
		if _, ok := vals["TERM"]; !ok {
			set("TERM=xterm")
		}
	}
	env := make([]string, 0, len(order))
	for _, k := range order {
		env = append(env, k+"="+vals[k])
	}
	return env
}

func envAllowed(allow []string, name string) bool {
	for _, a := range allow {
		if p, ok := strings.CutSuffix(a, "*"); ok {
			if strings.HasPrefix(name, p) {
				return true
			}
		} else if a == name {
			return true
		}
	}
	return false
}

// reservedTarget reports whether a bind target would cover part of the
// sandbox's own layout.
func reservedTarget(t string) bool {
	if t == "/" {
		return true
	}
	for _, r := range []string{"/proc", "/dev", "/tmp", "/workspace", "/usr", "/etc", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"} {
		if t == r || strings.HasPrefix(t, r+"/") {
			return true
		}
	}
	return false
}
