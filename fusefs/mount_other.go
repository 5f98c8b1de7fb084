//go:build !linux

package fusefs

import (
	"context"
	"errors"
)

// Server is one mounted view of a backing directory. Mounting needs Linux.
type Server struct{}

// Mount needs Linux; elsewhere it returns errors.ErrUnsupported.
func Mount(ctx context.Context, backingDir, mountpoint string, opts Options) (*Server, error) {
	return nil, errors.ErrUnsupported
}

// Passthrough reports whether kernel passthrough is in force.
func (s *Server) Passthrough() bool { return false }

// Mountpoint returns the directory the view is mounted on.
func (s *Server) Mountpoint() string { return "" }

// Policy returns the policy in force.
func (s *Server) Policy() *Policy { return nil }

// SetPolicy replaces the policy.
func (s *Server) SetPolicy(p *Policy) {}

// Invalidate does nothing.
func (s *Server) Invalidate(rel string) {}

// Unmount returns errors.ErrUnsupported.
func (s *Server) Unmount() error { return errors.ErrUnsupported }

// Wait returns at once.
func (s *Server) Wait() {}

// CleanupStale returns errors.ErrUnsupported.
func CleanupStale(dir string) ([]string, error) { return nil, errors.ErrUnsupported }

// Unmount returns errors.ErrUnsupported.
func Unmount(mountpoint string) error { return errors.ErrUnsupported }
