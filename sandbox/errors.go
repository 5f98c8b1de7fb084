package sandbox

import (
	"errors"
	"fmt"
)

var (
	// ErrClosed is returned by Exec on a sandbox that was closed, reaped after
	// its idle timeout, or whose init died.
	ErrClosed = errors.New("sandbox closed")
	// ErrLimitTooLow is returned by Start when a limit is below what a sandbox
	// needs to start at all.
	ErrLimitTooLow = errors.New("limit below what a sandbox can start with")
	// ErrInvalidConfig is returned by Start for a malformed Config.
	ErrInvalidConfig = errors.New("invalid sandbox config")
	// ErrCommandNotFound is returned by Exec when argv[0] does not resolve to
	// an executable inside the sandbox; the Result then carries exit code 127.
	ErrCommandNotFound = errors.New("command not found")
	// ErrNotExecutable is returned by Exec when argv[0] exists but cannot be
	// executed; the Result then carries exit code 126.
	ErrNotExecutable = errors.New("command not executable")
	// ErrRequestTooLarge is returned by Exec when the encoded command exceeds
	// MaxMessageSize.
	ErrRequestTooLarge = errors.New("sandbox request too large")
	// ErrNoUserNamespaces is returned when the host cannot create user
	// namespaces, which every sandbox needs.
	ErrNoUserNamespaces = errors.New("user namespaces unavailable on this host")
	// ErrNotInit is returned by the init when it was started by hand rather
	// than by Start.
	ErrNotInit = errors.New("not started as a sandbox init")
)

// SetupError reports which isolation layer could not be applied. A sandbox
// never starts with a layer missing: every SetupError aborts Start.
type SetupError struct {
	Layer string // "user", "mount", "pivot_root", "cgroup", "seccomp", ...
	Err   error
}

func (e *SetupError) Error() string { return fmt.Sprintf("sandbox layer %s: %v", e.Layer, e.Err) }

func (e *SetupError) Unwrap() error { return e.Err }

func setupErr(layer string, err error) error {
	if err == nil {
		return nil
	}
	var se *SetupError
	if errors.As(err, &se) {
		return err
	}
	return &SetupError{Layer: layer, Err: err}
}
