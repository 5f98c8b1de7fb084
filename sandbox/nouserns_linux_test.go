package sandbox_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"

	"github.com/bulkhead-dev/bulkhead/sandbox"
)

const noUserNSArg = "__bulkhead-test-no-userns"

// noUserNSChild runs in a user namespace of its own whose
// user.max_user_namespaces is 0 (the limit is per namespace), so it is a
// host without user namespaces, and reports what the sandbox package says.
func noUserNSChild() int {
	if err := os.WriteFile("/proc/sys/user/max_user_namespaces", []byte("0"), 0); err != nil {
		fmt.Println("setup:", err)
		return 2
	}
	fmt.Println("available:", sandbox.UserNamespacesAvailable())
	_, err := sandbox.Start(context.Background(), sandbox.Config{ID: "nouserns", HostUID: 65534, HostGID: 65534})
	var se *sandbox.SetupError
	if errors.As(err, &se) {
		fmt.Println("start layer:", se.Layer, "no-userns:", errors.Is(err, sandbox.ErrNoUserNamespaces))
	}
	fmt.Println("start:", err)
	for _, c := range sandbox.Doctor(context.Background()) {
		fmt.Printf("doctor: %s ok=%v %s\n", c.Layer, c.OK, c.Detail)
	}
	return 0
}

func TestNoUserNamespaces(t *testing.T) {
	requireSandbox(t)
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(exe, noUserNSArg)
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Cloneflags:  syscall.CLONE_NEWUSER,
		UidMappings: []syscall.SysProcIDMap{{ContainerID: 0, HostID: 0, Size: 1}},
		GidMappings: []syscall.SysProcIDMap{{ContainerID: 0, HostID: 0, Size: 1}},
	}
	out, err := cmd.CombinedOutput()
	t.Logf("%s", out)
	if err != nil {
		t.Fatal(err)
	}
	s := string(out)
	for _, want := range []string{
		"available: user namespaces unavailable on this host: user.max_user_namespaces is 0",
		"start layer: user no-userns: true",
		"doctor: user ok=false user namespaces unavailable",
		"doctor: sandbox ok=false not attempted: user namespaces unavailable",
	} {
		if !strings.Contains(s, want) {
			t.Errorf("output lacks %q", want)
		}
	}
}
