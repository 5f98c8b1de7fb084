//go:build !linux

package workspace

import (
	"context"
	"errors"

	"github.com/dgraph-io/badger/v4"

	"github.com/bulkhead-dev/bulkhead/agent"
)

// buildRunner needs the workspace's policy tree and sandbox, which exist on
// Linux only.
func (s *Service) buildRunner(context.Context, *Workspace, *badger.DB, string) (*agent.Runner, func(), error) {
	return nil, nil, errors.ErrUnsupported
}
