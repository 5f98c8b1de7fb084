package sandbox

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// initFD is the init's end of the socket pair (ExtraFiles[0]).
const initFD = 3

// RunInitIfRequested turns the process into a sandbox init when it was
// started as one (os.Args[1] == InitArg), or into the sandbox launcher
// (launcher_linux.go), and never returns in those cases. It must be the
// first thing main (and TestMain) does. Otherwise it returns at once, doing
// nothing.
func RunInitIfRequested() {
	if len(os.Args) < 2 {
		return
	}
	switch os.Args[1] {
	case InitArg:
		os.Exit(runInit())
	case launcherArg:
		os.Exit(runLauncher())
	}
}

func runInit() int {
	// Started by hand (not PID 1 of a fresh pid namespace inside a user
	// namespace)? Refuse before touching anything.
	if os.Getpid() != 1 || !inChildUserNS() {
		fmt.Fprintln(os.Stderr, "bulkhead: "+ErrNotInit.Error())
		return 2
	}
	var st unix.Stat_t
	if err := unix.Fstat(initFD, &st); err != nil || st.Mode&unix.S_IFMT != unix.S_IFSOCK {
		fmt.Fprintln(os.Stderr, "bulkhead: "+ErrNotInit.Error()+": fd 3 is not a socket")
		return 2
	}
	unix.CloseOnExec(initFD)
	c, err := newConn(initFD, "sandbox-rpc")
	if err != nil {
		fmt.Fprintln(os.Stderr, "bulkhead:", err)
		return 2
	}
	m, fds, err := c.recv()
	defer func() { closeFDs(fds) }()
	if err != nil || m.Method != "setup" || m.ID == nil {
		fmt.Fprintln(os.Stderr, "bulkhead: sandbox init: expected setup request:", err)
		return 2
	}
	var p setupParams
	if err := strictUnmarshal(m.Params, &p); err != nil {
		c.send(&rpcMessage{ID: m.ID, Error: &rpcError{Code: codeInvalidParams, Message: err.Error()}}, nil)
		return 2
	}
	s := &initServer{conn: c, pending: map[int]chan unix.WaitStatus{}}
	err = joinCgroup(&p, fds)
	if err == nil {
		fds = fds[:len(fds)-p.CgroupFDs] // joinCgroup closed the rest
		err = s.setup(&p, fds)
	}
	if err != nil {
		layer, msg := "setup", err.Error()
		var se *SetupError
		if errors.As(err, &se) {
			layer, msg = se.Layer, se.Err.Error()
		}
		c.send(&rpcMessage{ID: m.ID, Error: &rpcError{Code: codeSetup, Message: msg, Data: &rpcErrEx{Layer: layer}}}, nil)
		return 1
	}
	if err := c.send(&rpcMessage{ID: m.ID, Result: json.RawMessage(`{}`)}, nil); err != nil {
		return 1
	}
	// The init starts with the collector off (GOGC=off from the host: package
	// initialisation and setup are short and allocate little), then runs
	// long and mostly idle. Shortly after it is up (not in the way of the
	// first command): start spare threads, collect once, hand the garbage
	// back to the kernel, and keep the heap tight from then on.
	time.AfterFunc(100*time.Millisecond, func() {
		prewarmThreads(3)
		debug.SetGCPercent(50)
		debug.FreeOSMemory()
	})
	s.serve(&p)
	return 0
}

// joinCgroup moves the init into its sandbox's group (v1), through the
// cgroup.procs descriptors bulkhead opened and sent as the last p.CgroupFDs
// of the setup's descriptors. It comes before anything else the init does;
// bulkhead checks the result before Start returns.
func joinCgroup(p *setupParams, fds []int) error {
	if p.CgroupFDs < 0 || p.CgroupFDs > len(fds) {
		return &SetupError{Layer: "cgroup", Err: fmt.Errorf("%d cgroup descriptors of %d", p.CgroupFDs, len(fds))}
	}
	join := fds[len(fds)-p.CgroupFDs:]
	defer closeFDs(join) // bulkhead's descriptors do not stay with the init
	for _, fd := range join {
		if _, err := unix.Write(fd, []byte("0")); err != nil {
			return &SetupError{Layer: "cgroup", Err: fmt.Errorf("join: %w", err)}
		}
	}
	return nil
}

