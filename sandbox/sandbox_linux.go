package sandbox

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// Sandbox is one live sandbox: an init process (PID 1 of its namespaces)
// that runs commands sent to it. Methods are safe for concurrent use.
type Sandbox struct {
	cfg   Config
	cg    cgroup
	pid   int      // the init's pid on the host
	pidfd *os.File // the init's pidfd, for signals that cannot hit a reused pid
	conn  *conn
	home  string

	stderr  *capBuffer
	dead    chan struct{} // closed when the init has exited
	waitErr error

	mu       sync.Mutex
	nextID   uint64
	calls    map[uint64]*call
	closed   bool
	active   int
	idle     *time.Timer
	lastUsed time.Time

	closeOnce sync.Once
	closeErr  error
}

type call struct {
	resp    chan *rpcMessage
	started chan *os.File // TTY master from the "started" notification
}

// startTimeout bounds how long the init may take to build the sandbox.
var startTimeout = 60 * time.Second

// Start builds a sandbox: it clones an init into new user, mount, pid, uts,
// ipc, net and cgroup namespaces inside a fresh cgroup, and waits until the
// init reports every layer in place. Any layer that cannot be applied fails
// Start with a *SetupError naming it; nothing half-built is left behind.
func Start(ctx context.Context, cfg Config) (*Sandbox, error) {
	c, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	if err := checkHostIDs(c.HostUID, c.HostGID); err != nil {
		return nil, &SetupError{Layer: "user", Err: err}
	}
	if err := filterBuilds(); err != nil {
		return nil, &SetupError{Layer: "seccomp", Err: err}
	}
	sweepOnce.Do(sweepStale)
	suffix := make([]byte, 4)
	rand.Read(suffix)
	cg, err := newCgroup("bulkhead-"+c.ID+"-"+hex.EncodeToString(suffix), c.Limits)
	if err != nil {
		return nil, &SetupError{Layer: "cgroup", Err: err}
	}
	s := &Sandbox{cfg: c, cg: cg, calls: map[uint64]*call{}, dead: make(chan struct{}), stderr: &capBuffer{max: 8 << 10}, home: "/tmp"}
	if c.WorkspaceDir != "" {
		s.home = "/workspace"
	}
	if err := s.start(ctx); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

// filterBuilds checks once per process that the seccomp policy compiles,
// so a broken policy fails Start before anything is cloned (the init builds
// and loads its own copy).
var filterBuilds = sync.OnceValue(func() error {
	_, err := buildFilter(policy())
	return err
})

func checkHostIDs(uid, gid uint32) error {
	if os.Geteuid() == 0 {
		return nil
	}
	if int(uid) != os.Geteuid() || int(gid) != os.Getegid() {
		return fmt.Errorf("unprivileged bulkhead (uid %d) can only map sandbox root to itself, not %d:%d", os.Geteuid(), uid, gid)
	}
	return nil
}

func (s *Sandbox) start(ctx context.Context) error {
	pair, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return &SetupError{Layer: "ipc", Err: fmt.Errorf("socketpair: %w", err)}
	}
	child := os.NewFile(uintptr(pair[1]), "sandbox-rpc-child")
	defer child.Close()
	s.conn, err = newConn(pair[0], "sandbox-rpc")
	if err != nil {
		unix.Close(pair[0])
		return &SetupError{Layer: "ipc", Err: err}
	}
	// The init's stderr: kept (capped) for setup errors and its last words.
	stderrR, stderrW, err := os.Pipe()
	if err != nil {
		return &SetupError{Layer: "ipc", Err: fmt.Errorf("stderr pipe: %w", err)}
	}
	stderrDone := make(chan struct{})
	go func() {
		io.Copy(s.stderr, stderrR)
		stderrR.Close()
		close(stderrDone)
	}()
	go s.readLoop()

	// The setup request is queued on the socket before the init exists, so
	// the init finds it the moment its runtime is up: no round trip through
	// bulkhead between the clone and the setup. On v1 it carries the group's
	// cgroup.procs descriptors and the init's first act is to move itself
	// in; on v2 the clone already put it there.
	p := setupParams{
		Hostname: s.cfg.Hostname, Workspace: s.cfg.WorkspaceDir != "", Binds: s.cfg.Binds,
		TmpBytes: s.cfg.Limits.TmpBytes, NoFile: s.cfg.Limits.NoFile, NProc: uint64(s.cfg.Limits.Pids),
		FileBytes: s.cfg.Limits.FileBytes, ExpectUID: s.cfg.HostUID,
		RatePerSec: s.cfg.RequestsPerSecond, Burst: s.cfg.RequestBurst,
	}
	var sources []string
	if s.cfg.WorkspaceDir != "" {
		sources = append(sources, s.cfg.WorkspaceDir)
	}
	for _, b := range s.cfg.Binds {
		sources = append(sources, b.Source)
	}
	fds, err := openSources(sources)
	if err != nil {
		stderrW.Close()
		layer := "bind"
		if s.cfg.WorkspaceDir != "" && strings.Contains(err.Error(), s.cfg.WorkspaceDir) {
			layer = "workspace"
		}
		return &SetupError{Layer: layer, Err: err}
	}
	join, err := s.cg.joinFiles()
	if err != nil {
		stderrW.Close()
		closeFDs(fds)
		return &SetupError{Layer: "cgroup", Err: err}
	}
	p.CgroupFDs = len(join)
	fds = append(fds, join...)
	id, setup, err := s.send("setup", p, fds)
	closeFDs(fds)
	if err != nil {
		stderrW.Close()
		return &SetupError{Layer: "ipc", Err: fmt.Errorf("send setup: %w", err)}
	}

	l, err := getLauncher()
	if err != nil {
		stderrW.Close()
		return &SetupError{Layer: "init", Err: err}
	}
	launchFDs := []int{int(child.Fd()), int(stderrW.Fd())}
	lp := launchParams{UID: s.cfg.HostUID, GID: s.cfg.HostGID}
	if fd := s.cg.intoFD(); fd >= 0 {
		lp.Cgroup = true
		launchFDs = append(launchFDs, fd)
	}
	pid, pidfd, err := l.launch(lp, launchFDs)
	stderrW.Close()
	if err != nil {
		layer := "namespaces"
		if errors.Is(err, unix.EPERM) || errors.Is(err, unix.ENOSPC) || errors.Is(err, unix.EINVAL) {
			if uerr := UserNamespacesAvailable(); uerr != nil {
				layer, err = "user", uerr
			}
		}
		return &SetupError{Layer: layer, Err: fmt.Errorf("clone init: %w", err)}
	}
	s.pid, s.pidfd = pid, pidfd
	l.watch(pid, func(ws unix.WaitStatus, err error) {
		if err == nil {
			err = waitStatusError(ws)
		}
		go func() {
			// Its last words first (the pipe ends when the init is gone).
			select {
			case <-stderrDone:
			case <-time.After(time.Second):
			}
			s.waitErr = err
			close(s.dead)
			s.failAll()
		}()
	})

	ctx, cancel := context.WithTimeout(ctx, startTimeout)
	defer cancel()
	resp, err := s.wait(ctx, id, setup)
	if err != nil {
		if errors.Is(err, ErrClosed) {
			return &SetupError{Layer: "init", Err: fmt.Errorf("init exited during setup: %v: %s", s.waitErr, bytes.TrimSpace(s.stderr.Bytes()))}
		}
		return &SetupError{Layer: "init", Err: err}
	}
	if resp.Error != nil {
		layer := "init"
		if resp.Error.Data != nil && resp.Error.Data.Layer != "" {
			layer = resp.Error.Data.Layer
		}
		msg := resp.Error.Message
		if extra := bytes.TrimSpace(s.stderr.Bytes()); len(extra) > 0 {
			msg += ": " + string(extra)
		}
		return &SetupError{Layer: layer, Err: errors.New(msg)}
	}
	// The init says it joined; the host checks (fail closed).
	if err := s.cg.checkMember(pid); err != nil {
		return &SetupError{Layer: "cgroup", Err: err}
	}
	s.mu.Lock()
	s.lastUsed = time.Now()
	s.armIdleLocked()
	s.mu.Unlock()
	return nil
}

