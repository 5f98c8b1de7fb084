package cli

import (
	"os"
	"strings"
	"testing"

	"github.com/bulkhead-dev/bulkhead/internal/testutil"
	"github.com/bulkhead-dev/bulkhead/sandbox"
)

// TestMain lets this test binary serve as a sandbox init (exec re-executes
// /proc/self/exe), as main.go does for the real binary.
func TestMain(m *testing.M) {
	sandbox.RunInitIfRequested()
	os.Exit(m.Run())
}

func TestExecCommand(t *testing.T) {
	testutil.RequireRoot(t)
	testutil.RequireUserNS(t)
	testutil.RequireFUSE(t)
	setup(t)
	if r := run(t, "", "workspace", "create", "alice"); r.code != 0 {
		t.Fatalf("create: %+v", r)
	}
	r := run(t, "from stdin", "exec", "alice", "--", "/bin/sh", "-c", "cat; echo; hostname; echo oops >&2; exit 7")
	if r.code != 7 || !strings.Contains(r.stdout, "from stdin") || !strings.Contains(r.stdout, "alice") || !strings.Contains(r.stderr, "oops") {
		t.Fatalf("exec: %+v", r)
	}
	// The sandbox sees the files through the workspace's FUSE view, so its
	// path policy applies: .bulkhead/** is read-only.
	r = run(t, "", "exec", "alice", "--", "/bin/sh", "-c", "mkdir -p /workspace/.bulkhead 2>/dev/null; echo x > /workspace/.bulkhead/evil && echo wrote")
	if r.code == 0 || strings.Contains(r.stdout, "wrote") {
		t.Fatalf("write under .bulkhead allowed: %+v", r)
	}
	r = run(t, "", "exec", "alice", "--", "no-such-cmd")
	if r.code != 127 || !strings.Contains(r.stderr, "command not found: no-such-cmd") {
		t.Fatalf("unknown command: %+v", r)
	}
	r = run(t, "", "exec", "alice", "--timeout", "300ms", "--", "/bin/sleep", "30")
	if r.code != 124 || !strings.Contains(r.stderr, "timed out") {
		t.Fatalf("timeout: %+v", r)
	}
	r = run(t, "", "exec", "nobody", "--", "/bin/true")
	if r.code == 0 || !strings.Contains(r.stderr, "not found") {
		t.Fatalf("unknown workspace: %+v", r)
	}
	// A limit below what a sandbox can start with is refused when it is
	// set, with the minimum named, rather than at the next exec.
	if r := run(t, "", "workspace", "config", "alice", "limits.memory=20MiB"); r.code == 0 || !strings.Contains(r.stderr, "below the minimum 32MiB") {
		t.Fatalf("limit too low: %+v", r)
	}
	if r := run(t, "", "exec", "alice", "--", "/bin/true"); r.code != 0 {
		t.Fatalf("exec after a refused config change: %+v", r)
	}
	r = run(t, "", "sandbox", "doctor")
	if r.code != 0 || !strings.Contains(r.stdout, "ok  sandbox") {
		t.Fatalf("doctor: %+v", r)
	}
}