func inChildUserNS() bool {
	b, err := os.ReadFile("/proc/self/uid_map")
	if err != nil {
		return false
	}
	f := strings.Fields(string(b))
	return !(len(f) == 3 && f[0] == "0" && f[1] == "0" && f[2] == "4294967295")
}

type initServer struct {
	conn    *conn
	devnull int

	mu      sync.Mutex
	pending map[int]chan unix.WaitStatus

	rate    *tokenBucket
	spawnCh chan *spawnReq
	nproc   uint64 // the commands' RLIMIT_NPROC
}

// setup applies every layer the init owns, in order. Namespaces, uid/gid
// maps and cgroup membership were set by the host when it cloned us.
func (s *initServer) setup(p *setupParams, fds []int) error {
	if err := checkIDMap("/proc/self/uid_map", p.ExpectUID); err != nil {
		return &SetupError{Layer: "user", Err: err}
	}
	if err := buildRoot(p, fds); err != nil {
		return setupErr("mount", err)
	}
	if err := unix.Sethostname([]byte(p.Hostname)); err != nil {
		return &SetupError{Layer: "uts", Err: err}
	}
	if err := upLoopback(); err != nil {
		return err
	}
	fd, err := unix.Open("/dev/null", unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		return &SetupError{Layer: "dev", Err: fmt.Errorf("open /dev/null: %w", err)}
	}
	s.devnull = fd
	// Every descriptor we hold from here on is close-on-exec; commands get
	// exactly their three stdio descriptors.
	if err := unix.CloseRange(3, ^uint(0), unix.CLOSE_RANGE_CLOEXEC); err != nil {
		return &SetupError{Layer: "close_range", Err: err}
	}
	if err := setRlimits(p); err != nil {
		return err
	}
	auditArch, rules := policy()
	filter, err := buildFilter(auditArch, rules)
	if err != nil {
		return &SetupError{Layer: "seccomp", Err: err}
	}
	// Signals sent to PID 1 from inside the namespace are delivered only if
	// it handles them: take them all (and ignore them), so a command cannot
	// make the init exit. Handled (not ignored) signals reset to default in
	// the commands we exec.
	s.rate = newTokenBucket(p.RatePerSec, p.Burst)
	s.nproc = p.NProc
	s.spawnCh = make(chan *spawnReq)
	ready := make(chan error)
	go s.spawner(filter, ready)
	return <-ready
}

// spawnReq asks the spawner thread to fork and exec one command.
type spawnReq struct {
	path string
	argv []string
	attr *syscall.ProcAttr
	wait chan unix.WaitStatus
	pid  int
	err  error
	done chan struct{}
}

// spawner owns the one OS thread commands are forked from: it drops that
// thread's privileges, then serves fork requests forever (the thread never
// exits, so the commands' PDEATHSIG stays armed to it).
func (s *initServer) spawner(filter []sockFilter, ready chan<- error) {
	runtime.LockOSThread()
	if err := dropPrivileges(filter); err != nil {
		ready <- err
		return // the locked thread exits with the goroutine
	}
	ready <- nil
	for r := range s.spawnCh {
		s.mu.Lock()
		if r.err = setNProcSoft(s.nproc); r.err == nil {
			r.pid, r.err = syscall.ForkExec(r.path, r.argv, r.attr)
			setNProcSoft(s.nproc + InitReserve)
		}
		if r.err == nil {
			s.pending[r.pid] = r.wait
			preferAsOOMVictim(r.pid)
		}
		s.mu.Unlock()
		close(r.done)
	}
}

// commandOOMScoreAdj is the oom_score_adj of every command (and, by
// inheritance, everything it forks): when the sandbox's memory limit is hit,
// the kernel kills a command rather than the init, so the sandbox outlives a
// memory bomb and reports it. Raising the value needs no privilege.
const commandOOMScoreAdj = "500"

