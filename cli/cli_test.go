package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bulkhead-dev/bulkhead/server"
	"github.com/bulkhead-dev/bulkhead/workspace"
)

type result struct {
	code           int
	stdout, stderr string
}

func run(t *testing.T, stdin string, args ...string) result {
	t.Helper()
	var out, errb bytes.Buffer
	code := Main(args, strings.NewReader(stdin), &out, &errb)
	return result{code, out.String(), errb.String()}
}

func setup(t *testing.T) string {
	dir := filepath.Join(t.TempDir(), "state")
	t.Setenv("BULKHEAD_STATE_DIR", dir)
	t.Setenv("BULKHEAD_CREDENTIAL_KEY", "test-passphrase")
	return dir
}

func TestWorkspaceLifecycle(t *testing.T) {
	setup(t)
	if r := run(t, "", "workspace", "create", "alice", "--set", "limits.memory=1GiB"); r.code != 0 {
		t.Fatalf("create: %+v", r)
	}
	r := run(t, "", "workspace", "list", "--json")
	var list []workspace.Workspace
	if err := json.Unmarshal([]byte(r.stdout), &list); err != nil || len(list) != 1 || list[0].ID != "alice" {
		t.Fatalf("list --json: %v %+v", err, r)
	}
	if list[0].Config.Limits.Memory != 1<<30 {
		t.Fatalf("--set not applied: %v", list[0].Config.Limits.Memory)
	}
	r = run(t, "", "workspace", "config", "alice", "limits.pids=64", `tools.deny=["bash"]`)
	if r.code != 0 || !strings.Contains(r.stdout, `"pids": 64`) || !strings.Contains(r.stdout, `"bash"`) {
		t.Fatalf("config set: %+v", r)
	}
	if r := run(t, "", "workspace", "show", "alice"); r.code != 0 || !strings.Contains(r.stdout, "host uid") {
		t.Fatalf("show: %+v", r)
	}
	if r := run(t, "", "workspace", "delete", "alice"); r.code != 2 || !strings.Contains(r.stderr, "--yes") {
		t.Fatalf("delete without --yes: %+v", r)
	}
	if r := run(t, "", "workspace", "delete", "alice", "--yes"); r.code != 0 {
		t.Fatalf("delete: %+v", r)
	}
	if r := run(t, "", "workspace", "show", "alice"); r.code != 1 || !strings.Contains(r.stderr, "not found") {
		t.Fatalf("show deleted: %+v", r)
	}
}

// Every bad input gets a one-line error and leaves the state dir as it was.
func TestBadInput(t *testing.T) {
	dir := setup(t)
	if r := run(t, "", "workspace", "create", "alice"); r.code != 0 {
		t.Fatal(r)
	}
	before := run(t, "", "workspace", "show", "alice", "--json").stdout
	cases := []struct {
		args  []string
		stdin string
		want  string
	}{
		{[]string{"workspace", "create", "Alice"}, "", "must match"},
		{[]string{"workspace", "create", "a/../../etc"}, "", "must match"},
		{[]string{"workspace", "create", "bob", "--set", "limits.nope=1"}, "", "limits.nope: unknown config key"},
		{[]string{"workspace", "create", "bob", "--set", "limits.pids=lots"}, "", "limits.pids"},
		{[]string{"workspace", "create", "bob", "--set", "limits.memory=1KiB"}, "", "below the minimum"},
		{[]string{"workspace", "create", "bob", "--set", "nonsense"}, "", "KEY=VALUE"},
		{[]string{"workspace", "config", "alice", "provider=acme"}, "", "unknown provider"},
		{[]string{"workspace", "config", "alice", "limits.exec_timeout=5"}, "", "duration"},
		{[]string{"workspace", "show", "zed"}, "", "not found"},
		{[]string{"creds", "set", "zed", "github"}, "x", "not found"},
		{[]string{"creds", "set", "alice", "bad/name"}, "x", "must match"},
		{[]string{"creds", "set", "alice", "github"}, "", "empty value"},
		{[]string{"creds", "rm", "alice", "nothere"}, "", "credential not found"},
		{[]string{"workspace", "frobnicate"}, "", "unexpected argument"},
	}
	for _, c := range cases {
		r := run(t, c.stdin, c.args...)
		if r.code == 0 {
			t.Errorf("%v: succeeded", c.args)
			continue
		}
		lines := strings.Split(strings.TrimSpace(r.stderr), "\n")
		if !strings.Contains(lines[0], c.want) || !strings.HasPrefix(lines[0], "bulkhead: ") {
			t.Errorf("%v: stderr %q, want a first line containing %q", c.args, r.stderr, c.want)
		}
	}
	if after := run(t, "", "workspace", "show", "alice", "--json").stdout; after != before {
		t.Fatalf("bad input changed alice:\n%s\n%s", before, after)
	}
	entries, _ := os.ReadDir(filepath.Join(dir, "workspaces"))
	if len(entries) != 1 {
		t.Fatalf("bad input left workspace directories: %v", entries)
	}
	// Invalid ids are refused before the state dir is even created.
	fresh := filepath.Join(t.TempDir(), "fresh")
	t.Setenv("BULKHEAD_STATE_DIR", fresh)
	if r := run(t, "", "workspace", "create", "BAD"); r.code != 2 {
		t.Fatal(r)
	}
	if _, err := os.Stat(fresh); !os.IsNotExist(err) {
		t.Fatalf("rejected create touched the state dir: %v", err)
	}
}

