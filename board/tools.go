package board

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"

	"github.com/dgraph-io/badger/v4"

	"github.com/bulkhead-dev/bulkhead/agent"
)

// agentComment posts a comment as the agent of run f, fenced.
func (b *Board) agentComment(f *Fence, author, body, anchor string) (*Comment, error) {
	if err := validComment(body, anchor); err != nil {
		return nil, err
	}
	var c *Comment
	err := b.update(func(txn *badger.Txn) error {
		if _, err := b.checkFence(txn, f); err != nil {
			return err
		}
		t, err := getTicket(txn, f.Project, f.Ticket)
		if err != nil {
			return err
		}
		c = &Comment{Kind: Agent, Author: author, Body: body, Anchor: anchor}
		if err := b.addComment(txn, t, c); err != nil {
			return err
		}
		return putJSON(txn, ticketKey(f.Project, f.Ticket), t)
	})
	return c, err
}

// agentMove moves the ticket of run f as the agent, fenced; only the
// transitions in agentMoves are allowed.
func (b *Board) agentMove(f *Fence, author string, to State, reason string) (*Ticket, error) {
	if reason != "" {
		if err := validComment(reason, ""); err != nil {
			return nil, err
		}
	}
	var t *Ticket
	err := b.update(func(txn *badger.Txn) error {
		if _, err := b.checkFence(txn, f); err != nil {
			return err
		}
		var err error
		if t, err = getTicket(txn, f.Project, f.Ticket); err != nil {
			return err
		}
		if err := checkMove(Agent, t.State, to, reason); err != nil {
			return err
		}
		return b.moveTxn(txn, t, to, Agent, author, reason)
	})
	return t, err
}

// runTools are the ticket tools of one run, bound to its fence.
type runTools struct {
	b        *Board
	f        *Fence
	author   string
	comments atomic.Int64 // comments posted by the agent in this run
	lost     func()       // called when a write finds the lease lost
}

func (rt *runTools) fail(err error) error {
	if errors.Is(err, ErrLeaseLost) && rt.lost != nil {
		rt.lost()
	}
	return err
}

// tools returns ticket_read, comment_post and ticket_update_state.
func (rt *runTools) tools() []agent.Tool {
	read := agent.FuncTool{
		ToolName:        "ticket_read",
		ToolDescription: "Read the ticket you are working on: title, kind, state, priority, description, acceptance criteria and the whole comment thread, oldest first.",
		ToolSchema:      json.RawMessage(`{"type":"object","properties":{}}`),
		Fn: func(ctx context.Context, _ json.RawMessage) (string, error) {
			t, err := rt.b.Ticket(ctx, rt.f.Project, rt.f.Ticket)
			if err != nil {
				return "", err
			}
			cs, err := rt.b.Comments(ctx, rt.f.Project, rt.f.Ticket)
			if err != nil {
				return "", err
			}
			return renderTicket(t, cs), nil
		},
	}
	post := agent.FuncTool{
		ToolName:        "comment_post",
		ToolDescription: "Post a comment on the ticket. Comments are the only way to reach the humans: say what you did, what you found, or ask a precise question. Optional anchor: a file:line, a commit or a criterion the comment is about.",
		ToolSchema:      json.RawMessage(`{"type":"object","properties":{"body":{"type":"string"},"anchor":{"type":"string"}},"required":["body"]}`),
		Fn: func(ctx context.Context, args json.RawMessage) (string, error) {
			var in struct{ Body, Anchor string }
			if err := json.Unmarshal(args, &in); err != nil {
				return "", fmt.Errorf("decode arguments: %w", err)
			}
			c, err := rt.b.agentComment(rt.f, rt.author, in.Body, in.Anchor)
			if err != nil {
				return "", rt.fail(err)
			}
			rt.comments.Add(1)
			return fmt.Sprintf("posted comment %d", c.Seq), nil
		},
	}
	move := agent.FuncTool{
		ToolName:        "ticket_update_state",
		ToolDescription: "Move the ticket. You may move backlog → in_progress and in_progress → verification (when every acceptance criterion is met and verified). Humans accept or return work from verification.",
		ToolSchema:      json.RawMessage(`{"type":"object","properties":{"state":{"type":"string","enum":["in_progress","verification"]},"reason":{"type":"string","description":"optional note posted with the move"}},"required":["state"]}`),
		Fn: func(ctx context.Context, args json.RawMessage) (string, error) {
			var in struct{ State, Reason string }
			if err := json.Unmarshal(args, &in); err != nil {
				return "", fmt.Errorf("decode arguments: %w", err)
			}
			to, err := ParseState(in.State)
			if err != nil {
				return "", err
			}
			t, err := rt.b.agentMove(rt.f, rt.author, to, in.Reason)
			if err != nil {
				return "", rt.fail(err)
			}
			if strings.TrimSpace(in.Reason) != "" {
				rt.comments.Add(1)
			}
			return "ticket is now " + string(t.State), nil
		},
	}
	return []agent.Tool{read, post, move}
}

// renderTicket is the ticket as the agent reads it.
func renderTicket(t *Ticket, cs []*Comment) string {
	var b strings.Builder
	fmt.Fprintf(&b, "Ticket #%d [%s, priority %d, state %s, branch %s]\nTitle: %s\n\nDescription:\n%s\n\nAcceptance criteria:\n%s\n\nThread (%d comments):\n",
		t.ID, t.Kind, t.Priority, t.State, BranchName(t.ID), t.Title, orNone(t.Description), orNone(t.Criteria), len(cs))
	for _, c := range cs {
		anchor := ""
		if c.Anchor != "" {
			anchor = " @" + c.Anchor
		}
		fmt.Fprintf(&b, "\n--- #%d %s %s (%s)%s\n%s\n", c.Seq, c.Kind, c.Author, c.Time.Format("2006-01-02 15:04"), anchor, c.Body)
	}
	return b.String()
}

func orNone(s string) string {
	if strings.TrimSpace(s) == "" {
		return "(none)"
	}
	return s
}
