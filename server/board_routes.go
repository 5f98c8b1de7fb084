package server

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/bulkhead-dev/bulkhead/board"
	"github.com/bulkhead-dev/bulkhead/board/web"
	"github.com/bulkhead-dev/bulkhead/workspace"
)

// Board request and response bodies.
type (
	// CreateProjectRequest is the body of POST /v1/projects.
	CreateProjectRequest struct {
		ID      string `json:"id"`
		Repo    string `json:"repo"`
		Persona string `json:"persona,omitempty"`
	}
	// AddPersonaRequest is the body of POST /v1/personas.
	AddPersonaRequest struct {
		Name  string            `json:"name"`
		Files map[string]string `json:"files"`
	}
	// CreateTicketRequest is the body of POST .../tickets.
	CreateTicketRequest struct {
		Kind        board.Kind `json:"kind,omitempty"`
		Title       string     `json:"title"`
		Description string     `json:"description,omitempty"`
		Criteria    string     `json:"criteria,omitempty"`
		Priority    int        `json:"priority,omitempty"`
		Assignee    string     `json:"assignee,omitempty"`
	}
	// TicketView is a ticket with its thread.
	TicketView struct {
		Ticket   *board.Ticket    `json:"ticket"`
		Comments []*board.Comment `json:"comments"`
		Running  bool             `json:"running"`
	}
	// CommentRequest is the body of POST .../comments.
	CommentRequest struct {
		Body   string `json:"body"`
		Anchor string `json:"anchor,omitempty"`
	}
	// MoveRequest is the body of POST .../move.
	MoveRequest struct {
		State   string `json:"state"`
		Comment string `json:"comment,omitempty"`
	}
	// DispatchResponse says which run was started.
	DispatchResponse struct {
		Token int64 `json:"token"`
	}
	// HeartbeatStatus is the body of GET /v1/heartbeat.
	HeartbeatStatus struct {
		Concurrency int            `json:"concurrency"`
		Running     int            `json:"running"`
		Leases      []*board.Lease `json:"leases"`
		// Last is the last heartbeat this server ran (nil before the first).
		Last *board.BeatStatus `json:"last"`
	}
)

// board returns the node's board (shared with the scheduler in serve).
func (s *Server) board() *board.Board {
	return board.For(s.svc, board.Options{Logger: s.log})
}

func (s *Server) boardRoutes() []route {
	return []route{
		{method: "GET", pattern: "/ui/{path...}", scope: scopePublic, summary: "The web UI (static files; data comes from the API with the signed-in token)", h: s.uiFiles},

		{method: "GET", pattern: "/v1/projects", scope: scopeAdmin, summary: "List projects", resp: []board.Project{}, h: s.listProjects},
		{method: "POST", pattern: "/v1/projects", scope: scopeAdmin, summary: "Create a project: a workspace with a clone of a git repository (URL or local path) and a persona", req: CreateProjectRequest{}, resp: board.Project{}, status: 201, h: s.createProject},
		{method: "GET", pattern: "/v1/workspaces/{ws}/project", scope: scopeWorkspace, summary: "Get a workspace's project", resp: board.Project{}, h: s.getProject},
		{method: "PATCH", pattern: "/v1/workspaces/{ws}/project", scope: scopeAdmin, summary: "Change a project's persona, provider or model", req: board.ProjectSettings{}, resp: board.Project{}, h: s.patchProject},

		{method: "GET", pattern: "/v1/personas", scope: scopeAdmin, summary: "List personas", resp: []board.Persona{}, h: s.listPersonas},
		{method: "GET", pattern: "/v1/personas/{name}", scope: scopeAdmin, summary: "Get a persona's bootstrap files", resp: board.Persona{}, h: s.getPersona},
		{method: "POST", pattern: "/v1/personas", scope: scopeAdmin, summary: "Add a persona", req: AddPersonaRequest{}, resp: board.Persona{}, status: 201, h: s.addPersona},

		{method: "GET", pattern: "/v1/workspaces/{ws}/tickets", scope: scopeWorkspace, summary: "List a project's tickets", resp: []board.Ticket{}, h: s.listTickets},
		{method: "POST", pattern: "/v1/workspaces/{ws}/tickets", scope: scopeWorkspace, summary: "Open a ticket", req: CreateTicketRequest{}, resp: board.Ticket{}, status: 201, h: s.createTicket},
		{method: "GET", pattern: "/v1/workspaces/{ws}/tickets/{ticket}", scope: scopeWorkspace, summary: "Get a ticket and its comments", resp: TicketView{}, h: s.getTicket},
		{method: "POST", pattern: "/v1/workspaces/{ws}/tickets/{ticket}/comments", scope: scopeWorkspace, summary: "Comment on a ticket", req: CommentRequest{}, resp: board.Comment{}, status: 201, h: s.commentTicket},
		{method: "POST", pattern: "/v1/workspaces/{ws}/tickets/{ticket}/move", scope: scopeWorkspace, summary: "Move a ticket (returning from verification needs a comment)", req: MoveRequest{}, resp: board.Ticket{}, h: s.moveTicket},
		{method: "POST", pattern: "/v1/workspaces/{ws}/tickets/{ticket}/ship", scope: scopeWorkspace, summary: "Merge a verified ticket's branch into the default branch", resp: board.Ticket{}, h: s.shipTicket},
		{method: "POST", pattern: "/v1/workspaces/{ws}/tickets/{ticket}/dispatch", scope: scopeWorkspace, summary: "Run the ticket now (under the same lease as the heartbeat)", resp: DispatchResponse{}, status: 202, h: s.dispatchTicket},
		{method: "GET", pattern: "/v1/workspaces/{ws}/tickets/{ticket}/log", scope: scopeWorkspace, summary: "Live run log (text/event-stream)", h: s.ticketLog},

		{method: "GET", pattern: "/v1/heartbeat", scope: scopeAdmin, summary: "Heartbeat status: concurrency, runs, leases", resp: HeartbeatStatus{}, h: s.heartbeatStatus},
		{method: "POST", pattern: "/v1/heartbeat", scope: scopeAdmin, summary: "Run one heartbeat now and wait for it", resp: board.BeatReport{}, h: s.heartbeatNow},
	}
}

