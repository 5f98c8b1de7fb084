package board

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/bulkhead-dev/bulkhead/agent"
)

// RunRequest is everything a TicketRunner gets for one run.
type RunRequest struct {
	Project    Project
	Ticket     Ticket
	Comments   []*Comment
	SessionKey string // bulkhead:{project}:ticket:{id}
	Persona    string // the persona name the files came from
	Bootstrap  []agent.BootstrapFile
	// Tools are the ticket tools (ticket_read, comment_post,
	// ticket_update_state); the runner adds the sandbox tools.
	Tools []agent.Tool
	// RepoDir is the host directory of the clone, on the ticket's branch.
	// Its contents are the tenant's: a runner must not read or write there
	// with host privileges (symlinks lead anywhere); use the workspace's
	// file view (workspace.Service.Files) or its sandbox.
	RepoDir string
	// Log receives live progress lines for the ticket page.
	Log func(kind, text string)
	// Prompt is the user message that starts the run.
	Prompt string
}

// RunResult is how a run ended.
type RunResult struct {
	// Text is the agent's final answer; it is posted as a comment when the
	// agent posted none itself.
	Text string
}

// TicketRunner runs an agent on one ticket. It must return when ctx ends
// (the lease was lost or the node is shutting down).
type TicketRunner interface {
	RunTicket(ctx context.Context, req *RunRequest) (*RunResult, error)
}

// RunnerFunc adapts a function to TicketRunner.
type RunnerFunc func(ctx context.Context, req *RunRequest) (*RunResult, error)

// RunTicket calls f.
func (f RunnerFunc) RunTicket(ctx context.Context, req *RunRequest) (*RunResult, error) {
	return f(ctx, req)
}

// BeatStatus is the last heartbeat this process ran.
type BeatStatus struct {
	Holder   string     `json:"holder"`
	Started  time.Time  `json:"started"`
	Finished time.Time  `json:"finished"`
	Report   BeatReport `json:"report"`
	Error    string     `json:"error,omitempty"`
}

// LastBeat returns the last heartbeat this Board ran, or nil.
func (b *Board) LastBeat() *BeatStatus {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.last == nil {
		return nil
	}
	c := *b.last
	return &c
}

// BeatReport says what one heartbeat did.
type BeatReport struct {
	Claimed   int `json:"claimed"`
	Succeeded int `json:"succeeded"`
	Failed    int `json:"failed"`
	Lost      int `json:"lost"` // runs whose lease was taken over
}

type candidate struct {
	project string
	id      int64
	score   float64
}

// candidates returns one actionable ticket per project whose lease is free,
// best first, skipping those in tried.
func (b *Board) candidates(tried map[string]bool) ([]candidate, error) {
	now := b.opts.Now()
	best := map[string]candidate{}
	lastServed := map[string]time.Time{}
	err := b.db.View(func(txn *badger.Txn) error {
		busy := map[string]bool{}
		if err := scan(txn, []byte(prefixLease), func(l *Lease) error {
			busy[l.Project] = l.live(now)
			lastServed[l.Project] = l.Claimed
			return nil
		}); err != nil {
			return err
		}
		return scan(txn, []byte(prefixTicket), func(t *Ticket) error {
			if busy[t.Project] || tried[logKey(t.Project, t.ID)] || !t.actionable(now) {
				return nil
			}
			s := t.score(now)
			// Project round-robin: a project not served for a while moves up
			// within its band.
			if ls, ok := lastServed[t.Project]; ok {
				s += min(now.Sub(ls).Minutes(), 90)
			} else {
				s += 90
			}
			if c, ok := best[t.Project]; !ok || s > c.score || s == c.score && t.ID < c.id {
				best[t.Project] = candidate{t.Project, t.ID, s}
			}
			return nil
		})
	})
	out := make([]candidate, 0, len(best))
	for _, c := range best {
		// A project whose workspace was deleted has nothing to run.
		if _, err := b.ws.Get(context.Background(), c.project); err == nil {
			out = append(out, c)
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].score != out[j].score {
			return out[i].score > out[j].score
		}
		return out[i].project < out[j].project
	})
	return out, err
}

