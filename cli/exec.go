package cli

import (
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"golang.org/x/term"

	"github.com/bulkhead-dev/bulkhead/kv"
	"github.com/bulkhead-dev/bulkhead/sandbox"
)

// ExecCmd runs one command in a workspace's sandbox.
type ExecCmd struct {
	Workspace string        `arg:"" help:"Workspace id."`
	Timeout   time.Duration `placeholder:"D" help:"Wall-clock limit (default: the workspace's limits.exec_timeout)."`
	Command   []string      `arg:"" passthrough:"" help:"Command and arguments, after --."`
}

// Exit codes for ends that are not the command's own, as timeout(1) and
// shells use them.
const (
	exitTimedOut = 124
	exitOOM      = 137
)

// Run starts the workspace's sandbox, runs the command with this process's
// stdio (a terminal inside when stdin is one) and exits with its status.
func (c *ExecCmd) Run(g *Globals) error {
	args := c.Command
	if len(args) > 0 && args[0] == "--" {
		args = args[1:]
	}
	if len(args) == 0 {
		return &UsageError{errors.New("exec: no command given (bulkhead exec WS -- CMD ARGS...)")}
	}
	svc, err := g.Service()
	if errors.Is(err, kv.ErrLocked) {
		return fmt.Errorf("exec: %w: a running 'bulkhead serve' holds this state dir; exec through its API is not wired yet", err)
	}
	if err != nil {
		return err
	}
	if _, err := svc.Get(g.Context(), c.Workspace); err != nil {
		return err
	}
	if err := sandbox.UserNamespacesAvailable(); err != nil {
		return fmt.Errorf("exec: %w (see 'bulkhead sandbox doctor')", err)
	}
	// The workspace's sandbox (its files through the FUSE view, so the
	// workspace's path policy applies) lives for this one command.
	defer svc.StopSandbox(c.Workspace)

	cmd := sandbox.Command{Args: args, Env: os.Environ(), Stdin: g.Stdin, Stdout: g.Stdout, Stderr: g.Stderr, Timeout: c.Timeout}
	if f, ok := g.Stdin.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		cmd.TTY = true
		if cols, rows, err := term.GetSize(int(f.Fd())); err == nil {
			cmd.Rows, cmd.Cols = uint16(rows), uint16(cols)
		}
		old, err := term.MakeRaw(int(f.Fd()))
		if err == nil {
			defer term.Restore(int(f.Fd()), old)
		}
		winch := make(chan os.Signal, 1)
		signal.Notify(winch, syscall.SIGWINCH)
		defer signal.Stop(winch)
		cmd.OnStart = func(tty sandbox.TTYControl) {
			go func() {
				for range winch {
					if cols, rows, err := term.GetSize(int(f.Fd())); err == nil {
						tty.Resize(uint16(rows), uint16(cols))
					}
				}
			}()
		}
	}
	res, err := svc.Exec(g.Context(), c.Workspace, cmd)
	switch {
	case errors.Is(err, sandbox.ErrCommandNotFound), errors.Is(err, sandbox.ErrNotExecutable):
		fmt.Fprintf(g.Stderr, "bulkhead: exec: %v\n", err)
		return &ExitError{Code: res.ExitCode}
	case err != nil:
		return fmt.Errorf("exec: %w", err)
	case res.TimedOut && g.Context().Err() == nil:
		fmt.Fprintf(g.Stderr, "bulkhead: exec: timed out after %v; every process of the sandbox was killed\n", res.Duration.Round(time.Millisecond))
		return &ExitError{Code: exitTimedOut}
	case res.OOMKilled:
		fmt.Fprintf(g.Stderr, "bulkhead: exec: out of memory: the kernel killed a process of the sandbox (limits.memory)\n")
		if res.ExitCode == 0 {
			return nil
		}
		return &ExitError{Code: max(res.ExitCode, 1)}
	}
	if res.ExitCode != 0 {
		return &ExitError{Code: res.ExitCode}
	}
	return nil
}