// openSources clones each bind source as a detached mount (open_tree with
// OPEN_TREE_CLONE) on the host side. The init attaches them with move_mount,
// so neither host path permissions nor the host's mount namespace matter
// inside.
func openSources(paths []string) ([]int, error) {
	var fds []int
	for _, p := range paths {
		fd, err := unix.OpenTree(unix.AT_FDCWD, p, unix.OPEN_TREE_CLONE|unix.OPEN_TREE_CLOEXEC)
		if err != nil {
			closeFDs(fds)
			return nil, fmt.Errorf("open %s: %w", p, err)
		}
		fds = append(fds, fd)
	}
	return fds, nil
}

// readLoop dispatches the init's responses and notifications.
func (s *Sandbox) readLoop() {
	for {
		m, fds, err := s.conn.recv()
		if errors.Is(err, errTooLarge) || errors.Is(err, errBadMessage) {
			continue
		}
		if err != nil {
			s.failAll()
			return
		}
		if m.ID == nil && m.Method == "started" {
			var sp startedParams
			if json.Unmarshal(m.Params, &sp) == nil && len(fds) == 1 {
				s.mu.Lock()
				c := s.calls[sp.ID]
				s.mu.Unlock()
				if c != nil && c.started != nil {
					select {
					case c.started <- os.NewFile(uintptr(fds[0]), "pty-master"):
						continue
					default:
					}
				}
			}
			closeFDs(fds)
			continue
		}
		closeFDs(fds)
		if m.ID == nil {
			continue
		}
		s.mu.Lock()
		c := s.calls[*m.ID]
		delete(s.calls, *m.ID)
		s.mu.Unlock()
		if c != nil {
			c.resp <- m
		}
	}
}

