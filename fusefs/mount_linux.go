package fusefs

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	gofs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
	"golang.org/x/sys/unix"
)

// Server is one mounted view of a backing directory.
type Server struct {
	fuse        *fuse.Server
	sys         *fsys
	mountpoint  string
	passthrough bool
	log         *slog.Logger
	closeOnce   sync.Once
}

// Mount serves backingDir at mountpoint (nosuid, nodev, allow_other unless
// opts.NoAllowOther) until Unmount. ctx bounds the setup only. It uses kernel
// passthrough for reads and writes when the kernel offers it (Linux 6.9 and
// later), the server may register backing files (it needs CAP_SYS_ADMIN),
// and no byte quota is set; otherwise every read and write goes through the
// server. The mode in force is logged.
func Mount(ctx context.Context, backingDir, mountpoint string, opts Options) (*Server, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	log := opts.Logger
	if log == nil {
		log = slog.Default()
	}
	log = log.With("subsystem", "fusefs", "mountpoint", mountpoint)
	pol := opts.Policy
	if pol == nil {
		pol = DefaultPolicy()
	}
	b, err := openBeneath(backingDir)
	if err != nil {
		return nil, err
	}
	sys := &fsys{b: b, quota: opts.Quota, readOnly: opts.ReadOnly, asRoot: os.Geteuid() == 0, callers: slices.Clone(opts.Callers)}
	sys.policy.Store(pol)
	root := sys.newNode()
	sys.root = root

	var rootSt syscall.Stat_t
	if _, err := statAt(b.fd, "", &rootSt); err != nil {
		b.close()
		return nil, fmt.Errorf("stat backing directory %s: %w", backingDir, err)
	}

	timeout := opts.CacheTimeout
	if timeout <= 0 {
		timeout = DefaultCacheTimeout
	}
	// Names that do not exist are cached as long as names that do: every
	// change through the view updates the kernel's caches, and a change
	// reported through Invalidate or InvalidateAll drops them, missing
	// names included (see fsys.negTimeout).
	negative := timeout
	sys.negTimeout = timeout
	wantPassthrough := !opts.NoPassthrough && (!opts.Quota.limitsBytes() || opts.LooseByteQuota)
	mo := fuse.MountOptions{
		AllowOther:    !opts.NoAllowOther,
		Name:          strings.TrimPrefix(FSType, "fuse."),
		FsName:        "bulkhead",
		DisableXAttrs: true,
		MaxWrite:      1 << 20,
		EnableLocks:   true,
		Debug:         opts.Debug,
		Logger:        slog.NewLogLogger(log.Handler(), slog.LevelDebug),
	}
	if !wantPassthrough {
		mo.DisabledCapabilities = fuse.CAP_PASSTHROUGH
	}
	if sys.asRoot {
		// mount(2) directly, with the flags as flags.
		mo.DirectMountStrict = true
		mo.DirectMountFlags = syscall.MS_NOSUID | syscall.MS_NODEV
		if opts.ReadOnly {
			mo.DirectMountFlags |= syscall.MS_RDONLY
		}
	} else {
		mo.Options = []string{"nosuid", "nodev"}
		if opts.ReadOnly {
			mo.Options = append(mo.Options, "ro")
		}
	}
	fopts := &gofs.Options{
		MountOptions:    mo,
		EntryTimeout:    &timeout,
		AttrTimeout:     &timeout,
		NegativeTimeout: &negative,
		NullPermissions: true,
		RootStableAttr:  &gofs.StableAttr{Ino: rootSt.Ino, Gen: 1},
	}
	fsrv, err := gofs.Mount(mountpoint, root, fopts)
	if err != nil {
		b.close()
		return nil, fmt.Errorf("mount %s on %s: %w", backingDir, mountpoint, err)
	}
	s := &Server{fuse: fsrv, sys: sys, mountpoint: mountpoint, log: log}
	mode, reason := "fuse", "disabled by options"
	switch {
	case opts.Quota.limitsBytes() && !opts.LooseByteQuota:
		reason = "byte quota set: every write must pass the server"
	case opts.NoPassthrough:
	case fsrv.KernelSettings().Flags64()&fuse.CAP_PASSTHROUGH == 0:
		reason = "kernel does not offer passthrough (needs Linux 6.9+)"
	default:
		if err := probePassthrough(fsrv); err != nil {
			reason = fmt.Sprintf("cannot register backing files: %v", err)
		} else {
			mode, reason, s.passthrough = "passthrough", "kernel passthrough for reads and writes", true
			if opts.Quota.limitsBytes() {
				reason += "; byte quota counted when files close"
				sys.looseQuota = true
			}
		}
	}
	log.Info("fuse view mounted", "backing", backingDir, "mode", mode, "reason", reason,
		"read_only", opts.ReadOnly, "policy", pol.String())
	return s, nil
}

