package cli

import (
	"context"
	"errors"
	"os"
	"path/filepath"

	"github.com/bulkhead-dev/bulkhead/client"
	"github.com/bulkhead-dev/bulkhead/kv"
	"github.com/bulkhead-dev/bulkhead/server"
	"github.com/bulkhead-dev/bulkhead/workspace"
)

// Backend is what the workspace, creds and token commands need. It is the
// state dir itself when no server runs on it, or a running server reached
// through its unix socket; the commands cannot tell the difference.
type Backend interface {
	Create(ctx context.Context, id string, cfg *workspace.Config) (*workspace.Workspace, error)
	Get(ctx context.Context, id string) (*workspace.Workspace, error)
	List(ctx context.Context) ([]*workspace.Workspace, error)
	Configure(ctx context.Context, id string, replacement *workspace.Config, sets []string) (*workspace.Workspace, error)
	Delete(ctx context.Context, id string) error
	SetCredential(ctx context.Context, id, name string, value []byte) error
	ListCredentials(ctx context.Context, id string) ([]workspace.CredentialInfo, error)
	DeleteCredential(ctx context.Context, id, name string) error
	RotatePassphrase(ctx context.Context, newPass []byte) (int, error)
	CreateToken(ctx context.Context, name, scope string) (string, *server.Token, error)
	ListTokens(ctx context.Context, scope string) ([]server.Token, error)
	RevokeToken(ctx context.Context, id string) error
}

var (
	_ Backend = (*localBackend)(nil)
	_ Backend = (*client.Client)(nil)
)

// localBackend is the state dir opened in this process.
type localBackend struct {
	*workspace.Service
	tokens *server.TokenStore
}

func (l *localBackend) Delete(ctx context.Context, id string) error {
	if err := l.Service.Delete(ctx, id); err != nil {
		return err
	}
	return l.tokens.RevokeScope(id)
}

func (l *localBackend) CreateToken(ctx context.Context, name, scope string) (string, *server.Token, error) {
	var uid uint32
	if scope != server.AdminScope {
		w, err := l.Get(ctx, scope)
		if err != nil {
			return "", nil, err
		}
		uid = w.HostUID
	}
	return l.tokens.Create(name, scope, uid)
}

func (l *localBackend) ListTokens(_ context.Context, scope string) ([]server.Token, error) {
	return l.tokens.List(scope)
}

func (l *localBackend) RevokeToken(_ context.Context, id string) error { return l.tokens.Revoke(id) }

// Backend opens the state dir, or, if a server holds it, connects to the
// server's unix socket.
func (g *Globals) Backend() (Backend, error) {
	if g.backend != nil {
		return g.backend, nil
	}
	svc, err := g.Service()
	if err == nil {
		g.backend = &localBackend{Service: svc, tokens: server.NewTokenStore(svc.ControlDB())}
		return g.backend, nil
	}
	sock := filepath.Join(g.StateDir, server.SocketName)
	if errors.Is(err, kv.ErrLocked) {
		if _, serr := os.Stat(sock); serr == nil {
			g.backend = client.NewUnix(sock)
			return g.backend, nil
		}
	}
	return nil, err
}

// filesDir is where a workspace's files live, whichever backend is in use.
func (g *Globals) filesDir(id string) string {
	return filepath.Join(g.StateDir, "workspaces", id, "files")
}
