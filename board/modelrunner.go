package board

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/bulkhead-dev/bulkhead/agent"
)

// ModelRunner is a TicketRunner that runs the agent loop in this process
// against Model, with the ticket tools plus whatever SandboxTools returns
// for the project (bash and file tools in the project's sandbox; nil means
// ticket tools only).
type ModelRunner struct {
	Model        agent.Model
	SandboxTools func(ctx context.Context, req *RunRequest) ([]agent.Tool, error)
	Limits       agent.Limits
	Journal      agent.Journal
}

var _ TicketRunner = (*ModelRunner)(nil)

// baseSystem is the fixed preamble of a ticket run's system prompt.
const baseSystem = `You are an agent working one ticket of a software project on a board.
Comments on the ticket are the only channel to the humans. You work on the ticket's git branch;
commit your changes. Report with comment_post and move the ticket with ticket_update_state.`

// RunTicket runs one agent loop for the ticket.
func (m *ModelRunner) RunTicket(ctx context.Context, req *RunRequest) (*RunResult, error) {
	tools := append([]agent.Tool(nil), req.Tools...)
	if m.SandboxTools != nil {
		more, err := m.SandboxTools(ctx, req)
		if err != nil {
			return nil, fmt.Errorf("sandbox tools: %w", err)
		}
		tools = append(tools, more...)
	}
	reg, err := agent.NewRegistry(tools...)
	if err != nil {
		return nil, err
	}
	system := agent.BuildSystemPrompt(agent.PromptInput{
		Base:  baseSystem,
		Files: req.Bootstrap,
		Workspace: fmt.Sprintf("Project %s (repository %s, default branch %s). You are on branch %s. Session %s.",
			req.Project.ID, req.Project.Repo, req.Project.DefaultBranch, BranchName(req.Ticket.ID), req.SessionKey),
	}, agent.PromptConfig{})
	r, err := agent.NewRunner(agent.RunnerConfig{Model: m.Model, Tools: reg, System: system, Limits: m.Limits, Journal: m.Journal})
	if err != nil {
		return nil, err
	}
	res, err := r.Run(ctx, agent.RunInput{
		SessionID: req.SessionKey,
		Message:   req.Prompt,
		OnEvent: func(ev agent.Event) {
			switch ev.Kind {
			case agent.EventToolCall:
				if ev.Tool != nil {
					req.Log("tool_call", ev.Tool.Name+" "+string(ev.Tool.Input))
				}
			case agent.EventToolResult:
				if ev.Result != nil {
					req.Log("tool_result", agent.TruncateMiddle(ev.Result.Output, 4000, "output"))
				}
			case agent.EventTurnEnd:
				req.Log("turn_end", fmt.Sprintf("turn %d", ev.Turn))
			case agent.EventNotice:
				if ev.Notice != nil {
					b, _ := json.Marshal(ev.Notice)
					req.Log("notice", string(b))
				}
			case agent.EventText:
				req.Log("text", ev.Text)
			}
		},
	})
	if err != nil {
		return nil, err
	}
	if res.Stop != agent.StopDone {
		return &RunResult{Text: res.Text}, fmt.Errorf("agent stopped: %s", res.Stop)
	}
	return &RunResult{Text: res.Text}, nil
}
