package sandbox

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// cgroup is one sandbox's control group, nested under the cgroup bulkhead
// itself runs in (per controller on v1), never elsewhere.
//
// Groups are made by writing cgroupfs directly (mkdir, a few limit files,
// cgroup.procs, rmdir), not through a cgroup library: the init is this
// same binary re-executed, so every package linked in runs its initializers
// at every sandbox start, and github.com/containerd/cgroups/v3 (protobuf
// stats types, eBPF device filters, logrus) cost each start about 10 ms of
// CPU and 150 page faults before the init's main ran.
type cgroup interface {
	// intoFD is an O_PATH fd of the group for CLONE_INTO_CGROUP (v2), or -1
	// when the child must be added after clone (v1).
	intoFD() int
	// joinFiles are cgroup.procs descriptors, opened by bulkhead, through
	// which the init moves itself into the group (v1) before it does
	// anything else; none on v2, where the clone puts it there.
	joinFiles() ([]int, error)
	// checkMember fails unless pid is in the group (in every hierarchy).
	checkMember(pid int) error
	oomKills() uint64
	memoryUsage() uint64
	procs() ([]int, error)
	kill() error
	delete() error
	path() string
	freezer() *freezerFiles
}

const cgroupMountpoint = "/sys/fs/cgroup"

// cgroupVersion reports 2 on a unified hierarchy, 1 on legacy or hybrid
// (where memory, pids and cpu are v1 controllers), 0 when no cgroup
// filesystem is mounted.
func cgroupVersion() int {
	var st unix.Statfs_t
	if err := unix.Statfs(cgroupMountpoint, &st); err != nil {
		return 0
	}
	if st.Type == unix.CGROUP2_SUPER_MAGIC {
		return 2
	}
	return 1
}

func newCgroup(name string, l Limits) (cgroup, error) {
	switch cgroupVersion() {
	case 2:
		return newCgroup2(name, l)
	case 1:
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

// writeFile writes one existing cgroup control file (never creating one:
// a missing file is ENOENT), naming it in the error.
func writeFile(dir, file, val string) error {
	f, err := os.OpenFile(filepath.Join(dir, file), os.O_WRONLY, 0)
	if err == nil {
		_, err = f.WriteString(val)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
	}
	if err != nil {
		return fmt.Errorf("write %s: %w", file, err)
	}
	return nil
}

func cpuQuota(cpus float64) (quota, period int64) {
	period = 100000
	return int64(cpus * float64(period)), period
}

// --- v1 ---

// v1Controllers are the hierarchies a sandbox gets a group in; memory,
// pids and cpu are required, freezer is used when mounted (Freeze, and an
// atomic kill).
var v1Controllers = []string{"memory", "pids", "cpu", "freezer"}

// v1Own is, per v1 controller, the directory of the group bulkhead runs in
// (mount point joined with this process's path from /proc/self/cgroup), and
// that path, read once per process.
var v1Own struct {
	once sync.Once
	dirs map[string]string
	rels map[string]string
	err  error
}

func v1OwnDirs() (map[string]string, error) {
	v1Own.once.Do(func() {
		mounts, err := v1Mounts()
		if err != nil {
			v1Own.err = err
			return
		}
		own, err := ownCgroups()
		if err != nil {
			v1Own.err = err
			return
		}
		v1Own.dirs, v1Own.rels = map[string]string{}, map[string]string{}
		for _, ctl := range v1Controllers {
			m, ok := mounts[ctl]
			if !ok {
				continue
			}
			rel, ok := own[ctl]
			if !ok {
				continue
			}
			v1Own.rels[ctl] = rel
			if m.root != "/" {
				rel = strings.TrimPrefix(rel, m.root)
			}
			v1Own.dirs[ctl] = filepath.Join(m.dir, rel)
		}
	})
	return v1Own.dirs, v1Own.err
}

type v1Mount struct{ dir, root string }

// v1Mounts maps each v1 controller to where its hierarchy is mounted (a
// hierarchy may carry several, e.g. cpu,cpuacct).
func v1Mounts() (map[string]v1Mount, error) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return nil, err
	}
	defer f.Close()
	out := map[string]v1Mount{}
	s := bufio.NewScanner(f)
	for s.Scan() {
		// id parent major:minor root mountpoint opts [optional...] - fstype source superopts
		pre, post, ok := strings.Cut(s.Text(), " - ")
		if !ok {
			continue
		}
		pf, qf := strings.Fields(pre), strings.Fields(post)
		if len(pf) < 5 || len(qf) < 3 || qf[0] != "cgroup" {
			continue
		}
		for _, opt := range strings.Split(qf[2], ",") {
			if _, seen := out[opt]; !seen {
				out[opt] = v1Mount{dir: unescapeMountinfo(pf[4]), root: unescapeMountinfo(pf[3])}
			}
		}
	}
	return out, s.Err()
}