// failAll wakes every pending call once the init is gone.
func (s *Sandbox) failAll() {
	s.mu.Lock()
	calls := s.calls
	s.calls = map[uint64]*call{}
	s.mu.Unlock()
	for _, c := range calls {
		close(c.resp)
	}
}

func (s *Sandbox) register(tty bool) (uint64, *call, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	select {
	case <-s.dead:
		return 0, nil, ErrClosed
	default:
	}
	s.nextID++
	c := &call{resp: make(chan *rpcMessage, 1)}
	if tty {
		c.started = make(chan *os.File, 1)
	}
	s.calls[s.nextID] = c
	return s.nextID, c, nil
}

func (s *Sandbox) unregister(id uint64) {
	s.mu.Lock()
	delete(s.calls, id)
	s.mu.Unlock()
}

// call sends one request and waits for its response.
func (s *Sandbox) call(ctx context.Context, method string, params any, fds []int) (*rpcMessage, error) {
	id, c, err := s.send(method, params, fds)
	if err != nil {
		return nil, err
	}
	return s.wait(ctx, id, c)
}

// send sends one request; wait then waits for its response.
func (s *Sandbox) send(method string, params any, fds []int) (uint64, *call, error) {
	id, c, err := s.register(false)
	if err != nil {
		return 0, nil, err
	}
	req, err := request(id, method, params)
	if err != nil {
		s.unregister(id)
		return 0, nil, err
	}
	if err := s.conn.send(req, fds); err != nil {
		s.unregister(id)
		return 0, nil, err
	}
	return id, c, nil
}

func (s *Sandbox) wait(ctx context.Context, id uint64, c *call) (*rpcMessage, error) {
	select {
	case m, ok := <-c.resp:
		if !ok {
			return nil, ErrClosed
		}
		return m, nil
	case <-ctx.Done():
		s.unregister(id)
		return nil, ctx.Err()
	}
}

// Ping round-trips a request through the init.
func (s *Sandbox) Ping(ctx context.Context) error {
	m, err := s.call(ctx, "ping", struct{}{}, nil)
	if err != nil {
		return err
	}
	if m.Error != nil {
		return errors.New(m.Error.Message)
	}
	return nil
}

// Config is the sandbox's configuration, defaults applied.
func (s *Sandbox) Config() Config { return s.cfg }

