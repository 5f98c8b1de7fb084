package server

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"path"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/bulkhead-dev/bulkhead/netguard"
	"github.com/bulkhead-dev/bulkhead/sandbox"
	"github.com/bulkhead-dev/bulkhead/workspace"
)

// Request and response bodies of the run, session, skill and exec routes.
type (
	// ExecRequest is the body of POST .../exec.
	ExecRequest struct {
		Args []string `json:"args"`
		// Dir is the working directory relative to /workspace.
		Dir   string `json:"dir,omitempty"`
		Stdin string `json:"stdin,omitempty"`
		// Timeout is a Go duration ("30s"); empty means the workspace's
		// limits.exec_timeout.
		Timeout string `json:"timeout,omitempty"`
	}
	// ExecResponse is how a command ended (the JSON form of POST .../exec).
	ExecResponse struct {
		ExitCode   int    `json:"exit_code"`
		Signal     int    `json:"signal,omitempty"`
		TimedOut   bool   `json:"timed_out,omitempty"`
		OOMKilled  bool   `json:"oom_killed,omitempty"`
		Stdout     string `json:"stdout"`
		Stderr     string `json:"stderr"`
		Truncated  bool   `json:"truncated,omitempty"`
		DurationMS int64  `json:"duration_ms"`
	}
)

// execOutputMax caps stdout and stderr, each, in a JSON exec response.
const execOutputMax = 1 << 20

// sseKeepAlive is how often an idle event stream gets a comment line.
const sseKeepAlive = 15 * time.Second

func (s *Server) runRoutes() []route {
	return []route{
		{method: "POST", pattern: "/v1/workspaces/{ws}/runs", scope: scopeWorkspace, summary: "Start an agent run (returns at once; follow .../events)", req: workspace.RunRequest{}, resp: workspace.Run{}, status: 202, h: s.startRun},
		{method: "GET", pattern: "/v1/workspaces/{ws}/runs", scope: scopeWorkspace, summary: "List runs, newest first (?limit=)", resp: []workspace.Run{}, h: s.listRuns},
		{method: "GET", pattern: "/v1/workspaces/{ws}/runs/{run}", scope: scopeWorkspace, summary: "Get a run", resp: workspace.Run{}, h: s.getRun},
		{method: "GET", pattern: "/v1/workspaces/{ws}/runs/{run}/events", scope: scopeWorkspace, summary: "Follow a run's events as server-sent events (id = sequence; resumes after Last-Event-ID or ?after=)", h: s.runEvents},
		{method: "POST", pattern: "/v1/workspaces/{ws}/runs/{run}/cancel", scope: scopeWorkspace, summary: "Cancel a run in progress", status: 202, h: s.cancelRun},
		{method: "GET", pattern: "/v1/workspaces/{ws}/usage", scope: scopeWorkspace, summary: "Model tokens used on a day by model (?day=YYYY-MM-DD, default today UTC)", resp: workspace.UsageDay{}, h: s.usage},
		{method: "GET", pattern: "/v1/workspaces/{ws}/sessions", scope: scopeWorkspace, summary: "List sessions (without transcripts)", resp: []workspace.Session{}, h: s.listSessions},
		{method: "GET", pattern: "/v1/workspaces/{ws}/sessions/{session}", scope: scopeWorkspace, summary: "Get a session with its transcript ({session} is id or kind:id)", resp: workspace.Session{}, h: s.getSession},
		{method: "DELETE", pattern: "/v1/workspaces/{ws}/sessions/{session}", scope: scopeWorkspace, summary: "Delete a session", status: 204, h: s.deleteSession},
		{method: "GET", pattern: "/v1/workspaces/{ws}/skills", scope: scopeWorkspace, summary: "List registered skills with whether this workspace enabled them", resp: []workspace.SkillState{}, h: s.workspaceSkills},
		{method: "PUT", pattern: "/v1/workspaces/{ws}/skills/{skill}", scope: scopeAdmin, summary: "Enable a skill for a workspace", status: 204, h: s.enableSkill},
		{method: "DELETE", pattern: "/v1/workspaces/{ws}/skills/{skill}", scope: scopeAdmin, summary: "Disable a skill for a workspace", status: 204, h: s.disableSkill},
		{method: "GET", pattern: "/v1/skills", scope: scopeAdmin, summary: "List the node's skill registry", resp: []workspace.Skill{}, h: s.listSkills},
		{method: "POST", pattern: "/v1/workspaces/{ws}/exec", scope: scopeWorkspace, summary: "Run a command in the workspace's sandbox (SSE stdout/stderr/exit with Accept: text/event-stream, else JSON)", req: ExecRequest{}, resp: ExecResponse{}, h: s.exec},
	}
}

