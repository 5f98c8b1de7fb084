package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"

	"github.com/bulkhead-dev/bulkhead/board"
	"github.com/bulkhead-dev/bulkhead/kv"
	"github.com/bulkhead-dev/bulkhead/server"
)

// boardAPI is what the board commands need: the board on the state dir, or
// a running server's board API through its unix socket.
type boardAPI interface {
	CreateProject(ctx context.Context, id, repo, persona string) (*board.Project, error)
	Projects(ctx context.Context) ([]*board.Project, error)
	Project(ctx context.Context, id string) (*board.Project, error)
	ListPersonas(ctx context.Context) ([]*board.Persona, error)
	GetPersona(ctx context.Context, name string) (*board.Persona, error)
	NewPersona(ctx context.Context, name string, files map[string]string) (*board.Persona, error)
	CreateTicket(ctx context.Context, project string, n board.NewTicket) (*board.Ticket, error)
	Tickets(ctx context.Context, project string) ([]*board.Ticket, error)
	Ticket(ctx context.Context, project string, id int64) (*board.Ticket, error)
	Comments(ctx context.Context, project string, id int64) ([]*board.Comment, error)
	Comment(ctx context.Context, project string, id int64, author, body, anchor string) (*board.Comment, error)
	Move(ctx context.Context, project string, id int64, to board.State, author, reason string) (*board.Ticket, error)
	Ship(ctx context.Context, project string, id int64, author string) (*board.Ticket, error)
}

// localBoard is the board opened in this process.
type localBoard struct{ *board.Board }

func (l localBoard) ListPersonas(context.Context) ([]*board.Persona, error) { return l.Personas() }
func (l localBoard) GetPersona(_ context.Context, name string) (*board.Persona, error) {
	return l.Persona(name)
}
func (l localBoard) NewPersona(_ context.Context, name string, files map[string]string) (*board.Persona, error) {
	return l.AddPersona(name, files)
}

// boardAPI opens the board, or reaches a running server's through its
// socket (as admin; actions are recorded under the socket's name there).
func (g *Globals) boardAPI() (boardAPI, error) {
	svc, err := g.Service()
	if err == nil {
		return localBoard{board.For(svc, board.Options{Logger: g.Log})}, nil
	}
	if !errors.Is(err, kv.ErrLocked) {
		return nil, err
	}
	sock := filepath.Join(g.StateDir, server.SocketName)
	if _, serr := os.Stat(sock); serr != nil {
		return nil, err
	}
	tr := &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", sock)
	}}
	return &remoteBoard{hc: &http.Client{Transport: tr}}, nil
}

// remoteBoard speaks the board API of a running server.
type remoteBoard struct{ hc *http.Client }

func (r *remoteBoard) do(ctx context.Context, method, path string, body, out any) error {
	status, b, err := socketCall(ctx, r.hc, method, path, body, 32<<20)
	if err != nil {
		return err
	}
	if status >= 300 {
		var eb struct {
			Error server.APIError `json:"error"`
		}
		if json.Unmarshal(b, &eb) != nil || eb.Error.Message == "" {
			return fmt.Errorf("server answered %d %s", status, http.StatusText(status))
		}
		return errors.New(eb.Error.Message)
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			return fmt.Errorf("decode server answer: %w", err)
		}
	}
	return nil
}

func tpath(project string, id int64, rest string) string {
	return fmt.Sprintf("/v1/workspaces/%s/tickets/%d%s", url.PathEscape(project), id, rest)
}

func (r *remoteBoard) CreateProject(ctx context.Context, id, repo, persona string) (*board.Project, error) {
	var p board.Project
	return &p, r.do(ctx, "POST", "/v1/projects", server.CreateProjectRequest{ID: id, Repo: repo, Persona: persona}, &p)
}

func (r *remoteBoard) Projects(ctx context.Context) ([]*board.Project, error) {
	var ps []*board.Project
	return ps, r.do(ctx, "GET", "/v1/projects", nil, &ps)
}

func (r *remoteBoard) Project(ctx context.Context, id string) (*board.Project, error) {
	var p board.Project
	return &p, r.do(ctx, "GET", "/v1/workspaces/"+url.PathEscape(id)+"/project", nil, &p)
}

func (r *remoteBoard) ListPersonas(ctx context.Context) ([]*board.Persona, error) {
	var ps []*board.Persona
	return ps, r.do(ctx, "GET", "/v1/personas", nil, &ps)
}

func (r *remoteBoard) GetPersona(ctx context.Context, name string) (*board.Persona, error) {
	var p board.Persona
	return &p, r.do(ctx, "GET", "/v1/personas/"+url.PathEscape(name), nil, &p)
}

func (r *remoteBoard) NewPersona(ctx context.Context, name string, files map[string]string) (*board.Persona, error) {
	var p board.Persona
	return &p, r.do(ctx, "POST", "/v1/personas", server.AddPersonaRequest{Name: name, Files: files}, &p)
}

func (r *remoteBoard) CreateTicket(ctx context.Context, project string, n board.NewTicket) (*board.Ticket, error) {
	var t board.Ticket
	req := server.CreateTicketRequest{Kind: n.Kind, Title: n.Title, Description: n.Description, Criteria: n.Criteria, Priority: n.Priority, Assignee: n.Assignee}
	return &t, r.do(ctx, "POST", "/v1/workspaces/"+url.PathEscape(project)+"/tickets", req, &t)
}

func (r *remoteBoard) Tickets(ctx context.Context, project string) ([]*board.Ticket, error) {
	var ts []*board.Ticket
	return ts, r.do(ctx, "GET", "/v1/workspaces/"+url.PathEscape(project)+"/tickets", nil, &ts)
}

func (r *remoteBoard) view(ctx context.Context, project string, id int64) (*server.TicketView, error) {
	var v server.TicketView
	return &v, r.do(ctx, "GET", tpath(project, id, ""), nil, &v)
}

func (r *remoteBoard) Ticket(ctx context.Context, project string, id int64) (*board.Ticket, error) {
	v, err := r.view(ctx, project, id)
	if err != nil {
		return nil, err
	}
	return v.Ticket, nil
}

func (r *remoteBoard) Comments(ctx context.Context, project string, id int64) ([]*board.Comment, error) {
	v, err := r.view(ctx, project, id)
	if err != nil {
		return nil, err
	}
	return v.Comments, nil
}

func (r *remoteBoard) Comment(ctx context.Context, project string, id int64, _, body, anchor string) (*board.Comment, error) {
	var c board.Comment
	return &c, r.do(ctx, "POST", tpath(project, id, "/comments"), server.CommentRequest{Body: body, Anchor: anchor}, &c)
}

func (r *remoteBoard) Move(ctx context.Context, project string, id int64, to board.State, _, reason string) (*board.Ticket, error) {
	var t board.Ticket
	return &t, r.do(ctx, "POST", tpath(project, id, "/move"), server.MoveRequest{State: string(to), Comment: reason}, &t)
}

func (r *remoteBoard) Ship(ctx context.Context, project string, id int64, _ string) (*board.Ticket, error) {
	var t board.Ticket
	return &t, r.do(ctx, "POST", tpath(project, id, "/ship"), nil, &t)
}
