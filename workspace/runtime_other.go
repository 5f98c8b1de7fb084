//go:build !linux

package workspace

import (
	"context"
	"errors"
	"log/slog"

	"github.com/bulkhead-dev/bulkhead/netguard"
	"github.com/bulkhead-dev/bulkhead/sandbox"
)

type runtimeState struct{}

func (s *Service) cleanupStaleMounts()    {}
func (s *Service) stopAll() error         { return nil }
func (s *Service) forget(string)          {}
func (s *Service) applyConfig(*Workspace) {}

// FilesChanged has no view to tell off Linux.
func (s *Service) FilesChanged(string) {}

// StopSandbox is unsupported off Linux.
func (s *Service) StopSandbox(string) error { return nil }

// Exec is unsupported off Linux.
func (s *Service) Exec(context.Context, string, sandbox.Command) (sandbox.Result, error) {
	return sandbox.Result{}, errors.ErrUnsupported
}

func (s *Service) startEgressRules(*sandbox.Sandbox, string, []string, *slog.Logger) (*netguard.EgressProxy, error) {
	return nil, errors.ErrUnsupported
}
