package sandbox

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	cgroups "github.com/containerd/cgroups/v3"
	"github.com/containerd/cgroups/v3/cgroup1"
	"github.com/containerd/cgroups/v3/cgroup2"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// cgroup is one sandbox's control group, nested under the cgroup bulkhead
// itself runs in (per controller on v1), never elsewhere.
type cgroup interface {
	// intoFD is an O_PATH fd of the group for CLONE_INTO_CGROUP (v2), or -1
	// when the child must be added after clone (v1).
	intoFD() int
	add(pid int) error
	oomKills() uint64
	memoryUsage() uint64
	procs() ([]int, error)
	kill() error
	delete() error
	path() string
}

const cgroupMountpoint = "/sys/fs/cgroup"

// cgroupVersion reports 2 on a unified hierarchy, 1 on legacy or hybrid
// (where memory, pids and cpu are v1 controllers).
func cgroupVersion() int {
	if cgroups.Mode() == cgroups.Unified {
		return 2
	}
	return 1
}

func newCgroup(name string, l Limits) (cgroup, error) {
	switch cgroups.Mode() {
	case cgroups.Unified:
		return newCgroup2(name, l)
	case cgroups.Legacy, cgroups.Hybrid:
		return newCgroup1(name, l)
	default:
		return nil, errors.New("no cgroup hierarchy mounted at " + cgroupMountpoint)
	}
}

func hostHasSwap() bool {
	b, err := os.ReadFile("/proc/swaps")
	if err != nil {
		return true // unknown: assume swap, so a missing swap limit is refused
	}
	return len(strings.Split(strings.TrimSpace(string(b)), "\n")) > 1
}

// --- v1 ---

type cgroupV1 struct {
	cg      cgroup1.Cgroup
	memPath string // absolute path of the memory controller's group
}

var v1Wanted = map[cgroup1.Name]bool{cgroup1.Memory: true, cgroup1.Pids: true, cgroup1.Cpu: true, cgroup1.Freezer: true}

func newCgroup1(name string, l Limits) (cgroup, error) {
	hier := func() ([]cgroup1.Subsystem, error) {
		all, err := cgroup1.Default()
		if err != nil {
			return nil, err
		}
		var out []cgroup1.Subsystem
		for _, s := range all {
			if v1Wanted[s.Name()] {
				out = append(out, s)
			}
		}
		return out, nil
	}
	mem := l.MemoryBytes
	pids := l.Pids + InitReserve
	res := &specs.LinuxResources{
		Memory: &specs.LinuxMemory{Limit: &mem},
		Pids:   &specs.LinuxPids{Limit: &pids},
	}
	if l.CPUs > 0 {
		period := uint64(100000)
		quota := int64(l.CPUs * float64(period))
		res.CPU = &specs.LinuxCPU{Quota: &quota, Period: &period}
	}
	path := cgroup1.NestedPath("/" + name)
	memRel, err := path(cgroup1.Memory)
	if err != nil {
		return nil, fmt.Errorf("memory controller path: %w", err)
	}
	memPath := filepath.Join(cgroupMountpoint, "memory", memRel)
	// memory.memsw needs swap accounting; without it a host with swap could
	// let a sandbox swap past its limit, so that combination is refused.
	parentMemsw := filepath.Join(filepath.Dir(memPath), "memory.memsw.limit_in_bytes")
	if _, err := os.Stat(parentMemsw); err == nil {
		swap := mem
		res.Memory.Swap = &swap
	} else if hostHasSwap() {
		return nil, errors.New("host has swap but memory.memsw (swap accounting) is unavailable: enable swapaccount=1")
	}
	cg, err := cgroup1.New(path, res, cgroup1.WithHierarchy(hier))
	if err != nil {
		return nil, err
	}
	have := map[cgroup1.Name]bool{}
	for _, s := range cg.Subsystems() {
		have[s.Name()] = true
	}
	for _, need := range []cgroup1.Name{cgroup1.Memory, cgroup1.Pids, cgroup1.Cpu} {
		if !have[need] {
			cg.Delete()
			return nil, fmt.Errorf("cgroup v1 controller %s unavailable", need)
		}
	}
	return &cgroupV1{cg: cg, memPath: memPath}, nil
}

func (c *cgroupV1) intoFD() int  { return -1 }
func (c *cgroupV1) path() string { return c.memPath }

func (c *cgroupV1) add(pid int) error {
	return c.cg.Add(cgroup1.Process{Pid: pid})
}