// preferAsOOMVictim raises pid's oom_score_adj; best effort (the command
// may already have exited).
func preferAsOOMVictim(pid int) {
	fd, err := syscall.Open("/proc/"+strconv.Itoa(pid)+"/oom_score_adj", syscall.O_WRONLY|syscall.O_CLOEXEC, 0)
	if err != nil {
		return
	}
	syscall.Write(fd, []byte(commandOOMScoreAdj))
	syscall.Close(fd)
}

// checkIDMap verifies from inside that uid 0 maps to the expected host id,
// a range of exactly one, so sandbox root is never host root.
func checkIDMap(path string, want uint32) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) != 1 {
		return fmt.Errorf("%s has %d lines, want 1", path, len(lines))
	}
	f := strings.Fields(lines[0])
	if len(f) != 3 || f[0] != "0" || f[1] != strconv.FormatUint(uint64(want), 10) || f[2] != "1" {
		return fmt.Errorf("%s is %q, want \"0 %d 1\"", path, lines[0], want)
	}
	return nil
}

func (s *initServer) serve(p *setupParams) {
	sigs := make(chan os.Signal, 16)
	signal.Notify(sigs)
	go func() {
		for sig := range sigs {
			if sig == unix.SIGCHLD {
				s.reap()
			}
		}
	}()
	for {
		m, fds, err := s.conn.recv()
		switch {
		case errors.Is(err, errTooLarge):
			s.conn.send(&rpcMessage{Error: &rpcError{Code: codeInvalidRequest, Message: "message over size cap", Data: &rpcErrEx{Kind: "too_large"}}}, nil)
			continue
		case errors.Is(err, errBadMessage):
			s.conn.send(&rpcMessage{Error: &rpcError{Code: codeParse, Message: err.Error()}}, nil)
			continue
		case err != nil:
			// The host is gone (EOF) or the socket broke: take everything down.
			unix.Kill(-1, unix.SIGKILL)
			return
		}
		if m.ID == nil {
			closeFDs(fds)
			continue // notifications from the host carry no meaning
		}
		// A kill is never refused: it is how the host ends a runaway command.
		if m.Method != "kill" && !s.rate.allow() {
			closeFDs(fds)
			s.conn.send(&rpcMessage{ID: m.ID, Error: &rpcError{Code: codeRateLimited, Message: "rate limited", Data: &rpcErrEx{Kind: "rate_limited"}}}, nil)
			continue
		}
		switch m.Method {
		case "exec":
			var ep execParams
			if err := strictUnmarshal(m.Params, &ep); err != nil {
				closeFDs(fds)
				s.conn.send(&rpcMessage{ID: m.ID, Error: &rpcError{Code: codeInvalidParams, Message: err.Error()}}, nil)
				continue
			}
			go s.exec(*m.ID, &ep, fds)
		case "kill":
			closeFDs(fds)
			killAll()
			s.conn.send(&rpcMessage{ID: m.ID, Result: json.RawMessage(`{}`)}, nil)
		case "ping":
			closeFDs(fds)
			s.conn.send(&rpcMessage{ID: m.ID, Result: json.RawMessage(`{}`)}, nil)
		default:
			closeFDs(fds)
			s.conn.send(&rpcMessage{ID: m.ID, Error: &rpcError{Code: codeMethodNotFound, Message: "unknown method " + strconv.Quote(m.Method)}}, nil)
		}
	}
}

// killAll is the whole-tree kill: SIGKILL to every process of the sandbox
// but the init, repeated until none is left to signal (kill(-1) answers
// ESRCH), so a process forked during the sweep does not survive it.
func killAll() {
	for range 1000 {
		minus1 := -1
		if _, _, e := unix.RawSyscall(unix.SYS_KILL, uintptr(minus1), uintptr(unix.SIGKILL), 0); e == unix.ESRCH {
			return
		}
		time.Sleep(time.Millisecond)
	}
}

