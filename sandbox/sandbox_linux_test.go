package sandbox_test

import (
	"strings"
	"testing"
)

func TestExecBasics(t *testing.T) {
	sb := startSandbox(t, "basics", nil)
	o := sh(t, sb, "echo hello; echo err >&2; id -u; hostname; pwd; exit 3")
	must(t, o, 3)
	if got := lines(o.stdout); len(got) != 4 || got[0] != "hello" || got[1] != "0" || got[2] != "basics" || got[3] != "/workspace" {
		t.Fatalf("stdout = %q", o.stdout)
	}
	if strings.TrimSpace(o.stderr) != "err" {
		t.Fatalf("stderr = %q", o.stderr)
	}
}