// unescapeMountinfo undoes mountinfo's octal escapes (\040 for a space).
func unescapeMountinfo(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// ownCgroups parses /proc/self/cgroup: controller → path ("" for the v2
// entry).
func ownCgroups() (map[string]string, error) { return procCgroups(0) }

// procCgroups parses /proc/<pid>/cgroup (pid 0: self).
func procCgroups(pid int) (map[string]string, error) {
	file := "/proc/self/cgroup"
	if pid > 0 {
		file = "/proc/" + strconv.Itoa(pid) + "/cgroup"
	}
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	out := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		parts := strings.SplitN(line, ":", 3)
		if len(parts) != 3 {
			continue
		}
		if parts[1] == "" {
			out[""] = parts[2]
			continue
		}
		for _, ctl := range strings.Split(parts[1], ",") {
			out[ctl] = parts[2]
		}
	}
	return out, nil
}

type cgroupV1 struct {
	dirs       []string          // the group in each distinct hierarchy, memory's first
	member     map[string]string // controller → the group's path in /proc/<pid>/cgroup
	memPath    string
	pidsPath   string
	freezePath string // "" without a freezer hierarchy
}

func newCgroup1(name string, l Limits) (cgroup, error) {
	own, err := v1OwnDirs()
	if err != nil {
		return nil, fmt.Errorf("find own cgroups: %w", err)
	}
	for _, need := range []string{"memory", "pids", "cpu"} {
		if own[need] == "" {
			return nil, fmt.Errorf("cgroup v1 controller %s unavailable", need)
		}
	}
	// memory.memsw needs swap accounting; without it a host with swap could
	// let a sandbox swap past its limit, so that combination is refused.
	_, err = os.Stat(filepath.Join(own["memory"], "memory.memsw.limit_in_bytes"))
	memsw := err == nil
	if !memsw && hostHasSwap() {
		return nil, errors.New("host has swap but memory.memsw (swap accounting) is unavailable: enable swapaccount=1")
	}
	c := &cgroupV1{member: map[string]string{}}
	seen := map[string]bool{}
	for _, ctl := range v1Controllers {
		parent := own[ctl]
		if parent == "" {
			continue
		}
		dir := filepath.Join(parent, name)
		c.member[ctl] = filepath.Join(v1Own.rels[ctl], name)
		switch ctl {
		case "memory":
			c.memPath = dir
		case "pids":
			c.pidsPath = dir
		case "freezer":
			c.freezePath = dir
		}
		if seen[dir] {
			continue // co-mounted with a controller already done
		}
		seen[dir] = true
		if err := os.Mkdir(dir, 0o755); err != nil {
			c.delete()
			return nil, fmt.Errorf("create %s group: %w", ctl, err)
		}
		c.dirs = append(c.dirs, dir)
	}
	mem := strconv.FormatInt(l.MemoryBytes, 10)
	writes := [][3]string{
		{c.memPath, "memory.limit_in_bytes", mem},
		{c.pidsPath, "pids.max", strconv.FormatInt(l.Pids+InitReserve, 10)},
	}
	if memsw {
		writes = append(writes, [3]string{c.memPath, "memory.memsw.limit_in_bytes", mem})
	}
	if l.CPUs > 0 {
		quota, period := cpuQuota(l.CPUs)
		cpu := filepath.Join(own["cpu"], name)
		writes = append(writes, [3]string{cpu, "cpu.cfs_period_us", strconv.FormatInt(period, 10)},
			[3]string{cpu, "cpu.cfs_quota_us", strconv.FormatInt(quota, 10)})
	}
	for _, w := range writes {
		if err := writeFile(w[0], w[1], w[2]); err != nil {
			c.delete()
			return nil, err
		}
	}
	return c, nil
}