// boardErr maps board sentinels to API errors; their messages name only
// what the caller sent.
func boardErr(err error) error {
	if err == nil {
		return nil
	}
	msg := err.Error()
	switch {
	case errors.Is(err, board.ErrProjectNotFound), errors.Is(err, board.ErrTicketNotFound), errors.Is(err, board.ErrPersonaNotFound):
		return apiErr(404, CodeNotFound, "%s", msg)
	case errors.Is(err, board.ErrProjectExists), errors.Is(err, board.ErrPersonaExists):
		return apiErr(409, CodeExists, "%s", msg)
	case errors.Is(err, board.ErrLeased):
		return apiErr(409, CodeInUse, "%s", msg)
	case errors.Is(err, board.ErrTransition), errors.Is(err, board.ErrNotActionable):
		return apiErr(409, "invalid_transition", "%s", msg)
	case errors.Is(err, board.ErrInvalid), errors.Is(err, board.ErrClone):
		return apiErr(400, CodeBadRequest, "%s", msg)
	case errors.Is(err, board.ErrGit):
		return apiErr(409, "git", "%s", msg)
	case errors.Is(err, board.ErrNoRunner):
		return apiErr(503, "no_runner", "%s", msg)
	}
	return err
}

func ticketID(r *http.Request) (int64, error) {
	id, err := strconv.ParseInt(r.PathValue("ticket"), 10, 64)
	if err != nil || id <= 0 {
		return 0, apiErr(400, CodeBadRequest, "ticket id %q: want a positive number", r.PathValue("ticket"))
	}
	return id, nil
}

// actor is who a human action is recorded as: the token's name.
func actor(r *http.Request) string {
	if t := principal(r.Context()); t != nil && t.Name != "" {
		return t.Name
	}
	return "human"
}

