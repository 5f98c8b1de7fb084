package testutil

import (
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"sync"
	"testing"
)

// NoSkipEnv is the environment variable that turns skips into failures.
const NoSkipEnv = "BULKHEAD_TEST_NO_SKIP"

// NoSkip reports whether missing requirements must fail tests instead of
// skipping them.
func NoSkip() bool {
	v := os.Getenv(NoSkipEnv)
	return v == "1" || strings.EqualFold(v, "true")
}

// SkipOrFail skips t with the formatted reason, or fails it when NoSkip is set.
func SkipOrFail(t testing.TB, format string, args ...any) {
	t.Helper()
	msg := fmt.Sprintf(format, args...)
	if NoSkip() {
		t.Fatalf("required by %s=1 but unavailable: %s", NoSkipEnv, msg)
	}
	t.Skip(msg)
}

// RequireLinux skips (or fails) unless the test runs on Linux.
func RequireLinux(t testing.TB) {
	t.Helper()
	if runtime.GOOS != "linux" {
		SkipOrFail(t, "needs linux, running on %s", runtime.GOOS)
	}
}

// RequireRoot skips (or fails) unless the test runs as uid 0.
func RequireRoot(t testing.TB) {
	t.Helper()
	RequireLinux(t)
	if os.Geteuid() != 0 {
		SkipOrFail(t, "needs root (euid is %d)", os.Geteuid())
	}
}

// RequireFUSE skips (or fails) unless /dev/fuse can be opened read-write.
func RequireFUSE(t testing.TB) {
	t.Helper()
	RequireLinux(t)
	f, err := os.OpenFile("/dev/fuse", os.O_RDWR, 0)
	if err != nil {
		SkipOrFail(t, "needs /dev/fuse: %v", err)
		return
	}
	f.Close()
}

var userNS struct {
	once sync.Once
	err  error
}

// RequireUserNS skips (or fails) unless this process can create a user
// namespace. The probe runs once per test binary: it starts /bin/true in a new
// user namespace.
func RequireUserNS(t testing.TB) {
	t.Helper()
	RequireLinux(t)
	userNS.once.Do(func() { userNS.err = probeUserNS() })
	if userNS.err != nil {
		SkipOrFail(t, "needs user namespaces: %v", userNS.err)
	}
}

// RequireBinary skips (or fails) unless name is on PATH, and returns its path.
func RequireBinary(t testing.TB, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		SkipOrFail(t, "needs %s on PATH: %v", name, err)
		return ""
	}
	return p
}
