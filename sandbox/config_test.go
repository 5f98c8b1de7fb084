package sandbox

import (
	"regexp"
	"strings"
	"testing"
)

func TestValidIDMatchesRule(t *testing.T) {
	re := regexp.MustCompile(idRule)
	for _, id := range []string{"", "a", "alice", "a-b_c", "-a", "_a", "A", "a.b", "a/b", "0", strings.Repeat("a", 64), strings.Repeat("a", 65), "é", "a b"} {
		if got, want := validID(id), re.MatchString(id); got != want {
			t.Errorf("validID(%q) = %v, rule says %v", id, got, want)
		}
	}
}

func TestCommandEnv(t *testing.T) {
	cfg := &Config{EnvAllow: []string{"TERM", "LC_*"}, Env: []string{"FIXED=1", "TERM=forced"}}
	env := commandEnv(cfg, &Command{Env: []string{"TERM=xterm", "LC_ALL=C", "SECRET=x", "PATH=/evil", "HOME=/root"}}, "/workspace")
	got := strings.Join(env, "\n")
	for _, want := range []string{"PATH=" + basePath, "HOME=/workspace", "LC_ALL=C", "FIXED=1", "TERM=forced"} {
		if !strings.Contains(got, want) {
			t.Errorf("env lacks %q:\n%s", want, got)
		}
	}
	for _, bad := range []string{"SECRET", "/evil", "HOME=/root", "TERM=xterm"} {
		if strings.Contains(got, bad) {
			t.Errorf("env has %q:\n%s", bad, got)
		}
	}
}
