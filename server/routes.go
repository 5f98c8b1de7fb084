package server

import (
	"encoding/json"
	"net/http"
	"time"

	"github.com/bulkhead-dev/bulkhead/workspace"
)

type scopeKind int

const (
	scopePublic    scopeKind = iota // no token
	scopeAny                        // any valid token; results filtered to its workspace
	scopeWorkspace                  // the token's own workspace (named in the path) or admin
	scopeAdmin                      // admin tokens only
	scopeSocket                     // the local unix socket only
)

// route is one API operation. The OpenAPI document is generated from this
// table, and a test drives every documented operation against the handler.
type route struct {
	method, pattern string
	scope           scopeKind
	summary         string
	req, resp       any // zero values of the body types, for the schema
	status          int // success status
	h               func(http.ResponseWriter, *http.Request) error
}

// Request and response bodies.
type (
	// CreateWorkspaceRequest is the body of POST /v1/workspaces.
	CreateWorkspaceRequest struct {
		ID     string            `json:"id"`
		Config *workspace.Config `json:"config,omitempty"`
	}
	// ConfigPatch is the body of PATCH .../config: dotted keys to JSON values.
	ConfigPatch struct {
		Set map[string]json.RawMessage `json:"set"`
	}
	// SetCredentialRequest is the body of PUT .../credentials/{name}.
	SetCredentialRequest struct {
		Value string `json:"value"`
	}
	// CreateTokenRequest is the body of POST /v1/tokens.
	CreateTokenRequest struct {
		Name      string `json:"name"`
		Workspace string `json:"workspace"` // "*" for an admin token
	}
	// CreateTokenResponse carries the secret, shown only once.
	CreateTokenResponse struct {
		Token  Token  `json:"token"`
		Secret string `json:"secret"`
	}
	// RotateRequest is the body of POST /v1/admin/rotate-passphrase.
	RotateRequest struct {
		NewPassphrase string `json:"new_passphrase"`
	}
	// RotateResponse reports how many keys were rewrapped.
	RotateResponse struct {
		Rewrapped int `json:"rewrapped"`
	}
	// Health is the body of /healthz and /readyz.
	Health struct {
		Status string    `json:"status"`
		Time   time.Time `json:"time"`
	}
)

func (s *Server) routeTable() []route {
	return append([]route{
		{method: "GET", pattern: "/healthz", scope: scopePublic, summary: "Liveness", resp: Health{}, h: s.healthz},
		{method: "GET", pattern: "/readyz", scope: scopePublic, summary: "Readiness (503 while draining)", resp: Health{}, h: s.readyz},
		{method: "GET", pattern: "/openapi.json", scope: scopePublic, summary: "This document", h: s.openapi},
		{method: "GET", pattern: "/metrics", scope: scopeAdmin, summary: "Prometheus metrics", h: s.metricsHandler},

		{method: "GET", pattern: "/v1/workspaces", scope: scopeAny, summary: "List workspaces (a workspace token sees only its own)", resp: []workspace.Workspace{}, h: s.listWorkspaces},
		{method: "POST", pattern: "/v1/workspaces", scope: scopeAdmin, summary: "Create a workspace", req: CreateWorkspaceRequest{}, resp: workspace.Workspace{}, status: 201, h: s.createWorkspace},
		{method: "GET", pattern: "/v1/workspaces/{ws}", scope: scopeWorkspace, summary: "Get a workspace", resp: workspace.Workspace{}, h: s.getWorkspace},
		{method: "DELETE", pattern: "/v1/workspaces/{ws}", scope: scopeAdmin, summary: "Delete a workspace (its key is destroyed first)", status: 204, h: s.deleteWorkspace},
		{method: "GET", pattern: "/v1/workspaces/{ws}/config", scope: scopeWorkspace, summary: "Get a workspace's config", resp: workspace.Config{}, h: s.getConfig},
		{method: "PUT", pattern: "/v1/workspaces/{ws}/config", scope: scopeAdmin, summary: "Replace a workspace's config", req: workspace.Config{}, resp: workspace.Config{}, h: s.putConfig},
		{method: "PATCH", pattern: "/v1/workspaces/{ws}/config", scope: scopeAdmin, summary: "Set config fields by dotted path", req: ConfigPatch{}, resp: workspace.Config{}, h: s.patchConfig},

		{method: "GET", pattern: "/v1/workspaces/{ws}/credentials", scope: scopeWorkspace, summary: "List credential names and dates", resp: []workspace.CredentialInfo{}, h: s.listCreds},
		{method: "PUT", pattern: "/v1/workspaces/{ws}/credentials/{name}", scope: scopeWorkspace, summary: "Set a credential (write-only)", req: SetCredentialRequest{}, status: 204, h: s.setCred},
		{method: "DELETE", pattern: "/v1/workspaces/{ws}/credentials/{name}", scope: scopeWorkspace, summary: "Delete a credential", status: 204, h: s.deleteCred},

		{method: "GET", pattern: "/v1/tokens", scope: scopeAdmin, summary: "List tokens (filter with ?workspace=)", resp: []Token{}, h: s.listTokens},
		{method: "POST", pattern: "/v1/tokens", scope: scopeAdmin, summary: "Create a token for one workspace (or * for admin)", req: CreateTokenRequest{}, resp: CreateTokenResponse{}, status: 201, h: s.createToken},
		{method: "DELETE", pattern: "/v1/tokens/{id}", scope: scopeAdmin, summary: "Revoke a token", status: 204, h: s.revokeToken},

		{method: "POST", pattern: "/v1/admin/rotate-passphrase", scope: scopeSocket, summary: "Rewrap every data key under a new passphrase (local socket only)", req: RotateRequest{}, resp: RotateResponse{}, h: s.rotate},
	}, append(append(append(s.boardRoutes(), s.runRoutes()...), s.snapshotRoutes()...), s.memoryRoutes()...)...)
}