// runErr maps the agent wiring's errors to API errors; the rest go to
// toAPIError.
func runErr(w http.ResponseWriter, err error) error {
	var qe *workspace.QuotaError
	msg := err.Error()
	switch {
	case errors.As(err, &qe):
		w.Header().Set("Retry-After", strconv.Itoa(int(math.Ceil(max(qe.RetryAfter.Seconds(), 1)))))
		return apiErr(429, CodeRateLimited, "%s", msg)
	case errors.Is(err, workspace.ErrRunNotFound), errors.Is(err, workspace.ErrSessionNotFound), errors.Is(err, workspace.ErrSkillNotFound):
		return apiErr(404, CodeNotFound, "%s", msg)
	case errors.Is(err, workspace.ErrInvalidRunID), errors.Is(err, workspace.ErrInvalidSession), errors.Is(err, workspace.ErrEmptyMessage),
		errors.Is(err, workspace.ErrModelNotAllowed), errors.Is(err, workspace.ErrNoProviderKey):
		return apiErr(400, CodeBadRequest, "%s", msg)
	case errors.Is(err, workspace.ErrSessionBusy), errors.Is(err, workspace.ErrRunFinished), errors.Is(err, workspace.ErrSkillNotEnabled):
		return apiErr(409, CodeInUse, "%s", msg)
	case errors.Is(err, netguard.ErrBlocked):
		return apiErr(502, CodeBadRequest, "the workspace's model endpoint is refused by the network guard; ask the operator")
	}
	return err
}

func (s *Server) startRun(w http.ResponseWriter, r *http.Request) error {
	var req workspace.RunRequest
	if err := decodeJSON(w, r, s.opts.MaxBody, &req); err != nil {
		return err
	}
	ws := r.PathValue("ws")
	run, err := s.svc.StartRun(r.Context(), ws, req)
	if err != nil {
		s.metrics.Runs.Inc(ws, "refused")
		return runErr(w, err)
	}
	go s.observeRun(ws, run.ID)
	w.Header().Set("Location", "/v1/workspaces/"+ws+"/runs/"+run.ID)
	writeJSON(w, 202, run)
	return nil
}

// observeRun records a run's outcome in the metrics when it ends.
func (s *Server) observeRun(ws, id string) {
	run, err := s.svc.WaitRun(context.Background(), ws, id)
	if err != nil {
		return
	}
	s.metrics.Runs.Inc(ws, string(run.Status))
	s.metrics.RunLatency.Observe(float64(run.DurationMS)/1000, ws)
	s.metrics.Tokens.Add(float64(run.Usage.InputTokens), ws, "in")
	s.metrics.Tokens.Add(float64(run.Usage.OutputTokens), ws, "out")
	if run.Status == workspace.RunFailed {
		s.metrics.Errors.Inc("run_failed")
	}
	// Tool calls by tool, from the run's journal (each assistant turn
	// records the calls it made).
	entries, err := s.svc.Journal(context.Background(), ws, id, 0)
	if err != nil {
		s.log.Debug("count tool calls", "workspace", ws, "run", id, "err", err)
		return
	}
	for _, e := range entries {
		if e.Message == nil {
			continue
		}
		for _, u := range e.Message.ToolUses() {
			s.metrics.ToolCalls.Inc(ws, u.Name)
		}
	}
}

func (s *Server) listRuns(w http.ResponseWriter, r *http.Request) error {
	limit := 0
	if v := r.URL.Query().Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 1000 {
			return apiErr(400, CodeBadRequest, "limit %q: want 1 to 1000", v)
		}
		limit = n
	}
	runs, err := s.svc.ListRuns(r.Context(), r.PathValue("ws"), limit)
	if err != nil {
		return runErr(w, err)
	}
	writeJSON(w, 200, runs)
	return nil
}

func (s *Server) getRun(w http.ResponseWriter, r *http.Request) error {
	run, err := s.svc.GetRun(r.Context(), r.PathValue("ws"), r.PathValue("run"))
	if err != nil {
		return runErr(w, err)
	}
	writeJSON(w, 200, run)
	return nil
}

func (s *Server) cancelRun(w http.ResponseWriter, r *http.Request) error {
	if err := s.svc.CancelRun(r.Context(), r.PathValue("ws"), r.PathValue("run")); err != nil {
		return runErr(w, err)
	}
	w.WriteHeader(202)
	return nil
}

// sseWriter writes server-sent events and keeps an idle stream alive.
type sseWriter struct {
	mu sync.Mutex
	w  http.ResponseWriter
	rc *http.ResponseController
}

