package sandbox

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"

	"golang.org/x/sys/unix"
)

// conn is one end of the host↔init socket pair: whole messages with
// attached file descriptors, through the Go poller so a blocked read holds
// no thread.
type conn struct {
	f   *os.File
	wmu sync.Mutex
	buf []byte
	oob []byte
}

// maxFDs is the most descriptors one message may carry.
const maxFDs = 16

func newConn(fd int, name string) (*conn, error) {
	if err := unix.SetNonblock(fd, true); err != nil {
		return nil, fmt.Errorf("set nonblock on %s: %w", name, err)
	}
	return &conn{
		f:   os.NewFile(uintptr(fd), name),
		buf: make([]byte, MaxMessageSize+1),
		oob: make([]byte, unix.CmsgSpace(4*maxFDs)),
	}, nil
}

func (c *conn) Close() error { return c.f.Close() }

// errTooLarge marks a received message over MaxMessageSize (it was dropped).
var errTooLarge = errors.New("message over size cap")

// recv reads one message. Received descriptors are close-on-exec. It is not
// safe for concurrent use (one reader per end).
func (c *conn) recv() (*rpcMessage, []int, error) {
	rc, err := c.f.SyscallConn()
	if err != nil {
		return nil, nil, err
	}
	var n, oobn, flags int
	var rerr error
	err = rc.Read(func(fd uintptr) bool {
		n, oobn, flags, _, rerr = unix.Recvmsg(int(fd), c.buf, c.oob, unix.MSG_CMSG_CLOEXEC)
		return rerr != unix.EAGAIN
	})
	if err == nil {
		err = rerr
	}
	if err != nil {
		return nil, nil, err
	}
	var fds []int
	if oobn > 0 {
		msgs, perr := unix.ParseSocketControlMessage(c.oob[:oobn])
		if perr == nil {
			for _, m := range msgs {
				got, rerr := unix.ParseUnixRights(&m)
				if rerr == nil {
					fds = append(fds, got...)
				}
			}
		}
	}
	if n == 0 && oobn == 0 {
		return nil, nil, io.EOF
	}
	if flags&(unix.MSG_TRUNC|unix.MSG_CTRUNC) != 0 || n > MaxMessageSize || len(fds) > maxFDs {
		closeFDs(fds)
		return nil, nil, errTooLarge
	}
	m, err := parseMessage(c.buf[:n])
	if err != nil {
		closeFDs(fds)
		return nil, nil, err
	}
	return m, fds, nil
}

// send writes one message with optional descriptors attached.
func (c *conn) send(m *rpcMessage, fds []int) error {
	m.JSONRPC = "2.0"
	b, err := json.Marshal(m)
	if err != nil {
		return err
	}
	if len(b) > MaxMessageSize {
		return ErrRequestTooLarge
	}
	var oob []byte
	if len(fds) > 0 {
		oob = unix.UnixRights(fds...)
	}
	rc, err := c.f.SyscallConn()
	if err != nil {
		return err
	}
	c.wmu.Lock()
	defer c.wmu.Unlock()
	var serr error
	err = rc.Write(func(fd uintptr) bool {
		serr = unix.Sendmsg(int(fd), b, oob, nil, 0)
		return serr != unix.EAGAIN
	})
	if err == nil {
		err = serr
	}
	if errors.Is(err, unix.EMSGSIZE) {
		return ErrRequestTooLarge
	}
	return err
}

func closeFDs(fds []int) {
	for _, fd := range fds {
		unix.Close(fd)
	}
}

func request(id uint64, method string, params any) (*rpcMessage, error) {
	p, err := json.Marshal(params)
	if err != nil {
		return nil, err
	}
	return &rpcMessage{ID: &id, Method: method, Params: p}, nil
}