func (s *Server) healthz(w http.ResponseWriter, r *http.Request) error {
	writeJSON(w, 200, Health{Status: "ok", Time: time.Now().UTC()})
	return nil
}

func (s *Server) readyz(w http.ResponseWriter, r *http.Request) error {
	if s.draining.Load() {
		writeJSON(w, 503, Health{Status: "draining", Time: time.Now().UTC()})
		return nil
	}
	if _, err := s.svc.List(r.Context()); err != nil {
		return err
	}
	writeJSON(w, 200, Health{Status: "ready", Time: time.Now().UTC()})
	return nil
}

func (s *Server) metricsHandler(w http.ResponseWriter, r *http.Request) error {
	w.Header().Set("Content-Type", "text/plain; version=0.0.4")
	s.metrics.Write(w)
	return nil
}

func (s *Server) listWorkspaces(w http.ResponseWriter, r *http.Request) error {
	all, err := s.svc.List(r.Context())
	if err != nil {
		return err
	}
	tok := principal(r.Context())
	out := []*workspace.Workspace{}
	for _, ws := range all {
		if tok.Admin() || ws.ID == tok.Scope {
			out = append(out, ws)
		}
	}
	writeJSON(w, 200, out)
	return nil
}

func (s *Server) createWorkspace(w http.ResponseWriter, r *http.Request) error {
	// A partial config is merged over the defaults.
	def := workspace.DefaultConfig()
	req := CreateWorkspaceRequest{Config: &def}
	if err := decodeJSON(w, r, s.opts.MaxBody, &req); err != nil {
		return err
	}
	if err := workspace.ValidateID(req.ID); err != nil {
		return err
	}
	ws, err := s.svc.Create(r.Context(), req.ID, req.Config)
	if err != nil {
		return err
	}
	w.Header().Set("Location", "/v1/workspaces/"+ws.ID)
	writeJSON(w, 201, ws)
	return nil
}

func (s *Server) getWorkspace(w http.ResponseWriter, r *http.Request) error {
	ws, err := s.svc.Get(r.Context(), r.PathValue("ws"))
	if err != nil {
		return err
	}
	writeJSON(w, 200, ws)
	return nil
}

func (s *Server) deleteWorkspace(w http.ResponseWriter, r *http.Request) error {
	id := r.PathValue("ws")
	if err := s.svc.Delete(r.Context(), id); err != nil {
		return err
	}
	if err := s.tokens.RevokeScope(id); err != nil {
		return err
	}
	w.WriteHeader(204)
	return nil
}