func newSSE(w http.ResponseWriter) *sseWriter {
	rc := http.NewResponseController(w)
	// A stream lives as long as its run; the server's write timeout is
	// for ordinary requests.
	_ = rc.SetWriteDeadline(time.Time{})
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Accel-Buffering", "no")
	w.WriteHeader(200)
	_ = rc.Flush()
	return &sseWriter{w: w, rc: rc}
}

// event writes one event; id may be empty. data is one line of JSON.
func (e *sseWriter) event(id, kind string, data []byte) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	var b bytes.Buffer
	if id != "" {
		fmt.Fprintf(&b, "id: %s\n", id)
	}
	fmt.Fprintf(&b, "event: %s\ndata: %s\n\n", kind, data)
	if _, err := e.w.Write(b.Bytes()); err != nil {
		return err
	}
	return e.rc.Flush()
}

func (e *sseWriter) ping() error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if _, err := e.w.Write([]byte(": keep-alive\n\n")); err != nil {
		return err
	}
	return e.rc.Flush()
}

// keepAlive pings the stream until stop is closed.
func (e *sseWriter) keepAlive(stop <-chan struct{}) {
	t := time.NewTicker(sseKeepAlive)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
			if e.ping() != nil {
				return
			}
		}
	}
}

func (s *Server) runEvents(w http.ResponseWriter, r *http.Request) error {
	ws, id := r.PathValue("ws"), r.PathValue("run")
	after := uint64(0)
	for _, v := range []string{r.URL.Query().Get("after"), r.Header.Get("Last-Event-ID")} {
		if v == "" {
			continue
		}
		n, err := strconv.ParseUint(strings.TrimSpace(v), 10, 64)
		if err != nil {
			return apiErr(400, CodeBadRequest, "event id %q: want a sequence number", v)
		}
		after = n
	}
	// Fail before the stream starts if the run does not exist.
	if _, err := s.svc.GetRun(r.Context(), ws, id); err != nil {
		return runErr(w, err)
	}
	sse := newSSE(w)
	stop := make(chan struct{})
	defer close(stop)
	go sse.keepAlive(stop)
	err := s.svc.Follow(r.Context(), ws, id, after, func(e workspace.RunEvent) error {
		b, err := json.Marshal(e)
		if err != nil {
			return err
		}
		return sse.event(strconv.FormatUint(e.Seq, 10), string(e.Kind), b)
	})
	if err != nil && r.Context().Err() == nil {
		// The stream has started: report in-band.
		b, _ := json.Marshal(map[string]string{"error": runErr(w, err).Error()})
		_ = sse.event("", "error", b)
	}
	return nil
}

func (s *Server) usage(w http.ResponseWriter, r *http.Request) error {
	u, err := s.svc.Usage(r.Context(), r.PathValue("ws"), r.URL.Query().Get("day"))
	if err != nil {
		if strings.HasPrefix(err.Error(), "usage day") {
			return apiErr(400, CodeBadRequest, "%s", err.Error())
		}
		return runErr(w, err)
	}
	writeJSON(w, 200, u)
	return nil
}

func (s *Server) listSessions(w http.ResponseWriter, r *http.Request) error {
	ss, err := s.svc.ListSessions(r.Context(), r.PathValue("ws"))
	if err != nil {
		return runErr(w, err)
	}
	writeJSON(w, 200, ss)
	return nil
}

func sessionRef(r *http.Request) (workspace.SessionRef, error) {
	return workspace.ParseSessionRef(r.PathValue("session"))
}

func (s *Server) getSession(w http.ResponseWriter, r *http.Request) error {
	ref, err := sessionRef(r)
	if err != nil {
		return runErr(w, err)
	}
	sess, err := s.svc.GetSession(r.Context(), r.PathValue("ws"), ref)
	if err != nil {
		return runErr(w, err)
	}
	writeJSON(w, 200, sess)
	return nil
}

func (s *Server) deleteSession(w http.ResponseWriter, r *http.Request) error {
	ref, err := sessionRef(r)
	if err != nil {
		return runErr(w, err)
	}
	if err := s.svc.DeleteSession(r.Context(), r.PathValue("ws"), ref); err != nil {
		return runErr(w, err)
	}
	w.WriteHeader(204)
	return nil
}

func (s *Server) workspaceSkills(w http.ResponseWriter, r *http.Request) error {
	list, err := s.svc.WorkspaceSkills(r.Context(), r.PathValue("ws"))
	if err != nil {
		return runErr(w, err)
	}
	writeJSON(w, 200, list)
	return nil
}