func TestCredsNeverPrinted(t *testing.T) {
	setup(t)
	run(t, "", "workspace", "create", "alice")
	if r := run(t, "s3cr3t-value\n", "creds", "set", "alice", "github"); r.code != 0 {
		t.Fatal(r)
	}
	r := run(t, "", "creds", "list", "alice", "--json")
	if r.code != 0 || strings.Contains(r.stdout+r.stderr, "s3cr3t") || !strings.Contains(r.stdout, `"github"`) {
		t.Fatalf("list: %+v", r)
	}
	t.Setenv("BULKHEAD_CREDENTIAL_KEY", "")
	r = run(t, "x", "creds", "set", "alice", "other")
	if r.code == 0 || !strings.Contains(r.stderr, "BULKHEAD_CREDENTIAL_KEY is set but empty") {
		t.Fatalf("empty passphrase: %+v", r)
	}
	os.Unsetenv("BULKHEAD_CREDENTIAL_KEY")
	r = run(t, "x", "creds", "set", "alice", "other")
	if r.code == 0 || !strings.Contains(r.stderr, "set BULKHEAD_CREDENTIAL_KEY") {
		t.Fatalf("missing passphrase on a state dir made with one: %+v", r)
	}
	t.Setenv("BULKHEAD_CREDENTIAL_KEY", "wrong")
	r = run(t, "", "creds", "list", "alice")
	if r.code == 0 || !strings.Contains(r.stderr, "wrong credential passphrase") {
		t.Fatalf("wrong passphrase: %+v", r)
	}
	t.Setenv("BULKHEAD_CREDENTIAL_KEY", "test-passphrase")
	t.Setenv(NewPassphraseEnv, "next-passphrase")
	if r := run(t, "", "creds", "rotate-passphrase"); r.code != 0 || !strings.Contains(r.stderr, "rewrapped 1") {
		t.Fatalf("rotate: %+v", r)
	}
	t.Setenv("BULKHEAD_CREDENTIAL_KEY", "next-passphrase")
	if r := run(t, "", "creds", "list", "alice"); r.code != 0 {
		t.Fatalf("after rotation: %+v", r)
	}
}