func (s *Server) uiFiles(w http.ResponseWriter, r *http.Request) error {
	sub, err := fs.Sub(web.FS, "static")
	if err != nil {
		return err
	}
	p := r.PathValue("path")
	if p == "" || !strings.Contains(p, ".") {
		p = "index.html"
	}
	b, err := fs.ReadFile(sub, p)
	if err != nil {
		return apiErr(404, CodeNotFound, "no UI file %q", p)
	}
	switch {
	case strings.HasSuffix(p, ".html"):
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
	case strings.HasSuffix(p, ".js"):
		w.Header().Set("Content-Type", "text/javascript; charset=utf-8")
	case strings.HasSuffix(p, ".css"):
		w.Header().Set("Content-Type", "text/css; charset=utf-8")
	case strings.HasSuffix(p, ".svg"):
		w.Header().Set("Content-Type", "image/svg+xml")
	}
	w.Header().Set("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Header().Set("Referrer-Policy", "no-referrer")
	w.Header().Set("Cache-Control", "no-cache")
	_, err = w.Write(b)
	return err
}

func (s *Server) listProjects(w http.ResponseWriter, r *http.Request) error {
	ps, err := s.board().Projects(r.Context())
	if err != nil {
		return err
	}
	writeJSON(w, 200, ps)
	return nil
}

func (s *Server) createProject(w http.ResponseWriter, r *http.Request) error {
	var req CreateProjectRequest
	if err := decodeJSON(w, r, s.opts.MaxBody, &req); err != nil {
		return err
	}
	if err := workspace.ValidateID(req.ID); err != nil {
		return err
	}
	p, err := s.board().CreateProject(r.Context(), req.ID, req.Repo, req.Persona)
	if err != nil {
		return boardErr(err)
	}
	w.Header().Set("Location", "/v1/workspaces/"+p.ID+"/project")
	writeJSON(w, 201, p)
	return nil
}

func (s *Server) getProject(w http.ResponseWriter, r *http.Request) error {
	p, err := s.board().Project(r.Context(), r.PathValue("ws"))
	if err != nil {
		return boardErr(err)
	}
	writeJSON(w, 200, p)
	return nil
}

func (s *Server) patchProject(w http.ResponseWriter, r *http.Request) error {
	var req board.ProjectSettings
	if err := decodeJSON(w, r, s.opts.MaxBody, &req); err != nil {
		return err
	}
	p, err := s.board().Configure(r.Context(), r.PathValue("ws"), req)
	if err != nil {
		return boardErr(err)
	}
	writeJSON(w, 200, p)
	return nil
}

func (s *Server) listPersonas(w http.ResponseWriter, r *http.Request) error {
	ps, err := s.board().Personas()
	if err != nil {
		return err
	}
	writeJSON(w, 200, ps)
	return nil
}

func (s *Server) getPersona(w http.ResponseWriter, r *http.Request) error {
	p, err := s.board().Persona(r.PathValue("name"))
	if err != nil {
		return boardErr(err)
	}
	writeJSON(w, 200, p)
	return nil
}

func (s *Server) addPersona(w http.ResponseWriter, r *http.Request) error {
	var req AddPersonaRequest
	if err := decodeJSON(w, r, s.opts.MaxBody, &req); err != nil {
		return err
	}
	p, err := s.board().AddPersona(req.Name, req.Files)
	if err != nil {
		return boardErr(err)
	}
	writeJSON(w, 201, p)
	return nil
}

func (s *Server) listTickets(w http.ResponseWriter, r *http.Request) error {
	ts, err := s.board().Tickets(r.Context(), r.PathValue("ws"))
	if err != nil {
		return boardErr(err)
	}
	writeJSON(w, 200, ts)
	return nil
}

func (s *Server) createTicket(w http.ResponseWriter, r *http.Request) error {
	var req CreateTicketRequest
	if err := decodeJSON(w, r, s.opts.MaxBody, &req); err != nil {
		return err
	}
	t, err := s.board().CreateTicket(r.Context(), r.PathValue("ws"), board.NewTicket{
		Kind: req.Kind, Title: req.Title, Description: req.Description, Criteria: req.Criteria,
		Priority: req.Priority, Assignee: req.Assignee, Author: actor(r),
	})
	if err != nil {
		return boardErr(err)
	}
	writeJSON(w, 201, t)
	return nil
}

func (s *Server) getTicket(w http.ResponseWriter, r *http.Request) error {
	id, err := ticketID(r)
	if err != nil {
		return err
	}
	b, ws := s.board(), r.PathValue("ws")
	t, err := b.Ticket(r.Context(), ws, id)
	if err != nil {
		return boardErr(err)
	}
	cs, err := b.Comments(r.Context(), ws, id)
	if err != nil {
		return boardErr(err)
	}
	running := false
	if ls, err := b.Leases(); err == nil {
		for _, l := range ls {
			if l.Project == ws && l.Ticket == id && !l.Released && time.Now().Before(l.Expires) {
				running = true
			}
		}
	}
	writeJSON(w, 200, TicketView{Ticket: t, Comments: cs, Running: running})
	return nil
}

func (s *Server) commentTicket(w http.ResponseWriter, r *http.Request) error {
	id, err := ticketID(r)
	if err != nil {
		return err
	}
	var req CommentRequest
	if err := decodeJSON(w, r, s.opts.MaxBody, &req); err != nil {
		return err
	}
	c, err := s.board().Comment(r.Context(), r.PathValue("ws"), id, actor(r), req.Body, req.Anchor)
	if err != nil {
		return boardErr(err)
	}
	writeJSON(w, 201, c)
	return nil
}

func (s *Server) moveTicket(w http.ResponseWriter, r *http.Request) error {
	id, err := ticketID(r)
	if err != nil {
		return err
	}
	var req MoveRequest
	if err := decodeJSON(w, r, s.opts.MaxBody, &req); err != nil {
		return err
	}
	st, err := board.ParseState(req.State)
	if err != nil {
		return boardErr(err)
	}
	t, err := s.board().Move(r.Context(), r.PathValue("ws"), id, st, actor(r), req.Comment)
	if err != nil {
		return boardErr(err)
	}
	writeJSON(w, 200, t)
	return nil
}

func (s *Server) shipTicket(w http.ResponseWriter, r *http.Request) error {
	id, err := ticketID(r)
	if err != nil {
		return err
	}
	t, err := s.board().Ship(r.Context(), r.PathValue("ws"), id, actor(r))
	if err != nil {
		return boardErr(err)
	}
	writeJSON(w, 200, t)
	return nil
}

func (s *Server) dispatchTicket(w http.ResponseWriter, r *http.Request) error {
	id, err := ticketID(r)
	if err != nil {
		return err
	}
	// The run outlives the request; its lease bounds it if the node dies.
	f, err := s.board().StartDispatch(context.WithoutCancel(r.Context()), r.PathValue("ws"), id, "api dispatch by "+actor(r))
	if err != nil {
		return boardErr(err)
	}
	writeJSON(w, 202, DispatchResponse{Token: f.Token})
	return nil
}

// ticketLog streams the ticket's run log as server-sent events: the lines
// kept so far (after Last-Event-ID), then live lines until the client goes.
func (s *Server) ticketLog(w http.ResponseWriter, r *http.Request) error {
	id, err := ticketID(r)
	if err != nil {
		return err
	}
	b, ws := s.board(), r.PathValue("ws")
	if _, err := b.Ticket(r.Context(), ws, id); err != nil {
		return boardErr(err)
	}
	after, _ := strconv.ParseInt(r.Header.Get("Last-Event-ID"), 10, 64)
	past, live, cancel := b.RunLog(ws, id, after)
	defer cancel()
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-cache")
	w.Header().Set("X-Accel-Buffering", "no")
	w.WriteHeader(200)
	rc := http.NewResponseController(w)
	send := func(l board.LogLine) error {
		data := strings.ReplaceAll(l.Text, "\n", "\ndata: ")
		_, err := fmt.Fprintf(w, "id: %d\nevent: %s\ndata: %s\n\n", l.Seq, l.Kind, data)
		return err
	}
	for _, l := range past {
		if err := send(l); err != nil {
			return nil
		}
	}
	rc.Flush()
	ping := time.NewTicker(15 * time.Second)
	defer ping.Stop()
	for {
		select {
		case <-r.Context().Done():
			return nil
		case l := <-live:
			if err := send(l); err != nil {
				return nil
			}
			rc.Flush()
		case <-ping.C:
			if _, err := fmt.Fprint(w, ": ping\n\n"); err != nil {
				return nil
			}
			rc.Flush()
		}
	}
}

func (s *Server) heartbeatStatus(w http.ResponseWriter, r *http.Request) error {
	b := s.board()
	ls, err := b.Leases()
	if err != nil {
		return err
	}
	if ls == nil {
		ls = []*board.Lease{}
	}
	writeJSON(w, 200, HeartbeatStatus{Concurrency: b.Concurrency(), Running: b.Running(), Leases: ls, Last: b.LastBeat()})
	return nil
}

func (s *Server) heartbeatNow(w http.ResponseWriter, r *http.Request) error {
	// The runs outlive a client that stops waiting; their leases bound them.
	rep, err := s.board().Beat(context.WithoutCancel(r.Context()), "api heartbeat by "+actor(r))
	if err != nil {
		return boardErr(err)
	}
	writeJSON(w, 200, rep)
	return nil
}
