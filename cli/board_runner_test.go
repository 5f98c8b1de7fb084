package cli

import (
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bulkhead-dev/bulkhead/agent/llmtest"
	"github.com/bulkhead-dev/bulkhead/internal/testutil"
)

// A ticket run by the heartbeat gets bash in the project's own sandbox (not
// the host) and reaches the model only through the SSRF guard.
func TestTicketRunUsesSandbox(t *testing.T) {
	testutil.RequireRoot(t)
	testutil.RequireFUSE(t)
	testutil.RequireUserNS(t)
	testutil.RequireBinary(t, "git")
	dir := setup(t)
	repo := filepath.Join(t.TempDir(), "repo")
	for _, args := range [][]string{{"init", "-q", "-b", "main", repo}, {"-C", repo, "-c", "user.email=t@t", "-c", "user.name=t", "commit", "-q", "--allow-empty", "-m", "init"}} {
		if out, err := exec.Command("git", args...).CombinedOutput(); err != nil {
			t.Fatalf("git %v: %v %s", args, err, out)
		}
	}
	llm := llmtest.Start(t)
	u, _ := url.Parse(llm.URL)
	t.Setenv("OPENAI_BASE_URL", llm.URL+"/v1")
	t.Setenv("OPENAI_API_KEY", llmtest.Key)

	if r := run(t, "", "project", "create", "web", "--repo", repo); r.code != 0 {
		t.Fatalf("project create: %+v", r)
	}
	if r := run(t, "", "workspace", "config", "web", "provider=openai", "model=test-model"); r.code != 0 {
		t.Fatalf("config: %+v", r)
	}
	if r := run(t, "", "ticket", "create", "web", "--title", "write a marker"); r.code != 0 {
		t.Fatalf("ticket create: %+v", r)
	}
	llm.Push(llmtest.ToolCall("c1", "bash", `{"command":"echo marker uid=$(id -u) host=$(hostname) > /workspace/marker.txt"}`), llmtest.Text("done"))

	// Without the operator allowing the loopback model, the guard refuses it.
	if r := run(t, "", "heartbeat", "--once"); strings.Contains(r.stdout+r.stderr, "panic") {
		t.Fatalf("heartbeat: %+v", r)
	}
	if llm.Pending() != 2 {
		t.Fatalf("the model was reached without --egress-allow (%d replies left)", llm.Pending())
	}
	t.Setenv("BULKHEAD_EGRESS_ALLOW", u.Host)
	// The failed run backs off; a new human comment makes the ticket actionable again.
	run(t, "", "ticket", "comment", "web", "1", "please retry")
	r := run(t, "", "heartbeat", "--once")
	b, err := os.ReadFile(filepath.Join(dir, "workspaces", "web", "files", "marker.txt"))
	if err != nil {
		t.Fatalf("marker not written through the sandbox: %v (heartbeat %+v, %d replies left)", err, r, llm.Pending())
	}
	if !strings.Contains(string(b), "uid=0 host=web") {
		t.Fatalf("bash did not run in the project's sandbox: %q", b)
	}
}

// The heartbeat's ticket runs take the provider key from the project
// workspace's own credentials, not only the host environment, and one
// workspace's key never serves another's tickets.
func TestTicketRunUsesWorkspaceCredential(t *testing.T) {
	testutil.RequireRoot(t)
	testutil.RequireFUSE(t)
	testutil.RequireUserNS(t)
	testutil.RequireBinary(t, "git")
	setup(t)
	llm := llmtest.Start(t)
	u, _ := url.Parse(llm.URL)
	t.Setenv("OPENAI_BASE_URL", llm.URL+"/v1")
	t.Setenv("OPENAI_API_KEY", "")
	t.Setenv("BULKHEAD_EGRESS_ALLOW", u.Host)
	for _, name := range []string{"keyed", "keyless"} {
		repo := filepath.Join(t.TempDir(), name)
		for _, args := range [][]string{{"init", "-q", "-b", "main", repo}, {"-C", repo, "-c", "user.email=t@t", "-c", "user.name=t", "commit", "-q", "--allow-empty", "-m", "init"}} {
			if out, err := exec.Command("git", args...).CombinedOutput(); err != nil {
				t.Fatalf("git %v: %v %s", args, err, out)
			}
		}
		if r := run(t, "", "project", "create", name, "--repo", repo); r.code != 0 {
			t.Fatalf("project create: %+v", r)
		}
		if r := run(t, "", "workspace", "config", name, "provider=openai", "model=test-model"); r.code != 0 {
			t.Fatalf("config: %+v", r)
		}
	}
	if r := run(t, llmtest.Key, "creds", "set", "keyed", "openai_api_key"); r.code != 0 {
		t.Fatalf("creds set: %+v", r)
	}
	if r := run(t, "", "ticket", "create", "keyless", "--title", "needs a key"); r.code != 0 {
		t.Fatalf("ticket create: %+v", r)
	}
	run(t, "", "heartbeat", "--once")
	if llm.Pending() != 0 || len(llm.Requests()) != 0 {
		t.Fatalf("a workspace without a key reached the model (%d requests)", len(llm.Requests()))
	}
	if r := run(t, "", "ticket", "show", "keyless", "1"); !strings.Contains(r.stdout, "openai_api_key") {
		t.Fatalf("the failed ticket does not say which key is missing: %+v", r)
	}

	if r := run(t, "", "ticket", "create", "keyed", "--title", "say done"); r.code != 0 {
		t.Fatalf("ticket create: %+v", r)
	}
	llm.Push(llmtest.Text("done"))
	if r := run(t, "", "heartbeat", "--once"); !strings.Contains(r.stdout, "1 succeeded") {
		t.Fatalf("heartbeat with the workspace's key: %+v (%d replies left)", r, llm.Pending())
	}
	reqs := llm.Requests()
	if len(reqs) == 0 || reqs[len(reqs)-1].Key != llmtest.Key {
		t.Fatalf("the model saw no request with the workspace's key: %+v", reqs)
	}
}
