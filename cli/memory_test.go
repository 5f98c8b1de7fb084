package cli

import (
	"strings"
	"testing"
)

// Memory commands use the workspace's own memory settings.
func TestMemoryUsesWorkspaceConfig(t *testing.T) {
	setup(t)
	if r := run(t, "", "workspace", "create", "alice"); r.code != 0 {
		t.Fatal(r)
	}
	for _, text := range []string{"alpha apple", "alpha banana", "alpha cherry"} {
		if r := run(t, "", "memory", "add", "alice", text); r.code != 0 {
			t.Fatalf("memory add: %+v", r)
		}
	}
	hits := func() int {
		r := run(t, "", "memory", "search", "alice", "alpha")
		if r.code != 0 {
			t.Fatalf("memory search: %+v", r)
		}
		return strings.Count(r.stdout, "[manual]")
	}
	if n := hits(); n != 3 {
		t.Fatalf("default search: %d hits, want 3", n)
	}
	if r := run(t, "", "workspace", "config", "alice", "memory.max_results=1"); r.code != 0 {
		t.Fatal(r)
	}
	if n := hits(); n != 1 {
		t.Fatalf("with memory.max_results=1: %d hits", n)
	}
}