func (s *Server) enableSkill(w http.ResponseWriter, r *http.Request) error {
	if err := s.svc.EnableSkill(r.Context(), r.PathValue("ws"), r.PathValue("skill")); err != nil {
		return runErr(w, err)
	}
	w.WriteHeader(204)
	return nil
}

func (s *Server) disableSkill(w http.ResponseWriter, r *http.Request) error {
	if err := s.svc.DisableSkill(r.Context(), r.PathValue("ws"), r.PathValue("skill")); err != nil {
		return runErr(w, err)
	}
	w.WriteHeader(204)
	return nil
}

func (s *Server) listSkills(w http.ResponseWriter, r *http.Request) error {
	list, err := s.svc.ListSkills(r.Context())
	if err != nil {
		return err
	}
	writeJSON(w, 200, list)
	return nil
}

// capped keeps the first max bytes written.
type capped struct {
	buf bytes.Buffer
	max int
	cut bool
}

func (c *capped) Write(p []byte) (int, error) {
	room := c.max - c.buf.Len()
	if room < len(p) {
		c.cut = true
	}
	if room > 0 {
		c.buf.Write(p[:min(room, len(p))])
	}
	return len(p), nil
}

// sseStream turns writes into SSE events of one kind.
type sseStream struct {
	sse  *sseWriter
	kind string
}

func (o sseStream) Write(p []byte) (int, error) {
	b, _ := json.Marshal(map[string]string{"data": string(p)})
	if err := o.sse.event("", o.kind, b); err != nil {
		return 0, err
	}
	return len(p), nil
}

func (s *Server) exec(w http.ResponseWriter, r *http.Request) error {
	var req ExecRequest
	if err := decodeJSON(w, r, s.opts.MaxBody, &req); err != nil {
		return err
	}
	if len(req.Args) == 0 || req.Args[0] == "" {
		return apiErr(400, CodeBadRequest, "args: give the command and its arguments")
	}
	var timeout time.Duration
	if req.Timeout != "" {
		d, err := time.ParseDuration(req.Timeout)
		if err != nil || d <= 0 {
			return apiErr(400, CodeBadRequest, "timeout %q: want a positive duration such as 30s", req.Timeout)
		}
		timeout = d
	}
	ws := r.PathValue("ws")
	if _, err := s.svc.Get(r.Context(), ws); err != nil {
		return err
	}
	cmd := sandbox.Command{Args: req.Args, Dir: path.Join("/workspace", path.Clean("/"+req.Dir)), Timeout: timeout}
	if req.Stdin != "" {
		cmd.Stdin = strings.NewReader(req.Stdin)
	}
	if strings.Contains(r.Header.Get("Accept"), "text/event-stream") {
		sse := newSSE(w)
		cmd.Stdout, cmd.Stderr = sseStream{sse, "stdout"}, sseStream{sse, "stderr"}
		res, err := s.svc.Exec(r.Context(), ws, cmd)
		s.countExec(ws, res, err)
		if err != nil {
			b, _ := json.Marshal(map[string]string{"error": toAPIError(err).Message})
			_ = sse.event("", "error", b)
			return nil
		}
		b, _ := json.Marshal(execResponse(res, nil, nil))
		_ = sse.event("", "exit", b)
		return nil
	}
	stdout, stderr := &capped{max: execOutputMax}, &capped{max: execOutputMax}
	cmd.Stdout, cmd.Stderr = stdout, stderr
	res, err := s.svc.Exec(r.Context(), ws, cmd)
	s.countExec(ws, res, err)
	if err != nil {
		return err
	}
	writeJSON(w, 200, execResponse(res, stdout, stderr))
	return nil
}

func (s *Server) countExec(ws string, res sandbox.Result, err error) {
	outcome := "ok"
	switch {
	case err != nil:
		outcome = "error"
	case res.TimedOut:
		outcome = "timeout"
	case res.OOMKilled:
		outcome = "oom"
	case res.ExitCode != 0:
		outcome = "exit_nonzero"
	}
	s.metrics.SandboxStarts.Inc(ws, outcome)
}

func execResponse(res sandbox.Result, stdout, stderr *capped) ExecResponse {
	out := ExecResponse{ExitCode: res.ExitCode, Signal: res.Signal, TimedOut: res.TimedOut, OOMKilled: res.OOMKilled, DurationMS: res.Duration.Milliseconds()}
	if stdout != nil {
		out.Stdout, out.Stderr, out.Truncated = stdout.buf.String(), stderr.buf.String(), stdout.cut || stderr.cut
	}
	return out
}
