package workspace

import "github.com/bulkhead-dev/bulkhead/agent"

// ToolExecutor returns the agent.ToolExecutor that runs commands in
// workspace id's sandbox, as the bash tool of the workspace's own runs does.
// Other runners (the board's ticket runs) use it so that every command an
// agent runs for a workspace lands in that workspace's sandbox.
func (s *Service) ToolExecutor(id string) agent.ToolExecutor { return workspaceExec{s: s, ws: id} }