// probePassthrough registers and drops a backing file, which fails without
// CAP_SYS_ADMIN or when the kernel turned passthrough off.
func probePassthrough(srv *fuse.Server) error {
	fd, err := unix.MemfdCreate("bulkhead-passthrough-probe", unix.MFD_CLOEXEC)
	if err != nil {
		return fmt.Errorf("memfd: %w", err)
	}
	defer unix.Close(fd)
	id, errno := srv.RegisterBackingFd(&fuse.BackingMap{Fd: int32(fd)})
	if errno != 0 {
		return errno
	}
	if errno := srv.UnregisterBackingFd(id); errno != 0 {
		return errno
	}
	return nil
}

// Passthrough reports whether kernel passthrough is in force.
func (s *Server) Passthrough() bool { return s.passthrough }

// Mountpoint returns the directory the view is mounted on.
func (s *Server) Mountpoint() string { return s.mountpoint }

// Policy returns the policy in force.
func (s *Server) Policy() *Policy { return s.sys.pol() }

// SetPolicy replaces the policy and drops every name, attribute and
// directory listing the kernel has cached (InvalidateAll), so the next
// access to any path is checked against p. Files already open stay open.
func (s *Server) SetPolicy(p *Policy) {
	s.sys.policy.Store(p)
	s.InvalidateAll()
	// A lookup or listing answered under the old policy just before the
	// change can reach the kernel's caches after this pass (the kernel
	// files a reply when the waiting process runs again); a second pass a
	// moment later drops that too.
	time.AfterFunc(policyRecheck, s.InvalidateAll)
	s.log.Info("fuse view policy changed", "policy", p.String())
}

// policyRecheck is how long after a policy change the caches are dropped
// a second time.
const policyRecheck = 500 * time.Millisecond

// Invalidate drops what the kernel caches about rel (its name, its
// attributes, its data pages, and the listing and attributes of the
// directory holding it), so a change made beside the mount, such as by a
// Tree over the same directory, is seen at the next access instead of after
// the cache timeout. That includes a name the kernel remembers as missing.
// Paths the view never looked up are not cached and need nothing.
func (s *Server) Invalidate(rel string) {
	segs, err := splitRel(rel)
	if err != nil {
		return
	}
	dir := &s.sys.root.Inode
	if len(segs) == 0 {
		dir.NotifyContent(0, 0)
		return
	}
	for i, name := range segs {
		child := dir.GetChild(name)
		if child == nil || i == len(segs)-1 {
			// The kernel may hold a negative entry for name, or a
			// listing of dir without it.
			dir.NotifyContent(0, 0)
			dir.NotifyEntry(name)
			if child != nil {
				child.NotifyContent(0, 0)
			}
			return
		}
		dir = child
	}
}

// InvalidateAll drops every name, attribute, directory listing and data
// page the kernel caches for the view. Call it after changing the backing
// directory other than through the view or a Tree wired to Invalidate
// (such as running git in it on the host); until then the view may show
// the old tree for up to the cache timeout. It costs a notification per
// inode the kernel knows.
func (s *Server) InvalidateAll() {
	var walk func(dir *gofs.Inode)
	walk = func(dir *gofs.Inode) {
		for name, child := range dir.Children() {
			if child.IsDir() {
				walk(child)
			} else {
				child.NotifyContent(0, 0)
			}
			dir.NotifyEntry(name)
		}
		dir.NotifyContent(0, 0)
	}
	root := &s.sys.root.Inode
	walk(root)
	for _, name := range s.sys.takeRootMisses() {
		root.NotifyEntry(name)
	}
}

// Unmount unmounts the view and waits for the server to stop. If the mount
// is busy it is detached lazily and Unmount returns once the last user has
// left.
func (s *Server) Unmount() error {
	err := s.fuse.Unmount()
	if err != nil && errors.Is(err, syscall.EBUSY) && s.sys.asRoot {
		s.log.Warn("fuse view busy, detaching lazily", "err", err)
		err = unix.Unmount(s.mountpoint, unix.MNT_DETACH)
	}
	if err != nil && errors.Is(err, syscall.EINVAL) && !s.mounted() {
		err = nil // unmounted by someone else, such as `bulkhead umount`
	}
	if err != nil {
		return fmt.Errorf("unmount %s: %w", s.mountpoint, err)
	}
	s.Wait()
	return nil
}

