package sandbox_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bulkhead-dev/bulkhead/internal/testutil"
	"github.com/bulkhead-dev/bulkhead/sandbox"
)

var uidSeq atomic.Uint32

// testIDs returns a fresh unprivileged host uid/gid pair for one sandbox.
func testIDs() (uint32, uint32) {
	n := 3_000_000 + uint32(os.Getpid()%1000)*100 + uidSeq.Add(1)
	return n, n
}

// workspaceDir makes a host directory owned by uid inside a 0700
// root-owned parent (like the state dir): the sandbox must not need search
// permission on the host path.
func workspaceDir(t testing.TB, uid, gid uint32) string {
	t.Helper()
	parent, err := os.MkdirTemp("", "bulkhead-ws-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(parent) })
	dir := filepath.Join(parent, "files")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(dir, int(uid), int(gid)); err != nil {
		t.Fatal(err)
	}
	return dir
}

func requireSandbox(t testing.TB) {
	t.Helper()
	testutil.RequireRoot(t)
	testutil.RequireUserNS(t)
}

// startSandbox starts a sandbox with a workspace; mutate adjusts the config.
func startSandbox(t testing.TB, id string, mutate func(*sandbox.Config)) *sandbox.Sandbox {
	t.Helper()
	requireSandbox(t)
	uid, gid := testIDs()
	cfg := sandbox.Config{ID: id, HostUID: uid, HostGID: gid, WorkspaceDir: workspaceDir(t, uid, gid)}
	if mutate != nil {
		mutate(&cfg)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	sb, err := sandbox.Start(ctx, cfg)
	if err != nil {
		t.Fatalf("start sandbox %s: %v", id, err)
	}
	t.Cleanup(func() {
		if err := sb.Close(); err != nil {
			t.Errorf("close sandbox %s: %v", id, err)
		}
	})
	return sb
}

type output struct {
	res            sandbox.Result
	stdout, stderr string
}

func run(t testing.TB, sb *sandbox.Sandbox, args ...string) output {
	t.Helper()
	out, err := runErr(sb, sandbox.Command{Args: args})
	if err != nil {
		t.Fatalf("exec %q: %v (stderr %q)", args, err, out.stderr)
	}
	return out
}

func runErr(sb *sandbox.Sandbox, cmd sandbox.Command) (output, error) {
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	res, err := sb.Exec(ctx, cmd)
	return output{res: res, stdout: stdout.String(), stderr: stderr.String()}, err
}

func sh(t testing.TB, sb *sandbox.Sandbox, script string) output {
	t.Helper()
	return run(t, sb, "/bin/sh", "-c", script)
}

// selfInSandbox is where tests bind the test binary (the escape probe).
const selfInSandbox = "/opt/probe"

var probeDir struct {
	once sync.Once
	dir  string
	err  error
}

// probeCopy copies the test binary into a directory every sandbox uid can
// traverse (go test builds in a 0700 directory).
func probeCopy() (string, error) {
	probeDir.once.Do(func() {
		exe, err := os.Executable()
		if err != nil {
			probeDir.err = err
			return
		}
		dir, err := os.MkdirTemp("", "bulkhead-probe-")
		if err == nil {
			err = os.Chmod(dir, 0o755)
		}
		if err == nil {
			var b []byte
			if b, err = os.ReadFile(exe); err == nil {
				err = os.WriteFile(filepath.Join(dir, "probe"), b, 0o755)
			}
		}
		probeDir.dir, probeDir.err = dir, err
	})
	return probeDir.dir, probeDir.err
}

func cleanupProbe() {
	if probeDir.dir != "" {
		os.RemoveAll(probeDir.dir)
	}
}

func bindSelf(cfg *sandbox.Config) {
	dir, err := probeCopy()
	if err != nil {
		panic(err)
	}
	cfg.Binds = append(cfg.Binds, sandbox.Bind{Source: dir, Target: selfInSandbox})
}

func selfPath() string { return selfInSandbox + "/probe" }

func lines(s string) []string { return strings.Split(strings.TrimSpace(s), "\n") }

func must(t testing.TB, o output, code int) {
	t.Helper()
	if o.res.ExitCode != code {
		t.Fatalf("exit %d, want %d\nstdout: %s\nstderr: %s", o.res.ExitCode, code, o.stdout, o.stderr)
	}
}

var _ = fmt.Sprintf
