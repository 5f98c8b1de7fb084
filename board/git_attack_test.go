package board

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// A tenant controls its repository's .git (its sandbox can write there).
// Config that makes git run commands — core.fsmonitor on status, a clean
// filter on add, a merge driver on merge — must never run on the host:
// every git command on an existing repository runs in the project's
// sandbox.
func TestTenantGitConfigNeverRunsOnHost(t *testing.T) {
	hostMarker := filepath.Join(t.TempDir(), "ran-on-host")
	writer := RunnerFunc(func(ctx context.Context, req *RunRequest) (*RunResult, error) {
		if err := os.WriteFile(filepath.Join(req.RepoDir, "feature.txt"), []byte("new\n"), 0o644); err != nil {
			return nil, err
		}
		_, err := callTool(ctx, req, "ticket_update_state", `{"state":"verification","reason":"done"}`)
		return &RunResult{}, err
	})
	b, svc := newBoard(t, Options{Runner: writer})
	ctx := context.Background()
	if _, err := b.CreateProject(ctx, "p", makeRepo(t), ""); err != nil {
		t.Fatal(err)
	}
	dir := svc.FilesDir("p")
	// What an agent in the sandbox could write. Each command leaves a mark
	// at a host path (it does not exist in the sandbox, so there the
	// command fails harmlessly) and one in the workspace.
	evil := "touch " + hostMarker + " /workspace/ran-in-sandbox; "
	cfg := "\n[core]\n\tfsmonitor = \"" + evil + "false\"\n" +
		"[filter \"evil\"]\n\tclean = \"sh -c '" + evil + "cat'\"\n" +
		"[merge \"evil\"]\n\tdriver = \"sh -c '" + evil + "true'\"\n" +
		"[diff]\n\texternal = \"sh -c '" + evil + "true'\"\n"
	f, err := os.OpenFile(filepath.Join(dir, ".git", "config"), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString(cfg)
	f.Close()
	os.WriteFile(filepath.Join(dir, ".gitattributes"), []byte("* filter=evil merge=evil\n"), 0o644)

	tk, _ := b.CreateTicket(ctx, "p", NewTicket{Title: "add a feature"})
	if err := b.Dispatch(ctx, "p", tk.ID, "api"); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Ship(ctx, "p", tk.ID, "ann"); err != nil && !strings.Contains(err.Error(), "git") {
		t.Fatal(err)
	}
	if _, err := os.Stat(hostMarker); err == nil {
		t.Fatal("the tenant's git config ran a command on the host")
	}
	// The config did act — inside the sandbox, as the tenant's own uid.
	if _, err := os.Stat(filepath.Join(dir, "ran-in-sandbox")); err != nil {
		t.Fatalf("the evil config never ran even in the sandbox (is the test still testing anything?): %v", err)
	}
}