// Beat is one heartbeat: it claims and runs actionable tickets, at most
// Concurrency at once over the node and one per project, until none is
// left (each ticket at most once per beat), then returns. holder names this
// heartbeat in leases and comments.
func (b *Board) Beat(ctx context.Context, holder string) (report BeatReport, err error) {
	var rep BeatReport // updated by the runs, under mu
	var mu sync.Mutex
	var wg sync.WaitGroup
	finished := make(chan struct{}, 1024)
	tried := map[string]bool{}
	running := 0
	started := b.opts.Now().UTC()
	defer func() {
		wg.Wait()
		mu.Lock()
		report = rep
		mu.Unlock()
		b.mu.Lock()
		b.last = &BeatStatus{Holder: holder, Started: started, Finished: b.opts.Now().UTC(), Report: report}
		if err != nil {
			b.last.Error = safeError(err)
		}
		b.mu.Unlock()
	}()
	if b.getRunner() == nil {
		return BeatReport{}, ErrNoRunner
	}
	for {
		if err := ctx.Err(); err != nil {
			return BeatReport{}, err
		}
		cands, err := b.candidates(tried)
		if err != nil {
			return BeatReport{}, err
		}
		started := 0
		for _, c := range cands {
			select {
			case b.slots <- struct{}{}:
			default:
				goto wait // the node is full; wait for a run to end
			}
			tried[logKey(c.project, c.id)] = true
			f, _, err := b.claim(c.project, c.id, holder, false)
			if err != nil {
				<-b.slots
				if errors.Is(err, ErrLeased) || errors.Is(err, ErrNotActionable) || errors.Is(err, ErrTicketNotFound) {
					continue // someone else got there first
				}
				return BeatReport{}, err
			}
			started++
			running++
			mu.Lock()
			rep.Claimed++
			mu.Unlock()
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer func() { <-b.slots; finished <- struct{}{} }()
				err := b.run(ctx, f)
				mu.Lock()
				switch {
				case err == nil:
					rep.Succeeded++
				case errors.Is(err, ErrLeaseLost):
					rep.Lost++
				default:
					rep.Failed++
				}
				mu.Unlock()
			}()
		}
		if started == 0 && running == 0 {
			if len(cands) == 0 {
				return BeatReport{}, nil
			}
			// Candidates exist but none could be claimed: busy projects
			// (other runners) or a full node held by other beats.
			if len(b.slots) == cap(b.slots) {
				select {
				case <-ctx.Done():
					return BeatReport{}, ctx.Err()
				case <-time.After(50 * time.Millisecond):
				}
				continue
			}
			continue
		}
	wait:
		if running == 0 {
			select {
			case <-ctx.Done():
				return BeatReport{}, ctx.Err()
			case <-time.After(50 * time.Millisecond):
			}
			continue
		}
		select {
		case <-finished:
			running--
		case <-ctx.Done():
			return BeatReport{}, ctx.Err()
		}
	}
}

// Dispatch claims ticket id of project now (ignoring failure backoff, not
// the lease) and runs it; it returns when the run ends.
func (b *Board) Dispatch(ctx context.Context, project string, id int64, holder string) error {
	if b.getRunner() == nil {
		return ErrNoRunner
	}
	select {
	case b.slots <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	}
	defer func() { <-b.slots }()
	f, _, err := b.claim(project, id, holder, true)
	if err != nil {
		return err
	}
	return b.run(ctx, f)
}

// StartDispatch claims the ticket now and runs it in the background under
// ctx; it returns once the claim is made (or refused).
func (b *Board) StartDispatch(ctx context.Context, project string, id int64, holder string) (*Fence, error) {
	if b.getRunner() == nil {
		return nil, ErrNoRunner
	}
	select {
	case b.slots <- struct{}{}:
	default:
		return nil, fmt.Errorf("%w: all %d run slots of this node are taken", ErrLeased, cap(b.slots))
	}
	f, _, err := b.claim(project, id, holder, true)
	if err != nil {
		<-b.slots
		return nil, err
	}
	go func() {
		defer func() { <-b.slots }()
		if err := b.run(ctx, f); err != nil {
			b.log.Warn("dispatched run ended with an error", "workspace", project, "ticket", id, "err", err)
		}
	}()
	return f, nil
}

