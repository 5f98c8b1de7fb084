package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"

	"github.com/alecthomas/kong"

	"github.com/bulkhead-dev/bulkhead/internal/logging"
	"github.com/bulkhead-dev/bulkhead/workspace"
)

// CLI is the command tree. Subsystems add their commands as fields here.
type CLI struct {
	Globals

	Serve     ServeCmd     `cmd:"" help:"Run the HTTP API (and, as they land, the scheduler and web UI) on this state dir."`
	Workspace WorkspaceCmd `cmd:"" aliases:"ws" help:"Create, list, show, configure and delete workspaces."`
	Creds     CredsCmd     `cmd:"" help:"Manage a workspace's sealed credentials."`
	Token     TokenCmd     `cmd:"" help:"Manage API tokens."`
	Memory    MemoryCmd    `cmd:"" help:"Add, search, list, remove and reindex a workspace's memory."`
	Version   VersionCmd   `cmd:"" help:"Print the version."`
	Project   ProjectCmd   `cmd:"" help:"Create, list and show projects (a workspace bound to a git repository and a board)."`
	Persona   PersonaCmd   `cmd:"" help:"List, show and add personas (bootstrap file sets)."`
	Ticket    TicketCmd    `cmd:"" help:"Open, list, show, comment on, move and ship tickets."`
	Heartbeat HeartbeatCmd `cmd:"" help:"Run pending ticket work (--once for cron), then exit."`
	Mount     MountCmd     `cmd:"" help:"Mount a workspace's files on DIR (read-only unless --rw) until Ctrl-C or umount."`
	Umount    UmountCmd    `cmd:"" help:"Unmount a workspace view mounted by 'bulkhead mount'."`
	Backup    BackupCmd    `cmd:"" help:"Snapshot a workspace's files, state and config into its encrypted repository."`
	Snapshots SnapshotsCmd `cmd:"" help:"List a workspace's snapshots."`
	Restore   RestoreCmd   `cmd:"" help:"Restore a snapshot in place (--yes), or into a new workspace (--to)."`
	Diff      DiffCmd      `cmd:"" help:"Show what changed between two snapshots of a workspace."`
	Verify    VerifyCmd    `cmd:"" help:"Check a workspace's snapshot repository, reading back a fraction of the data."`
	Prune     PruneCmd     `cmd:"" help:"Forget snapshots outside a retention policy and delete unused data."`
	Exec      ExecCmd      `cmd:"" help:"Run a command in a workspace's sandbox: bulkhead exec WS [--timeout D] -- CMD ARGS..."`
	Sandbox   SandboxCmd   `cmd:"" help:"Sandbox diagnostics."`
	Run       RunCmd       `cmd:"" help:"Run the agent on a message in a workspace, streaming its text and tool activity: bulkhead run WS \"message\" [--session ID] [--json]"`
	Session   SessionCmd   `cmd:"" help:"List, show and delete a workspace's agent sessions."`
	Skill     SkillCmd     `cmd:"" help:"Register skills and enable them per workspace."`
}

// Globals are the flags every command accepts.
type Globals struct {
	StateDir       string `name:"state-dir" env:"BULKHEAD_STATE_DIR" placeholder:"DIR" help:"State directory (default /var/lib/bulkhead as root, else $XDG_STATE_HOME/bulkhead or ~/.local/state/bulkhead)."`
	LogLevel       string `name:"log-level" env:"BULKHEAD_LOG_LEVEL" enum:"debug,info,warn,error" default:"warn" help:"Log level: debug, info, warn, error."`
	LogFormat      string `name:"log-format" env:"BULKHEAD_LOG_FORMAT" enum:"text,json" default:"text" help:"Log format: text or json."`
	LogFile        string `name:"log-file" env:"BULKHEAD_LOG_FILE" placeholder:"PATH" help:"Write logs to this file instead of stderr, rotated by size."`
	LogFileMaxSize int64  `name:"log-file-max-size" default:"104857600" placeholder:"BYTES" help:"Rotate the log file when it would pass this size."`
	LogFileBackups int    `name:"log-file-backups" default:"5" help:"Rotated log files to keep."`

	// set up by Main
	Stdin   io.Reader    `kong:"-"`
	Stdout  io.Writer    `kong:"-"`
	Stderr  io.Writer    `kong:"-"`
	Log     *slog.Logger `kong:"-"`
	ctx     context.Context
	svc     *workspace.Service
	backend Backend
}

