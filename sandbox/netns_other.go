//go:build !linux

package sandbox

import (
	"errors"
	"net"
)

// ListenTCP needs Linux network namespaces.
func (s *Sandbox) ListenTCP(addr string) (net.Listener, error) {
	return nil, errors.ErrUnsupported
}
