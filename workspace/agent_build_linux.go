package workspace

import (
	"context"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/bulkhead-dev/bulkhead/agent"
)

// buildRunner wires a runner for one run of w: the model chain, the tools
// (bash in the sandbox, file tools on the policy tree, memory, enabled
// skills, spawn_subagent) filtered by the tool policy, the system prompt,
// the journal and the limits.
func (s *Service) buildRunner(ctx context.Context, w *Workspace, db *badger.DB, model string) (*agent.Runner, func(), error) {
	opts, _, err := s.ag.options()
	if err != nil {
		return nil, nil, err
	}
	chain, err := s.chainFor(ctx, w, model)
	if err != nil {
		return nil, nil, err
	}
	skillTools, infos, err := s.skillTools(ctx, w.ID)
	if err != nil {
		return nil, nil, err
	}
	system, err := s.systemPrompt(ctx, w, infos)
	if err != nil {
		return nil, nil, err
	}
	tree, err := s.Files(ctx, w.ID)
	if err != nil {
		return nil, nil, err
	}
	mem, memDone, err := s.sharedMemory(ctx, w.ID)
	if err != nil {
		tree.Close()
		return nil, nil, err
	}
	// The shared memory indexes and watches MEMORY.md and memory/**.md
	// while it is open (sharedMemory).
	cleanup := func() {
		tree.Close()
		memDone()
	}
	reg, _ := agent.NewRegistry()
	add := func(t agent.Tool) error {
		if !toolAllowed(w.Config.Tools, t.Name()) {
			return nil
		}
		return reg.Add(t)
	}
	lim := w.Config.Limits
	tools := []agent.Tool{agent.BashTool(workspaceExec{s: s, ws: w.ID}, time.Duration(lim.ExecTimeout), opts.MaxToolOutput)}
	tools = append(tools, agent.FileTools(tree, agent.FileToolLimits{})...)
	tools = append(tools, agent.MemoryTools(memoryAdapter{mem})...)
	tools = append(tools, skillTools...)
	for _, t := range tools {
		if err := add(t); err != nil {
			cleanup()
			return nil, nil, err
		}
	}
	runner, err := agent.NewRunner(agent.RunnerConfig{
		Model:  chain,
		Tools:  reg,
		System: system,
		Limits: agent.Limits{
			MaxTurns:      lim.MaxTurns,
			MaxWallTime:   time.Duration(lim.RunTimeout),
			ToolTimeout:   time.Duration(lim.ExecTimeout),
			MaxToolOutput: opts.MaxToolOutput,
		},
		Hooks:   opts.Hooks,
		Journal: &runJournal{db: db},
		Logger:  s.agentLogger(w.ID),
	})
	if err == nil {
		err = add(agent.SubagentTool(runner, opts.Subagents))
	}
	if err != nil {
		cleanup()
		return nil, nil, err
	}
	return runner, cleanup, nil
}