// mounted reports whether the mountpoint still carries a mount of ours.
func (s *Server) mounted() bool {
	abs, err := filepath.Abs(s.mountpoint)
	if err != nil {
		return true
	}
	mounts, err := mountsOfType()
	return err != nil || slices.Contains(mounts, abs)
}

// Wait blocks until the view is unmounted (by Unmount, or by anyone else)
// and releases the server's resources.
func (s *Server) Wait() {
	s.fuse.Wait()
	s.closeOnce.Do(func() {
		if s.sys.b != nil { // MountFS views have no backing directory
			s.sys.b.close()
		}
		s.log.Info("fuse view stopped")
	})
}

// mountsOfType lists the mountpoints in /proc/self/mountinfo whose type is
// FSType, deepest first so nested mounts go before their parents.
func mountsOfType() ([]string, error) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return nil, fmt.Errorf("read mount table: %w", err)
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		// id parent major:minor root mountpoint options [optional...] - fstype source super
		fields := strings.Fields(sc.Text())
		sep := -1
		for i, fl := range fields {
			if fl == "-" {
				sep = i
				break
			}
		}
		if sep < 0 || sep+1 >= len(fields) || len(fields) < 5 {
			continue
		}
		if fields[sep+1] == FSType {
			out = append(out, unescapeMountinfo(fields[4]))
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read mount table: %w", err)
	}
	for i, j := 0, len(out)-1; i < j; i, j = i+1, j-1 {
		out[i], out[j] = out[j], out[i]
	}
	return out, nil
}

// unescapeMountinfo decodes the \ooo escapes the kernel writes for spaces,
// tabs, newlines and backslashes in mount paths.
func unescapeMountinfo(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+4 <= len(s) {
			if v, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(v))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// within reports whether p is dir or below it.
func within(p, dir string) bool {
	rel, err := filepath.Rel(dir, p)
	return err == nil && rel != ".." && !strings.HasPrefix(rel, "../")
}

// CleanupStale lazily unmounts every mount of this package at or below dir,
// such as those left by a process that crashed, and returns the mountpoints
// it detached. Call it at startup before making new mounts there.
func CleanupStale(dir string) ([]string, error) {
	dir, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("clean up stale mounts in %s: %w", dir, err)
	}
	mounts, err := mountsOfType()
	if err != nil {
		return nil, fmt.Errorf("clean up stale mounts in %s: %w", dir, err)
	}
	var done []string
	var errs []error
	for _, mp := range mounts {
		if !within(mp, dir) {
			continue
		}
		if err := detach(mp); err != nil {
			errs = append(errs, err)
			continue
		}
		done = append(done, mp)
	}
	return done, errors.Join(errs...)
}

// Unmount unmounts the view mounted at mountpoint by another process (the
// `bulkhead umount` command). It refuses directories that are not a mount of
// this package, and detaches lazily if the mount is busy.
func Unmount(mountpoint string) error {
	abs, err := filepath.Abs(mountpoint)
	if err != nil {
		return fmt.Errorf("unmount %s: %w", mountpoint, err)
	}
	mounts, err := mountsOfType()
	if err != nil {
		return fmt.Errorf("unmount %s: %w", mountpoint, err)
	}
	for _, mp := range mounts {
		if mp == abs {
			err := unix.Unmount(abs, 0)
			if errors.Is(err, unix.EBUSY) {
				err = unix.Unmount(abs, unix.MNT_DETACH)
			}
			if errors.Is(err, unix.EPERM) {
				err = fusermountUnmount(abs)
			}
			if err != nil {
				return fmt.Errorf("unmount %s: %w", abs, err)
			}
			return nil
		}
	}
	return fmt.Errorf("unmount %s: %w", abs, ErrNotMounted)
}

// detach lazily unmounts mp, through fusermount when not root.
func detach(mp string) error {
	err := unix.Unmount(mp, unix.MNT_DETACH)
	if errors.Is(err, unix.EPERM) {
		err = fusermountUnmount(mp)
	}
	if err != nil {
		return fmt.Errorf("detach %s: %w", mp, err)
	}
	return nil
}

func fusermountUnmount(mp string) error {
	for _, bin := range []string{"fusermount3", "fusermount"} {
		p, err := exec.LookPath(bin)
		if err != nil {
			continue
		}
		out, err := exec.Command(p, "-u", "-z", mp).CombinedOutput()
		if err != nil {
			return fmt.Errorf("%s -u -z: %w: %s", bin, err, strings.TrimSpace(string(out)))
		}
		return nil
	}
	return fmt.Errorf("unmount as non-root: %w", exec.ErrNotFound)
}