func (c *cgroupV1) oomKills() uint64 {
	return readKey(filepath.Join(c.memPath, "memory.oom_control"), "oom_kill")
}

func (c *cgroupV1) memoryUsage() uint64 {
	b, err := os.ReadFile(filepath.Join(c.memPath, "memory.usage_in_bytes"))
	if err != nil {
		return 0
	}
	n, _ := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64)
	return n
}

func (c *cgroupV1) procs() ([]int, error) {
	ps, err := c.cg.Processes(cgroup1.Pids, true)
	if err != nil {
		return nil, err
	}
	seen := map[int]bool{}
	var out []int
	for _, p := range ps {
		if !seen[p.Pid] {
			seen[p.Pid] = true
			out = append(out, p.Pid)
		}
	}
	return out, nil
}

// kill freezes the group, SIGKILLs every member and thaws it, until empty.
func (c *cgroupV1) kill() error {
	for range 50 {
		ps, err := c.procs()
		if err != nil || len(ps) == 0 {
			return err
		}
		c.cg.Freeze()
		for _, p := range ps {
			syscall.Kill(p, syscall.SIGKILL)
		}
		c.cg.Thaw()
		time.Sleep(10 * time.Millisecond)
	}
	return errors.New("processes survive SIGKILL")
}

func (c *cgroupV1) delete() error { return retryBusy(c.cg.Delete) }

// --- v2 ---

type cgroupV2 struct {
	m    *cgroup2.Manager
	dir  string
	fd   int
	swap bool
}

// v2Parent is bulkhead's own cgroup, made fit to hold sandbox groups. On v2
// a non-root group with processes cannot enable controllers for children (the
// no-internal-processes rule); bulkhead then moves itself into a leaf child
// "supervisor" once, as systemd's Delegate= convention expects.
var v2Parent struct {
	once sync.Once
	path string
	err  error
}

func ownCgroupV2() (string, error) {
	b, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		return "", err
	}
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		if rest, ok := strings.CutPrefix(line, "0::"); ok {
			return rest, nil
		}
	}
	return "", errors.New("no cgroup v2 entry in /proc/self/cgroup")
}

var v2Controllers = []string{"memory", "pids", "cpu"}

func prepareV2Parent() (string, error) {
	v2Parent.once.Do(func() {
		own, err := ownCgroupV2()
		if err != nil {
			v2Parent.err = err
			return
		}
		dir := filepath.Join(cgroupMountpoint, own)
		enable := func() error {
			return os.WriteFile(filepath.Join(dir, "cgroup.subtree_control"), []byte("+memory +pids +cpu"), 0)
		}
		err = enable()
		if errors.Is(err, unix.EBUSY) && own != "/" {
			leaf := filepath.Join(dir, "supervisor")
			if err = os.MkdirAll(leaf, 0o755); err == nil {
				err = os.WriteFile(filepath.Join(leaf, "cgroup.procs"), []byte("0"), 0)
			}
			if err == nil {
				err = enable()
			}
		}
		if err != nil {
			v2Parent.err = fmt.Errorf("enable %v in %s (bulkhead needs a delegated cgroup of its own): %w", v2Controllers, dir, err)
			return
		}
		v2Parent.path = own
	})
	return v2Parent.path, v2Parent.err
}

func newCgroup2(name string, l Limits) (cgroup, error) {
	parent, err := prepareV2Parent()
	if err != nil {
		return nil, err
	}
	group := filepath.Join(parent, name)
	mem := l.MemoryBytes
	pids := l.Pids + InitReserve
	res := &cgroup2.Resources{
		Memory: &cgroup2.Memory{Max: &mem},
		Pids:   &cgroup2.Pids{Max: pids},
	}
	if l.CPUs > 0 {
		period := uint64(100000)
		quota := int64(l.CPUs * float64(period))
		res.CPU = &cgroup2.CPU{Max: cgroup2.NewCPUMax(&quota, &period)}
	}
	m, err := cgroup2.NewManager(cgroupMountpoint, group, res)
	if err != nil {
		return nil, err
	}
	dir := filepath.Join(cgroupMountpoint, group)
	c := &cgroupV2{m: m, dir: dir, fd: -1}
	for _, ctl := range v2Controllers {
		if _, err := os.Stat(filepath.Join(dir, ctl+".max")); err != nil && ctl != "cpu" {
			c.delete()
			return nil, fmt.Errorf("controller %s not enabled in %s", ctl, dir)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "cpu.max")); err != nil && l.CPUs > 0 {
		c.delete()
		return nil, fmt.Errorf("controller cpu not enabled in %s", dir)
	}
	swapFile := filepath.Join(dir, "memory.swap.max")
	if _, err := os.Stat(swapFile); err == nil {
		if err := os.WriteFile(swapFile, []byte("0"), 0); err != nil {
			c.delete()
			return nil, fmt.Errorf("memory.swap.max: %w", err)
		}
	} else if hostHasSwap() {
		c.delete()
		return nil, errors.New("host has swap but memory.swap.max is unavailable")
	}
	fd, err := unix.Open(dir, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		c.delete()
		return nil, err
	}
	c.fd = fd
	return c, nil
}

