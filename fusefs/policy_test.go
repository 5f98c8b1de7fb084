package fusefs

import (
	"errors"
	"io/fs"
	"testing"
)

func mustPolicy(t testing.TB, cfg PolicyConfig) *Policy {
	t.Helper()
	p, err := NewPolicy(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestPolicyReadWrite(t *testing.T) {
	t.Parallel()
	p := mustPolicy(t, PolicyConfig{
		Deny:     []string{"secrets", "**/*.pem", "build/*.key"},
		ReadOnly: []string{"vendor/**", "docs/README.md"},
	})
	tests := []struct {
		rel       string
		readErr   error
		writeErr  error
		hiddenToo bool
	}{
		{rel: "", readErr: nil, writeErr: nil},
		{rel: "main.go"},
		{rel: "secrets", readErr: ErrDenied, writeErr: ErrDenied, hiddenToo: true},
		{rel: "secrets/a/b.txt", readErr: ErrDenied, writeErr: ErrDenied, hiddenToo: true},
		{rel: "secretsX"},
		{rel: "x/y/z.pem", readErr: ErrDenied, writeErr: ErrDenied, hiddenToo: true},
		{rel: "z.pem", readErr: ErrDenied, writeErr: ErrDenied, hiddenToo: true},
		{rel: "build/a.key", readErr: ErrDenied, writeErr: ErrDenied, hiddenToo: true},
		{rel: "build/sub/a.key"},
		{rel: "vendor", writeErr: ErrReadOnly},
		{rel: "vendor/x/y.go", writeErr: ErrReadOnly},
		{rel: "docs/README.md", writeErr: ErrReadOnly},
		{rel: "docs/other.md"},
		{rel: ".bulkhead", writeErr: ErrReadOnly},
		{rel: ".bulkhead/SOUL.md", writeErr: ErrReadOnly},
		{rel: "a/../secrets/x", readErr: ErrDenied, writeErr: ErrDenied, hiddenToo: true},
		{rel: "../etc/passwd", readErr: ErrOutsideRoot, writeErr: ErrOutsideRoot, hiddenToo: true},
		{rel: "/etc/passwd", readErr: ErrOutsideRoot, writeErr: ErrOutsideRoot, hiddenToo: true},
	}
	for _, tc := range tests {
		if err := p.CheckRead(tc.rel); !errors.Is(err, tc.readErr) || (tc.readErr == nil && err != nil) {
			t.Errorf("CheckRead(%q) = %v, want %v", tc.rel, err, tc.readErr)
		}
		if err := p.CheckWrite(tc.rel); !errors.Is(err, tc.writeErr) || (tc.writeErr == nil && err != nil) {
			t.Errorf("CheckWrite(%q) = %v, want %v", tc.rel, err, tc.writeErr)
		}
		if got := p.Hidden(tc.rel); got != tc.hiddenToo {
			t.Errorf("Hidden(%q) = %v, want %v", tc.rel, got, tc.hiddenToo)
		}
	}
}

func TestPolicyRename(t *testing.T) {
	t.Parallel()
	p := mustPolicy(t, PolicyConfig{
		Deny:     []string{"secrets/*.key", "**/*.pem"},
		ReadOnly: []string{"vendor/**"},
	})
	tests := []struct {
		from, to string
		dir      bool
		want     error
	}{
		{from: "a", to: "b", dir: true},
		{from: "a/b", to: "c", dir: true}, // **/*.pem applies equally below both
		{from: "secrets", to: "x", dir: true, want: ErrDenied},
		{from: "x", to: "secrets", dir: true, want: ErrDenied},
		{from: "secrets/a.txt", to: "a.txt"},
		{from: "secrets/a.key", to: "a.key", want: ErrDenied},
		{from: "a.txt", to: "secrets/a.key", want: ErrDenied},
		{from: "vendor", to: "v2", dir: true, want: ErrReadOnly},
		{from: "lib", to: "vendor/lib", dir: true, want: ErrReadOnly},
		{from: ".bulkhead", to: "b", dir: true, want: ErrReadOnly},
		{from: "b", to: ".bulkhead", dir: true, want: ErrReadOnly},
	}
	for _, tc := range tests {
		err := p.CheckRename(tc.from, tc.to, tc.dir)
		if !errors.Is(err, tc.want) || (tc.want == nil && err != nil) {
			t.Errorf("CheckRename(%q, %q, %v) = %v, want %v", tc.from, tc.to, tc.dir, err, tc.want)
		}
	}
}

func TestPolicyMode(t *testing.T) {
	t.Parallel()
	strict := DefaultPolicy()
	lax := mustPolicy(t, PolicyConfig{AllowSpecialFiles: true})
	tests := []struct {
		mode        fs.FileMode
		strict, lax error
	}{
		{mode: 0o755},
		{mode: fs.ModeDir | 0o700},
		{mode: fs.ModeSetuid | 0o755, strict: ErrModeNotAllowed, lax: ErrModeNotAllowed},
		{mode: fs.ModeSetgid | 0o755, strict: ErrModeNotAllowed, lax: ErrModeNotAllowed},
		{mode: fs.ModeDir | fs.ModeSticky | 0o777, strict: ErrModeNotAllowed, lax: ErrModeNotAllowed},
		{mode: fs.ModeDevice | 0o600, strict: ErrSpecialFile},
		{mode: fs.ModeDevice | fs.ModeCharDevice | 0o600, strict: ErrSpecialFile},
		{mode: fs.ModeNamedPipe | 0o600, strict: ErrSpecialFile},
		{mode: fs.ModeSocket | 0o600, strict: ErrSpecialFile},
	}
	for _, tc := range tests {
		if err := strict.CheckMode(tc.mode); !errors.Is(err, tc.strict) || (tc.strict == nil && err != nil) {
			t.Errorf("strict CheckMode(%v) = %v, want %v", tc.mode, err, tc.strict)
		}
		if err := lax.CheckMode(tc.mode); !errors.Is(err, tc.lax) || (tc.lax == nil && err != nil) {
			t.Errorf("lax CheckMode(%v) = %v, want %v", tc.mode, err, tc.lax)
		}
	}
}

func TestPolicyBadPattern(t *testing.T) {
	t.Parallel()
	for _, pat := range []string{"", "/", "a//b", "a/../b", "[", "a/[z-"} {
		if _, err := NewPolicy(PolicyConfig{Deny: []string{pat}}); !errors.Is(err, ErrBadPattern) {
			t.Errorf("NewPolicy(deny %q) = %v, want ErrBadPattern", pat, err)
		}
	}
}

// FuzzPolicyRename checks the property the rename rule exists for: after an
// allowed directory rename, every path below the new name is denied exactly
// when the same path below the old name was.
func FuzzPolicyRename(f *testing.F) {
	f.Add("secrets/*.key", "secrets", "x", "a.key")
	f.Add("**/*.pem", "a/b", "c", "d/e.pem")
	f.Add("a/**/b", "a/x", "y", "b")
	f.Fuzz(func(t *testing.T, pat, from, to, below string) {
		p, err := NewPolicy(PolicyConfig{Deny: []string{pat}})
		if err != nil {
			return
		}
		if _, err := splitRel(below); err != nil || below == "" {
			return
		}
		if p.CheckRename(from, to, true) != nil {
			return
		}
		if p.Hidden(from+"/"+below) != p.Hidden(to+"/"+below) {
			t.Fatalf("rename %q -> %q allowed under deny %q, but %q changes visibility", from, to, pat, below)
		}
	})
}