// DefaultStateDir is /var/lib/bulkhead for root, else
// $XDG_STATE_HOME/bulkhead, else ~/.local/state/bulkhead.
func DefaultStateDir() string {
	if os.Geteuid() == 0 {
		return "/var/lib/bulkhead"
	}
	if x := os.Getenv("XDG_STATE_HOME"); x != "" {
		return filepath.Join(x, "bulkhead")
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return filepath.Join(os.TempDir(), "bulkhead-state")
	}
	return filepath.Join(home, ".local", "state", "bulkhead")
}

// Context returns the command's context, cancelled on SIGINT/SIGTERM.
func (g *Globals) Context() context.Context { return g.ctx }

// Service opens the state dir on first use.
func (g *Globals) Service() (*workspace.Service, error) {
	if g.svc != nil {
		return g.svc, nil
	}
	svc, err := workspace.Open(g.ctx, workspace.Options{StateDir: g.StateDir, Logger: g.Log, DevKeyFile: true})
	if err != nil {
		return nil, err
	}
	g.svc = svc
	return svc, nil
}

// UsageError marks errors in how the command was called (exit code 2).
type UsageError struct{ Err error }

func (e *UsageError) Error() string { return e.Err.Error() }
func (e *UsageError) Unwrap() error { return e.Err }

// ExitError carries an exit code without a message (exec uses it to pass on
// the sandboxed command's status).
type ExitError struct{ Code int }

func (e *ExitError) Error() string { return fmt.Sprintf("exit status %d", e.Code) }

// Main runs the CLI with args (without the program name) and returns the
// process exit code.
func Main(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	var c CLI
	c.Stdin, c.Stdout, c.Stderr = stdin, stdout, stderr
	exitCode := -1
	parser, err := kong.New(&c,
		kong.Name("bulkhead"),
		kong.Description("Run AI agents for many tenants on one Linux box, each in its own kernel-enforced sandbox."),
		kong.UsageOnError(),
		kong.ConfigureHelp(kong.HelpOptions{Compact: true}),
		kong.Writers(stdout, stderr),
		kong.Exit(func(code int) { exitCode = code }),
		kong.Bind(&c.Globals),
		kong.Vars{"id_rule": workspace.IDRule, "cred_rule": workspace.CredentialNameRule},
	)
	if err != nil {
		fmt.Fprintf(stderr, "bulkhead: %v\n", err)
		return 2
	}
	kctx, err := parser.Parse(args)
	if exitCode >= 0 { // --help or a parse error that kong already reported
		return exitCode
	}
	if err != nil {
		fmt.Fprintf(stderr, "bulkhead: %v\n", err)
		if kctx != nil {
			fmt.Fprintf(stderr, "run 'bulkhead %s --help' for usage\n", kctx.Command())
		}
		return 2
	}
	if c.StateDir == "" {
		c.StateDir = DefaultStateDir()
	}
	log, closer, err := logging.New(logging.Options{Level: c.LogLevel, Format: c.LogFormat, File: c.LogFile, MaxBytes: c.LogFileMaxSize, Backups: c.LogFileBackups}, stderr)
	if err != nil {
		fmt.Fprintf(stderr, "bulkhead: %v\n", err)
		return 2
	}
	defer closer.Close()
	c.Log = log
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	c.ctx = ctx
	err = kctx.Run(&c.Globals)
	if c.svc != nil {
		if cerr := c.svc.Close(); cerr != nil && err == nil {
			err = cerr
		}
	}
	return report(err, stderr)
}

func report(err error, stderr io.Writer) int {
	if err == nil {
		return 0
	}
	var ee *ExitError
	if errors.As(err, &ee) {
		return ee.Code
	}
	fmt.Fprintf(stderr, "bulkhead: %v\n", err)
	var ue *UsageError
	if errors.As(err, &ue) {
		return 2
	}
	return 1
}
