package sandbox

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"
)

func runtimeArch() string { return runtime.GOOS + "/" + runtime.GOARCH }

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

// Check is one line of Doctor's report.
type Check struct {
	Layer  string
	OK     bool
	Detail string
}

// Doctor checks, layer by layer, whether this host can run sandboxes, and
// ends by starting a real one (sandbox root mapped to uid/gid 65534 when
// bulkhead is root, else to bulkhead's own ids) and running /bin/true in
// it. It never changes anything that outlives the call.
func Doctor(ctx context.Context) []Check {
	var out []Check
	add := func(layer string, err error, ok string) {
		if err != nil {
			out = append(out, Check{Layer: layer, Detail: err.Error()})
			return
		}
		out = append(out, Check{Layer: layer, OK: true, Detail: ok})
	}
	_, err := buildFilter(policy())
	add("seccomp", err, fmt.Sprintf("allowlist policy for %s builds", runtimeArch()))
	uerr := UserNamespacesAvailable()
	add("user", uerr, "user namespaces can be created")
	uid, gid := uint32(65534), uint32(65534)
	if os.Geteuid() != 0 {
		uid, gid = uint32(os.Geteuid()), uint32(os.Getegid())
		out = append(out, Check{Layer: "privilege", OK: true, Detail: fmt.Sprintf("not root: sandbox root can only map to uid %d, and cgroups need a delegated subtree", uid)})
	}
	ver := cgroupVersion()
	cg, err := newCgroup("bulkhead-doctor-"+strconv.Itoa(os.Getpid()), Limits{MemoryBytes: MinMemoryBytes, Pids: MinPids, CPUs: 1})
	if err == nil {
		err = cg.delete()
	}
	add("cgroup", err, fmt.Sprintf("v%d: memory, pids and cpu limits can be set under bulkhead's own cgroup", ver))
	if hostHasSwap() {
		out = append(out, Check{Layer: "swap", OK: true, Detail: "host has swap: it is capped per sandbox (memsw / swap.max)"})
	}
	if uerr != nil {
		out = append(out, Check{Layer: "sandbox", Detail: "not attempted: user namespaces unavailable"})
		return out
	}
	start := time.Now()
	sb, err := Start(ctx, Config{ID: "doctor", HostUID: uid, HostGID: gid, IdleTimeout: -1})
	if err != nil {
		layer := "sandbox"
		var se *SetupError
		if errors.As(err, &se) {
			layer = se.Layer
		}
		out = append(out, Check{Layer: layer, Detail: err.Error()})
		return out
	}
	defer sb.Close()
	res, err := sb.Exec(ctx, Command{Args: []string{"/bin/true"}})
	if err == nil && res.ExitCode != 0 {
		err = fmt.Errorf("/bin/true exited %d", res.ExitCode)
	}
	add("sandbox", err, fmt.Sprintf("every layer applied; /bin/true ran inside in %v (start to exit)", time.Since(start).Round(time.Millisecond)))
	return out
}