// prewarmThreads makes the Go runtime start n more OS threads now, while
// the sandbox is empty, by blocking n goroutines in a system call at once.
// The runtime keeps idle threads, so later it rarely needs a new one.
func prewarmThreads(n int) {
	var wg sync.WaitGroup
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ts := unix.Timespec{Nsec: 30e6}
			unix.Syscall(unix.SYS_NANOSLEEP, uintptr(unsafe.Pointer(&ts)), 0, 0)
		}()
	}
	wg.Wait()
}

// reap collects every exited child (the init is PID 1: orphans are ours)
// and hands the statuses of commands to their exec calls.
func (s *initServer) reap() {
	for {
		// Non-blocking, so a raw syscall: the scheduler is not told, and no
		// extra OS thread is ever started for it (there may be no room for
		// one while a fork bomb runs).
		var ws unix.WaitStatus
		r, _, e := unix.RawSyscall6(unix.SYS_WAIT4, ^uintptr(0), uintptr(unsafe.Pointer(&ws)), unix.WNOHANG, 0, 0, 0)
		pid := int(r)
		if e != 0 || pid <= 0 {
			return
		}
		s.mu.Lock()
		ch := s.pending[pid]
		delete(s.pending, pid)
		s.mu.Unlock()
		if ch != nil {
			ch <- ws
		}
	}
}

func (s *initServer) execError(id uint64, kind, msg string) {
	s.conn.send(&rpcMessage{ID: &id, Error: &rpcError{Code: codeExec, Message: msg, Data: &rpcErrEx{Kind: kind}}}, nil)
}

func (s *initServer) exec(id uint64, p *execParams, fds []int) {
	defer closeFDs(fds)
	want := 0
	for _, b := range []bool{p.Stdin, p.Stdout, p.Stderr} {
		if b {
			want++
		}
	}
	if len(p.Args) == 0 || len(fds) != want || (p.TTY && want != 0) {
		s.conn.send(&rpcMessage{ID: &id, Error: &rpcError{Code: codeInvalidParams, Message: "bad exec request (args or descriptors)"}}, nil)
		return
	}
	path, kind, err := lookPath(p.Args[0], p.Env)
	if err != nil {
		s.execError(id, kind, err.Error())
		return
	}
	if st, err := os.Stat(p.Dir); err != nil || !st.IsDir() || !filepath.IsAbs(p.Dir) {
		s.execError(id, kindBadDir, fmt.Sprintf("working directory %q: not a directory inside the sandbox", p.Dir))
		return
	}
	stdio := []int{s.devnull, s.devnull, s.devnull}
	i := 0
	for n, b := range []bool{p.Stdin, p.Stdout, p.Stderr} {
		if b {
			stdio[n] = fds[i]
			i++
		}
	}
	var master *os.File
	if p.TTY {
		m, slave, err := openPTY(p.Rows, p.Cols)
		if err != nil {
			s.execError(id, "pty", err.Error())
			return
		}
		master = m
		defer slave.Close()
		stdio = []int{int(slave.Fd()), int(slave.Fd()), int(slave.Fd())}
	}
	files := []uintptr{uintptr(stdio[0]), uintptr(stdio[1]), uintptr(stdio[2])}
	attr := &syscall.ProcAttr{
		Dir:   p.Dir,
		Env:   p.Env,
		Files: files,
		Sys:   &syscall.SysProcAttr{Setsid: true, Setctty: p.TTY, Ctty: 0, Pdeathsig: syscall.SIGKILL},
	}
	req := &spawnReq{path: path, argv: p.Args, attr: attr, wait: make(chan unix.WaitStatus, 1), done: make(chan struct{})}
	s.spawnCh <- req
	<-req.done
	pid, err, ch := req.pid, req.err, req.wait
	if err != nil {
		if master != nil {
			master.Close()
		}
		kind := "exec"
		if errors.Is(err, unix.EACCES) || errors.Is(err, unix.ENOEXEC) {
			kind = kindNotExecutable
		} else if errors.Is(err, unix.ENOENT) {
			kind = kindNotFound
		}
		s.execError(id, kind, fmt.Sprintf("%s: %v", p.Args[0], err))
		return
	}
	if master != nil {
		sp, _ := json.Marshal(startedParams{ID: id, PID: pid})
		s.conn.send(&rpcMessage{Method: "started", Params: sp}, []int{int(master.Fd())})
		master.Close()
	}
	ws := <-ch
	res := execResult{ExitCode: ws.ExitStatus()}
	if ws.Signaled() {
		res.Signal = int(ws.Signal())
		res.ExitCode = 128 + res.Signal
	}
	b, _ := json.Marshal(res)
	s.conn.send(&rpcMessage{ID: &id, Result: b}, nil)
}

