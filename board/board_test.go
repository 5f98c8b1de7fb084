package board

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bulkhead-dev/bulkhead/credentials"
	"github.com/bulkhead-dev/bulkhead/internal/testutil"
	"github.com/bulkhead-dev/bulkhead/workspace"
)

func openServiceDir(dir string) (*workspace.Service, error) {
	return workspace.Open(context.Background(), workspace.Options{
		StateDir:   dir,
		Passphrase: func() ([]byte, error) { return []byte("pw"), nil },
		KDF:        credentials.KDFParams{Time: 1, MemoryKiB: 8 << 10, Threads: 1},
	})
}

func openService(t testing.TB, dir string) *workspace.Service {
	t.Helper()
	svc, err := openServiceDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	return svc
}

// newBoard opens a board over a fresh service. Projects' git runs in their
// sandboxes, so the board needs what a sandbox needs.
func newBoard(t testing.TB, opts Options) (*Board, *workspace.Service) {
	t.Helper()
	testutil.RequireRoot(t)
	testutil.RequireFUSE(t)
	testutil.RequireUserNS(t)
	svc := openService(t, t.TempDir())
	t.Cleanup(func() { svc.Close() })
	return New(svc, opts), svc
}

func run(t testing.TB, dir string, args ...string) string {
	t.Helper()
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GIT_AUTHOR_NAME=t", "GIT_AUTHOR_EMAIL=t@t", "GIT_COMMITTER_NAME=t", "GIT_COMMITTER_EMAIL=t@t")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%v: %v\n%s", args, err, out)
	}
	return strings.TrimSpace(string(out))
}

// makeRepo makes a git repository with one commit on main.
func makeRepo(t testing.TB) string {
	t.Helper()
	dir := t.TempDir()
	run(t, dir, "git", "init", "-q", "-b", "main")
	os.WriteFile(filepath.Join(dir, "README.md"), []byte("# demo\n"), 0o644)
	run(t, dir, "git", "add", ".")
	run(t, dir, "git", "commit", "-q", "-m", "initial")
	return dir
}

// moveToVerification is a runner that posts one comment and moves the
// ticket to verification through the ticket tools, counting runs.
type countingRunner struct {
	mu   sync.Mutex
	runs map[string]int
	hold time.Duration
}

