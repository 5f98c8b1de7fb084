package cli

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bulkhead-dev/bulkhead/agent/llmtest"
	"github.com/bulkhead-dev/bulkhead/workspace"
)

func gitRepo(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	for _, args := range [][]string{{"init", "-q", "-b", "main"}, {"add", "."}, {"-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "init"}} {
		if args[0] == "add" {
			os.WriteFile(filepath.Join(dir, "README.md"), []byte("hi\n"), 0o644)
		}
		if out, err := exec.Command("git", append([]string{"-C", dir}, args...)...).CombinedOutput(); err != nil {
			t.Fatalf("git %v: %v %s", args, err, out)
		}
	}
	return dir
}

func TestBoardCommands(t *testing.T) {
	setup(t)
	repo := gitRepo(t)
	bad := []struct {
		args []string
		code int
		want string
	}{
		{[]string{"project", "create", "web", "--repo", repo, "--persona", "ghost"}, 1, "persona not found"},
		{[]string{"project", "create", "web", "--repo", filepath.Join(repo, "nope")}, 1, "cannot clone repository"},
		{[]string{"project", "create", "web", "--repo", "https://127.0.0.1:1/x.git"}, 1, "cannot clone repository"},
	}
	for _, c := range bad {
		if r := run(t, "", c.args...); r.code != c.code || !strings.Contains(r.stderr, c.want) {
			t.Fatalf("%v: %+v", c.args, r)
		}
	}
	if r := run(t, "", "project", "create", "web", "--repo", repo); r.code != 0 || !strings.Contains(r.stdout, "branch main") {
		t.Fatalf("create: %+v", r)
	}
	if r := run(t, "", "persona", "list"); r.code != 0 || !strings.Contains(r.stdout, "project-manager") {
		t.Fatalf("persona list: %+v", r)
	}
	if r := run(t, "", "persona", "show", "reviewer", "--file", "SOUL.md"); r.code != 0 || !strings.Contains(r.stdout, "code reviewer") {
		t.Fatalf("persona show: %+v", r)
	}
	pdir := t.TempDir()
	os.WriteFile(filepath.Join(pdir, "SOUL.md"), []byte("You write documentation."), 0o644)
	if r := run(t, "", "persona", "add", "writer", "--from", pdir); r.code != 0 {
		t.Fatalf("persona add: %+v", r)
	}
	if r := run(t, "", "ticket", "create", "web", "--title", "Add a footer", "--criteria", "footer shows"); r.code != 0 || !strings.Contains(r.stdout, "web#1") {
		t.Fatalf("ticket create: %+v", r)
	}
	more := []struct {
		args []string
		code int
		want string
	}{
		{[]string{"ticket", "comment", "web", "9", "hello"}, 1, "ticket not found"},
		{[]string{"ticket", "move", "web", "1", "sideways"}, 2, "unknown state"},
		{[]string{"ticket", "move", "web", "1", "done"}, 1, "cannot move a ticket from backlog to done"},
		{[]string{"ticket", "create", "nope", "--title", "x"}, 1, "project not found"},
		{[]string{"ticket", "ship", "web", "1"}, 1, "only a ticket in verification"},
	}
	for _, c := range more {
		if r := run(t, "", c.args...); r.code != c.code || !strings.Contains(r.stderr, c.want) {
			t.Fatalf("%v: %+v", c.args, r)
		}
	}
	if r := run(t, "", "ticket", "comment", "web", "1", "please make it blue", "--author", "ann"); r.code != 0 {
		t.Fatalf("comment: %+v", r)
	}

	// One heartbeat against the loopback model: the agent comments and
	// moves the ticket to verification.
	srv := llmtest.Start(t)
	srv.Push(
		llmtest.ToolCall("c1", "comment_post", `{"body":"Added a blue footer."}`),
		llmtest.ToolCall("c2", "ticket_update_state", `{"state":"verification"}`),
		llmtest.Text("done"),
	)
	t.Setenv("ANTHROPIC_BASE_URL", srv.URL)
	t.Setenv("BULKHEAD_EGRESS_ALLOW", strings.TrimPrefix(srv.URL, "http://")) // the operator lets the host reach the loopback model
	t.Setenv("ANTHROPIC_API_KEY", llmtest.Key)
	if r := run(t, "", "heartbeat", "--once"); r.code != 0 || !strings.Contains(r.stdout, "1 claimed, 1 succeeded") {
		t.Fatalf("heartbeat: %+v", r)
	}
	r := run(t, "", "ticket", "show", "web", "1")
	if r.code != 0 || !strings.Contains(r.stdout, "verification") || !strings.Contains(r.stdout, "Added a blue footer.") || !strings.Contains(r.stdout, "please make it blue") {
		t.Fatalf("show: %+v", r)
	}
	if r := run(t, "", "ticket", "ship", "web", "1"); r.code != 0 || !strings.Contains(r.stdout, "merged as") {
		t.Fatalf("ship: %+v", r)
	}
	if r := run(t, "", "project", "show", "web"); r.code != 0 || !strings.Contains(r.stdout, "done (1)") {
		t.Fatalf("project show: %+v", r)
	}
}

// With a server holding the state dir, the board commands go through its
// socket and behave the same.
func TestBoardThroughRunningServer(t *testing.T) {
	dir := setup(t)
	repo := gitRepo(t)
	svc, err := workspace.Open(context.Background(), workspace.Options{StateDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer svc.Close()
	defer serveSocket(t, svc)()

	if r := run(t, "", "project", "create", "web", "--repo", repo, "--persona", "ghost"); r.code != 1 || !strings.Contains(r.stderr, "persona not found") {
		t.Fatalf("unknown persona via socket: %+v", r)
	}
	if r := run(t, "", "project", "create", "web", "--repo", repo); r.code != 0 || !strings.Contains(r.stdout, "branch main") {
		t.Fatalf("create via socket: %+v", r)
	}
	if r := run(t, "", "ticket", "create", "web", "--title", "Footer"); r.code != 0 || !strings.Contains(r.stdout, "web#1") {
		t.Fatalf("ticket via socket: %+v", r)
	}
	if r := run(t, "", "ticket", "comment", "web", "7", "hi"); r.code != 1 || !strings.Contains(r.stderr, "ticket not found") {
		t.Fatalf("comment on missing ticket via socket: %+v", r)
	}
	if r := run(t, "", "ticket", "move", "web", "1", "in_progress"); r.code != 0 || !strings.Contains(r.stdout, "now in_progress") {
		t.Fatalf("move via socket: %+v", r)
	}
	if r := run(t, "", "ticket", "show", "web", "1"); r.code != 0 || !strings.Contains(r.stdout, "moved the ticket from backlog to in_progress") {
		t.Fatalf("show via socket: %+v", r)
	}
	if r := run(t, "", "persona", "list"); r.code != 0 || !strings.Contains(r.stdout, "reviewer") {
		t.Fatalf("personas via socket: %+v", r)
	}
	if r := run(t, "", "heartbeat", "--once"); r.code != 1 || !strings.Contains(r.stderr, "runs the heartbeat itself") {
		t.Fatalf("heartbeat beside a server: %+v", r)
	}
}