func (s *Server) getConfig(w http.ResponseWriter, r *http.Request) error {
	ws, err := s.svc.Get(r.Context(), r.PathValue("ws"))
	if err != nil {
		return err
	}
	writeJSON(w, 200, ws.Config)
	return nil
}

func (s *Server) putConfig(w http.ResponseWriter, r *http.Request) error {
	cfg := workspace.DefaultConfig()
	if err := decodeJSON(w, r, s.opts.MaxBody, &cfg); err != nil {
		return err
	}
	ws, err := s.svc.Configure(r.Context(), r.PathValue("ws"), &cfg, nil)
	if err != nil {
		return err
	}
	writeJSON(w, 200, ws.Config)
	return nil
}

func (s *Server) patchConfig(w http.ResponseWriter, r *http.Request) error {
	var p ConfigPatch
	if err := decodeJSON(w, r, s.opts.MaxBody, &p); err != nil {
		return err
	}
	sets := make([]string, 0, len(p.Set))
	for k, v := range p.Set {
		sets = append(sets, k+"="+string(v))
	}
	ws, err := s.svc.Configure(r.Context(), r.PathValue("ws"), nil, sets)
	if err != nil {
		return err
	}
	writeJSON(w, 200, ws.Config)
	return nil
}

func (s *Server) listCreds(w http.ResponseWriter, r *http.Request) error {
	list, err := s.svc.ListCredentials(r.Context(), r.PathValue("ws"))
	if err != nil {
		return err
	}
	if list == nil {
		list = []workspace.CredentialInfo{}
	}
	writeJSON(w, 200, list)
	return nil
}

func (s *Server) setCred(w http.ResponseWriter, r *http.Request) error {
	var req SetCredentialRequest
	if err := decodeJSON(w, r, s.opts.MaxBody, &req); err != nil {
		return err
	}
	if err := s.svc.SetCredential(r.Context(), r.PathValue("ws"), r.PathValue("name"), []byte(req.Value)); err != nil {
		return err
	}
	w.WriteHeader(204)
	return nil
}

func (s *Server) deleteCred(w http.ResponseWriter, r *http.Request) error {
	if err := s.svc.DeleteCredential(r.Context(), r.PathValue("ws"), r.PathValue("name")); err != nil {
		return err
	}
	w.WriteHeader(204)
	return nil
}

func (s *Server) listTokens(w http.ResponseWriter, r *http.Request) error {
	list, err := s.tokens.List(r.URL.Query().Get("workspace"))
	if err != nil {
		return err
	}
	writeJSON(w, 200, list)
	return nil
}

func (s *Server) createToken(w http.ResponseWriter, r *http.Request) error {
	var req CreateTokenRequest
	if err := decodeJSON(w, r, s.opts.MaxBody, &req); err != nil {
		return err
	}
	if len(req.Name) > 128 {
		return apiErr(400, CodeBadRequest, "name longer than 128 bytes")
	}
	var uid uint32
	if req.Workspace != AdminScope {
		ws, err := s.svc.Get(r.Context(), req.Workspace)
		if err != nil {
			return err
		}
		uid = ws.HostUID
	}
	secret, t, err := s.tokens.Create(req.Name, req.Workspace, uid)
	if err != nil {
		return err
	}
	writeJSON(w, 201, CreateTokenResponse{Token: *t, Secret: secret})
	return nil
}

func (s *Server) revokeToken(w http.ResponseWriter, r *http.Request) error {
	if err := s.tokens.Revoke(r.PathValue("id")); err != nil {
		return err
	}
	w.WriteHeader(204)
	return nil
}

func (s *Server) rotate(w http.ResponseWriter, r *http.Request) error {
	var req RotateRequest
	if err := decodeJSON(w, r, 4096, &req); err != nil {
		return err
	}
	if req.NewPassphrase == "" {
		return apiErr(400, CodeBadRequest, "new_passphrase is empty")
	}
	n, err := s.svc.RotatePassphrase(r.Context(), []byte(req.NewPassphrase))
	if err != nil {
		return err
	}
	writeJSON(w, 200, RotateResponse{Rewrapped: n})
	return nil
}