func (c *cgroupV1) intoFD() int  { return -1 }
func (c *cgroupV1) path() string { return c.memPath }

func (c *cgroupV1) freezer() *freezerFiles {
	if c.freezePath == "" {
		return nil
	}
	st := filepath.Join(c.freezePath, "freezer.state")
	return &freezerFiles{ctl: st, stat: st}
}

func (c *cgroupV1) joinFiles() ([]int, error) {
	var fds []int
	for _, dir := range c.dirs {
		fd, err := unix.Open(filepath.Join(dir, "cgroup.procs"), unix.O_WRONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			closeFDs(fds)
			return nil, fmt.Errorf("open %s/cgroup.procs: %w", dir, err)
		}
		fds = append(fds, fd)
	}
	return fds, nil
}

func (c *cgroupV1) checkMember(pid int) error {
	own, err := procCgroups(pid)
	if err != nil {
		return err
	}
	for ctl, want := range c.member {
		if own[ctl] != want {
			return fmt.Errorf("pid %d is in %s group %q, want %q", pid, ctl, own[ctl], want)
		}
	}
	return nil
}

func (c *cgroupV1) oomKills() uint64 {
	return readKey(filepath.Join(c.memPath, "memory.oom_control"), "oom_kill")
}

func (c *cgroupV1) memoryUsage() uint64 {
	return readUint(filepath.Join(c.memPath, "memory.usage_in_bytes"))
}

func (c *cgroupV1) procs() ([]int, error) { return treeProcs(c.pidsPath) }

// kill freezes the group, SIGKILLs every member and thaws it, until empty.
func (c *cgroupV1) kill() error { return killTree(c.procs, c.freezer()) }

func (c *cgroupV1) delete() error {
	var errs []error
	for _, dir := range c.dirs {
		errs = append(errs, removeGroup(dir))
	}
	return errors.Join(errs...)
}

// --- v2 ---

