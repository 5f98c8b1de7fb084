package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/bulkhead-dev/bulkhead/agent"
	"github.com/bulkhead-dev/bulkhead/board"
	"github.com/bulkhead-dev/bulkhead/kv"
	"github.com/bulkhead-dev/bulkhead/netguard"
	"github.com/bulkhead-dev/bulkhead/workspace"
)

// ProjectCmd groups the project commands.
type ProjectCmd struct {
	Create ProjectCreateCmd `cmd:"" help:"Create a project: a workspace with a clone of a git repository and a persona."`
	List   ProjectListCmd   `cmd:"" aliases:"ls" help:"List projects."`
	Show   ProjectShowCmd   `cmd:"" help:"Show a project and its board."`
}

// ProjectCreateCmd creates a project.
type ProjectCreateCmd struct {
	ID      string `arg:"" help:"Project (workspace) id (${id_rule})."`
	Repo    string `required:"" placeholder:"URL|PATH" help:"Git repository to clone: a URL or a local path."`
	Persona string `default:"developer" help:"Persona the project's agent starts from (see persona list)."`
	JSON    bool   `help:"Print as JSON."`
}

// Run creates.
func (c *ProjectCreateCmd) Run(g *Globals) error {
	b, err := g.boardAPI()
	if err != nil {
		return err
	}
	p, err := b.CreateProject(g.Context(), c.ID, c.Repo, c.Persona)
	if err != nil {
		return err
	}
	if c.JSON {
		return writeJSON(g, p)
	}
	fmt.Fprintf(g.Stdout, "created project %s: %s cloned into %s (branch %s), persona %s\n", p.ID, p.Repo, g.filesDir(p.ID), p.DefaultBranch, p.Persona)
	return nil
}

// ProjectListCmd lists projects.
type ProjectListCmd struct {
	JSON bool `help:"Print as JSON."`
}