// Serve runs a heartbeat every interval until ctx ends.
func (b *Board) Serve(ctx context.Context, interval time.Duration, holder string) {
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		rep, err := b.Beat(ctx, holder)
		if err != nil && !errors.Is(err, ErrNoRunner) && ctx.Err() == nil {
			b.log.Error("heartbeat", "err", err)
		} else if rep.Claimed > 0 {
			b.log.Info("heartbeat", "claimed", rep.Claimed, "succeeded", rep.Succeeded, "failed", rep.Failed, "lost", rep.Lost)
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// run works the claimed ticket: renew the lease while the runner runs,
// then record the outcome and release, all fenced. It returns ErrLeaseLost
// if the lease was taken over (nothing of the run's end is written then).
func (b *Board) run(ctx context.Context, f *Fence) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	lost := func() { cancel(ErrLeaseLost) }
	go func() {
		tick := time.NewTicker(b.opts.LeaseTTL / 3)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
				if err := b.renew(f); err != nil {
					if errors.Is(err, ErrLeaseLost) {
						lost()
						return
					}
					b.log.Warn("renew lease", "workspace", f.Project, "ticket", f.Ticket, "err", err)
				}
			}
		}
	}()
	logf := func(kind, text string) {
		b.logs.add(f.Project, f.Ticket, LogLine{Token: f.Token, Kind: kind, Text: text})
	}
	logf("run_start", fmt.Sprintf("run %d started by %s", f.Token, f.Holder))
	rt := &runTools{b: b, f: f, lost: lost}
	res, runErr := b.work(ctx, f, rt, logf)
	if cause := context.Cause(ctx); errors.Is(cause, ErrLeaseLost) {
		logf("error", "lease lost; this run's results are discarded")
		return cause
	}
	if runErr != nil {
		logf("error", runErr.Error())
	}
	interrupted := runErr != nil && ctx.Err() != nil // shutdown, not the run's fault
	err := b.finish(f, rt, res, runErr, interrupted)
	if errors.Is(err, ErrLeaseLost) {
		logf("error", "lease lost before the run could finish; its results are discarded")
		return err
	}
	if err != nil {
		return err
	}
	logf("run_end", "run finished")
	return runErr
}

// work prepares the branch and calls the runner.
func (b *Board) work(ctx context.Context, f *Fence, rt *runTools, logf func(kind, text string)) (*RunResult, error) {
	p, err := b.Project(ctx, f.Project)
	if err != nil {
		return nil, err
	}
	t, err := b.Ticket(ctx, f.Project, f.Ticket)
	if err != nil {
		return nil, err
	}
	cs, err := b.Comments(ctx, f.Project, f.Ticket)
	if err != nil {
		return nil, err
	}
	files, persona, err := b.bootstrap(p, t)
	if err != nil {
		return nil, err
	}
	rt.author = persona
	dir := b.ws.FilesDir(p.ID)
	unlock := b.git.lock(dir)
	git := sandboxGit(b.ws, p.ID)
	err = checkoutTicket(ctx, git, BranchName(t.ID), p.DefaultBranch)
	unlock()
	if err != nil {
		return nil, fmt.Errorf("check out %s: %w", BranchName(t.ID), err)
	}
	req := &RunRequest{
		Project: *p, Ticket: *t, Comments: cs, SessionKey: SessionKey(p.ID, t.ID),
		Persona: persona, Bootstrap: files, Tools: rt.tools(), RepoDir: dir, Log: logf,
		Prompt: ticketPrompt(t, cs),
	}
	res, runErr := b.getRunner().RunTicket(ctx, req)
	if errors.Is(context.Cause(ctx), ErrLeaseLost) {
		// Another run may own the repository now; leave it alone.
		return res, runErr
	}
	// The runner may have written through RepoDir on the host; the
	// sandbox's view must see that before git does.
	b.ws.FilesChanged(p.ID)
	unlock = b.git.lock(dir)
	if err := commitAll(context.WithoutCancel(ctx), git, fmt.Sprintf("ticket %d: work at the end of run %d", t.ID, f.Token)); err != nil && runErr == nil {
		runErr = err
	}
	unlock()
	return res, runErr
}

// ticketPrompt is the message that starts a run.
func ticketPrompt(t *Ticket, cs []*Comment) string {
	var b strings.Builder
	b.WriteString("Work on this ticket. Use ticket_read for the latest state, comment_post to report, and ticket_update_state to move it to verification when every acceptance criterion is met.\n\n")
	b.WriteString(renderTicket(t, cs))
	if t.State == InProgress && t.LastHuman > 0 {
		b.WriteString("\nThe newest human comment may ask for changes; address it first.\n")
	}
	return b.String()
}