func (c *countingRunner) RunTicket(ctx context.Context, req *RunRequest) (*RunResult, error) {
	c.mu.Lock()
	if c.runs == nil {
		c.runs = map[string]int{}
	}
	c.runs[logKey(req.Project.ID, req.Ticket.ID)]++
	c.mu.Unlock()
	if c.hold > 0 {
		select {
		case <-time.After(c.hold):
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	if _, err := callTool(ctx, req, "comment_post", `{"body":"did the work"}`); err != nil {
		return nil, err
	}
	if _, err := callTool(ctx, req, "ticket_update_state", `{"state":"verification"}`); err != nil {
		return nil, err
	}
	return &RunResult{Text: "done"}, nil
}

func callTool(ctx context.Context, req *RunRequest, name, args string) (string, error) {
	for _, tl := range req.Tools {
		if tl.Name() == name {
			return tl.Call(ctx, []byte(args))
		}
	}
	return "", fmt.Errorf("no tool %s", name)
}

func TestProjectBadInput(t *testing.T) {
	t.Parallel()
	b, svc := newBoard(t, Options{})
	ctx := context.Background()
	repo := makeRepo(t)
	if _, err := b.CreateProject(ctx, "p1", repo, "nobody"); !errors.Is(err, ErrPersonaNotFound) || !strings.Contains(err.Error(), "developer") {
		t.Fatalf("unknown persona: %v", err)
	}
	for _, bad := range []string{filepath.Join(t.TempDir(), "missing"), "https://127.0.0.1:1/x.git", "ext::sh -c touch% /tmp/pwned", "--upload-pack=touch /tmp/x", t.TempDir()} {
		_, err := b.CreateProject(ctx, "p1", bad, "developer")
		if !errors.Is(err, ErrClone) {
			t.Errorf("clone %q: %v", bad, err)
		}
		if ok, _ := svc.Exists(ctx, "p1"); ok {
			t.Fatalf("failed create of %q left the workspace behind", bad)
		}
	}
	if _, err := b.CreateProject(ctx, "Bad Id", repo, ""); !errors.Is(err, workspace.ErrInvalidID) {
		t.Fatalf("bad id: %v", err)
	}
	p, err := b.CreateProject(ctx, "p1", repo, "reviewer")
	if err != nil {
		t.Fatal(err)
	}
	if p.DefaultBranch != "main" || p.Persona != "reviewer" {
		t.Fatalf("project: %+v", p)
	}
	if _, err := os.Stat(filepath.Join(svc.FilesDir("p1"), "README.md")); err != nil {
		t.Fatal("clone missing:", err)
	}
	if _, err := b.CreateProject(ctx, "p1", repo, ""); !errors.Is(err, ErrProjectExists) {
		t.Fatalf("duplicate: %v", err)
	}
	if _, err := b.Configure(ctx, "p1", ProjectSettings{Persona: "ghost"}); !errors.Is(err, ErrPersonaNotFound) {
		t.Fatalf("configure unknown persona: %v", err)
	}
	if _, err := b.CreateTicket(ctx, "p1", NewTicket{Title: "x", Assignee: "ghost"}); !errors.Is(err, ErrPersonaNotFound) {
		t.Fatalf("ticket for unknown persona: %v", err)
	}
	if _, err := b.CreateTicket(ctx, "nope", NewTicket{Title: "x"}); !errors.Is(err, ErrProjectNotFound) {
		t.Fatalf("ticket in missing project: %v", err)
	}
	for _, n := range []NewTicket{{Title: ""}, {Title: "a\nb"}, {Title: "x", Kind: "epic"}, {Title: "x", Priority: 9}} {
		if _, err := b.CreateTicket(ctx, "p1", n); !errors.Is(err, ErrInvalid) {
			t.Errorf("ticket %+v: %v", n, err)
		}
	}
	if _, err := b.Comment(ctx, "p1", 42, "me", "hello", ""); !errors.Is(err, ErrTicketNotFound) {
		t.Fatalf("comment on missing ticket: %v", err)
	}
}

func TestTransitions(t *testing.T) {
	t.Parallel()
	b, _ := newBoard(t, Options{})
	ctx := context.Background()
	if _, err := b.CreateProject(ctx, "p", makeRepo(t), ""); err != nil {
		t.Fatal(err)
	}
	tk, err := b.CreateTicket(ctx, "p", NewTicket{Title: "one", Criteria: "it works"})
	if err != nil {
		t.Fatal(err)
	}
	steps := []struct {
		to     State
		reason string
		ok     bool
	}{
		{Verification, "", false}, // backlog cannot skip to verification
		{Done, "", false},
		{"sideways", "", false},
		{InProgress, "", true},
		{Verification, "", true},
		{InProgress, "", false}, // return needs a reason
		{InProgress, "the button is still blue", true},
		{Verification, "", true},
		{Done, "", true},
		{Backlog, "", false},
	}
	for i, s := range steps {
		got, err := b.Move(ctx, "p", tk.ID, s.to, "ann", s.reason)
		if s.ok != (err == nil) {
			t.Fatalf("step %d %s: %v", i, s.to, err)
		}
		if err != nil && !errors.Is(err, ErrTransition) {
			t.Fatalf("step %d: wrong error %v", i, err)
		}
		if err == nil && got.State != s.to {
			t.Fatalf("step %d: state %s", i, got.State)
		}
	}
	cs, _ := b.Comments(ctx, "p", tk.ID)
	found := false
	for _, c := range cs {
		if c.Kind == Human && c.Body == "the button is still blue" {
			found = true
		}
	}
	if !found {
		t.Fatal("return reason not in thread")
	}
	// Agents get only two moves.
	for _, m := range []struct{ from, to State }{{Verification, Done}, {Verification, InProgress}, {Done, InProgress}, {InProgress, Backlog}} {
		if err := checkMove(Agent, m.from, m.to, "because"); !errors.Is(err, ErrTransition) {
			t.Errorf("agent %s→%s allowed", m.from, m.to)
		}
	}
}

// Two heartbeats and dispatches of every ticket, started together over 50
// tickets in 10 projects, run each ticket exactly once.
func TestRaceExactlyOnce(t *testing.T) {
	t.Parallel()
	r := &countingRunner{hold: 5 * time.Millisecond}
	b, _ := newBoard(t, Options{Runner: r, Concurrency: 8, LeaseTTL: 10 * time.Second})
	ctx := context.Background()
	repo := makeRepo(t)
	var all []string
	for p := range 10 {
		id := fmt.Sprintf("p%d", p)
		if _, err := b.CreateProject(ctx, id, repo, ""); err != nil {
			t.Fatal(err)
		}
		for i := range 5 {
			tk, err := b.CreateTicket(ctx, id, NewTicket{Title: fmt.Sprintf("t%d", i), Priority: i % 4})
			if err != nil {
				t.Fatal(err)
			}
			all = append(all, logKey(id, tk.ID))
		}
	}
	start := make(chan struct{})
	var wg sync.WaitGroup
	var dispatched atomic.Int64
	for _, h := range []string{"beat-a", "beat-b"} {
		wg.Go(func() {
			<-start
			if _, err := b.Beat(ctx, h); err != nil {
				t.Error(h, err)
			}
		})
	}
	wg.Go(func() {
		<-start
		for p := range 10 {
			for i := 1; i <= 5; i++ {
				err := b.Dispatch(ctx, fmt.Sprintf("p%d", p), int64(i), "api")
				switch {
				case err == nil:
					dispatched.Add(1)
				case errors.Is(err, ErrLeased), errors.Is(err, ErrNotActionable):
				default:
					t.Error("dispatch:", err)
				}
			}
		}
	})
	close(start)
	wg.Wait()
	for _, k := range all {
		if n := r.runs[k]; n != 1 {
			t.Errorf("ticket %s ran %d times", k, n)
		}
	}
	t.Logf("dispatch ran %d of 50", dispatched.Load())
	// Every thread has exactly one agent comment and ends in verification.
	for p := range 10 {
		tks, _ := b.Tickets(ctx, fmt.Sprintf("p%d", p))
		for _, tk := range tks {
			cs, _ := b.Comments(ctx, tk.Project, tk.ID)
			agentComments := 0
			for _, c := range cs {
				if c.Kind == Agent {
					agentComments++
				}
			}
			if tk.State != Verification || agentComments != 1 {
				t.Errorf("%s#%d: %s with %d agent comments", tk.Project, tk.ID, tk.State, agentComments)
			}
		}
	}
}

// A run whose lease was taken over cannot write anything.
func TestFencing(t *testing.T) {
	t.Parallel()
	var clockMu sync.Mutex
	clock := time.Now()
	now := func() time.Time { clockMu.Lock(); defer clockMu.Unlock(); return clock }
	advance := func(d time.Duration) { clockMu.Lock(); clock = clock.Add(d); clockMu.Unlock() }
	b, _ := newBoard(t, Options{LeaseTTL: time.Minute, Now: now})
	ctx := context.Background()
	if _, err := b.CreateProject(ctx, "p", makeRepo(t), ""); err != nil {
		t.Fatal(err)
	}
	tk, _ := b.CreateTicket(ctx, "p", NewTicket{Title: "x"})
	old, _, err := b.claim("p", tk.ID, "zombie", false)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := b.claim("p", tk.ID, "other", false); !errors.Is(err, ErrLeased) {
		t.Fatalf("second claim while live: %v", err)
	}
	advance(61 * time.Second)
	cur, _, err := b.claim("p", tk.ID, "other", false)
	if err != nil {
		t.Fatal(err)
	}
	if cur.Token <= old.Token {
		t.Fatalf("token did not grow: %d then %d", old.Token, cur.Token)
	}
	if _, err := b.agentComment(old, "zombie", "late write", ""); !errors.Is(err, ErrLeaseLost) {
		t.Fatalf("zombie comment: %v", err)
	}
	if _, err := b.agentMove(old, "zombie", Verification, ""); !errors.Is(err, ErrLeaseLost) {
		t.Fatalf("zombie move: %v", err)
	}
	if err := b.renew(old); !errors.Is(err, ErrLeaseLost) {
		t.Fatalf("zombie renew: %v", err)
	}
	if err := b.finish(old, &runTools{}, &RunResult{Text: "x"}, nil, false); !errors.Is(err, ErrLeaseLost) {
		t.Fatalf("zombie finish: %v", err)
	}
	if _, err := b.agentComment(cur, "dev", "real write", ""); err != nil {
		t.Fatal(err)
	}
	cs, _ := b.Comments(ctx, "p", tk.ID)
	var bodies []string
	for _, c := range cs {
		bodies = append(bodies, c.Body)
		if strings.Contains(c.Body, "late write") {
			t.Fatal("zombie wrote")
		}
	}
	if !strings.Contains(strings.Join(bodies, "|"), "stopped without finishing") {
		t.Fatalf("expired run not recorded: %q", bodies)
	}
}

// A failed run becomes a system comment; the ticket waits out the backoff
// and is then claimable again.
func TestFailedRunBackoff(t *testing.T) {
	t.Parallel()
	var calls atomic.Int64
	fail := RunnerFunc(func(ctx context.Context, req *RunRequest) (*RunResult, error) {
		if calls.Add(1) == 1 {
			return nil, errors.New("model overloaded")
		}
		return (&countingRunner{}).RunTicket(ctx, req)
	})
	b, _ := newBoard(t, Options{Runner: fail, FailureBackoff: 200 * time.Millisecond})
	ctx := context.Background()
	if _, err := b.CreateProject(ctx, "p", makeRepo(t), ""); err != nil {
		t.Fatal(err)
	}
	tk, _ := b.CreateTicket(ctx, "p", NewTicket{Title: "x"})
	rep, err := b.Beat(ctx, "hb")
	if err != nil || rep.Failed != 1 {
		t.Fatalf("beat: %+v %v", rep, err)
	}
	rep, _ = b.Beat(ctx, "hb")
	if rep.Claimed != 0 {
		t.Fatalf("claimed during backoff: %+v", rep)
	}
	time.Sleep(250 * time.Millisecond)
	rep, _ = b.Beat(ctx, "hb")
	if rep.Succeeded != 1 {
		t.Fatalf("after backoff: %+v", rep)
	}
	cs, _ := b.Comments(ctx, "p", tk.ID)
	var failed int
	for _, c := range cs {
		if c.Kind == System && strings.Contains(c.Body, "failed: model overloaded") {
			failed++
		}
	}
	if failed != 1 {
		t.Fatalf("failure comments: %d", failed)
	}
}

// Work on the ticket branch; ship merges it into main locally.
func TestBranchAndShip(t *testing.T) {
	t.Parallel()
	writer := RunnerFunc(func(ctx context.Context, req *RunRequest) (*RunResult, error) {
		br, _ := hostGit(ctx, req.RepoDir, "symbolic-ref", "--short", "HEAD")
		if br != BranchName(req.Ticket.ID) {
			return nil, fmt.Errorf("on branch %q", br)
		}
		if err := os.WriteFile(filepath.Join(req.RepoDir, "feature.txt"), []byte("new\n"), 0o644); err != nil {
			return nil, err
		}
		if _, err := callTool(ctx, req, "ticket_update_state", `{"state":"verification","reason":"added feature.txt"}`); err != nil {
			return nil, err
		}
		return &RunResult{}, nil
	})
	b, svc := newBoard(t, Options{Runner: writer})
	ctx := context.Background()
	repo := makeRepo(t)
	if _, err := b.CreateProject(ctx, "p", repo, ""); err != nil {
		t.Fatal(err)
	}
	tk, _ := b.CreateTicket(ctx, "p", NewTicket{Title: "add a feature"})
	if _, err := b.Ship(ctx, "p", tk.ID, "ann"); !errors.Is(err, ErrTransition) {
		t.Fatalf("ship from backlog: %v", err)
	}
	if err := b.Dispatch(ctx, "p", tk.ID, "api"); err != nil {
		t.Fatal(err)
	}
	got, err := b.Ship(ctx, "p", tk.ID, "ann")
	if err != nil {
		t.Fatal(err)
	}
	if got.State != Done || got.MergedAs == "" {
		t.Fatalf("after ship: %+v", got)
	}
	dir := svc.FilesDir("p")
	if br := run(t, dir, "git", "-c", "safe.directory=*", "symbolic-ref", "--short", "HEAD"); br != "main" {
		t.Fatalf("on %s after ship", br)
	}
	if _, err := os.Stat(filepath.Join(dir, "feature.txt")); err != nil {
		t.Fatal("merged file missing on main")
	}
	if _, err := b.Ship(ctx, "p", tk.ID, "ann"); !errors.Is(err, ErrTransition) {
		t.Fatalf("second ship: %v", err)
	}
}

// A project's .bulkhead/ overrides persona files, but a symlink planted
// there is never followed out of the tree.
func TestPersonaOverrideNoSymlink(t *testing.T) {
	t.Parallel()
	b, svc := newBoard(t, Options{})
	ctx := context.Background()
	p, err := b.CreateProject(ctx, "p", makeRepo(t), "developer")
	if err != nil {
		t.Fatal(err)
	}
	secret := filepath.Join(t.TempDir(), "host-secret")
	os.WriteFile(secret, []byte("HOST SECRET"), 0o600)
	over := filepath.Join(svc.FilesDir("p"), ".bulkhead")
	os.MkdirAll(over, 0o755)
	os.WriteFile(filepath.Join(over, "SOUL.md"), []byte("project soul"), 0o644)
	if err := os.Symlink(secret, filepath.Join(over, "USER.md")); err != nil {
		t.Fatal(err)
	}
	files, _, err := b.bootstrap(p, &Ticket{})
	if err != nil {
		t.Fatal(err)
	}
	var soul, user string
	for _, f := range files {
		switch f.Name {
		case "SOUL.md":
			soul = f.Content
		case "USER.md":
			user = f.Content
		}
	}
	if soul != "project soul" {
		t.Fatalf("override not used: %q", soul)
	}
	if strings.Contains(user, "HOST SECRET") || user == "" {
		t.Fatalf("USER.md = %q", user)
	}
	// A symlinked .bulkhead directory is ignored as a whole.
	os.RemoveAll(over)
	target := t.TempDir()
	os.WriteFile(filepath.Join(target, "SOUL.md"), []byte("HOST SECRET"), 0o644)
	os.Symlink(target, over)
	files, _, _ = b.bootstrap(p, &Ticket{})
	for _, f := range files {
		if strings.Contains(f.Content, "HOST SECRET") {
			t.Fatal("followed a symlinked .bulkhead")
		}
	}
}

func TestPersonas(t *testing.T) {
	t.Parallel()
	b, _ := newBoard(t, Options{})
	ps, err := b.Personas()
	if err != nil || len(ps) != 3 {
		t.Fatalf("%d personas, %v", len(ps), err)
	}
	for _, p := range ps {
		if len(p.Files) != len(PersonaFiles) {
			t.Errorf("%s has %d files", p.Name, len(p.Files))
		}
	}
	if _, err := b.AddPersona("developer", map[string]string{"SOUL.md": "x"}); !errors.Is(err, ErrPersonaExists) {
		t.Fatalf("replace built-in: %v", err)
	}
	if _, err := b.AddPersona("writer", map[string]string{"IDENTITY.md": "x"}); !errors.Is(err, ErrInvalid) {
		t.Fatalf("no soul: %v", err)
	}
	if _, err := b.AddPersona("writer", map[string]string{"SOUL.md": "x", "../etc": "y"}); !errors.Is(err, ErrInvalid) {
		t.Fatalf("bad file name: %v", err)
	}
	if _, err := b.AddPersona("writer", map[string]string{"SOUL.md": "you write docs"}); err != nil {
		t.Fatal(err)
	}
	if p, err := b.Persona("writer"); err != nil || p.Files["SOUL.md"] != "you write docs" {
		t.Fatalf("get: %v", err)
	}
	if _, err := b.Persona("ghost"); !errors.Is(err, ErrPersonaNotFound) {
		t.Fatal(err)
	}
}

// A run that lasts several lease lifetimes keeps its lease by renewing it:
// nobody else can claim the project meanwhile.
func TestLeaseRenewal(t *testing.T) {
	t.Parallel()
	r := &countingRunner{hold: 2500 * time.Millisecond}
	b, _ := newBoard(t, Options{Runner: r, LeaseTTL: time.Second})
	ctx := context.Background()
	if _, err := b.CreateProject(ctx, "p", makeRepo(t), ""); err != nil {
		t.Fatal(err)
	}
	b.CreateTicket(ctx, "p", NewTicket{Title: "one"})
	b.CreateTicket(ctx, "p", NewTicket{Title: "two"})
	done := make(chan error, 1)
	go func() { done <- b.Dispatch(ctx, "p", 1, "long") }()
	time.Sleep(100 * time.Millisecond)
	for range 8 {
		if _, _, err := b.claim("p", 2, "intruder", true); !errors.Is(err, ErrLeased) {
			t.Fatalf("claim during a renewed run: %v", err)
		}
		time.Sleep(250 * time.Millisecond)
	}
	if err := <-done; err != nil {
		t.Fatalf("long run: %v", err)
	}
	if r.runs[logKey("p", 1)] != 1 || r.runs[logKey("p", 2)] != 0 {
		t.Fatalf("runs: %v", r.runs)
	}
}

// A run cut short by shutdown is noted without backoff and runs again.
func TestInterruptedRun(t *testing.T) {
	t.Parallel()
	r := &countingRunner{hold: time.Minute}
	b, _ := newBoard(t, Options{Runner: r})
	ctx, cancel := context.WithCancel(context.Background())
	if _, err := b.CreateProject(ctx, "p", makeRepo(t), ""); err != nil {
		t.Fatal(err)
	}
	b.CreateTicket(ctx, "p", NewTicket{Title: "one"})
	go func() { time.Sleep(200 * time.Millisecond); cancel() }()
	b.Beat(ctx, "hb")
	tk, _ := b.Ticket(context.Background(), "p", 1)
	if tk.Failures != 0 || !tk.NotBefore.IsZero() || !tk.actionable(time.Now()) {
		t.Fatalf("after interruption: %+v", tk)
	}
	cs, _ := b.Comments(context.Background(), "p", 1)
	if last := cs[len(cs)-1]; !strings.Contains(last.Body, "interrupted") {
		t.Fatalf("last comment %q", last.Body)
	}
	r.hold = 0
	if rep, err := b.Beat(context.Background(), "hb"); err != nil || rep.Succeeded != 1 {
		t.Fatalf("rerun: %+v %v", rep, err)
	}
}

// Scoring: returned work first, then unanswered human comments, work in
// progress, the backlog; priority within a band; done and verification
// without news never.
func TestScoring(t *testing.T) {
	t.Parallel()
	now := time.Now()
	mk := func(st State, prio int, mod func(*Ticket)) *Ticket {
		tk := &Ticket{State: st, Priority: prio, UpdatedAt: now}
		if mod != nil {
			mod(tk)
		}
		return tk
	}
	returned := mk(InProgress, 3, func(t *Ticket) { t.Returned = true })
	answered := mk(Verification, 3, func(t *Ticket) { t.LastHuman, t.SeenThrough = 5, 4 })
	working := mk(InProgress, 3, nil)
	urgent := mk(Backlog, 0, nil)
	low := mk(Backlog, 3, nil)
	oldLow := mk(Backlog, 3, func(t *Ticket) { t.UpdatedAt = now.Add(-2 * time.Hour) })
	order := []*Ticket{returned, answered, working, urgent, oldLow, low}
	for i := 1; i < len(order); i++ {
		if order[i-1].score(now) <= order[i].score(now) {
			t.Errorf("ticket %d (%v) does not outrank %d (%v)", i-1, order[i-1].score(now), i, order[i].score(now))
		}
	}
	for _, tk := range []*Ticket{mk(Done, 0, nil), mk(Verification, 0, nil), mk(Backlog, 0, func(t *Ticket) { t.NotBefore = now.Add(time.Minute) })} {
		if tk.actionable(now) {
			t.Errorf("%+v is actionable", tk)
		}
	}
}

// A run that leaves the ticket in progress (the agent asked a question)
// is not repeated every beat: the ticket waits for a human comment or the
// idle retry.
func TestIdleRetry(t *testing.T) {
	t.Parallel()
	var runs atomic.Int64
	ask := RunnerFunc(func(ctx context.Context, req *RunRequest) (*RunResult, error) {
		runs.Add(1)
		return &RunResult{Text: "Which colour should the footer be?"}, nil
	})
	b, _ := newBoard(t, Options{Runner: ask})
	ctx := context.Background()
	if _, err := b.CreateProject(ctx, "p", makeRepo(t), ""); err != nil {
		t.Fatal(err)
	}
	b.CreateTicket(ctx, "p", NewTicket{Title: "footer"})
	for range 3 {
		if _, err := b.Beat(ctx, "hb"); err != nil {
			t.Fatal(err)
		}
	}
	if runs.Load() != 1 {
		t.Fatalf("%d runs before any answer", runs.Load())
	}
	if _, err := b.Comment(ctx, "p", 1, "ann", "Blue.", ""); err != nil {
		t.Fatal(err)
	}
	if rep, _ := b.Beat(ctx, "hb"); rep.Claimed != 1 || runs.Load() != 2 {
		t.Fatalf("after the answer: %+v, %d runs", rep, runs.Load())
	}
	cs, _ := b.Comments(ctx, "p", 1)
	asked := 0
	for _, c := range cs {
		if c.Kind == Agent && strings.Contains(c.Body, "Which colour") {
			asked++
		}
	}
	if asked != 2 {
		t.Fatalf("agent's final text posted %d times", asked)
	}
}

// Deleting a project's workspace retires its board: the heartbeat skips
// it, and a new project with the same id starts empty.
func TestDeletedWorkspace(t *testing.T) {
	t.Parallel()
	r := &countingRunner{}
	b, svc := newBoard(t, Options{Runner: r})
	ctx := context.Background()
	repo := makeRepo(t)
	if _, err := b.CreateProject(ctx, "p", repo, ""); err != nil {
		t.Fatal(err)
	}
	b.CreateTicket(ctx, "p", NewTicket{Title: "orphan"})
	if _, err := b.CreateProject(ctx, "p2", repo, ""); err != nil {
		t.Fatal(err)
	}
	b.CreateTicket(ctx, "p2", NewTicket{Title: "neighbour"})
	if err := svc.Delete(ctx, "p"); err != nil {
		t.Fatal(err)
	}
	if rep, err := b.Beat(ctx, "hb"); err != nil || rep.Claimed != 1 || r.runs[logKey("p", 1)] != 0 {
		t.Fatalf("beat over a deleted project: %+v %v %v", rep, err, r.runs)
	}
	if _, err := b.Project(ctx, "p"); !errors.Is(err, ErrProjectNotFound) {
		t.Fatalf("deleted project: %v", err)
	}
	if _, err := b.CreateProject(ctx, "p", repo, ""); err != nil {
		t.Fatal(err)
	}
	ts, err := b.Tickets(ctx, "p")
	if err != nil || len(ts) != 0 {
		t.Fatalf("new project has old tickets: %d %v", len(ts), err)
	}
	if ts, err := b.Tickets(ctx, "p2"); err != nil || len(ts) != 1 || ts[0].State != Verification {
		t.Fatalf("neighbour p2 after purging p: %v %v", ts, err)
	}
	tk, _ := b.CreateTicket(ctx, "p", NewTicket{Title: "fresh"})
	if tk.ID != 1 {
		t.Fatalf("numbering did not restart: %d", tk.ID)
	}
}
