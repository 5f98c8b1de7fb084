package sandbox

import (
	"io"
	"os"
	"sync"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// stdio wires a Command's readers and writers to descriptors sent to the
// init. A pipe the caller already holds (*os.File that is a FIFO) is passed
// as is; anything else goes through a fresh pipe and a copying goroutine, so
// the sandbox never receives a descriptor of a host file or terminal (which
// it could reopen through /proc/self/fd).
type stdio struct {
	child  []*os.File // ends sent to the init, in stdin, stdout, stderr order
	owned  []*os.File // the child ends we created (the caller's FIFOs are not ours to close)
	parent []*os.File // our ends, closed after the copies finish
	copies sync.WaitGroup
	tasks  []func()
	tty    *os.File
}

func isFIFO(f *os.File) bool {
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeNamedPipe != 0
}

func (s *stdio) prepare(cmd *Command, p *execParams) error {
	if cmd.Stdin != nil {
		p.Stdin = true
		if f, ok := cmd.Stdin.(*os.File); ok && isFIFO(f) {
			s.child = append(s.child, f)
		} else {
			r, w, err := os.Pipe()
			if err != nil {
				return err
			}
			s.child = append(s.child, r)
			s.owned = append(s.owned, r)
			s.parent = append(s.parent, w)
			src := cmd.Stdin
			s.tasks = append(s.tasks, func() {
				io.Copy(w, src)
				w.Close()
			})
		}
	}
	for _, out := range []struct {
		w   io.Writer
		set *bool
	}{{cmd.Stdout, &p.Stdout}, {cmd.Stderr, &p.Stderr}} {
		if out.w == nil {
			continue
		}
		*out.set = true
		if out.set == &p.Stderr && sameWriter(cmd.Stdout, cmd.Stderr) {
			// One pipe for both, as os/exec does: two copies into one
			// writer would race and could reorder or lose output.
			s.child = append(s.child, s.child[len(s.child)-1])
			continue
		}
		if f, ok := out.w.(*os.File); ok && isFIFO(f) {
			s.child = append(s.child, f)
			continue
		}
		r, w, err := os.Pipe()
		if err != nil {
			return err
		}
		s.child = append(s.child, w)
		s.owned = append(s.owned, w)
		s.parent = append(s.parent, r)
		dst := out.w
		s.copies.Add(1)
		s.tasks = append(s.tasks, func() {
			defer s.copies.Done()
			io.Copy(dst, r)
		})
	}
	return nil
}

// sameWriter reports whether a and b are the same comparable writer.
func sameWriter(a, b io.Writer) (same bool) {
	defer func() {
		if recover() != nil {
			same = false // uncomparable dynamic types
		}
	}()
	return a != nil && a == b
}

func (s *stdio) childFDs() []int {
	fds := make([]int, len(s.child))
	for i, f := range s.child {
		fds[i] = int(f.Fd())
	}
	return fds
}

// closeChildEnds drops our copies of the descriptors the init now holds
// (caller-owned FIFOs are left open).
func (s *stdio) closeChildEnds() {
	for _, f := range s.owned {
		f.Close()
	}
	s.child, s.owned = nil, nil
}

func (s *stdio) startCopies(cmd *Command) {
	for _, t := range s.tasks {
		go t()
	}
	s.tasks = nil
}

// attachTTY copies the caller's stdin to the terminal and its output to
// Stdout.
func (s *stdio) attachTTY(master *os.File, cmd *Command) {
	s.tty = master
	if cmd.Stdin != nil {
		go io.Copy(master, cmd.Stdin)
	}
	if cmd.Stdout != nil {
		s.copies.Add(1)
		go func() {
			defer s.copies.Done()
			io.Copy(cmd.Stdout, master) // ends with EIO once the last slave fd closes
		}()
	}
}

// wait lets output drain for up to d after the command exited (a background
// process may still hold the pipe), then cuts the copies off.
func (s *stdio) wait(d time.Duration) {
	done := make(chan struct{})
	go func() { s.copies.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(d):
	}
}

func (s *stdio) closeAll() {
	for _, f := range s.owned {
		f.Close()
	}
	for _, f := range s.parent {
		f.Close()
	}
	if s.tty != nil {
		s.tty.Close()
	}
}

// ptyControl resizes a command's terminal through its master side.
type ptyControl struct{ f *os.File }

func (p ptyControl) Resize(rows, cols uint16) error {
	ws := &unix.Winsize{Row: rows, Col: cols}
	_, _, e := unix.Syscall(unix.SYS_IOCTL, p.f.Fd(), unix.TIOCSWINSZ, uintptr(unsafe.Pointer(ws)))
	if e != 0 {
		return e
	}
	return nil
}
