package board

import (
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode/utf8"
)

// State is a ticket's place on the board.
type State string

const (
	Backlog      State = "backlog"
	InProgress   State = "in_progress"
	Verification State = "verification"
	Done         State = "done"
)

// States in board order.
var States = []State{Backlog, InProgress, Verification, Done}

// Kind of ticket.
type Kind string

const (
	Feature Kind = "feature"
	Bug     Kind = "bug"
	Chore   Kind = "chore"
)

// Kinds a ticket may have.
var Kinds = []Kind{Feature, Bug, Chore}

// Author kinds of a comment.
const (
	Human  = "human"
	Agent  = "agent"
	System = "system"
)

// Project is a workspace bound to a git repository and a board.
type Project struct {
	ID            string    `json:"id"`
	Repo          string    `json:"repo"`           // the URL or path it was cloned from
	DefaultBranch string    `json:"default_branch"` // the branch tickets start from and ship to
	Persona       string    `json:"persona"`        // from the workspace config
	Provider      string    `json:"provider"`       // from the workspace config
	Model         string    `json:"model"`          // from the workspace config
	CreatedAt     time.Time `json:"created_at"`
}

// Ticket is one work item.
type Ticket struct {
	Project     string    `json:"project"`
	ID          int64     `json:"id"`
	Kind        Kind      `json:"kind"`
	Title       string    `json:"title"`
	Description string    `json:"description"`
	Criteria    string    `json:"criteria"` // acceptance criteria
	Priority    int       `json:"priority"` // 0 (highest) .. 3
	Assignee    string    `json:"assignee"` // persona name; empty means the project's persona
	State       State     `json:"state"`
	Author      string    `json:"author"`
	CreatedAt   time.Time `json:"created_at"`
	UpdatedAt   time.Time `json:"updated_at"`

	Comments     int64 `json:"comments"`       // number of comments (the last comment's seq)
	LastHuman    int64 `json:"last_human"`     // seq of the newest human comment
	SeenThrough  int64 `json:"seen_through"`   // newest comment seq an agent run has started with
	Returned     bool  `json:"returned"`       // returned from verification and not yet picked up
	Runs         int   `json:"runs"`           // claims so far
	Failures     int   `json:"failures"`       // consecutive failed runs
	LastRunToken int64 `json:"last_run_token"` // fencing token of the latest claim

	NotBefore time.Time `json:"not_before,omitzero"` // backoff after a failed run
	LastRunAt time.Time `json:"last_run_at,omitzero"`
	Branch    string    `json:"branch,omitempty"`
	MergedAs  string    `json:"merged_as,omitempty"` // merge commit after ship
}

// SessionKey is the agent session of a ticket: bulkhead:{project}:ticket:{id}.
func SessionKey(project string, id int64) string {
	return fmt.Sprintf("bulkhead:%s:ticket:%d", project, id)
}

// BranchName is the git branch of a ticket: ticket/<id>.
func BranchName(id int64) string { return fmt.Sprintf("ticket/%d", id) }

// Comment is one entry in a ticket's thread.
type Comment struct {
	Seq    int64     `json:"seq"`
	Ticket int64     `json:"ticket"`
	Kind   string    `json:"kind"` // human, agent or system
	Author string    `json:"author"`
	Body   string    `json:"body"`
	Anchor string    `json:"anchor,omitempty"` // optional: a file:line, a commit, a criterion
	Time   time.Time `json:"time"`
}

// NewTicket is what a human gives to open a ticket.
type NewTicket struct {
	Kind        Kind   `json:"kind"`
	Title       string `json:"title"`
	Description string `json:"description"`
	Criteria    string `json:"criteria"`
	Priority    int    `json:"priority"`
	Assignee    string `json:"assignee"`
	Author      string `json:"author"`
}

// Limits on text fields.
const (
	MaxTitle = 200
	MaxText  = 64 << 10
)

