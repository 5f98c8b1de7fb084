package board

import (
	"bytes"
	"context"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/bulkhead-dev/bulkhead/sandbox"
)

// repoLocks serialises git operations per repository directory.
type repoLocks struct {
	mu    sync.Mutex
	locks map[string]*sync.Mutex
}

func (r *repoLocks) lock(dir string) func() {
	r.mu.Lock()
	if r.locks == nil {
		r.locks = map[string]*sync.Mutex{}
	}
	m := r.locks[dir]
	if m == nil {
		m = &sync.Mutex{}
		r.locks[dir] = m
	}
	r.mu.Unlock()
	m.Lock()
	return m.Unlock
}

// gitTimeout bounds one git command.
const gitTimeout = 10 * time.Minute

// gitSafeArgs come before every git command: the identity of bulkhead's
// commits, no signing, no hooks, no fsmonitor.
var gitSafeArgs = []string{"-c", "safe.directory=*", "-c", "user.name=bulkhead", "-c", "user.email=bulkhead@localhost",
	"-c", "commit.gpgsign=false", "-c", "core.hooksPath=/dev/null", "-c", "core.fsmonitor=false"}

// hostGit runs git on the host in dir. Only for a clone into an empty
// directory: once a repository exists its .git is writable by the tenant's
// sandbox, and git runs commands a repository's config names
// (core.fsmonitor, filter drivers, diff and merge drivers, ...), so every
// later git command runs in the sandbox (sandboxGit). Protocols that run
// commands (ext::) are not allowed; nothing prompts for credentials.
func hostGit(ctx context.Context, dir string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, gitTimeout)
	defer cancel()
	full := append(append([]string{}, gitSafeArgs...), args...)
	cmd := exec.CommandContext(ctx, "git", full...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GIT_TERMINAL_PROMPT=0", "GIT_ALLOW_PROTOCOL=file:git:http:https:ssh", "GIT_ASKPASS=/bin/false", "SSH_ASKPASS=/bin/false",
		"GIT_SSH_COMMAND=ssh -oBatchMode=yes", "GIT_CONFIG_NOSYSTEM=1", "GIT_CONFIG_GLOBAL=/dev/null")
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		return out.String(), fmt.Errorf("git %s: %s", args[0], gitMessage(errb.String(), err))
	}
	return strings.TrimSpace(out.String()), nil
}

// gitFunc runs one git command in a project's repository and returns its
// trimmed stdout.
type gitFunc func(ctx context.Context, args ...string) (string, error)

// sandboxGit runs git in workspace ws's own sandbox, at /workspace: the
// repository's config, attributes and everything else the tenant could
// have written act there, with the sandbox's limits, never on the host.
// Changes go through the workspace's file view, so its caches stay right.
func sandboxGit(wss Workspaces, ws string) gitFunc {
	return func(ctx context.Context, args ...string) (string, error) {
		var out, errb bytes.Buffer
		full := append(append([]string{"git"}, gitSafeArgs...), args...)
		res, err := wss.Exec(ctx, ws, sandbox.Command{Args: full, Dir: "/workspace", Stdout: &out, Stderr: &errb, Timeout: gitTimeout})
		if err != nil {
			return "", fmt.Errorf("git %s in the sandbox of %s: %w", args[0], ws, err)
		}
		switch {
		case res.TimedOut:
			return "", fmt.Errorf("git %s: timed out after %s", args[0], gitTimeout)
		case res.ExitCode != 0:
			return out.String(), fmt.Errorf("git %s: %s", args[0], gitMessage(errb.String(), fmt.Errorf("exit status %d", res.ExitCode)))
		}
		return strings.TrimSpace(out.String()), nil
	}
}

// gitMessage keeps the lines of git's stderr that say what went wrong.
func gitMessage(stderr string, err error) string {
	var keep []string
	for _, l := range strings.Split(strings.TrimSpace(stderr), "\n") {
		l = strings.TrimSpace(l)
		if strings.HasPrefix(l, "fatal:") || strings.HasPrefix(l, "error:") || strings.HasPrefix(l, "CONFLICT") {
			keep = append(keep, l)
		}
	}
	if len(keep) == 0 {
		return err.Error()
	}
	return strings.Join(keep, "; ")
}

// gitClone clones src (a URL or a local path) into dst, which must exist
// and be empty.
func gitClone(ctx context.Context, src, dst string) error {
	if strings.HasPrefix(src, "-") || strings.Contains(src, "::") {
		return fmt.Errorf("%w %q: not a URL or a path", ErrClone, src)
	}
	if !strings.Contains(src, "://") && !strings.Contains(src, "@") {
		abs, err := filepath.Abs(src)
		if err != nil {
			return fmt.Errorf("%w %q: %v", ErrClone, src, err)
		}
		if _, err := os.Stat(abs); err != nil {
			return fmt.Errorf("%w %q: no such directory", ErrClone, src)
		}
		src = abs
	}
	if _, err := hostGit(ctx, dst, "clone", "--quiet", "--", src, "."); err != nil {
		return fmt.Errorf("%w %q: %v", ErrClone, src, strings.TrimPrefix(err.Error(), "git clone: "))
	}
	return nil
}