// lookPath resolves argv[0] inside the sandbox the way a shell would.
func lookPath(arg0 string, env []string) (string, string, error) {
	check := func(p string) (string, error) {
		st, err := os.Stat(p)
		if err != nil {
			return kindNotFound, err
		}
		if st.IsDir() || st.Mode()&0o111 == 0 {
			return kindNotExecutable, fmt.Errorf("%s: permission denied", p)
		}
		return "", nil
	}
	if strings.Contains(arg0, "/") {
		if kind, err := check(arg0); err != nil {
			if kind == kindNotFound {
				return "", kind, fmt.Errorf("%s: no such file or directory", arg0)
			}
			return "", kind, err
		}
		return arg0, "", nil
	}
	pathEnv := basePath
	for _, kv := range env {
		if v, ok := strings.CutPrefix(kv, "PATH="); ok {
			pathEnv = v
		}
	}
	var denied error
	for _, dir := range filepath.SplitList(pathEnv) {
		if dir == "" || !filepath.IsAbs(dir) {
			continue
		}
		p := filepath.Join(dir, arg0)
		kind, err := check(p)
		if err == nil {
			return p, "", nil
		}
		if kind == kindNotExecutable && denied == nil {
			denied = err
		}
	}
	if denied != nil {
		return "", kindNotExecutable, denied
	}
	return "", kindNotFound, fmt.Errorf("%s: command not found", arg0)
}

// openPTY allocates a terminal in the sandbox's own devpts instance.
func openPTY(rows, cols uint16) (master, slave *os.File, err error) {
	m, err := os.OpenFile("/dev/ptmx", os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		return nil, nil, fmt.Errorf("open ptmx: %w", err)
	}
	fail := func(e error) (*os.File, *os.File, error) { m.Close(); return nil, nil, e }
	unlock := 0
	if err := unix.IoctlSetPointerInt(int(m.Fd()), unix.TIOCSPTLCK, unlock); err != nil {
		return fail(fmt.Errorf("unlock pty: %w", err))
	}
	// TIOCGPTPEER opens the slave through the master, no path lookup.
	sfd, _, e := unix.Syscall(unix.SYS_IOCTL, m.Fd(), unix.TIOCGPTPEER, uintptr(unix.O_RDWR|unix.O_NOCTTY|unix.O_CLOEXEC))
	if e != 0 {
		return fail(fmt.Errorf("open pty peer: %w", e))
	}
	if rows > 0 && cols > 0 {
		ws := &unix.Winsize{Row: rows, Col: cols}
		unix.Syscall(unix.SYS_IOCTL, sfd, unix.TIOCSWINSZ, uintptr(unsafe.Pointer(ws)))
	}
	return m, os.NewFile(sfd, "pty"), nil
}

// tokenBucket limits requests per second from the host; a flood is refused
// rather than queued.
type tokenBucket struct {
	mu     sync.Mutex
	rate   float64
	burst  float64
	tokens float64
	last   time.Time
}

func newTokenBucket(perSec, burst int) *tokenBucket {
	if perSec <= 0 {
		perSec = 2000
	}
	if burst <= 0 {
		burst = 200
	}
	return &tokenBucket{rate: float64(perSec), burst: float64(burst), tokens: float64(burst), last: time.Now()}
}

func (b *tokenBucket) allow() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	now := time.Now()
	b.tokens = min(b.burst, b.tokens+now.Sub(b.last).Seconds()*b.rate)
	b.last = now
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}