func (n *NewTicket) validate() error {
	if n.Kind == "" {
		n.Kind = Feature
	}
	if !slices.Contains(Kinds, n.Kind) {
		return fmt.Errorf("%w: kind %q: want feature, bug or chore", ErrInvalid, n.Kind)
	}
	n.Title = strings.TrimSpace(n.Title)
	if n.Title == "" {
		return fmt.Errorf("%w: title is empty", ErrInvalid)
	}
	if utf8.RuneCountInString(n.Title) > MaxTitle || strings.ContainsAny(n.Title, "\r\n") {
		return fmt.Errorf("%w: title must be one line of at most %d characters", ErrInvalid, MaxTitle)
	}
	if len(n.Description) > MaxText || len(n.Criteria) > MaxText {
		return fmt.Errorf("%w: description and criteria are limited to %d bytes each", ErrInvalid, MaxText)
	}
	if n.Priority < 0 || n.Priority > 3 {
		return fmt.Errorf("%w: priority %d: want 0 (highest) to 3", ErrInvalid, n.Priority)
	}
	if n.Author == "" {
		n.Author = "human"
	}
	return nil
}

// ParseState checks s names a state.
func ParseState(s string) (State, error) {
	st := State(strings.ReplaceAll(strings.TrimSpace(s), "-", "_"))
	if !slices.Contains(States, st) {
		return "", fmt.Errorf("%w: unknown state %q: want backlog, in_progress, verification or done", ErrTransition, s)
	}
	return st, nil
}

type transition struct{ from, to State }

// Transitions a human may make. Returning from verification and reopening a
// done ticket need a comment saying why.
var humanMoves = map[transition]bool{
	{Backlog, InProgress}:      false,
	{InProgress, Backlog}:      false,
	{InProgress, Verification}: false,
	{Verification, Done}:       false,
	{Verification, InProgress}: true, // return
	{Done, InProgress}:         true, // reopen
}

// Transitions an agent may make, through ticket_update_state.
var agentMoves = map[transition]bool{
	{Backlog, InProgress}:      false,
	{InProgress, Verification}: false,
}

// checkMove reports whether actor (Human or Agent) may move a ticket from
// from to to, and whether that move needs a reason.
func checkMove(actor string, from, to State, reason string) error {
	moves := humanMoves
	if actor == Agent {
		moves = agentMoves
	}
	needReason, ok := moves[transition{from, to}]
	if !ok {
		var allowed []string
		for _, s := range States {
			if _, ok := moves[transition{from, s}]; ok {
				allowed = append(allowed, string(s))
			}
		}
		hint := "none"
		if len(allowed) > 0 {
			hint = strings.Join(allowed, ", ")
		}
		return fmt.Errorf("%w: %s cannot move a ticket from %s to %s (allowed from %s: %s)", ErrTransition, actor, from, to, from, hint)
	}
	if needReason && strings.TrimSpace(reason) == "" {
		return fmt.Errorf("%w: moving from %s back to %s needs a comment saying why", ErrTransition, from, to)
	}
	return nil
}

// actionable reports whether an agent has work on t at now.
func (t *Ticket) actionable(now time.Time) bool {
	// A backoff (after a failure, or after a run that left the ticket in
	// progress) holds until it passes or a human comments.
	if now.Before(t.NotBefore) && t.LastHuman <= t.SeenThrough {
		return false
	}
	switch t.State {
	case Backlog, InProgress:
		return true
	case Verification:
		return t.LastHuman > t.SeenThrough
	}
	return false
}

// score orders actionable tickets: returned work first, then unanswered
// human comments, work in progress, the backlog; higher priority and older
// tickets ahead within each band (aging: an hour of waiting is worth a
// priority step, capped so age never outranks a band).
func (t *Ticket) score(now time.Time) float64 {
	var s float64
	switch {
	case t.Returned:
		s = 4000
	case t.LastHuman > t.SeenThrough:
		s = 3000
	case t.State == InProgress:
		s = 2000
	default:
		s = 1000
	}
	s += float64(3-t.Priority) * 100
	age := now.Sub(t.UpdatedAt).Hours() * 100
	return s + min(age, 600)
}