// With a server holding the state dir, the CLI goes through its unix socket
// and behaves the same; without a socket, it names the holder's pid.
func TestThroughRunningServer(t *testing.T) {
	dir := setup(t)
	svc, err := workspace.Open(context.Background(), workspace.Options{StateDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer svc.Close()
	r := run(t, "", "workspace", "list")
	if want := fmt.Sprintf("in use by pid %d", os.Getpid()); r.code != 1 || !strings.Contains(r.stderr, want) {
		t.Fatalf("got %+v, want %q", r, want)
	}

	defer serveSocket(t, svc)()

	if r := run(t, "", "workspace", "create", "alice", "--set", "limits.pids=99"); r.code != 0 {
		t.Fatalf("create via socket: %+v", r)
	}
	if r := run(t, "", "workspace", "config", "alice", "limits.memory=1GiB", "persona=reviewer"); r.code != 0 || !strings.Contains(r.stdout, `"memory": "1GiB"`) {
		t.Fatalf("config via socket: %+v", r)
	}
	if r := run(t, "tok-value", "creds", "set", "alice", "github"); r.code != 0 {
		t.Fatalf("creds via socket: %+v", r)
	}
	v, err := svc.Credential(context.Background(), "alice", "github")
	if err != nil || string(v.Reveal()) != "tok-value" {
		t.Fatalf("credential stored via socket: %v", err)
	}
	// Errors keep their text and exit codes through the socket.
	if r := run(t, "", "workspace", "show", "zed"); r.code != 1 || !strings.Contains(r.stderr, "workspace not found") {
		t.Fatalf("not found via socket: %+v", r)
	}
	if r := run(t, "", "workspace", "config", "alice", "limits.nope=1"); r.code != 1 || !strings.Contains(r.stderr, "limits.nope: unknown config key") {
		t.Fatalf("bad config via socket: %+v", r)
	}
	r = run(t, "", "token", "create", "alice")
	if r.code != 0 || !strings.HasPrefix(r.stdout, "bh_") {
		t.Fatalf("token create: %+v", r)
	}
	if r := run(t, "", "workspace", "delete", "alice", "--yes"); r.code != 0 {
		t.Fatalf("delete via socket: %+v", r)
	}
	if r := run(t, "", "token", "list", "--json"); r.code != 0 || strings.Contains(r.stdout, `"alice"`) {
		t.Fatalf("tokens of a deleted workspace survive: %+v", r)
	}
}

// A fresh state dir with no passphrase at all works out of the box with a
// generated passphrase file, which a rotation replaces.
func TestDevKeyFile(t *testing.T) {
	dir := setup(t)
	os.Unsetenv("BULKHEAD_CREDENTIAL_KEY")
	r := run(t, "", "workspace", "create", "alice")
	if r.code != 0 || !strings.Contains(r.stderr, "generated a node passphrase") {
		t.Fatalf("create without a passphrase: %+v", r)
	}
	st, err := os.Stat(filepath.Join(dir, workspace.DevKeyFileName))
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("passphrase file: %v %v", st, err)
	}
	if r := run(t, "v", "creds", "set", "alice", "k"); r.code != 0 {
		t.Fatalf("creds with the file: %+v", r)
	}
	t.Setenv(NewPassphraseEnv, "operator-passphrase")
	if r := run(t, "", "creds", "rotate-passphrase"); r.code != 0 {
		t.Fatalf("rotate: %+v", r)
	}
	if _, err := os.Stat(filepath.Join(dir, workspace.DevKeyFileName)); !os.IsNotExist(err) {
		t.Fatal("passphrase file kept after rotation")
	}
	if r := run(t, "", "creds", "list", "alice"); r.code == 0 || !strings.Contains(r.stderr, "set BULKHEAD_CREDENTIAL_KEY") {
		t.Fatalf("file mode after rotation: %+v", r)
	}
	t.Setenv("BULKHEAD_CREDENTIAL_KEY", "operator-passphrase")
	if r := run(t, "", "creds", "list", "alice"); r.code != 0 || !strings.Contains(r.stdout, "k") {
		t.Fatalf("after rotation: %+v", r)
	}
}

func TestHelpEverywhere(t *testing.T) {
	for _, args := range [][]string{{"--help"}, {"workspace", "--help"}, {"workspace", "create", "--help"}, {"creds", "set", "--help"}, {"version", "--help"}} {
		r := run(t, "", args...)
		if r.code != 0 || !strings.Contains(r.stdout, "Usage:") {
			t.Errorf("%v: %+v", args, r)
		}
	}
	if r := run(t, "", "version"); r.code != 0 || !strings.HasPrefix(r.stdout, "bulkhead ") {
		t.Errorf("version: %+v", r)
	}
}

// serveSocket serves the API (and so the CLI's unix socket) on svc; call
// the returned func to stop it before svc closes.
func serveSocket(t *testing.T, svc *workspace.Service) (stop func()) {
	t.Helper()
	srv, err := server.New(server.Options{Service: svc})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan struct{})
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, "127.0.0.1:0", func(net.Addr) { close(ready) }) }()
	<-ready
	return func() { cancel(); <-done }
}
