// Package escape is the attacker's side of the sandbox tests: a probe that
// runs inside a sandbox, tries to get out (or to see or disturb the host or
// a neighbour), and asserts the exact errno each attempt must fail with. It
// prints one line per attempt and "N attempts, N refused"; its exit code is
// 0 only when every attempt was refused as expected and every sanity check
// (what a sandbox must be able to do) passed.
//
// A test binary becomes the probe when its first argument is ProbeArg (see
// the sandbox tests' TestMain); the binary is bound read-only into the
// sandbox.
package escape

import (
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
)

// ProbeArg is the hidden argument that makes a test binary run the probe.
const ProbeArg = "__bulkhead-escape-probe"

// Options are what the test on the host tells the probe about the world
// outside: addresses and names it must not be able to reach.
type Options struct {
	HostIPs          []string // host addresses (TCP/UDP must not reach them)
	HostUnix         string   // path of a unix socket listening on the host
	HostAbstract     string   // name of an abstract unix socket on the host (no leading @)
	NeighbourDir     string   // host path of another sandbox's workspace
	NeighbourPID     int      // host pid of another sandbox's init
	NeighbourTmp     string   // name of a file the neighbour created in its /tmp
	NeighbourShm     string   // name of a file the neighbour created in its /dev/shm
	NeighbourSysV    int      // SysV shm key the neighbour created
	HostFile         string   // a host file outside every sandbox
	HostLoopbackPort int      // a TCP port the host listens on at 127.0.0.1
	ProcAbsent       []string // /proc entries the host kernel does not have
	NoIA32           bool     // the host kernel has no i386 syscall ABI (int 0x80 faults there too)
}

// Main runs the probe (or one of its child modes) and returns the exit code.
func Main(args []string) int {
	recordStartupLeaks()
	if len(args) > 0 {
		switch args[0] {
		case "int80":
			return childInt80()
		case "int80-status":
			return ia32Status()
		case "x32":
			return childX32()
		case "fd-check":
			return childFDCheck(os.Stdout)
		case "alloc":
			if len(args) != 2 {
				return 2
			}
			return childAlloc(args[1])
		case "mkshm":
			if len(args) != 2 {
				return 2
			}
			return childMkShm(args[1])
		}
	}
	var o Options
	fs := flag.NewFlagSet("probe", flag.ContinueOnError)
	hostIPs := fs.String("host-ips", "", "comma-separated host addresses")
	fs.StringVar(&o.HostUnix, "host-unix", "", "host unix socket path")
	fs.StringVar(&o.HostAbstract, "host-abstract", "", "host abstract socket name")
	fs.StringVar(&o.NeighbourDir, "neighbour-dir", "", "neighbour workspace host path")
	fs.IntVar(&o.NeighbourPID, "neighbour-pid", 0, "neighbour init host pid")
	fs.StringVar(&o.NeighbourTmp, "neighbour-tmp", "", "file in neighbour /tmp")
	fs.StringVar(&o.NeighbourShm, "neighbour-shm", "", "file in neighbour /dev/shm")
	fs.IntVar(&o.NeighbourSysV, "neighbour-sysv", 0, "neighbour SysV shm key")
	fs.StringVar(&o.HostFile, "host-file", "", "a host file")
	fs.IntVar(&o.HostLoopbackPort, "host-loopback-port", 0, "a TCP port the host listens on at 127.0.0.1")
	procAbsent := fs.String("proc-absent", "", "comma-separated /proc entries absent on the host")
	fs.BoolVar(&o.NoIA32, "no-ia32", false, "the kernel lacks the i386 ABI")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *procAbsent != "" {
		o.ProcAbsent = strings.Split(*procAbsent, ",")
	}
	if *hostIPs != "" {
		o.HostIPs = strings.Split(*hostIPs, ",")
	}
	return Run(os.Stdout, o)
}

// Run performs every attempt and sanity check, reporting to w.
func Run(w io.Writer, o Options) int {
	var r report
	r.w = w
	sanity(&r)
	for _, a := range attempts(o) {
		r.attempt(a)
	}
	fmt.Fprintf(w, "%d attempts, %d refused\n", r.attempts, r.refused)
	if r.failed > 0 || r.refused != r.attempts {
		fmt.Fprintf(w, "FAILED: %d unexpected results\n", r.failed)
		return 1
	}
	return 0
}

// outcome is how an attempt ended: an errno, a signal (for the ABI checks),
// or success (errno 0), rendered as a string such as "EPERM".
type attempt struct {
	name string
	want string
	try  func() string
}

type report struct {
	w                         io.Writer
	attempts, refused, failed int
}

func (r *report) attempt(a attempt) {
	r.attempts++
	got := a.try()
	if got == a.want {
		r.refused++
		fmt.Fprintf(r.w, "ok    %-44s %s\n", a.name, got)
		return
	}
	r.failed++
	fmt.Fprintf(r.w, "FAIL  %-44s got %s, want %s\n", a.name, got, a.want)
}

func (r *report) check(name string, err error) {
	if err != nil {
		r.failed++
		fmt.Fprintf(r.w, "FAIL  sanity: %-36s %v\n", name, err)
		return
	}
	fmt.Fprintf(r.w, "ok    sanity: %s\n", name)
}
