//go:build !linux

package sandbox

import (
	"context"
	"errors"
	"fmt"
)

// Sandbox is a live sandbox; sandboxes exist only on Linux.
type Sandbox struct{}

// RunInitIfRequested does nothing off Linux.
func RunInitIfRequested() {}

// Start fails off Linux.
func Start(ctx context.Context, cfg Config) (*Sandbox, error) {
	return nil, &SetupError{Layer: "platform", Err: errors.ErrUnsupported}
}

// Exec fails off Linux.
func (s *Sandbox) Exec(ctx context.Context, cmd Command) (Result, error) {
	return Result{}, errors.ErrUnsupported
}

// Ping fails off Linux.
func (s *Sandbox) Ping(ctx context.Context) error { return errors.ErrUnsupported }

// Close does nothing off Linux.
func (s *Sandbox) Close() error { return nil }

// Config is empty off Linux.
func (s *Sandbox) Config() Config { return Config{} }

// InitPID is 0 off Linux.
func (s *Sandbox) InitPID() int { return 0 }

// MemoryUsage is 0 off Linux.
func (s *Sandbox) MemoryUsage() uint64 { return 0 }

// Processes fails off Linux.
func (s *Sandbox) Processes() ([]int, error) { return nil, errors.ErrUnsupported }

// CgroupPath is empty off Linux.
func (s *Sandbox) CgroupPath() string { return "" }

// Done is never closed off Linux.
func (s *Sandbox) Done() <-chan struct{} { return nil }

// UserNamespacesAvailable fails off Linux.
func UserNamespacesAvailable() error {
	return fmt.Errorf("%w: %w", ErrNoUserNamespaces, errors.ErrUnsupported)
}

// Check is one line of Doctor's report.
type Check struct {
	Layer  string
	OK     bool
	Detail string
}

// Doctor reports that sandboxes need Linux.
func Doctor(ctx context.Context) []Check {
	return []Check{{Layer: "platform", Detail: "sandboxes need Linux: " + errors.ErrUnsupported.Error()}}
}
