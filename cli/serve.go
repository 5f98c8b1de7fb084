package cli

import (
	"fmt"
	"net"
	"path/filepath"
	"time"

	"github.com/bulkhead-dev/bulkhead/server"
)

// ServeCmd runs the HTTP API.
type ServeCmd struct {
	Listen        string        `default:"127.0.0.1:7400" env:"BULKHEAD_LISTEN" help:"TCP address for the HTTP API."`
	ShutdownGrace time.Duration `name:"shutdown-grace" default:"30s" help:"On SIGINT/SIGTERM, how long requests and runs may take to finish before they are cancelled."`
	MaxBody       int64         `name:"max-body" default:"1048576" help:"Largest request body in bytes."`
}

// Run serves until SIGINT or SIGTERM.
func (c *ServeCmd) Run(g *Globals) error {
	svc, err := g.Service()
	if err != nil {
		return err
	}
	// Fail at start, not at the first request, when the passphrase is
	// missing or wrong.
	if err := svc.Unlock(); err != nil {
		return err
	}
	srv, err := server.New(server.Options{Service: svc, Logger: g.Log, MaxBody: c.MaxBody, ShutdownGrace: c.ShutdownGrace})
	if err != nil {
		return err
	}
	secret, err := srv.Tokens().EnsureAdmin(g.StateDir)
	if err != nil {
		return err
	}
	if secret != "" {
		fmt.Fprintf(g.Stdout, "admin token (shown once; also saved 0600 in %s):\n%s\n", filepath.Join(g.StateDir, server.AdminTokenFile), secret)
	}
	return srv.Serve(g.Context(), c.Listen, func(a net.Addr) {
		fmt.Fprintf(g.Stderr, "bulkhead serving on http://%s (socket %s)\n", a, filepath.Join(g.StateDir, server.SocketName))
	})
}

// TokenCmd groups API token commands.
type TokenCmd struct {
	Create TokenCreateCmd `cmd:"" help:"Create an API token for one workspace (or --admin). The secret is printed once."`
	List   TokenListCmd   `cmd:"" aliases:"ls" help:"List tokens (ids, names, scopes; never secrets)."`
	Revoke TokenRevokeCmd `cmd:"" aliases:"rm" help:"Revoke a token by id."`
}

// TokenCreateCmd creates a token.
type TokenCreateCmd struct {
	Workspace string `arg:"" optional:"" help:"Workspace the token is scoped to."`
	Admin     bool   `help:"Create an admin token (all workspaces)."`
	Name      string `default:"cli" help:"A name to recognise the token by."`
}

// Run creates.
func (c *TokenCreateCmd) Run(g *Globals) error {
	scope := c.Workspace
	switch {
	case c.Admin && scope != "":
		return &UsageError{fmt.Errorf("give a workspace or --admin, not both")}
	case c.Admin:
		scope = server.AdminScope
	case scope == "":
		return &UsageError{fmt.Errorf("give the workspace the token is for, or --admin")}
	}
	b, err := g.Backend()
	if err != nil {
		return err
	}
	secret, t, err := b.CreateToken(g.Context(), c.Name, scope)
	if err != nil {
		return err
	}
	fmt.Fprintf(g.Stderr, "token %s for %s (the secret below is shown once)\n", t.ID, scope)
	fmt.Fprintln(g.Stdout, secret)
	return nil
}

// TokenListCmd lists tokens.
type TokenListCmd struct {
	Workspace string `help:"Only tokens of this workspace."`
	JSON      bool   `help:"Print as JSON."`
}

// Run lists.
func (c *TokenListCmd) Run(g *Globals) error {
	b, err := g.Backend()
	if err != nil {
		return err
	}
	list, err := b.ListTokens(g.Context(), c.Workspace)
	if err != nil {
		return err
	}
	if c.JSON {
		return writeJSON(g, list)
	}
	for _, t := range list {
		fmt.Fprintf(g.Stdout, "%s  %-10s  %-20s  %s\n", t.ID, t.Scope, t.Name, t.CreatedAt.Format("2006-01-02 15:04"))
	}
	return nil
}

// TokenRevokeCmd revokes a token.
type TokenRevokeCmd struct {
	ID string `arg:"" help:"Token id (from token list)."`
}

// Run revokes.
func (c *TokenRevokeCmd) Run(g *Globals) error {
	b, err := g.Backend()
	if err != nil {
		return err
	}
	if err := b.RevokeToken(g.Context(), c.ID); err != nil {
		return err
	}
	fmt.Fprintf(g.Stderr, "revoked token %s\n", c.ID)
	return nil
}
