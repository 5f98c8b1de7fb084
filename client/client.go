package client

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"

	"github.com/bulkhead-dev/bulkhead/credentials"
	"github.com/bulkhead-dev/bulkhead/server"
	"github.com/bulkhead-dev/bulkhead/workspace"
)

// Client talks to one bulkhead server.
type Client struct {
	base  string
	token string
	hc    *http.Client
}

// New returns a client for baseURL (e.g. http://127.0.0.1:7400) with token.
func New(baseURL, token string) *Client {
	return &Client{base: strings.TrimRight(baseURL, "/"), token: token, hc: &http.Client{}}
}

// NewUnix returns a client over the unix socket at path. The server treats
// socket peers with the right uid as admin, so no token is needed.
func NewUnix(path string) *Client {
	tr := &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", path)
	}}
	return &Client{base: "http://bulkhead", hc: &http.Client{Transport: tr}}
}

// Error is an error response from the server.
type Error struct {
	Status    int
	Code      string
	Message   string
	RequestID string
}

func (e *Error) Error() string {
	if e.Status >= 500 && e.RequestID != "" {
		return fmt.Sprintf("%s (server request id %s)", e.Message, e.RequestID)
	}
	return e.Message
}

var codeSentinels = map[string]error{
	server.CodeInvalidID:     workspace.ErrInvalidID,
	server.CodeInvalidConfig: workspace.ErrInvalidConfig,
	server.CodeInvalidCred:   workspace.ErrInvalidCredential,
	server.CodeNotFound:      workspace.ErrNotFound,
	server.CodeCredNotFound:  workspace.ErrCredentialNotFound,
	server.CodeExists:        workspace.ErrExists,
	server.CodeInUse:         workspace.ErrInUse,
}

// Is matches the sentinel the server-side error came from.
func (e *Error) Is(target error) bool {
	if s, ok := codeSentinels[e.Code]; ok && s == target {
		return true
	}
	if e.Code == server.CodeLocked {
		return target == credentials.ErrNoPassphrase && strings.Contains(e.Message, "no credential passphrase") ||
			target == credentials.ErrWrongPassphrase && strings.Contains(e.Message, "wrong credential passphrase")
	}
	return false
}

// do sends a request with an optional JSON body and decodes a JSON answer
// into out (if not nil).
func (c *Client) do(ctx context.Context, method, path string, body, out any) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, rd)
	if err != nil {
		return err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return fmt.Errorf("bulkhead server: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 300 {
		var eb struct {
			Error struct {
				Code      string `json:"code"`
				Message   string `json:"message"`
				RequestID string `json:"request_id"`
			} `json:"error"`
		}
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		if json.Unmarshal(b, &eb) != nil || eb.Error.Message == "" {
			return &Error{Status: resp.StatusCode, Code: "http", Message: fmt.Sprintf("server answered %s", resp.Status)}
		}
		return &Error{Status: resp.StatusCode, Code: eb.Error.Code, Message: eb.Error.Message, RequestID: eb.Error.RequestID}
	}
	if out == nil {
		io.Copy(io.Discard, resp.Body)
		return nil
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return fmt.Errorf("decode server answer: %w", err)
	}
	return nil
}

func ws(id string) string { return "/v1/workspaces/" + url.PathEscape(id) }

// Create makes a workspace.
func (c *Client) Create(ctx context.Context, id string, cfg *workspace.Config) (*workspace.Workspace, error) {
	var w workspace.Workspace
	err := c.do(ctx, "POST", "/v1/workspaces", server.CreateWorkspaceRequest{ID: id, Config: cfg}, &w)
	return &w, err
}

// Get returns a workspace.
func (c *Client) Get(ctx context.Context, id string) (*workspace.Workspace, error) {
	var w workspace.Workspace
	return &w, c.do(ctx, "GET", ws(id), nil, &w)
}

// List returns the workspaces the token may see.
func (c *Client) List(ctx context.Context) ([]*workspace.Workspace, error) {
	var out []*workspace.Workspace
	return out, c.do(ctx, "GET", "/v1/workspaces", nil, &out)
}

// Configure replaces the config (if replacement is not nil), then applies
// "dotted.key=value" sets.
func (c *Client) Configure(ctx context.Context, id string, replacement *workspace.Config, sets []string) (*workspace.Workspace, error) {
	if replacement != nil {
		if err := c.do(ctx, "PUT", ws(id)+"/config", replacement, nil); err != nil {
			return nil, err
		}
	}
	if len(sets) > 0 {
		p := server.ConfigPatch{Set: map[string]json.RawMessage{}}
		for _, kv := range sets {
			k, v, ok := strings.Cut(kv, "=")
			if !ok || k == "" {
				return nil, &workspace.ConfigError{Fields: []workspace.FieldError{{Field: kv, Msg: "want KEY=VALUE, e.g. limits.memory=1GiB"}}}
			}
			if json.Valid([]byte(v)) {
				p.Set[k] = json.RawMessage(v)
			} else {
				b, _ := json.Marshal(v)
				p.Set[k] = b
			}
		}
		if err := c.do(ctx, "PATCH", ws(id)+"/config", p, nil); err != nil {
			return nil, err
		}
	}
	return c.Get(ctx, id)
}

// Delete removes a workspace.
func (c *Client) Delete(ctx context.Context, id string) error {
	return c.do(ctx, "DELETE", ws(id), nil, nil)
}

// SetCredential stores a credential value.
func (c *Client) SetCredential(ctx context.Context, id, name string, value []byte) error {
	return c.do(ctx, "PUT", ws(id)+"/credentials/"+url.PathEscape(name), server.SetCredentialRequest{Value: string(value)}, nil)
}

// ListCredentials lists names and dates.
func (c *Client) ListCredentials(ctx context.Context, id string) ([]workspace.CredentialInfo, error) {
	var out []workspace.CredentialInfo
	return out, c.do(ctx, "GET", ws(id)+"/credentials", nil, &out)
}

// DeleteCredential removes a credential.
func (c *Client) DeleteCredential(ctx context.Context, id, name string) error {
	return c.do(ctx, "DELETE", ws(id)+"/credentials/"+url.PathEscape(name), nil, nil)
}

// RotatePassphrase rewraps the data keys (unix socket only).
func (c *Client) RotatePassphrase(ctx context.Context, newPass []byte) (int, error) {
	var out server.RotateResponse
	err := c.do(ctx, "POST", "/v1/admin/rotate-passphrase", server.RotateRequest{NewPassphrase: string(newPass)}, &out)
	return out.Rewrapped, err
}

// CreateToken makes a token for workspace scope ("*" for admin).
func (c *Client) CreateToken(ctx context.Context, name, scope string) (string, *server.Token, error) {
	var out server.CreateTokenResponse
	if err := c.do(ctx, "POST", "/v1/tokens", server.CreateTokenRequest{Name: name, Workspace: scope}, &out); err != nil {
		return "", nil, err
	}
	return out.Secret, &out.Token, nil
}

// ListTokens lists tokens, optionally of one workspace.
func (c *Client) ListTokens(ctx context.Context, scope string) ([]server.Token, error) {
	var out []server.Token
	q := ""
	if scope != "" {
		q = "?workspace=" + url.QueryEscape(scope)
	}
	return out, c.do(ctx, "GET", "/v1/tokens"+q, nil, &out)
}

// RevokeToken revokes a token by id.
func (c *Client) RevokeToken(ctx context.Context, id string) error {
	return c.do(ctx, "DELETE", "/v1/tokens/"+url.PathEscape(id), nil, nil)
}