// gitDefaultBranch reads the branch a fresh clone in dir checked out from
// .git/HEAD, without running git (see hostGit).
func gitDefaultBranch(dir string) (string, error) {
	root, err := os.OpenRoot(dir)
	if err != nil {
		return "", fmt.Errorf("%w: default branch: %v", ErrGit, err)
	}
	defer root.Close()
	b, err := root.ReadFile(".git/HEAD")
	if err != nil {
		return "", fmt.Errorf("%w: default branch: %v", ErrGit, err)
	}
	ref, ok := strings.CutPrefix(strings.TrimSpace(string(b)), "ref: refs/heads/")
	if !ok || ref == "" {
		return "", fmt.Errorf("%w: default branch: the clone's HEAD is not a branch (%q)", ErrGit, b)
	}
	return ref, nil
}

// checkoutTicket switches dir to the ticket's branch, making it from base
// first if it does not exist. Work left uncommitted on another branch is
// committed there first, so switching never loses or carries it.
func checkoutTicket(ctx context.Context, git gitFunc, branch, base string) error {
	cur, err := git(ctx, "symbolic-ref", "--short", "HEAD")
	if err != nil {
		return fmt.Errorf("%w: %v", ErrGit, err)
	}
	if cur == branch {
		return nil
	}
	if err := commitAll(ctx, git, "bulkhead: work left uncommitted on "+cur); err != nil {
		return err
	}
	if _, err := git(ctx, "rev-parse", "--verify", "--quiet", "refs/heads/"+branch); err == nil {
		_, err = git(ctx, "checkout", "--quiet", branch)
		if err != nil {
			return fmt.Errorf("%w: %v", ErrGit, err)
		}
		return nil
	}
	if _, err := git(ctx, "checkout", "--quiet", "-b", branch, base); err != nil {
		return fmt.Errorf("%w: %v", ErrGit, err)
	}
	return nil
}

// commitAll commits every change in dir, if there is any.
func commitAll(ctx context.Context, git gitFunc, msg string) error {
	st, err := git(ctx, "status", "--porcelain")
	if err != nil {
		return fmt.Errorf("%w: %v", ErrGit, err)
	}
	if st == "" {
		return nil
	}
	if _, err := git(ctx, "add", "-A"); err != nil {
		return fmt.Errorf("%w: %v", ErrGit, err)
	}
	if _, err := git(ctx, "commit", "--quiet", "--no-verify", "-m", msg); err != nil {
		return fmt.Errorf("%w: %v", ErrGit, err)
	}
	return nil
}

// mergeTicket merges branch into base with a merge commit and returns its
// hash. A conflict aborts the merge and leaves base as it was.
func mergeTicket(ctx context.Context, git gitFunc, branch, base, msg string) (string, error) {
	if _, err := git(ctx, "rev-parse", "--verify", "--quiet", "refs/heads/"+branch); err != nil {
		return "", fmt.Errorf("%w: branch %s does not exist (the ticket has no work to ship)", ErrGit, branch)
	}
	cur, err := git(ctx, "symbolic-ref", "--short", "HEAD")
	if err != nil {
		return "", fmt.Errorf("%w: %v", ErrGit, err)
	}
	if err := commitAll(ctx, git, "bulkhead: work left uncommitted on "+cur); err != nil {
		return "", err
	}
	if _, err := git(ctx, "checkout", "--quiet", base); err != nil {
		return "", fmt.Errorf("%w: %v", ErrGit, err)
	}
	if _, err := git(ctx, "merge", "--no-ff", "--no-edit", "-m", msg, branch); err != nil {
		_, _ = git(ctx, "merge", "--abort")
		return "", fmt.Errorf("%w: merge %s into %s: %v", ErrGit, branch, base, err)
	}
	return git(ctx, "rev-parse", "HEAD")
}

// chownTree gives every entry under dir (itself included) to uid:gid.
func chownTree(dir string, uid, gid int) error {
	// Through os.Root: a name swapped for a symlink meanwhile (the
	// workspace's sandbox may be running) cannot lead the chown out.
	root, err := os.OpenRoot(dir)
	if err != nil {
		return err
	}
	defer root.Close()
	return fs.WalkDir(root.FS(), ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		return root.Lchown(p, uid, gid)
	})
}
