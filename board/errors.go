package board

import "errors"

var (
	// ErrProjectNotFound means no project has the id.
	ErrProjectNotFound = errors.New("project not found")
	// ErrProjectExists means the workspace is already a project.
	ErrProjectExists = errors.New("project already exists")
	// ErrTicketNotFound means the project has no ticket with the id.
	ErrTicketNotFound = errors.New("ticket not found")
	// ErrPersonaNotFound means no persona has the name.
	ErrPersonaNotFound = errors.New("persona not found")
	// ErrPersonaExists means a persona with the name already exists (built-ins cannot be replaced).
	ErrPersonaExists = errors.New("persona already exists")
	// ErrInvalid is wrapped by errors about malformed input (a title, a kind, a state).
	ErrInvalid = errors.New("invalid input")
	// ErrTransition means a ticket cannot move between the two states, or not by that actor.
	ErrTransition = errors.New("transition not allowed")
	// ErrClone means the repository could not be cloned.
	ErrClone = errors.New("cannot clone repository")
	// ErrGit is wrapped by errors from git operations other than clone.
	ErrGit = errors.New("git")
	// ErrLeased means another run holds the project's lease.
	ErrLeased = errors.New("project is busy with another ticket run")
	// ErrNotActionable means the ticket has nothing for an agent to do now.
	ErrNotActionable = errors.New("ticket has no work for an agent")
	// ErrLeaseLost means the run's lease expired or was taken over; its writes are refused.
	ErrLeaseLost = errors.New("lease lost")
	// ErrNoRunner means no TicketRunner is configured.
	ErrNoRunner = errors.New("no ticket runner configured")
)
