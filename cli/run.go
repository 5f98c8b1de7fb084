package cli

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/bulkhead-dev/bulkhead/agent"
	"github.com/bulkhead-dev/bulkhead/board"
	"github.com/bulkhead-dev/bulkhead/kv"
	"github.com/bulkhead-dev/bulkhead/netguard"
	"github.com/bulkhead-dev/bulkhead/server"
	"github.com/bulkhead-dev/bulkhead/workspace"
)

// agentAPI is what the run and session commands need: the state dir opened
// in this process (*workspace.Service), or a running server over its unix
// socket (socketAPI).
type agentAPI interface {
	StartRun(ctx context.Context, ws string, req workspace.RunRequest) (*workspace.Run, error)
	Follow(ctx context.Context, ws, id string, after uint64, fn func(workspace.RunEvent) error) error
	CancelRun(ctx context.Context, ws, id string) error
	GetRun(ctx context.Context, ws, id string) (*workspace.Run, error)
	ListSessions(ctx context.Context, ws string) ([]workspace.Session, error)
	GetSession(ctx context.Context, ws string, ref workspace.SessionRef) (*workspace.Session, error)
	DeleteSession(ctx context.Context, ws string, ref workspace.SessionRef) error
}

var (
	_ agentAPI = (*workspace.Service)(nil)
	_ agentAPI = (*socketAPI)(nil)
)

// agentBackend opens the state dir, or reaches the server holding it.
// allow widens the network guard of runs made in this process.
func (g *Globals) agentBackend(allow []string) (agentAPI, error) {
	svc, err := g.Service()
	if err == nil {
		opts := workspace.AgentOptions{Personas: BoardPersonas(svc)}
		if len(allow) > 0 {
			guard, err := netguard.New(netguard.Config{Allow: allow})
			if err != nil {
				return nil, &UsageError{err}
			}
			opts.Guard = guard
		}
		svc.SetAgentOptions(opts)
		return svc, nil
	}
	sock := filepath.Join(g.StateDir, server.SocketName)
	if errors.Is(err, kv.ErrLocked) {
		if _, serr := os.Stat(sock); serr == nil {
			if len(allow) > 0 {
				return nil, &UsageError{errors.New("--allow-endpoint only applies when no server holds the state dir; configure the server instead")}
			}
			return newSocketAPI(sock), nil
		}
	}
	return nil, err
}

// RunCmd runs the agent once.
type RunCmd struct {
	Workspace string   `arg:"" help:"Workspace id."`
	Message   string   `arg:"" help:"What to ask the agent."`
	Session   string   `help:"Continue this session (id or kind:id); default: a new session." placeholder:"ID"`
	Model     string   `help:"Try this configured model first (model or provider/model from the workspace config)." placeholder:"M"`
	JSON      bool     `help:"Print each event as one JSON line."`
	Allow     []string `name:"allow-endpoint" help:"Let the model client reach this local host:port or CIDR (an Ollama on loopback); repeatable." placeholder:"HOST:PORT"`
}

// Run starts the run, streams it, and exits non-zero unless it succeeded.
// Ctrl-C cancels the run and waits for it to be recorded.
func (c *RunCmd) Run(g *Globals) error {
	if strings.TrimSpace(c.Message) == "" {
		return &UsageError{errors.New("run: the message is empty")}
	}
	api, err := g.agentBackend(c.Allow)
	if err != nil {
		return err
	}
	run, err := api.StartRun(g.Context(), c.Workspace, workspace.RunRequest{Message: c.Message, Session: c.Session, Model: c.Model})
	switch {
	case errors.Is(err, workspace.ErrEmptyMessage), errors.Is(err, workspace.ErrInvalidSession), errors.Is(err, workspace.ErrModelNotAllowed), errors.Is(err, workspace.ErrInvalidID):
		return &UsageError{err}
	case err != nil:
		return err
	}
	if !c.JSON {
		fmt.Fprintf(g.Stderr, "run %s (session %s)\n", run.ID, run.Session)
	}
	p := &eventPrinter{out: g.Stdout, info: g.Stderr, json: c.JSON, root: run.ID}
	var last uint64
	follow := func(ctx context.Context) error {
		return api.Follow(ctx, c.Workspace, run.ID, last, func(e workspace.RunEvent) error {
			last = e.Seq
			return p.print(e)
		})
	}
	err = follow(g.Context())
	interrupted := g.Context().Err() != nil
	if interrupted {
		fmt.Fprintln(g.Stderr, "\ncancelling the run...")
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if cerr := api.CancelRun(ctx, c.Workspace, run.ID); cerr != nil && !errors.Is(cerr, workspace.ErrRunFinished) {
			return cerr
		}
		err = follow(ctx)
	}
	if err != nil {
		return err
	}
	final, err := api.GetRun(context.Background(), c.Workspace, run.ID)
	if err != nil {
		return err
	}
	if !c.JSON {
		fmt.Fprintf(g.Stderr, "%s: %d turns, %d tokens in, %d out, %s\n", final.Status, final.Turns, final.Usage.InputTokens, final.Usage.OutputTokens,
			(time.Duration(final.DurationMS) * time.Millisecond).Round(time.Millisecond))
		if final.Error != "" {
			fmt.Fprintf(g.Stderr, "error: %s\n", final.Error)
		}
	}
	switch {
	case interrupted:
		return &ExitError{Code: 130}
	case final.Status != workspace.RunSucceeded:
		return &ExitError{Code: 1}
	}
	return nil
}