// Run lists.
func (c *ProjectListCmd) Run(g *Globals) error {
	b, err := g.boardAPI()
	if err != nil {
		return err
	}
	ps, err := b.Projects(g.Context())
	if err != nil {
		return err
	}
	if c.JSON {
		return writeJSON(g, ps)
	}
	if len(ps) == 0 {
		fmt.Fprintln(g.Stdout, "no projects; create one with: bulkhead project create <id> --repo URL|PATH")
		return nil
	}
	tw := tabwriter.NewWriter(g.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tPERSONA\tBRANCH\tREPO")
	for _, p := range ps {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", p.ID, p.Persona, p.DefaultBranch, p.Repo)
	}
	return tw.Flush()
}

// ProjectShowCmd shows a project.
type ProjectShowCmd struct {
	ID   string `arg:"" help:"Project id."`
	JSON bool   `help:"Print as JSON."`
}

// Run shows.
func (c *ProjectShowCmd) Run(g *Globals) error {
	b, err := g.boardAPI()
	if err != nil {
		return err
	}
	p, err := b.Project(g.Context(), c.ID)
	if err != nil {
		return err
	}
	ts, err := b.Tickets(g.Context(), c.ID)
	if err != nil {
		return err
	}
	if c.JSON {
		return writeJSON(g, map[string]any{"project": p, "tickets": ts})
	}
	fmt.Fprintf(g.Stdout, "project %s\n  repo     %s\n  branch   %s\n  persona  %s\n  model    %s/%s\n  files    %s\n", p.ID, p.Repo, p.DefaultBranch, p.Persona, p.Provider, p.Model, g.filesDir(p.ID))
	for _, st := range board.States {
		var line []string
		for _, t := range ts {
			if t.State == st {
				line = append(line, fmt.Sprintf("#%d %s", t.ID, t.Title))
			}
		}
		fmt.Fprintf(g.Stdout, "%s (%d)\n", st, len(line))
		for _, l := range line {
			fmt.Fprintf(g.Stdout, "  %s\n", l)
		}
	}
	return nil
}

// PersonaCmd groups the persona commands.
type PersonaCmd struct {
	List PersonaListCmd `cmd:"" aliases:"ls" help:"List personas."`
	Show PersonaShowCmd `cmd:"" help:"Show a persona's bootstrap files."`
	Add  PersonaAddCmd  `cmd:"" help:"Add a persona from a directory of bootstrap files (SOUL.md required)."`
}

// PersonaListCmd lists personas.
type PersonaListCmd struct {
	JSON bool `help:"Print as JSON."`
}

// Run lists.
func (c *PersonaListCmd) Run(g *Globals) error {
	b, err := g.boardAPI()
	if err != nil {
		return err
	}
	ps, err := b.ListPersonas(g.Context())
	if err != nil {
		return err
	}
	if c.JSON {
		return writeJSON(g, ps)
	}
	for _, p := range ps {
		kind := "added"
		if p.Builtin {
			kind = "built-in"
		}
		fmt.Fprintf(g.Stdout, "%-20s %-9s %d files\n", p.Name, kind, len(p.Files))
	}
	return nil
}

// PersonaShowCmd shows a persona.
type PersonaShowCmd struct {
	Name string `arg:"" help:"Persona name."`
	File string `help:"Print only this file (e.g. SOUL.md)."`
	JSON bool   `help:"Print as JSON."`
}

// Run shows.
func (c *PersonaShowCmd) Run(g *Globals) error {
	b, err := g.boardAPI()
	if err != nil {
		return err
	}
	p, err := b.GetPersona(g.Context(), c.Name)
	if err != nil {
		return err
	}
	if c.JSON {
		return writeJSON(g, p)
	}
	if c.File != "" {
		content, ok := p.Files[c.File]
		if !ok {
			return &UsageError{fmt.Errorf("persona %s has no %s (files: %s)", p.Name, c.File, strings.Join(board.PersonaFiles, ", "))}
		}
		fmt.Fprint(g.Stdout, content)
		return nil
	}
	for _, f := range board.PersonaFiles {
		if content, ok := p.Files[f]; ok {
			fmt.Fprintf(g.Stdout, "==> %s <==\n%s\n", f, strings.TrimRight(content, "\n"))
		}
	}
	return nil
}

// PersonaAddCmd adds a persona.
type PersonaAddCmd struct {
	Name string `arg:"" help:"Persona name (${id_rule})."`
	From string `required:"" type:"existingdir" placeholder:"DIR" help:"Directory holding the bootstrap files."`
}

// Run adds.
func (c *PersonaAddCmd) Run(g *Globals) error {
	files, err := board.ReadPersonaDir(c.From)
	if err != nil {
		return &UsageError{err}
	}
	b, err := g.boardAPI()
	if err != nil {
		return err
	}
	p, err := b.NewPersona(g.Context(), c.Name, files)
	if err != nil {
		return err
	}
	fmt.Fprintf(g.Stdout, "added persona %s (%d files)\n", p.Name, len(p.Files))
	return nil
}

// TicketCmd groups the ticket commands.
type TicketCmd struct {
	Create  TicketCreateCmd  `cmd:"" help:"Open a ticket in a project's backlog."`
	List    TicketListCmd    `cmd:"" aliases:"ls" help:"List a project's tickets."`
	Show    TicketShowCmd    `cmd:"" help:"Show a ticket and its comment thread."`
	Comment TicketCommentCmd `cmd:"" help:"Comment on a ticket as a human."`
	Move    TicketMoveCmd    `cmd:"" help:"Move a ticket: backlog, in_progress, verification, done (returning from verification needs --comment)."`
	Ship    TicketShipCmd    `cmd:"" help:"Merge a verified ticket's branch into the default branch and mark it done."`
}

// TicketCreateCmd opens a ticket.
type TicketCreateCmd struct {
	Project     string `arg:"" help:"Project id."`
	Title       string `required:"" help:"One-line title."`
	Kind        string `default:"feature" enum:"feature,bug,chore" help:"feature, bug or chore."`
	Description string `help:"What is wanted and why."`
	Criteria    string `help:"Acceptance criteria."`
	Priority    int    `default:"2" help:"0 (highest) to 3."`
	Assignee    string `help:"Persona to work it (default: the project's)."`
	Author      string `help:"Who opens it."`
	JSON        bool   `help:"Print as JSON."`
}

// Run creates.
func (c *TicketCreateCmd) Run(g *Globals) error {
	b, err := g.boardAPI()
	if err != nil {
		return err
	}
	t, err := b.CreateTicket(g.Context(), c.Project, board.NewTicket{
		Kind: board.Kind(c.Kind), Title: c.Title, Description: c.Description, Criteria: c.Criteria,
		Priority: c.Priority, Assignee: c.Assignee, Author: author(c.Author),
	})
	if err != nil {
		return err
	}
	if c.JSON {
		return writeJSON(g, t)
	}
	fmt.Fprintf(g.Stdout, "opened ticket %s#%d: %s\n", t.Project, t.ID, t.Title)
	return nil
}

// TicketListCmd lists tickets.
type TicketListCmd struct {
	Project string `arg:"" help:"Project id."`
	State   string `help:"Only tickets in this state."`
	JSON    bool   `help:"Print as JSON."`
}

// Run lists.
func (c *TicketListCmd) Run(g *Globals) error {
	var want board.State
	if c.State != "" {
		st, err := board.ParseState(c.State)
		if err != nil {
			return &UsageError{err}
		}
		want = st
	}
	b, err := g.boardAPI()
	if err != nil {
		return err
	}
	ts, err := b.Tickets(g.Context(), c.Project)
	if err != nil {
		return err
	}
	out := ts[:0]
	for _, t := range ts {
		if want == "" || t.State == want {
			out = append(out, t)
		}
	}
	if c.JSON {
		return writeJSON(g, out)
	}
	tw := tabwriter.NewWriter(g.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tSTATE\tKIND\tPRI\tCOMMENTS\tTITLE")
	for _, t := range out {
		fmt.Fprintf(tw, "%d\t%s\t%s\tP%d\t%d\t%s\n", t.ID, t.State, t.Kind, t.Priority, t.Comments, t.Title)
	}
	return tw.Flush()
}

// TicketShowCmd shows a ticket.
type TicketShowCmd struct {
	Project string `arg:"" help:"Project id."`
	ID      int64  `arg:"" help:"Ticket number."`
	JSON    bool   `help:"Print as JSON."`
}

// Run shows.
func (c *TicketShowCmd) Run(g *Globals) error {
	b, err := g.boardAPI()
	if err != nil {
		return err
	}
	t, err := b.Ticket(g.Context(), c.Project, c.ID)
	if err != nil {
		return err
	}
	cs, err := b.Comments(g.Context(), c.Project, c.ID)
	if err != nil {
		return err
	}
	if c.JSON {
		return writeJSON(g, map[string]any{"ticket": t, "comments": cs})
	}
	fmt.Fprintf(g.Stdout, "#%d %s\n  %s · %s · P%d · branch %s · session %s\n", t.ID, t.Title, t.State, t.Kind, t.Priority, board.BranchName(t.ID), board.SessionKey(t.Project, t.ID))
	if t.Description != "" {
		fmt.Fprintf(g.Stdout, "\n%s\n", t.Description)
	}
	if t.Criteria != "" {
		fmt.Fprintf(g.Stdout, "\nAcceptance criteria:\n%s\n", t.Criteria)
	}
	for _, cm := range cs {
		anchor := ""
		if cm.Anchor != "" {
			anchor = " @" + cm.Anchor
		}
		fmt.Fprintf(g.Stdout, "\n[%d] %s %s, %s%s\n%s\n", cm.Seq, cm.Kind, cm.Author, cm.Time.Local().Format("2006-01-02 15:04"), anchor, cm.Body)
	}
	return nil
}

// TicketCommentCmd comments on a ticket.
type TicketCommentCmd struct {
	Project string `arg:"" help:"Project id."`
	ID      int64  `arg:"" help:"Ticket number."`
	Body    string `arg:"" help:"Comment text ('-' reads stdin)."`
	Anchor  string `help:"What the comment is about: file:line, a commit, a criterion."`
	Author  string `help:"Who comments."`
}

// Run comments.
func (c *TicketCommentCmd) Run(g *Globals) error {
	body := c.Body
	if body == "-" {
		in, err := io.ReadAll(io.LimitReader(g.Stdin, board.MaxText+1))
		if err != nil {
			return &UsageError{fmt.Errorf("read comment from stdin: %w", err)}
		}
		body = string(in)
	}
	b, err := g.boardAPI()
	if err != nil {
		return err
	}
	cm, err := b.Comment(g.Context(), c.Project, c.ID, author(c.Author), body, c.Anchor)
	if err != nil {
		return err
	}
	fmt.Fprintf(g.Stdout, "comment %d on %s#%d\n", cm.Seq, c.Project, c.ID)
	return nil
}

// TicketMoveCmd moves a ticket.
type TicketMoveCmd struct {
	Project string `arg:"" help:"Project id."`
	ID      int64  `arg:"" help:"Ticket number."`
	State   string `arg:"" help:"backlog, in_progress, verification or done."`
	Comment string `help:"Why (required when returning from verification or reopening)."`
	Author  string `help:"Who moves it."`
}

// Run moves.
func (c *TicketMoveCmd) Run(g *Globals) error {
	st, err := board.ParseState(c.State)
	if err != nil {
		return &UsageError{err}
	}
	b, err := g.boardAPI()
	if err != nil {
		return err
	}
	t, err := b.Move(g.Context(), c.Project, c.ID, st, author(c.Author), c.Comment)
	if err != nil {
		return err
	}
	fmt.Fprintf(g.Stdout, "%s#%d is now %s\n", t.Project, t.ID, t.State)
	return nil
}

// TicketShipCmd ships a ticket.
type TicketShipCmd struct {
	Project string `arg:"" help:"Project id."`
	ID      int64  `arg:"" help:"Ticket number."`
	Author  string `help:"Who ships it."`
}

// Run ships.
func (c *TicketShipCmd) Run(g *Globals) error {
	b, err := g.boardAPI()
	if err != nil {
		return err
	}
	t, err := b.Ship(g.Context(), c.Project, c.ID, author(c.Author))
	if err != nil {
		return err
	}
	fmt.Fprintf(g.Stdout, "shipped %s#%d: %s merged as %s\n", t.Project, t.ID, board.BranchName(t.ID), t.MergedAs)
	return nil
}

// HeartbeatCmd runs pending ticket work.
type HeartbeatCmd struct {
	Once        bool          `help:"Run one heartbeat and exit (for cron or a systemd timer)."`
	Interval    time.Duration `default:"1m" help:"Without --once: time between heartbeats."`
	Concurrency int           `help:"Most ticket runs at once (default: from the machine's cores and memory)."`
	LeaseTTL    time.Duration `name:"lease-ttl" default:"2m" help:"Lease lifetime without renewal; a run that dies is picked up again after this."`
	Holder      string        `help:"Name of this heartbeat in leases and comments (default: host name and pid)."`
}

// Run beats.
func (c *HeartbeatCmd) Run(g *Globals) error {
	svc, err := g.Service()
	if errors.Is(err, kv.ErrLocked) {
		return fmt.Errorf("%w: a running server holds %s and runs the heartbeat itself every minute", err, g.StateDir)
	}
	if err != nil {
		return err
	}
	if err := svc.Unlock(); err != nil {
		return err
	}
	b := board.For(svc, board.Options{Logger: g.Log, Concurrency: c.Concurrency, LeaseTTL: c.LeaseTTL})
	guard, err := netguard.New(netguard.Config{Allow: egressAllowFromEnv(), Logger: g.Log})
	if err != nil {
		return &UsageError{fmt.Errorf("%s: %w", egressAllowEnv, err)}
	}
	b.SetRunner(EnvTicketRunner(svc, guard))
	holder := c.Holder
	if holder == "" {
		host, _ := os.Hostname()
		holder = fmt.Sprintf("heartbeat %s/%d", host, os.Getpid())
	}
	if !c.Once {
		b.Serve(g.Context(), c.Interval, holder)
		return nil
	}
	rep, err := b.Beat(g.Context(), holder)
	fmt.Fprintf(g.Stdout, "heartbeat: %d claimed, %d succeeded, %d failed, %d lost their lease\n", rep.Claimed, rep.Succeeded, rep.Failed, rep.Lost)
	return err
}

// EnvTicketRunner runs tickets with each project's configured provider and
// model. Keys come from the project workspace's credentials
// (<provider>_api_key[_n]) first, then the host environment
// (<PROVIDER>_API_KEY…); the API root from <PROVIDER>_BASE_URL when set,
// through the SSRF guard. Besides the ticket tools the agent gets bash in
// the project's sandbox and the file tools over its files, under the
// workspace's path policy and quota. guard is used when the service has no
// agent options of its own yet.
func EnvTicketRunner(svc *workspace.Service, guard *netguard.Guard) board.TicketRunner {
	svc.SetAgentOptionsIfUnset(workspace.AgentOptions{Guard: guard})
	return board.RunnerFunc(func(ctx context.Context, req *board.RunRequest) (*board.RunResult, error) {
		p := req.Project
		chain, err := svc.ModelChain(ctx, p.ID, []workspace.ModelRef{{Provider: p.Provider, Model: p.Model}})
		if err != nil {
			return nil, err
		}
		w, err := svc.Get(ctx, p.ID)
		if err != nil {
			return nil, err
		}
		tree, err := svc.Files(ctx, p.ID)
		if err != nil {
			return nil, err
		}
		defer tree.Close()
		runner := &board.ModelRunner{Model: chain, SandboxTools: func(context.Context, *board.RunRequest) ([]agent.Tool, error) {
			tools := agent.FileTools(tree, agent.FileToolLimits{})
			tools = append(tools, agent.BashTool(svc.ToolExecutor(p.ID), time.Duration(w.Config.Limits.ExecTimeout), 0))
			return filterTools(w.Config.Tools, tools), nil
		}}
		return runner.RunTicket(ctx, req)
	})
}

// filterTools applies a workspace's tool policy (empty allow = all; deny wins).
func filterTools(p workspace.ToolPolicy, tools []agent.Tool) []agent.Tool {
	out := tools[:0]
	for _, t := range tools {
		if slices.Contains(p.Deny, t.Name()) || (len(p.Allow) > 0 && !slices.Contains(p.Allow, t.Name())) {
			continue
		}
		out = append(out, t)
	}
	return out
}

// author is who a human action is recorded as: the flag, else $USER.
func author(flag string) string {
	if flag != "" {
		return flag
	}
	if u := os.Getenv("USER"); u != "" {
		return u
	}
	return "human"
}

// StartHeartbeat runs the board's heartbeat every interval inside
// `bulkhead serve` until ctx ends. It uses the node's shared Board (the one
// the server's routes use), giving it EnvTicketRunner unless a runner is
// already set.
func StartHeartbeat(ctx context.Context, g *Globals, svc *workspace.Service, guard *netguard.Guard, interval time.Duration) *board.Board {
	b := board.For(svc, board.Options{Logger: g.Log})
	b.SetRunnerIfUnset(EnvTicketRunner(svc, guard))
	host, _ := os.Hostname()
	go b.Serve(ctx, interval, fmt.Sprintf("serve %s/%d", host, os.Getpid()))
	return b
}

const egressAllowEnv = "BULKHEAD_EGRESS_ALLOW"

// egressAllowFromEnv reads the operator's egress allowlist (comma-separated),
// the same variable `serve --egress-allow` reads.
func egressAllowFromEnv() []string {
	var out []string
	for _, v := range strings.Split(os.Getenv(egressAllowEnv), ",") {
		if v = strings.TrimSpace(v); v != "" {
			out = append(out, v)
		}
	}
	return out
}
