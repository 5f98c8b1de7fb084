package kv

import (
	"errors"
	"fmt"
)

var (
	// ErrLocked is wrapped by LockedError.
	ErrLocked = errors.New("state dir in use")
	// ErrClosed is returned by a Pool after Close.
	ErrClosed = errors.New("kv pool closed")
	// ErrBadKey is returned for an encryption key that is not 16, 24 or 32 bytes.
	ErrBadKey = errors.New("encryption key must be 16, 24 or 32 bytes")
)

// LockedError reports that another process holds a directory.
type LockedError struct {
	Dir string
	PID int // 0 when the holder's pid could not be read
}

func (e *LockedError) Error() string {
	if e.PID > 0 {
		return fmt.Sprintf("state dir %s is in use by pid %d (another bulkhead process); stop it or use --state-dir", e.Dir, e.PID)
	}
	return fmt.Sprintf("state dir %s is in use by another bulkhead process; stop it or use --state-dir", e.Dir)
}

func (e *LockedError) Unwrap() error { return ErrLocked }