// eventPrinter writes a run's events for a person (text to out, tool
// activity to info) or as JSON lines.
type eventPrinter struct {
	out, info io.Writer
	json      bool
	root      string
	midLine   bool
}

func (p *eventPrinter) print(e workspace.RunEvent) error {
	if p.json {
		b, err := json.Marshal(e)
		if err != nil {
			return err
		}
		_, err = fmt.Fprintf(p.out, "%s\n", b)
		return err
	}
	prefix := ""
	if e.RunID != p.root {
		prefix = "[subagent] "
	}
	line := func(format string, args ...any) {
		if p.midLine {
			fmt.Fprintln(p.out)
			p.midLine = false
		}
		fmt.Fprintf(p.info, prefix+format+"\n", args...)
	}
	switch e.Kind {
	case agent.EventText:
		fmt.Fprint(p.out, e.Text)
		p.midLine = !strings.HasSuffix(e.Text, "\n")
	case agent.EventReset:
		line("(retrying the turn)")
	case agent.EventToolCall:
		line("→ %s %s", e.Tool.Name, oneLine(string(e.Tool.Input), 200))
	case agent.EventToolResult:
		mark := "←"
		if e.Result.IsError {
			mark = "← error:"
		}
		line("%s %s (%s)", mark, oneLine(e.Result.Output, 200), e.Result.Duration.Round(time.Millisecond))
	case agent.EventNotice:
		if e.Notice != nil {
			b, _ := json.Marshal(e.Notice)
			line("notice: %s", b)
		}
	case agent.EventCompaction:
		line("(conversation compacted)")
	case agent.EventRunEnd:
		if p.midLine {
			fmt.Fprintln(p.out)
			p.midLine = false
		}
	}
	return nil
}

// socketAPI is agentAPI over a running server's unix socket (the server
// treats the socket's peer as admin).
type socketAPI struct {
	hc *http.Client
}

func newSocketAPI(path string) *socketAPI {
	tr := &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", path)
	}}
	return &socketAPI{hc: &http.Client{Transport: tr}}
}

func wsPath(ws string) string { return "/v1/workspaces/" + url.PathEscape(ws) }

