//go:build !linux

package sandbox

import (
	"context"
	"errors"
)

// Freeze fails off Linux.
func (s *Sandbox) Freeze(ctx context.Context) error { return errors.ErrUnsupported }

// Thaw fails off Linux.
func (s *Sandbox) Thaw() error { return errors.ErrUnsupported }

// Frozen fails off Linux.
func (s *Sandbox) Frozen() (bool, error) { return false, errors.ErrUnsupported }
