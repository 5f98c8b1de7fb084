package sandbox

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"runtime"
	"sync"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The launcher is a small helper process (this binary re-executed with
// launcherArg, once per bulkhead process) that clones every sandbox init.
//
// Why not clone from bulkhead itself: Go's syscall.ForkExec shares the
// caller's memory with the child (CLONE_VM|CLONE_VFORK) only when no user
// namespace is created; with CLONE_NEWUSER it makes a full fork, copying the
// page tables of the whole caller, and the caller then takes a write fault
// on every page it touches until the child has exec'd. Bulkhead's heap
// (databases, indexes, hundreds of sandboxes) made each sandbox start pay
// for it: a 200 MB heap turned a 2 ms clone into 27 ms here. The launcher's
// heap is a few hundred KiB, so its forks are cheap.
//
// Nothing about the sandbox changes: the init is cloned with the same flags,
// id maps, credentials and (v2) CLONE_INTO_CGROUP as before; bulkhead still
// adds it to its v1 cgroup and sends it its setup. The launcher forks from
// one OS thread that never exits, so the inits' PDEATHSIG stays armed to
// it, and the launcher has PDEATHSIG to bulkhead: nothing outlives bulkhead.
// If the launcher dies, every sandbox dies with it; the next Start starts a
// new launcher. The launcher reaps the inits and reports each exit.
//
// Protocol (JSON-RPC 2.0 framing on a SOCK_SEQPACKET pair, like the init's):
// bulkhead → launcher: "launch" {uid, gid, cgroup} with the init's socket
// end, the init's stderr and (v2) the group's O_PATH fd attached; launcher →
// bulkhead: the response {pid} with a pidfd attached, or an error with the
// clone's errno; the notification "exited" {pid, status}.

const launcherArg = "__bulkhead-sandbox-launcher"

type launchParams struct {
	UID    uint32 `json:"uid"`
	GID    uint32 `json:"gid"`
	Cgroup bool   `json:"cgroup"` // the last fd is the group for CLONE_INTO_CGROUP
}

type launchResult struct {
	PID int `json:"pid"`
}

type exitedParams struct {
	PID    int    `json:"pid"`
	Status uint32 `json:"status"`
}

// codeLaunch marks a failed clone; Data.Kind is the errno's number.
const codeLaunch = -32010

// initEnv is the init's environment (not its commands'): it only tunes
// the Go runtime to stay small. containermaxprocs=0 stops the runtime from
// keeping the host's cgroup cpu files open for the init's lifetime to track
// a CPU limit (GOMAXPROCS is fixed at 1 anyway).
var initEnv = []string{"GOMAXPROCS=1", "GOGC=off", "GODEBUG=containermaxprocs=0,updatemaxprocs=0"}

// initCloneflags are the namespaces every init is cloned into.
const initCloneflags = syscall.CLONE_NEWUSER | syscall.CLONE_NEWNS | syscall.CLONE_NEWPID | syscall.CLONE_NEWUTS |
	syscall.CLONE_NEWIPC | syscall.CLONE_NEWNET | syscall.CLONE_NEWCGROUP

// --- bulkhead side ---

type launcher struct {
	conn   *conn
	pid    int
	stderr *capBuffer
	dead   chan struct{}

	reqMu   sync.Mutex // one launch at a time
	nextID  uint64
	replies chan launchReply

	mu      sync.Mutex
	watches map[int]func(unix.WaitStatus, error)
	early   map[int]unix.WaitStatus // exits reported before their launch's reply was handled
}

type launchReply struct {
	m   *rpcMessage
	fds []int
}

var theLauncher struct {
	mu sync.Mutex
	l  *launcher
}

// getLauncher returns the running launcher, starting one if there is none
// (or the last one died).
func getLauncher() (*launcher, error) {
	theLauncher.mu.Lock()
	defer theLauncher.mu.Unlock()
	if l := theLauncher.l; l != nil {
		select {
		case <-l.dead:
		default:
			return l, nil
		}
	}
	l, err := startLauncher()
	if err != nil {
		return nil, err
	}
	theLauncher.l = l
	return l, nil
}

func startLauncher() (*launcher, error) {
	pair, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("launcher socketpair: %w", err)
	}
	child := os.NewFile(uintptr(pair[1]), "sandbox-launcher-child")
	defer child.Close()
	c, err := newConn(pair[0], "sandbox-launcher")
	if err != nil {
		unix.Close(pair[0])
		return nil, err
	}
	l := &launcher{conn: c, stderr: &capBuffer{max: 4 << 10}, dead: make(chan struct{}),
		replies: make(chan launchReply, 1), watches: map[int]func(unix.WaitStatus, error){}, early: map[int]unix.WaitStatus{}}
	cmd := exec.Command("/proc/self/exe", launcherArg)
	cmd.Args[0] = "bulkhead-sandbox-launcher"
	cmd.Env = []string{"GOMAXPROCS=1"}
	cmd.Dir = "/"
	cmd.ExtraFiles = []*os.File{child}
	cmd.Stderr = l.stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		c.Close()
		return nil, fmt.Errorf("start launcher: %w", err)
	}
	l.pid = cmd.Process.Pid
	go func() {
		cmd.Wait()
		// The launcher's end of the socket is closed now; the reader sees EOF.
	}()
	go l.readLoop()
	return l, nil
}

