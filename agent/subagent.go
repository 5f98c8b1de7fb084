package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
)

// ErrSubagentLimit means a spawn_subagent call went past the depth or
// breadth limit.
var ErrSubagentLimit = errors.New("subagent limit reached")

// SubagentLimits bound spawn_subagent. They are host configuration: nothing
// the model sends can change them.
type SubagentLimits struct {
	// MaxDepth is how deep subagents may nest; default 1 (the agent may
	// spawn subagents, they may not spawn their own).
	MaxDepth int
	// MaxChildren is how many subagents one run may spawn; default 4.
	MaxChildren int
}

// runScope is what a run knows about its place in the subagent tree. It
// travels in the run's context, so a tool call can see which run it is in.
type runScope struct {
	runID     string
	sessionID string
	depth     int
	children  atomic.Int32
	emit      func(Event)
}

type scopeKey struct{}
type depthKey struct{}

func scopeFrom(ctx context.Context) *runScope {
	s, _ := ctx.Value(scopeKey{}).(*runScope)
	return s
}

// SubagentTool is spawn_subagent: it runs a task as a child run of r in the
// same process, with the same model chain, tools and limits, journaled under
// "<parent run id>.sub<n>", and returns the child's final answer. Depth and
// breadth are checked against lim before anything runs.
func SubagentTool(r *Runner, lim SubagentLimits) Tool {
	if lim.MaxDepth <= 0 {
		lim.MaxDepth = 1
	}
	if lim.MaxChildren <= 0 {
		lim.MaxChildren = 4
	}
	return FuncTool{
		ToolName:        "spawn_subagent",
		ToolDescription: "Hand a self-contained task to a subagent that works in the same workspace and returns its final answer.",
		ToolSchema:      json.RawMessage(`{"type":"object","properties":{"task":{"type":"string","description":"what the subagent should do, with all context it needs"}},"required":["task"]}`),
		Fn: func(ctx context.Context, args json.RawMessage) (string, error) {
			var in struct {
				Task string `json:"task"`
			}
			if err := json.Unmarshal(args, &in); err != nil {
				return "", fmt.Errorf("decode arguments: %w", err)
			}
			if strings.TrimSpace(in.Task) == "" {
				return "", errors.New("task is empty")
			}
			parent := scopeFrom(ctx)
			if parent == nil {
				return "", errors.New("spawn_subagent called outside a run")
			}
			if parent.depth+1 > lim.MaxDepth {
				return "", fmt.Errorf("%w: depth %d allows no deeper subagents", ErrSubagentLimit, lim.MaxDepth)
			}
			n := parent.children.Add(1)
			if int(n) > lim.MaxChildren {
				return "", fmt.Errorf("%w: this run may spawn at most %d subagents", ErrSubagentLimit, lim.MaxChildren)
			}
			child := context.WithValue(ctx, depthKey{}, parent.depth+1)
			res, err := r.Run(child, RunInput{
				RunID:     fmt.Sprintf("%s.sub%d", parent.runID, n),
				SessionID: parent.sessionID,
				Message:   "[Task from the parent agent; reply with the result]\n" + in.Task,
				// The child's events go to the parent's stream; their RunID
				// tells them apart.
				OnEvent: parent.emit,
			})
			if err != nil {
				return "", fmt.Errorf("subagent: %w", err)
			}
			return res.Text, nil
		},
	}
}