type cgroupV2 struct {
	dir string
	fd  int
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

var v2Controllers = []string{"memory", "pids", "cpu"}

func prepareV2Parent() (string, error) {
	v2Parent.once.Do(func() {
		own, err := ownCgroups()
		if err == nil && own[""] == "" {
			err = errors.New("no cgroup v2 entry in /proc/self/cgroup")
		}
		if err != nil {
			v2Parent.err = err
			return
		}
		dir := filepath.Join(cgroupMountpoint, own[""])
		enable := func() error {
			return os.WriteFile(filepath.Join(dir, "cgroup.subtree_control"), []byte("+memory +pids +cpu"), 0)
		}
		err = enable()
		if errors.Is(err, unix.EBUSY) && own[""] != "/" {
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
		v2Parent.path = own[""]
	})
	return v2Parent.path, v2Parent.err
}

func newCgroup2(name string, l Limits) (cgroup, error) {
	parent, err := prepareV2Parent()
	if err != nil {
		return nil, err
	}
	dir := filepath.Join(cgroupMountpoint, parent, name)
	if err := os.Mkdir(dir, 0o755); err != nil {
		return nil, fmt.Errorf("create group: %w", err)
	}
	c := &cgroupV2{dir: dir, fd: -1}
	fail := func(err error) (cgroup, error) {
		c.delete()
		return nil, err
	}
	for _, ctl := range []string{"memory", "pids"} {
		if _, err := os.Stat(filepath.Join(dir, ctl+".max")); err != nil {
			return fail(fmt.Errorf("controller %s not enabled in %s", ctl, dir))
		}
	}
	if err := writeFile(dir, "memory.max", strconv.FormatInt(l.MemoryBytes, 10)); err != nil {
		return fail(err)
	}
	if err := writeFile(dir, "pids.max", strconv.FormatInt(l.Pids+InitReserve, 10)); err != nil {
		return fail(err)
	}
	if l.CPUs > 0 {
		quota, period := cpuQuota(l.CPUs)
		if _, err := os.Stat(filepath.Join(dir, "cpu.max")); err != nil {
			return fail(fmt.Errorf("controller cpu not enabled in %s", dir))
		}
		if err := writeFile(dir, "cpu.max", fmt.Sprintf("%d %d", quota, period)); err != nil {
			return fail(err)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "memory.swap.max")); err == nil {
		if err := writeFile(dir, "memory.swap.max", "0"); err != nil {
			return fail(err)
		}
	} else if hostHasSwap() {
		return fail(errors.New("host has swap but memory.swap.max is unavailable"))
	}
	fd, err := unix.Open(dir, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fail(err)
	}
	c.fd = fd
	return c, nil
}

func (c *cgroupV2) intoFD() int  { return c.fd }
func (c *cgroupV2) path() string { return c.dir }

func (c *cgroupV2) joinFiles() ([]int, error) { return nil, nil }
func (c *cgroupV2) checkMember(int) error     { return nil }

func (c *cgroupV2) freezer() *freezerFiles {
	return &freezerFiles{v2: true, ctl: filepath.Join(c.dir, "cgroup.freeze"), stat: filepath.Join(c.dir, "cgroup.events")}
}

func (c *cgroupV2) oomKills() uint64 {
	return readKey(filepath.Join(c.dir, "memory.events"), "oom_kill")
}

func (c *cgroupV2) memoryUsage() uint64 { return readUint(filepath.Join(c.dir, "memory.current")) }

func (c *cgroupV2) procs() ([]int, error) { return treeProcs(c.dir) }

// kill uses cgroup.kill (Linux 5.14+), else freezes and kills member by
// member until the group is empty.
func (c *cgroupV2) kill() error {
	err := writeFile(c.dir, "cgroup.kill", "1")
	if err == nil || errors.Is(err, os.ErrNotExist) && !c.exists() {
		return nil
	}
	return killTree(c.procs, c.freezer())
}

func (c *cgroupV2) exists() bool {
	_, err := os.Stat(c.dir)
	return err == nil
}

func (c *cgroupV2) delete() error {
	if c.fd >= 0 {
		unix.Close(c.fd)
		c.fd = -1
	}
	return removeGroup(c.dir)
}

// --- shared ---

// treeProcs lists the pids in dir's cgroup.procs and in every group below
// it (a sandbox cannot make child groups, but a kill must not rely on that).
func treeProcs(dir string) ([]int, error) {
	var out []int
	seen := map[int]bool{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if p != dir && errors.Is(err, os.ErrNotExist) {
				return nil // a child group removed while walking
			}
			return err
		}
		if !d.IsDir() {
			return nil
		}
		b, err := os.ReadFile(filepath.Join(p, "cgroup.procs"))
		if err != nil {
			if p != dir && errors.Is(err, os.ErrNotExist) {
				return nil
			}
			return err
		}
		for _, f := range strings.Fields(string(b)) {
			if pid, err := strconv.Atoi(f); err == nil && !seen[pid] {
				seen[pid] = true
				out = append(out, pid)
			}
		}
		return nil
	})
	return out, err
}

// killTree SIGKILLs every member (freezing the group around it when a
// freezer is there, so nothing forks in between) until none is left.
func killTree(procs func() ([]int, error), f *freezerFiles) error {
	for range 50 {
		ps, err := procs()
		if errors.Is(err, os.ErrNotExist) {
			return nil
		}
		if err != nil || len(ps) == 0 {
			return err
		}
		if f != nil {
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			f.set(ctx, true)
			cancel()
		}
		for _, p := range ps {
			syscall.Kill(p, syscall.SIGKILL)
		}
		if f != nil {
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			f.set(ctx, false)
			cancel()
		}
		time.Sleep(10 * time.Millisecond)
	}
	return errors.New("processes survive SIGKILL")
}

// removeGroup removes an empty group, retrying while its last members are
// still exiting; a group already gone is not an error.
func removeGroup(dir string) error {
	var err error
	for range 50 {
		if err = os.Remove(dir); err == nil || errors.Is(err, os.ErrNotExist) {
			return nil
		}
		time.Sleep(20 * time.Millisecond)
	}
	return err
}

func readUint(file string) uint64 {
	b, err := os.ReadFile(file)
	if err != nil {
		return 0
	}
	n, _ := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64)
	return n
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
	switch cgroupVersion() {
	case 2:
		if p, err := prepareV2Parent(); err == nil {
			parents = append(parents, filepath.Join(cgroupMountpoint, p))
		}
	case 1:
		if own, err := v1OwnDirs(); err == nil {
			seen := map[string]bool{}
			for _, dir := range own {
				if !seen[dir] {
					seen[dir] = true
					parents = append(parents, dir)
				}
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
