package sandbox_test

import (
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/bulkhead-dev/bulkhead/sandbox"
	"github.com/bulkhead-dev/bulkhead/sandbox/internal/escape"
)

// TestEscapeSuite runs the probe inside a sandbox next to a live neighbour
// sandbox and a host with listening sockets, and requires every attempt to
// be refused with its exact errno.
func TestEscapeSuite(t *testing.T) {
	neighbour := startSandbox(t, "neighbour", bindSelf)
	sh(t, neighbour, "echo secret > /tmp/nb-secret && echo secret > /dev/shm/nb-shm && echo secret > /workspace/nb-file")
	must(t, run(t, neighbour, selfPath(), escape.ProbeArg, "mkshm", "48879"), 0)

	hostDir := t.TempDir()
	hostFile := filepath.Join(hostDir, "host-secret")
	if err := os.WriteFile(hostFile, []byte("secret"), 0o644); err != nil {
		t.Fatal(err)
	}
	ul, err := net.Listen("unix", filepath.Join(hostDir, "host.sock"))
	if err != nil {
		t.Fatal(err)
	}
	defer ul.Close()
	abstract := "bulkhead-escape-" + strconv.Itoa(os.Getpid())
	al, err := net.Listen("unix", "@"+abstract)
	if err != nil {
		t.Fatal(err)
	}
	defer al.Close()
	var ips []string
	addrs, _ := net.InterfaceAddrs()
	for _, a := range addrs {
		if ipn, ok := a.(*net.IPNet); ok && !ipn.IP.IsLoopback() && ipn.IP.To4() != nil {
			ips = append(ips, ipn.IP.String())
		}
	}
	tl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer tl.Close()

	var absent []string
	for _, name := range []string{"kcore", "kallsyms", "keys", "kmsg", "sysrq-trigger"} {
		if _, err := os.Stat("/proc/" + name); err != nil {
			absent = append(absent, name)
		}
	}
	exe, _ := os.Executable()
	noIA32 := exec.Command(exe, escape.ProbeArg, "int80-status").Run() != nil
	var nbDir string
	sb := startSandbox(t, "attacker", func(c *sandbox.Config) { bindSelf(c) })
	nbDir = neighbourWorkspace(t, neighbour)
	args := []string{escape.ProbeArg,
		"-host-ips", strings.Join(ips, ","),
		"-host-unix", filepath.Join(hostDir, "host.sock"),
		"-host-abstract", abstract,
		"-host-file", hostFile,
		"-host-loopback-port", strconv.Itoa(tl.Addr().(*net.TCPAddr).Port),
		"-neighbour-dir", nbDir,
		"-neighbour-pid", strconv.Itoa(neighbour.InitPID()),
		"-neighbour-tmp", "nb-secret",
		"-neighbour-shm", "nb-shm",
		"-neighbour-sysv", "48879",
		"-proc-absent", strings.Join(absent, ","),
		"-no-ia32=" + strconv.FormatBool(noIA32),
	}
	t.Logf("host: /proc entries absent %v, i386 ABI absent %v", absent, noIA32)
	o, err := runErr(sb, sandbox.Command{Args: append([]string{selfPath()}, args...)})
	t.Logf("probe output:\n%s%s", o.stdout, o.stderr)
	if err != nil {
		t.Fatal(err)
	}
	last := lines(o.stdout)[len(lines(o.stdout))-1]
	if o.res.ExitCode != 0 {
		t.Fatalf("probe exit %d: %s", o.res.ExitCode, last)
	}
	f := strings.Fields(last)
	if len(f) != 4 || f[0] != f[2] || f[1] != "attempts," || f[3] != "refused" {
		t.Fatalf("summary line %q", last)
	}
	if n, _ := strconv.Atoi(f[0]); n < 90 {
		t.Fatalf("only %d attempts ran", n)
	}
}

// neighbourWorkspace finds the host path of a sandbox's workspace from its
// init's mount table is not possible from outside; the test keeps it instead.
func neighbourWorkspace(t *testing.T, sb *sandbox.Sandbox) string {
	t.Helper()
	return sb.Config().WorkspaceDir
}
