package netguard

import (
	"errors"
	"net/netip"
)

// ErrBlocked matches every error returned because a destination is refused.
var ErrBlocked = errors.New("netguard: destination blocked")

// ErrTooManyRedirects is returned when a response chain exceeds the redirect limit.
var ErrTooManyRedirects = errors.New("netguard: too many redirects")

// BlockedError says which destination was refused and why.
// It matches ErrBlocked with errors.Is.
type BlockedError struct {
	Host   string     // the host as given (name or literal), without port
	Addr   netip.Addr // the address refused; invalid when the host itself was refused
	Reason string     // a short human-readable reason, e.g. "loopback (127.0.0.0/8)"
}

func (e *BlockedError) Error() string {
	if e.Addr.IsValid() && e.Addr.String() != e.Host {
		return "netguard: blocked " + e.Host + " (" + e.Addr.String() + "): " + e.Reason
	}
	return "netguard: blocked " + e.Host + ": " + e.Reason
}

// Unwrap makes errors.Is(err, ErrBlocked) true.
func (e *BlockedError) Unwrap() error { return ErrBlocked }