// readLoop dispatches responses to the waiting launch and exit reports to
// the sandbox they belong to. When the launcher is gone, every init it
// cloned is gone too (PDEATHSIG): each watch is told so.
func (l *launcher) readLoop() {
	for {
		m, fds, err := l.conn.recv()
		if errors.Is(err, errTooLarge) || errors.Is(err, errBadMessage) {
			continue
		}
		if err != nil {
			break
		}
		if m.ID == nil {
			closeFDs(fds)
			var p exitedParams
			if m.Method == "exited" && json.Unmarshal(m.Params, &p) == nil {
				l.exited(p.PID, unix.WaitStatus(p.Status))
			}
			continue
		}
		l.replies <- launchReply{m, fds}
	}
	l.mu.Lock()
	close(l.dead)
	watches := l.watches
	l.watches = map[int]func(unix.WaitStatus, error){}
	l.mu.Unlock()
	l.conn.Close()
	msg := "sandbox launcher exited"
	if b := l.stderr.Bytes(); len(b) > 0 {
		msg += ": " + string(b)
	}
	for _, fn := range watches {
		fn(0, errors.New(msg))
	}
}

func (l *launcher) exited(pid int, ws unix.WaitStatus) {
	l.mu.Lock()
	fn := l.watches[pid]
	delete(l.watches, pid)
	if fn == nil {
		l.early[pid] = ws
	}
	l.mu.Unlock()
	if fn != nil {
		fn(ws, nil)
	}
}

// watch calls fn once when the init pid exits (or the launcher dies).
func (l *launcher) watch(pid int, fn func(unix.WaitStatus, error)) {
	l.mu.Lock()
	ws, gone := l.early[pid]
	delete(l.early, pid)
	select {
	case <-l.dead:
		l.mu.Unlock()
		fn(0, errors.New("sandbox launcher exited"))
		return
	default:
	}
	if !gone {
		l.watches[pid] = fn
	}
	l.mu.Unlock()
	if gone {
		fn(ws, nil)
	}
}

// launch clones one init. fds are the init's socket end, its stderr and,
// when p.Cgroup, the group's O_PATH fd. It returns the init's pid and a
// pidfd for it.
func (l *launcher) launch(p launchParams, fds []int) (int, *os.File, error) {
	l.reqMu.Lock()
	defer l.reqMu.Unlock()
	l.nextID++
	req, err := request(l.nextID, "launch", p)
	if err != nil {
		return 0, nil, err
	}
	if err := l.conn.send(req, fds); err != nil {
		return 0, nil, fmt.Errorf("launch request: %w", err)
	}
	var r launchReply
	select {
	case r = <-l.replies:
	case <-l.dead:
		return 0, nil, fmt.Errorf("launch: %s", "sandbox launcher exited: "+string(l.stderr.Bytes()))
	}
	if r.m.Error != nil {
		closeFDs(r.fds)
		if r.m.Error.Code == codeLaunch && r.m.Error.Data != nil {
			var errno int
			if _, err := fmt.Sscan(r.m.Error.Data.Kind, &errno); err == nil && errno > 0 {
				return 0, nil, syscall.Errno(errno)
			}
		}
		return 0, nil, errors.New(r.m.Error.Message)
	}
	var res launchResult
	if err := json.Unmarshal(r.m.Result, &res); err != nil || res.PID <= 0 || len(r.fds) != 1 {
		closeFDs(r.fds)
		return 0, nil, fmt.Errorf("launch: bad response %s", r.m.Result)
	}
	return res.PID, os.NewFile(uintptr(r.fds[0]), "sandbox-init-pidfd"), nil
}

// waitStatusError describes an init's exit the way os/exec does.
func waitStatusError(ws unix.WaitStatus) error {
	switch {
	case ws.Signaled():
		return fmt.Errorf("signal: %v", ws.Signal())
	case ws.Exited() && ws.ExitStatus() == 0:
		return nil
	default:
		return fmt.Errorf("exit status %d", ws.ExitStatus())
	}
}

// --- the launcher process ---

