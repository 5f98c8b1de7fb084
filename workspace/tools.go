package workspace

import (
	"context"

	"github.com/bulkhead-dev/bulkhead/agent"
	"github.com/bulkhead-dev/bulkhead/memory"
)

// ToolExecutor returns the agent.ToolExecutor that runs commands in
// workspace id's sandbox, as the bash tool of the workspace's own runs does.
// Other runners (the board's ticket runs) use it so that every command an
// agent runs for a workspace lands in that workspace's sandbox.
func (s *Service) ToolExecutor(id string) agent.ToolExecutor { return workspaceExec{s: s, ws: id} }

// Memory returns workspace id's memory store, shared with its agent runs
// (opened with the node's embedder and the workspace's memory settings).
// Call release when done.
func (s *Service) Memory(ctx context.Context, id string) (*memory.Store, func(), error) {
	if _, err := s.Get(ctx, id); err != nil {
		return nil, nil, err
	}
	return s.sharedMemory(ctx, id)
}
