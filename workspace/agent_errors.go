package workspace

import (
	"errors"
	"fmt"
	"time"
)

// Sentinels of the agent wiring (runs, sessions, skills). They live here
// rather than in errors.go because this part of the package is maintained
// apart from the tenant registry.
var (
	// ErrRunNotFound means a workspace has no run by that id.
	ErrRunNotFound = errors.New("run not found")
	// ErrRunFinished means the run already ended (cancel of a finished run).
	ErrRunFinished = errors.New("run already finished")
	// ErrInvalidRunID is wrapped by errors about malformed run ids.
	ErrInvalidRunID = errors.New("invalid run id")
	// ErrSessionNotFound means a workspace has no session by that key.
	ErrSessionNotFound = errors.New("session not found")
	// ErrInvalidSession is wrapped by errors about malformed session ids
	// and kinds.
	ErrInvalidSession = errors.New("invalid session")
	// ErrSessionBusy means a run of the session is still going.
	ErrSessionBusy = errors.New("session has a run in progress")
	// ErrQuota is wrapped by *QuotaError.
	ErrQuota = errors.New("workspace quota exceeded")
	// ErrModelNotAllowed means a run asked for a model that is not in the
	// workspace's config (primary or fallbacks).
	ErrModelNotAllowed = errors.New("model not in the workspace config")
	// ErrNoProviderKey means no API key is configured for a provider.
	ErrNoProviderKey = errors.New("no API key for provider")
	// ErrSkillNotFound means no registered skill has the name.
	ErrSkillNotFound = errors.New("skill not found")
	// ErrSkillExists means a skill with the name is already registered.
	ErrSkillExists = errors.New("skill already registered")
	// ErrInvalidSkill is wrapped by errors about a malformed skill
	// directory or SKILL.md.
	ErrInvalidSkill = errors.New("invalid skill")
	// ErrSkillNotEnabled means the skill is not enabled for the workspace.
	ErrSkillNotEnabled = errors.New("skill not enabled for this workspace")
	// ErrSkillEgress means a skill registered before egress lists existed
	// declares the network without saying where to; re-add it with an
	// egress: list.
	ErrSkillEgress = errors.New("skill declares network egress without an egress: list of hosts; re-add it with one")
	// ErrEmptyMessage means a run was started without a message.
	ErrEmptyMessage = errors.New("empty message")
)

// QuotaError says which per-workspace quota a request exceeded and when to
// try again.
type QuotaError struct {
	Limit      string // concurrent_runs, runs_per_minute, tokens_per_day
	Value      string
	RetryAfter time.Duration
}

func (e *QuotaError) Error() string {
	return fmt.Sprintf("workspace quota %s exceeded (%s); retry after %s", e.Limit, e.Value, e.RetryAfter.Round(time.Second))
}

func (e *QuotaError) Unwrap() error { return ErrQuota }
