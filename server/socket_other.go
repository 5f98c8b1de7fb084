//go:build !linux

package server

import (
	"errors"
	"net"
)

type peerConn struct{ net.Conn }

func listenUnix(string) (net.Listener, error) { return nil, errors.ErrUnsupported }
