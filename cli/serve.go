package cli

import (
	"fmt"
	"net"
	"path/filepath"
	"time"

	"github.com/bulkhead-dev/bulkhead/embed"
	"github.com/bulkhead-dev/bulkhead/netguard"
	"github.com/bulkhead-dev/bulkhead/server"
	bsync "github.com/bulkhead-dev/bulkhead/sync"
	"github.com/bulkhead-dev/bulkhead/workspace"
)

// ServeCmd runs the HTTP API, the agent runtime and the heartbeat.
type ServeCmd struct {
	Listen        string        `default:"127.0.0.1:7400" env:"BULKHEAD_LISTEN" help:"TCP address for the HTTP API."`
	ShutdownGrace time.Duration `name:"shutdown-grace" default:"30s" help:"On SIGINT/SIGTERM, how long requests and runs may take to finish before they are cancelled."`
	MaxBody       int64         `name:"max-body" default:"1048576" help:"Largest request body in bytes."`

	EgressAllow []string `name:"egress-allow" placeholder:"HOST:PORT|CIDR" env:"BULKHEAD_EGRESS_ALLOW" help:"Let the host reach these private endpoints (e.g. an Ollama on 127.0.0.1:11434); everything private stays blocked otherwise."`

	MaxConcurrentRuns int `name:"max-concurrent-runs" default:"4" help:"Runs one workspace may have in progress."`
	RunsPerMinute     int `name:"runs-per-minute" default:"60" help:"Runs one workspace may start per minute."`
	TokensPerDay      int `name:"tokens-per-day" default:"0" help:"Model tokens one workspace may use per UTC day (0: no limit)."`

	EmbedProvider   string `name:"embed-provider" enum:",openai,gemini,voyage,mistral" default:"" env:"BULKHEAD_EMBED_PROVIDER" help:"Embedding provider for memory search (openai also serves Ollama, vLLM, llama.cpp); empty: keyword-only. Key: each workspace's credential <provider>_api_key, else <PROVIDER>_API_KEY."`
	EmbedModel      string `name:"embed-model" env:"BULKHEAD_EMBED_MODEL" help:"Embedding model, e.g. text-embedding-3-small."`
	EmbedBaseURL    string `name:"embed-base-url" env:"BULKHEAD_EMBED_BASE_URL" help:"Embedding API root (default: the provider's); a private address must also be in --egress-allow."`
	EmbedDimensions int    `name:"embed-dimensions" env:"BULKHEAD_EMBED_DIMENSIONS" help:"Vector length, needed for models bulkhead does not know."`

	Heartbeat         bool          `default:"true" negatable:"" help:"Run the ticket heartbeat inside the server (--no-heartbeat to leave it to cron)."`
	HeartbeatInterval time.Duration `name:"heartbeat-interval" default:"1m" help:"Time between heartbeats."`

	StoreFlags       `embed:""`
	SnapshotEvery    time.Duration `name:"snapshot-every" default:"0" help:"Snapshot every workspace this often, then prune its repository (0: off)."`
	SnapshotKeepLast int           `name:"snapshot-keep-last" help:"Scheduled prune: keep the N newest snapshots."`
	SnapshotHourly   int           `name:"snapshot-keep-hourly" default:"24" help:"Scheduled prune: keep one snapshot for each of the last N hours."`
	SnapshotDaily    int           `name:"snapshot-keep-daily" default:"7" help:"Scheduled prune: keep one snapshot for each of the last N days."`
	SnapshotWeekly   int           `name:"snapshot-keep-weekly" default:"4" help:"Scheduled prune: keep one snapshot for each of the last N weeks."`
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
	guard, err := netguard.New(netguard.Config{Allow: c.EgressAllow, Logger: g.Log})
	if err != nil {
		return &UsageError{fmt.Errorf("--egress-allow: %w", err)}
	}
	embedding, err := c.embedding(guard, g)
	if err != nil {
		return err
	}
	svc.SetAgentOptions(workspace.AgentOptions{
		Guard:     guard,
		Embedding: embedding,
		Personas:  BoardPersonas(svc),
		Quotas:    workspace.Quotas{MaxConcurrentRuns: c.MaxConcurrentRuns, RunsPerMinute: c.RunsPerMinute, TokensPerDay: c.TokensPerDay},
	})
	stores, err := c.stores(svc)
	if err != nil {
		return err
	}
	srv, err := server.New(server.Options{Service: svc, Logger: g.Log, MaxBody: c.MaxBody, ShutdownGrace: c.ShutdownGrace, Snapshots: stores})
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
	if c.Heartbeat {
		StartHeartbeat(g.Context(), g, svc, guard, c.HeartbeatInterval)
	}
	if c.SnapshotEvery > 0 {
		keep := bsync.Retention{Last: c.SnapshotKeepLast, Hourly: c.SnapshotHourly, Daily: c.SnapshotDaily, Weekly: c.SnapshotWeekly}
		go svc.ScheduleSnapshots(g.Context(), stores, c.SnapshotEvery, keep)
	}
	err = srv.Serve(g.Context(), c.Listen, func(a net.Addr) {
		fmt.Fprintf(g.Stderr, "bulkhead serving on http://%s (socket %s)\n", a, filepath.Join(g.StateDir, server.SocketName))
	})
	// Serve has drained requests for the grace period; cancel what still
	// runs (each run journals itself as cancelled) before the state closes.
	svc.StopRuns()
	return err
}

// embedding builds the node's embedding config from the flags (nil:
// keyword-only) and checks it once by building an embedder with the env
// key: a private endpoint must be in --egress-allow. Each workspace then
// gets its own embedder with its own key (workspace.AgentOptions.Embedding).
func (c *ServeCmd) embedding(guard *netguard.Guard, g *Globals) (*embed.Config, error) {
	if c.EmbedProvider == "" {
		return nil, nil
	}
	if c.EmbedModel == "" {
		return nil, &UsageError{fmt.Errorf("--embed-provider %s needs --embed-model", c.EmbedProvider)}
	}
	key, _ := embed.EnvKey(c.EmbedProvider)
	cfg := &embed.Config{Provider: c.EmbedProvider, Model: c.EmbedModel, BaseURL: c.EmbedBaseURL, Dimensions: c.EmbedDimensions, APIKey: key, Logger: g.Log}
	if _, err := embed.New(*cfg, guard); err != nil {
		return nil, &UsageError{fmt.Errorf("embedder: %w", err)}
	}
	return cfg, nil
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