// InitPID is the init's pid on the host.
func (s *Sandbox) InitPID() int { return s.pid }

// CgroupPath is the sandbox's cgroup directory on the host (the memory
// controller's on cgroup v1).
func (s *Sandbox) CgroupPath() string { return s.cg.path() }

// MemoryUsage is the memory charged to the sandbox's cgroup right now.
func (s *Sandbox) MemoryUsage() uint64 { return s.cg.memoryUsage() }

// Processes lists the host pids in the sandbox's cgroup (init included).
func (s *Sandbox) Processes() ([]int, error) { return s.cg.procs() }

// Done is closed when the sandbox's init has exited (closed, idle-reaped,
// or died).
func (s *Sandbox) Done() <-chan struct{} { return s.dead }

func (s *Sandbox) armIdleLocked() {
	if s.cfg.IdleTimeout < 0 || s.closed {
		return
	}
	if s.idle != nil {
		s.idle.Stop()
	}
	s.idle = time.AfterFunc(s.cfg.IdleTimeout, func() {
		s.mu.Lock()
		busy := s.active > 0 || time.Since(s.lastUsed) < s.cfg.IdleTimeout
		s.mu.Unlock()
		if !busy {
			s.Close()
		}
	})
}

func (s *Sandbox) begin() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return ErrClosed
	}
	s.active++
	if s.idle != nil {
		s.idle.Stop()
	}
	return nil
}

func (s *Sandbox) end() {
	s.mu.Lock()
	s.active--
	s.lastUsed = time.Now()
	if s.active == 0 {
		s.armIdleLocked()
	}
	s.mu.Unlock()
}

// Exec runs one command in the sandbox and waits for it. The command's
// whole tree, and with it every other process in the sandbox but the init,
// is killed when its timeout passes or ctx ends (Result.TimedOut). An
// unknown program yields ErrCommandNotFound with ExitCode 127.
func (s *Sandbox) Exec(ctx context.Context, cmd Command) (Result, error) {
	start := time.Now()
	if len(cmd.Args) == 0 {
		return Result{}, fmt.Errorf("%w: empty command", ErrInvalidConfig)
	}
	if err := s.begin(); err != nil {
		return Result{}, err
	}
	defer s.end()
	dir := cmd.Dir
	if dir == "" {
		dir = s.home
	}
	p := execParams{Args: cmd.Args, Env: commandEnv(&s.cfg, &cmd, s.home), Dir: dir, TTY: cmd.TTY, Rows: cmd.Rows, Cols: cmd.Cols}
	var sio stdio
	defer sio.closeAll()
	if !cmd.TTY {
		if err := sio.prepare(&cmd, &p); err != nil {
			return Result{}, fmt.Errorf("exec stdio: %w", err)
		}
	}
	id, c, err := s.register(cmd.TTY)
	if err != nil {
		return Result{}, err
	}
	req, err := request(id, "exec", p)
	if err == nil {
		err = s.conn.send(req, sio.childFDs())
	}
	if err != nil {
		s.unregister(id)
		return Result{}, fmt.Errorf("exec request: %w", err)
	}
	sio.closeChildEnds()
	sio.startCopies(&cmd)

	timeout := s.cfg.Limits.Timeout
	if cmd.Timeout > 0 {
		timeout = cmd.Timeout
	}
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	oomBefore := s.cg.oomKills()

	var res Result
	var resp *rpcMessage
	started := c.started
	for resp == nil {
		select {
		case master := <-started:
			started = nil
			sio.attachTTY(master, &cmd)
			if cmd.OnStart != nil {
				cmd.OnStart(ptyControl{master})
			}
		case m, ok := <-c.resp:
			if !ok {
				return Result{Duration: time.Since(start), OOMKilled: s.cg.oomKills() > oomBefore}, s.closedErr()
			}
			resp = m
		case <-timer.C:
			res.TimedOut = true
			resp = s.killAndWait(c)
		case <-ctx.Done():
			res.TimedOut = true
			resp = s.killAndWait(c)
		}
	}
	if resp == nil || (resp.Error == nil && resp.Result == nil) {
		return Result{Duration: time.Since(start), TimedOut: res.TimedOut}, ErrClosed
	}
	if resp.Error != nil {
		kind := ""
		if resp.Error.Data != nil {
			kind = resp.Error.Data.Kind
		}
		switch kind {
		case kindNotFound:
			return Result{ExitCode: 127, Duration: time.Since(start)}, fmt.Errorf("%w: %s", ErrCommandNotFound, cmd.Args[0])
		case kindNotExecutable:
			return Result{ExitCode: 126, Duration: time.Since(start)}, fmt.Errorf("%w: %s", ErrNotExecutable, resp.Error.Message)
		}
		return Result{Duration: time.Since(start)}, fmt.Errorf("exec %s: %s", cmd.Args[0], resp.Error.Message)
	}
	var er execResult
	if err := json.Unmarshal(resp.Result, &er); err != nil {
		return Result{}, fmt.Errorf("exec result: %w", err)
	}
	sio.wait(waitDelay)
	res.ExitCode, res.Signal = er.ExitCode, er.Signal
	res.OOMKilled = s.cg.oomKills() > oomBefore
	res.Duration = time.Since(start)
	return res, nil
}