func (c *cgroupV2) intoFD() int  { return c.fd }
func (c *cgroupV2) path() string { return c.dir }
func (c *cgroupV2) add(pid int) error {
	return c.m.AddProc(uint64(pid))
}

func (c *cgroupV2) oomKills() uint64 {
	return readKey(filepath.Join(c.dir, "memory.events"), "oom_kill")
}

func (c *cgroupV2) memoryUsage() uint64 {
	b, err := os.ReadFile(filepath.Join(c.dir, "memory.current"))
	if err != nil {
		return 0
	}
	n, _ := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64)
	return n
}

func (c *cgroupV2) procs() ([]int, error) {
	ps, err := c.m.Procs(true)
	if err != nil {
		return nil, err
	}
	out := make([]int, len(ps))
	for i, p := range ps {
		out[i] = int(p)
	}
	return out, nil
}

func (c *cgroupV2) kill() error { return c.m.Kill() }

func (c *cgroupV2) delete() error {
	if c.fd >= 0 {
		unix.Close(c.fd)
		c.fd = -1
	}
	return retryBusy(c.m.Delete)
}

func retryBusy(f func() error) error {
	var err error
	for range 50 {
		if err = f(); err == nil || errors.Is(err, os.ErrNotExist) {
			return nil
		}
		time.Sleep(20 * time.Millisecond)
	}
	return err
}

// readKey reads "key value" lines and returns the value for key (0 if absent).
func readKey(file, key string) uint64 {
	f, err := os.Open(file)
	if err != nil {
		return 0
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		k, v, ok := strings.Cut(s.Text(), " ")
		if ok && k == key {
			n, _ := strconv.ParseUint(strings.TrimSpace(v), 10, 64)
			return n
		}
	}
	return 0
}

// staleAge is how old an empty sandbox group must be before sweepStale
// removes it: far longer than the moment between creating a group and its
// init joining it.
var staleAge = 2 * time.Minute

var sweepOnce sync.Once

// sweepStale removes empty "bulkhead-*" groups left under bulkhead's own
// cgroup by a bulkhead process that died without cleaning up (its sandboxes
// died with it: PDEATHSIG and the pid namespace). A group with a process in
// it cannot be removed (rmdir fails), so live sandboxes are never touched.
func sweepStale() {
	var parents []string
	if cgroups.Mode() == cgroups.Unified {
		if p, err := prepareV2Parent(); err == nil {
			parents = append(parents, filepath.Join(cgroupMountpoint, p))
		}
	} else if paths, err := cgroup1.ParseCgroupFile("/proc/self/cgroup"); err == nil {
		for ctl := range v1Wanted {
			if own, ok := paths[string(ctl)]; ok {
				parents = append(parents, v1Dirs(string(ctl), own)...)
			}
		}
	}
	for _, parent := range parents {
		entries, _ := os.ReadDir(parent)
		for _, e := range entries {
			if !e.IsDir() || !strings.HasPrefix(e.Name(), "bulkhead-") || e.Name() == "bulkhead-supervisor" {
				continue
			}
			if info, err := e.Info(); err == nil && time.Since(info.ModTime()) > staleAge {
				os.Remove(filepath.Join(parent, e.Name()))
			}
		}
	}
}

// v1Dirs finds the directories of a v1 controller's group own (the
// hierarchy may be mounted alone or co-mounted, e.g. cpu,cpuacct).
func v1Dirs(ctl, own string) []string {
	mounts, _ := filepath.Glob(filepath.Join(cgroupMountpoint, "*"))
	var out []string
	for _, m := range mounts {
		for _, name := range strings.Split(filepath.Base(m), ",") {
			if name == ctl {
				out = append(out, filepath.Join(m, own))
			}
		}
	}
	return out
}