// serverError maps an error response back to the workspace sentinels the
// commands check.
func serverError(status int, body []byte) error {
	var eb struct {
		Error struct {
			Code    string `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
	}
	_ = json.Unmarshal(body, &eb)
	msg := eb.Error.Message
	if msg == "" {
		msg = http.StatusText(status)
	}
	var sentinel error
	switch {
	case status == 404 && strings.Contains(msg, "run not found"):
		sentinel = workspace.ErrRunNotFound
	case status == 404 && strings.Contains(msg, "session not found"):
		sentinel = workspace.ErrSessionNotFound
	case status == 404:
		sentinel = workspace.ErrNotFound
	case status == 409 && strings.Contains(msg, "already finished"):
		sentinel = workspace.ErrRunFinished
	case status == 409:
		sentinel = workspace.ErrSessionBusy
	case status == 429:
		sentinel = workspace.ErrQuota
	case status == 400 && strings.Contains(msg, "invalid session"):
		sentinel = workspace.ErrInvalidSession
	case status == 400 && strings.Contains(msg, "not in the workspace config"):
		sentinel = workspace.ErrModelNotAllowed
	case status == 400:
		sentinel = workspace.ErrInvalidID
	}
	if sentinel == nil {
		return fmt.Errorf("bulkhead server: %s", msg)
	}
	return fmt.Errorf("%w: %s", sentinel, msg)
}

func (a *socketAPI) do(ctx context.Context, method, path string, body, out any) error {
	status, b, err := socketCall(ctx, a.hc, method, path, body, 64<<20)
	if err != nil {
		return err
	}
	if status >= 300 {
		return serverError(status, b)
	}
	if out != nil {
		return json.Unmarshal(b, out)
	}
	return nil
}

func (a *socketAPI) StartRun(ctx context.Context, ws string, req workspace.RunRequest) (*workspace.Run, error) {
	var r workspace.Run
	return &r, a.do(ctx, "POST", wsPath(ws)+"/runs", req, &r)
}

func (a *socketAPI) GetRun(ctx context.Context, ws, id string) (*workspace.Run, error) {
	var r workspace.Run
	return &r, a.do(ctx, "GET", wsPath(ws)+"/runs/"+url.PathEscape(id), nil, &r)
}

func (a *socketAPI) CancelRun(ctx context.Context, ws, id string) error {
	return a.do(ctx, "POST", wsPath(ws)+"/runs/"+url.PathEscape(id)+"/cancel", nil, nil)
}

func (a *socketAPI) ListSessions(ctx context.Context, ws string) ([]workspace.Session, error) {
	var out []workspace.Session
	return out, a.do(ctx, "GET", wsPath(ws)+"/sessions", nil, &out)
}

func (a *socketAPI) GetSession(ctx context.Context, ws string, ref workspace.SessionRef) (*workspace.Session, error) {
	var s workspace.Session
	return &s, a.do(ctx, "GET", wsPath(ws)+"/sessions/"+url.PathEscape(ref.String()), nil, &s)
}

func (a *socketAPI) DeleteSession(ctx context.Context, ws string, ref workspace.SessionRef) error {
	return a.do(ctx, "DELETE", wsPath(ws)+"/sessions/"+url.PathEscape(ref.String()), nil, nil)
}

// Follow reads the run's SSE stream, reconnecting after a dropped
// connection with the last sequence seen, until the run_end event.
func (a *socketAPI) Follow(ctx context.Context, ws, id string, after uint64, fn func(workspace.RunEvent) error) error {
	for attempt := 0; ; attempt++ {
		done, err := a.followOnce(ctx, ws, id, &after, fn)
		if done || ctx.Err() != nil {
			return err
		}
		if attempt >= 5 {
			return fmt.Errorf("follow run %s: %w", id, err)
		}
		time.Sleep(time.Duration(attempt+1) * 200 * time.Millisecond)
	}
}

func (a *socketAPI) followOnce(ctx context.Context, ws, id string, after *uint64, fn func(workspace.RunEvent) error) (bool, error) {
	req, err := http.NewRequestWithContext(ctx, "GET", "http://bulkhead"+wsPath(ws)+"/runs/"+url.PathEscape(id)+"/events", nil)
	if err != nil {
		return true, err
	}
	req.Header.Set("Accept", "text/event-stream")
	if *after > 0 {
		req.Header.Set("Last-Event-ID", strconv.FormatUint(*after, 10))
	}
	resp, err := a.hc.Do(req)
	if err != nil {
		return false, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		return true, serverError(resp.StatusCode, b)
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 16<<20)
	var kind, data string
	sawEnd := false
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "event: "):
			kind = line[7:]
		case strings.HasPrefix(line, "data: "):
			data = line[6:]
		case line == "" && kind != "":
			if kind == "error" {
				return true, fmt.Errorf("bulkhead server: %s", data)
			}
			var e workspace.RunEvent
			if err := json.Unmarshal([]byte(data), &e); err != nil {
				return true, fmt.Errorf("decode event: %w", err)
			}
			if err := fn(e); err != nil {
				return true, err
			}
			*after = e.Seq
			// The stream ends once the run is recorded, just after its
			// run_end event.
			sawEnd = sawEnd || (e.Kind == agent.EventRunEnd && e.RunID == id)
			kind, data = "", ""
		}
	}
	if err := sc.Err(); err != nil {
		return false, err
	}
	if sawEnd {
		return true, nil
	}
	return false, io.ErrUnexpectedEOF
}

// BoardPersonas is the workspace.AgentOptions.Personas seam filled from the
// board's personas (built-in and added ones), in prompt order. A server
// sets the same on its service.
func BoardPersonas(svc *workspace.Service) func(ctx context.Context, name string) ([]agent.BootstrapFile, error) {
	b := board.New(svc, board.Options{})
	return func(_ context.Context, name string) ([]agent.BootstrapFile, error) {
		p, err := b.Persona(name)
		if err != nil {
			return nil, err
		}
		var out []agent.BootstrapFile
		for _, f := range board.PersonaFiles {
			if c, ok := p.Files[f]; ok && strings.TrimSpace(c) != "" {
				out = append(out, agent.BootstrapFile{Name: f, Content: c})
			}
		}
		return out, nil
	}
}