// finish records the outcome of run f and releases its lease in one
// fenced transaction: a failure becomes a system comment and a backoff, a
// success with no comment from the agent posts its final text.
// An interrupted run (the node is shutting down) is noted without backoff.
func (b *Board) finish(f *Fence, rt *runTools, res *RunResult, runErr error, interrupted bool) error {
	return b.update(func(txn *badger.Txn) error {
		l, err := b.checkFence(txn, f)
		if err != nil {
			return err
		}
		t, err := getTicket(txn, f.Project, f.Ticket)
		if err != nil {
			return err
		}
		now := b.opts.Now().UTC()
		if interrupted {
			msg := fmt.Sprintf("Run %d was interrupted (%s); the ticket is picked up again.", f.Token, safeError(runErr))
			if err := b.addComment(txn, t, &Comment{Kind: System, Author: "heartbeat", Body: msg}); err != nil {
				return err
			}
		} else if runErr != nil {
			t.Failures++
			wait := b.opts.FailureBackoff << min(t.Failures-1, 5)
			t.NotBefore = now.Add(wait)
			msg := fmt.Sprintf("Run %d failed: %s. The ticket can be picked up again after %s.", f.Token, safeError(runErr), wait)
			if err := b.addComment(txn, t, &Comment{Kind: System, Author: "heartbeat", Body: msg}); err != nil {
				return err
			}
		} else {
			t.Failures, t.NotBefore = 0, time.Time{}
			if t.State == InProgress {
				t.NotBefore = now.Add(b.opts.IdleRetry)
			}
			if rt.comments.Load() == 0 && res != nil && strings.TrimSpace(res.Text) != "" {
				body := res.Text
				if len(body) > MaxText {
					body = body[:MaxText]
				}
				if err := b.addComment(txn, t, &Comment{Kind: Agent, Author: rt.author, Body: body}); err != nil {
					return err
				}
			}
		}
		if err := putJSON(txn, ticketKey(f.Project, f.Ticket), t); err != nil {
			return err
		}
		return releaseTxn(txn, l)
	})
}

// safeError is the one-line text of a run error for the thread.
func safeError(err error) string {
	s := strings.ReplaceAll(err.Error(), "\n", " ")
	if len(s) > 2000 {
		s = s[:2000] + "…"
	}
	return s
}

// Ship merges a ticket's branch into the project's default branch and
// marks it done. The ticket must be in verification or done.
func (b *Board) Ship(ctx context.Context, project string, id int64, author string) (*Ticket, error) {
	p, err := b.Project(ctx, project)
	if err != nil {
		return nil, err
	}
	t, err := b.Ticket(ctx, project, id)
	if err != nil {
		return nil, err
	}
	if t.State != Verification && t.State != Done {
		return nil, fmt.Errorf("%w: ticket %d is %s; only a ticket in verification or done can ship", ErrTransition, id, t.State)
	}
	if t.MergedAs != "" {
		return nil, fmt.Errorf("%w: ticket %d already shipped as %s", ErrTransition, id, t.MergedAs)
	}
	var leased bool
	err = b.db.View(func(txn *badger.Txn) error {
		l, err := getLease(txn, project)
		leased = err == nil && l.live(b.opts.Now())
		return err
	})
	if err != nil {
		return nil, err
	}
	if leased {
		return nil, fmt.Errorf("%w: wait for the running ticket to finish before shipping", ErrLeased)
	}
	if author == "" {
		author = "human"
	}
	dir := b.ws.FilesDir(project)
	unlock := b.git.lock(dir)
	hash, err := mergeTicket(ctx, sandboxGit(b.ws, project), BranchName(id), p.DefaultBranch, fmt.Sprintf("Merge ticket %d: %s", id, t.Title))
	unlock()
	if err != nil {
		return nil, err
	}
	err = b.update(func(txn *badger.Txn) error {
		if t, err = getTicket(txn, project, id); err != nil {
			return err
		}
		t.MergedAs = hash
		msg := fmt.Sprintf("%s shipped the ticket: %s merged into %s as %s.", author, BranchName(id), p.DefaultBranch, hash)
		if t.State != Done {
			msg += " Moved from verification to done."
			t.State = Done
		}
		if err := b.addComment(txn, t, &Comment{Kind: System, Author: "board", Body: msg}); err != nil {
			return err
		}
		return putJSON(txn, ticketKey(project, id), t)
	})
	if err != nil {
		return nil, err
	}
	return t, nil
}