// closedErr is ErrClosed, with the init's last words when it died on its
// own (a crash, or the OOM killer) rather than by Close.
func (s *Sandbox) closedErr() error {
	s.mu.Lock()
	closed := s.closed
	s.mu.Unlock()
	select {
	case <-s.dead:
	case <-time.After(time.Second):
	}
	if msg := bytes.TrimSpace(s.stderr.Bytes()); !closed && len(msg) > 0 {
		if i := bytes.IndexByte(msg, '\n'); i > 0 {
			msg = msg[:i]
		}
		return fmt.Errorf("%w: init died: %v: %s", ErrClosed, s.waitErr, msg)
	}
	if !closed {
		return fmt.Errorf("%w: init died: %v", ErrClosed, s.waitErr)
	}
	return ErrClosed
}

// waitDelay is how long Exec waits for stdout/stderr to drain after the
// command exits while a background process still holds them open.
var waitDelay = 200 * time.Millisecond

// killAndWait kills every process of the sandbox but the init and waits for
// the command's response; if the init does not answer, the whole sandbox is
// torn down.
func (s *Sandbox) killAndWait(c *call) *rpcMessage {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := s.call(ctx, "kill", struct{}{}, nil); err == nil {
		select {
		case m, ok := <-c.resp:
			if ok {
				return m
			}
			return nil
		case <-ctx.Done():
		}
	}
	s.Close()
	return nil
}

// Close kills every process of the sandbox, removes its cgroup and releases
// its resources. It is idempotent.
func (s *Sandbox) Close() error {
	s.closeOnce.Do(func() {
		s.mu.Lock()
		s.closed = true
		if s.idle != nil {
			s.idle.Stop()
		}
		s.mu.Unlock()
		if s.pidfd != nil {
			unix.PidfdSendSignal(int(s.pidfd.Fd()), unix.SIGKILL, nil, 0)
			<-s.dead
			s.pidfd.Close()
		}
		if s.conn != nil {
			s.conn.Close()
		}
		if s.cg != nil {
			if err := s.cg.kill(); err != nil {
				s.closeErr = fmt.Errorf("kill sandbox cgroup: %w", err)
			}
			if err := s.cg.delete(); err != nil && s.closeErr == nil {
				s.closeErr = fmt.Errorf("delete sandbox cgroup: %w", err)
			}
		}
	})
	return s.closeErr
}

// capBuffer keeps the first max bytes written (the init's stderr).
type capBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
	max int
}

func (b *capBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if room := b.max - b.buf.Len(); room > 0 {
		b.buf.Write(p[:min(len(p), room)])
	}
	return len(p), nil
}

func (b *capBuffer) Bytes() []byte {
	b.mu.Lock()
	defer b.mu.Unlock()
	return bytes.Clone(b.buf.Bytes())
}

var _ io.Writer = (*capBuffer)(nil)
