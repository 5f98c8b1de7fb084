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

// git runs the git binary in dir. The repository may be owned by the
// workspace's uid, so it is named safe explicitly; protocols that run
// commands (ext::) are not allowed; nothing prompts for credentials.
func git(ctx context.Context, dir string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, gitTimeout)
	defer cancel()
	full := append([]string{"-c", "safe.directory=*", "-c", "user.name=bulkhead", "-c", "user.email=bulkhead@localhost", "-c", "commit.gpgsign=false", "-c", "core.hooksPath=/dev/null"}, args...)
	cmd := exec.CommandContext(ctx, "git", full...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GIT_TERMINAL_PROMPT=0", "GIT_ALLOW_PROTOCOL=file:git:http:https:ssh", "GIT_ASKPASS=/bin/false", "SSH_ASKPASS=/bin/false", "GIT_SSH_COMMAND=ssh -oBatchMode=yes")
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		return out.String(), fmt.Errorf("git %s: %s", args[0], gitMessage(errb.String(), err))
	}
	return strings.TrimSpace(out.String()), nil
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
	if _, err := git(ctx, dst, "clone", "--quiet", "--", src, "."); err != nil {
		return fmt.Errorf("%w %q: %v", ErrClone, src, strings.TrimPrefix(err.Error(), "git clone: "))
	}
	return nil
}

func gitDefaultBranch(ctx context.Context, dir string) (string, error) {
	b, err := git(ctx, dir, "symbolic-ref", "--short", "HEAD")
	if err != nil {
		return "", fmt.Errorf("%w: default branch: %v", ErrGit, err)
	}
	return b, nil
}

// checkoutTicket switches dir to the ticket's branch, making it from base
// first if it does not exist. Work left uncommitted on another branch is
// committed there first, so switching never loses or carries it.
func checkoutTicket(ctx context.Context, dir, branch, base string) error {
	cur, err := git(ctx, dir, "symbolic-ref", "--short", "HEAD")
	if err != nil {
		return fmt.Errorf("%w: %v", ErrGit, err)
	}
	if cur == branch {
		return nil
	}
	if err := commitAll(ctx, dir, "bulkhead: work left uncommitted on "+cur); err != nil {
		return err
	}
	if _, err := git(ctx, dir, "rev-parse", "--verify", "--quiet", "refs/heads/"+branch); err == nil {
		_, err = git(ctx, dir, "checkout", "--quiet", branch)
		if err != nil {
			return fmt.Errorf("%w: %v", ErrGit, err)
		}
		return nil
	}
	if _, err := git(ctx, dir, "checkout", "--quiet", "-b", branch, base); err != nil {
		return fmt.Errorf("%w: %v", ErrGit, err)
	}
	return nil
}

// commitAll commits every change in dir, if there is any.
func commitAll(ctx context.Context, dir, msg string) error {
	st, err := git(ctx, dir, "status", "--porcelain")
	if err != nil {
		return fmt.Errorf("%w: %v", ErrGit, err)
	}
	if st == "" {
		return nil
	}
	if _, err := git(ctx, dir, "add", "-A"); err != nil {
		return fmt.Errorf("%w: %v", ErrGit, err)
	}
	if _, err := git(ctx, dir, "commit", "--quiet", "--no-verify", "-m", msg); err != nil {
		return fmt.Errorf("%w: %v", ErrGit, err)
	}
	return nil
}

// mergeTicket merges branch into base with a merge commit and returns its
// hash. A conflict aborts the merge and leaves base as it was.
func mergeTicket(ctx context.Context, dir, branch, base, msg string) (string, error) {
	if _, err := git(ctx, dir, "rev-parse", "--verify", "--quiet", "refs/heads/"+branch); err != nil {
		return "", fmt.Errorf("%w: branch %s does not exist (the ticket has no work to ship)", ErrGit, branch)
	}
	cur, err := git(ctx, dir, "symbolic-ref", "--short", "HEAD")
	if err != nil {
		return "", fmt.Errorf("%w: %v", ErrGit, err)
	}
	if err := commitAll(ctx, dir, "bulkhead: work left uncommitted on "+cur); err != nil {
		return "", err
	}
	if _, err := git(ctx, dir, "checkout", "--quiet", base); err != nil {
		return "", fmt.Errorf("%w: %v", ErrGit, err)
	}
	if _, err := git(ctx, dir, "merge", "--no-ff", "--no-edit", "-m", msg, branch); err != nil {
		_, _ = git(ctx, dir, "merge", "--abort")
		return "", fmt.Errorf("%w: merge %s into %s: %v", ErrGit, branch, base, err)
	}
	return git(ctx, dir, "rev-parse", "HEAD")
}

func chownTree(dir string, uid, gid int) error {
	return filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		return os.Lchown(p, uid, gid)
	})
}
