package sandbox

import (
	"fmt"
	"net"
	"runtime"
	"strconv"

	"golang.org/x/sys/unix"
)

// ListenTCP opens a TCP listener inside the sandbox's network namespace
// (addr like "127.0.0.1:3128"), served by the host process: the sandbox's
// loopback-only network gets one door that the host controls, such as an
// egress proxy. The socket is created in the sandbox's namespace and keeps
// living there; the calling thread returns to its own namespace. Sandboxed
// processes cannot take the port first when this is called right after
// Start, before any command runs.
func (s *Sandbox) ListenTCP(addr string) (net.Listener, error) {
	select {
	case <-s.dead:
		return nil, ErrClosed
	default:
	}
	target, err := unix.Open("/proc/"+strconv.Itoa(s.InitPID())+"/ns/net", unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("listen in sandbox %s: open its network namespace: %w", s.cfg.ID, err)
	}
	defer unix.Close(target)
	// The init is our child: its pid cannot be reused before it is reaped,
	// which closes dead. Not dead now means the fd is the sandbox's own
	// namespace.
	select {
	case <-s.dead:
		return nil, ErrClosed
	default:
	}

	type result struct {
		ln  net.Listener
		err error
	}
	done := make(chan result, 1)
	// A fresh goroutine on a locked thread: if switching back fails, the
	// thread is left locked and dies with the goroutine instead of running
	// other goroutines inside the sandbox's namespace.
	go func() {
		runtime.LockOSThread()
		own, err := unix.Open("/proc/thread-self/ns/net", unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			runtime.UnlockOSThread()
			done <- result{err: fmt.Errorf("open own network namespace: %w", err)}
			return
		}
		defer unix.Close(own)
		if err := unix.Setns(target, unix.CLONE_NEWNET); err != nil {
			runtime.UnlockOSThread()
			done <- result{err: fmt.Errorf("enter network namespace: %w", err)}
			return
		}
		ln, lerr := net.Listen("tcp", addr)
		if err := unix.Setns(own, unix.CLONE_NEWNET); err != nil {
			if ln != nil {
				ln.Close()
			}
			done <- result{err: fmt.Errorf("return to own network namespace: %w", err)} // thread stays locked and exits
			return
		}
		runtime.UnlockOSThread()
		done <- result{ln, lerr}
	}()
	r := <-done
	if r.err != nil {
		return nil, fmt.Errorf("listen on %s in sandbox %s: %w", addr, s.cfg.ID, r.err)
	}
	return r.ln, nil
}