func runLauncher() int {
	var st unix.Stat_t
	if err := unix.Fstat(initFD, &st); err != nil || st.Mode&unix.S_IFMT != unix.S_IFSOCK {
		fmt.Fprintln(os.Stderr, "bulkhead: sandbox launcher: fd 3 is not a socket")
		return 2
	}
	unix.CloseOnExec(initFD)
	c, err := newConn(initFD, "sandbox-launcher")
	if err != nil {
		fmt.Fprintln(os.Stderr, "bulkhead: sandbox launcher:", err)
		return 2
	}
	devnull, err := unix.Open("/dev/null", unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		fmt.Fprintln(os.Stderr, "bulkhead: sandbox launcher: open /dev/null:", err)
		return 2
	}
	// Inits are forked from this (the main) thread only, which lives as
	// long as the process: their PDEATHSIG is armed to it.
	runtime.LockOSThread()
	r := &reaper{conn: c, pids: map[int]bool{}}
	sigs := make(chan os.Signal, 8)
	signal.Notify(sigs, unix.SIGCHLD)
	go func() {
		for range sigs {
			r.reap()
		}
	}()
	for {
		m, fds, err := c.recv()
		if errors.Is(err, errTooLarge) || errors.Is(err, errBadMessage) {
			continue
		}
		if err != nil {
			return 0 // bulkhead is gone
		}
		if m.ID == nil || m.Method != "launch" {
			closeFDs(fds)
			if m.ID != nil {
				c.send(&rpcMessage{ID: m.ID, Error: &rpcError{Code: codeMethodNotFound, Message: "unknown method"}}, nil)
			}
			continue
		}
		res, pidfd, err := launchInit(m.Params, fds, devnull)
		closeFDs(fds)
		if err != nil {
			e := &rpcError{Code: codeLaunch, Message: err.Error()}
			var errno syscall.Errno
			if errors.As(err, &errno) {
				e.Data = &rpcErrEx{Kind: fmt.Sprint(int(errno))}
			}
			c.send(&rpcMessage{ID: m.ID, Error: e}, nil)
			continue
		}
		r.add(res.PID)
		b, _ := json.Marshal(res)
		c.send(&rpcMessage{ID: m.ID, Result: b}, []int{pidfd})
		unix.Close(pidfd)
		r.reap() // it may have exited before it was added
	}
}

// launchInit clones one init: fds[0] becomes its fd 3 (the socket to
// bulkhead), fds[1] its stderr, fds[2] (if p.Cgroup) its v2 group.
func launchInit(raw json.RawMessage, fds []int, devnull int) (launchResult, int, error) {
	var p launchParams
	if err := strictUnmarshal(raw, &p); err != nil {
		return launchResult{}, -1, err
	}
	want := 2
	if p.Cgroup {
		want = 3
	}
	if len(fds) != want {
		return launchResult{}, -1, fmt.Errorf("launch: %d descriptors, want %d", len(fds), want)
	}
	pidfd := -1
	attr := &syscall.SysProcAttr{
		Cloneflags:                 initCloneflags,
		UidMappings:                []syscall.SysProcIDMap{{ContainerID: 0, HostID: int(p.UID), Size: 1}},
		GidMappings:                []syscall.SysProcIDMap{{ContainerID: 0, HostID: int(p.GID), Size: 1}},
		GidMappingsEnableSetgroups: false,
		// Become uid/gid 0 of the namespace, i.e. the sandbox's host uid/gid,
		// before exec (a clone by host root is otherwise still kuid 0, unmapped).
		Credential: &syscall.Credential{Uid: 0, Gid: 0, NoSetGroups: true},
		Pdeathsig:  syscall.SIGKILL,
		PidFD:      &pidfd,
	}
	if p.Cgroup {
		attr.UseCgroupFD = true
		attr.CgroupFD = fds[2]
	}
	pid, err := syscall.ForkExec("/proc/self/exe", []string{"bulkhead-sandbox", InitArg}, &syscall.ProcAttr{
		Dir:   "/",
		Env:   initEnv,
		Files: []uintptr{uintptr(devnull), uintptr(devnull), uintptr(fds[1]), uintptr(fds[0])},
		Sys:   attr,
	})
	if err != nil {
		return launchResult{}, -1, err
	}
	return launchResult{PID: pid}, pidfd, nil
}

// reaper waits for the inits this launcher cloned, by pid (never wait4(-1):
// a clone whose exec failed is reaped by ForkExec itself), and reports
// each exit to bulkhead.
type reaper struct {
	conn *conn
	mu   sync.Mutex
	pids map[int]bool
}

func (r *reaper) add(pid int) {
	r.mu.Lock()
	r.pids[pid] = true
	r.mu.Unlock()
}

func (r *reaper) reap() {
	r.mu.Lock()
	defer r.mu.Unlock()
	for pid := range r.pids {
		var ws unix.WaitStatus
		got, _, e := unix.RawSyscall6(unix.SYS_WAIT4, uintptr(pid), uintptr(unsafe.Pointer(&ws)), unix.WNOHANG, 0, 0, 0)
		if e == unix.EINTR || e == 0 && int(got) != pid {
			continue // still running
		}
		delete(r.pids, pid) // exited, or (ECHILD) gone some other way
		b, _ := json.Marshal(exitedParams{PID: pid, Status: uint32(ws)})
		r.conn.send(&rpcMessage{Method: "exited", Params: b}, nil)
	}
}

var _ io.Writer = (*capBuffer)(nil)
