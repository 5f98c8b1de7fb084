package sandbox

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
)

// UserNamespacesAvailable reports whether this process can create a user
// namespace, with the reason when it cannot (wrapping ErrNoUserNamespaces).
func UserNamespacesAvailable() error {
	if b, err := os.ReadFile("/proc/sys/user/max_user_namespaces"); err == nil && strings.TrimSpace(string(b)) == "0" {
		return fmt.Errorf("%w: user.max_user_namespaces is 0", ErrNoUserNamespaces)
	}
	if b, err := os.ReadFile("/proc/sys/kernel/unprivileged_userns_clone"); err == nil && strings.TrimSpace(string(b)) == "0" && os.Geteuid() != 0 {
		return fmt.Errorf("%w: kernel.unprivileged_userns_clone is 0", ErrNoUserNamespaces)
	}
	cmd := exec.CommandContext(context.Background(), "/proc/self/exe", InitArg)
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Cloneflags:  syscall.CLONE_NEWUSER,
		UidMappings: []syscall.SysProcIDMap{{ContainerID: 0, HostID: os.Geteuid(), Size: 1}},
		GidMappings: []syscall.SysProcIDMap{{ContainerID: 0, HostID: os.Getegid(), Size: 1}},
	}
	// The child is the init refusing to run (it is not PID 1): exit code 2
	// proves the clone worked.
	err := cmd.Run()
	if ee, ok := err.(*exec.ExitError); ok && ee.ExitCode() == 2 {
		return nil
	}
	if err == nil {
		return nil
	}
	return fmt.Errorf("%w: %v", ErrNoUserNamespaces, err)
}
