package sandbox

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"

	"golang.org/x/sys/unix"
)

// The root filesystem is built the way bubblewrap does it: a private mount
// namespace, a scratch tmpfs pivoted to (so the host root is reachable at
// /oldroot while binds are made from it), a fresh tmpfs tree at /newroot,
// then a second pivot_root into /newroot and a lazy unmount of everything
// else. Host paths under /tmp stay reachable because they are read through
// /oldroot.

const (
	scratch = "/tmp" // host mountpoint covered by the scratch tmpfs (in our namespace only)
	oldRoot = "/oldroot"
	newRoot = "/newroot"
)

// mountError names the failing mount step, like runc's mountError.
type mountError struct {
	op, source, target string
	err                error
}

func (e *mountError) Error() string {
	if e.source != "" {
		return fmt.Sprintf("%s %s on %s: %v", e.op, e.source, e.target, e.err)
	}
	return fmt.Sprintf("%s %s: %v", e.op, e.target, e.err)
}

func (e *mountError) Unwrap() error { return e.err }

func mnt(source, target, fstype string, flags uintptr, data string) error {
	if err := unix.Mount(source, target, fstype, flags, data); err != nil {
		op := "mount " + fstype
		if flags&unix.MS_BIND != 0 {
			op = "bind"
		}
		if flags&unix.MS_REMOUNT != 0 {
			op = "remount"
		}
		return &mountError{op: op, source: source, target: target, err: err}
	}
	return nil
}

// lockedFlags returns the mount flags of the mount holding path that a
// remount inside a user namespace must keep (the kernel locks them).
func lockedFlags(path string) (uintptr, error) {
	var st unix.Statfs_t
	if err := unix.Statfs(path, &st); err != nil {
		return 0, &mountError{op: "statfs", target: path, err: err}
	}
	var f uintptr
	for _, m := range []struct{ st, ms int64 }{
		{unix.ST_RDONLY, unix.MS_RDONLY}, {unix.ST_NOSUID, unix.MS_NOSUID}, {unix.ST_NODEV, unix.MS_NODEV},
		{unix.ST_NOEXEC, unix.MS_NOEXEC}, {unix.ST_NOATIME, unix.MS_NOATIME}, {unix.ST_NODIRATIME, unix.MS_NODIRATIME},
		{unix.ST_RELATIME, unix.MS_RELATIME},
	} {
		if st.Flags&m.st != 0 {
			f |= uintptr(m.ms)
		}
	}
	return f, nil
}

// bind mounts source on target (creating target as a file or directory like
// source) and remounts it with extra flags, keeping the locked ones.
func bind(source, target string, extra uintptr) error {
	st, err := os.Stat(source)
	if err != nil {
		var pe *fs.PathError
		if errors.As(err, &pe) {
			err = pe.Err
		}
		return &mountError{op: "stat", target: source, err: err}
	}
	if st.IsDir() {
		err = os.MkdirAll(target, 0o755)
	} else {
		err = touch(target)
	}
	if err != nil {
		return &mountError{op: "mkdir", target: target, err: err}
	}
	if err := mnt(source, target, "", unix.MS_BIND|unix.MS_REC, ""); err != nil {
		return err
	}
	locked, err := lockedFlags(target)
	if err != nil {
		return err
	}
	return mnt("", target, "", unix.MS_BIND|unix.MS_REMOUNT|locked|extra, "")
}

// attach moves a detached mount the host cloned (open_tree) onto target
// and remounts it with extra flags.
func attach(fd int, target string, extra uintptr) error {
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return &mountError{op: "fstat", target: target, err: err}
	}
	var err error
	if st.Mode&unix.S_IFMT == unix.S_IFDIR {
		err = os.MkdirAll(target, 0o755)
	} else {
		err = touch(target)
	}
	if err != nil {
		return &mountError{op: "mkdir", target: target, err: err}
	}
	if err := unix.MoveMount(fd, "", unix.AT_FDCWD, target, unix.MOVE_MOUNT_F_EMPTY_PATH); err != nil {
		return &mountError{op: "move_mount", target: target, err: err}
	}
	locked, err := lockedFlags(target)
	if err != nil {
		return err
	}
	return mnt("", target, "", unix.MS_BIND|unix.MS_REMOUNT|locked|extra, "")
}

func touch(path string) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	return f.Close()
}

// buildRoot assembles the sandbox's root filesystem and pivots into it.
// fds are the host's O_PATH descriptors of the workspace and the binds.
func buildRoot(p *setupParams, fds []int) error {
	want := len(p.Binds)
	if p.Workspace {
		want++
	}
	if len(fds) != want {
		return &mountError{op: "bind sources", target: "setup", err: fmt.Errorf("%d descriptors for %d sources", len(fds), want)}
	}
	source := func() int {
		fd := fds[0]
		fds = fds[1:]
		return fd
	}
	if err := mnt("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
		return err
	}
	if err := mnt("tmpfs", scratch, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, "size=4m,nr_inodes=4096,mode=0755"); err != nil {
		return err
	}
	if err := os.Chdir(scratch); err != nil {
		return &mountError{op: "chdir", target: scratch, err: err}
	}
	for _, d := range []string{"newroot", "oldroot"} {
		if err := os.Mkdir(d, 0o755); err != nil {
			return &mountError{op: "mkdir", target: d, err: err}
		}
	}
	if err := mnt("tmpfs", "newroot", "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, "size=1m,nr_inodes=1024,mode=0755"); err != nil {
		return err
	}
	if err := unix.PivotRoot(".", "oldroot"); err != nil {
		return setupErr("pivot_root", &mountError{op: "pivot_root", target: scratch, err: err})
	}
	if err := os.Chdir("/"); err != nil {
		return err
	}

	if err := bindSystem(); err != nil {
		return err
	}
	if err := writeEtc(p); err != nil {
		return err
	}
	if err := mountProc(); err != nil {
		return setupErr("proc", err)
	}
	if err := mountDev(p); err != nil {
		return setupErr("dev", err)
	}
	tmpOpts := fmt.Sprintf("size=%d,nr_inodes=%d,mode=1777", p.TmpBytes, max(p.TmpBytes/4096, 1024))
	if err := os.Mkdir(newRoot+"/tmp", 0o1777); err != nil {
		return &mountError{op: "mkdir", target: "/tmp", err: err}
	}
	if err := mnt("tmpfs", newRoot+"/tmp", "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, tmpOpts); err != nil {
		return setupErr("tmp", err)
	}
	if p.Workspace {
		if err := attach(source(), newRoot+"/workspace", unix.MS_NOSUID|unix.MS_NODEV); err != nil {
			return setupErr("workspace", err)
		}
	}
	for _, b := range p.Binds {
		flags := uintptr(unix.MS_NOSUID | unix.MS_NODEV)
		if !b.Writable {
			flags |= unix.MS_RDONLY
		}
		if err := attach(source(), newRoot+filepath.Clean(b.Target), flags); err != nil {
			return setupErr("bind", err)
		}
	}
	// The root tree itself is read-only from here on.
	if err := mnt("", newRoot, "", unix.MS_REMOUNT|unix.MS_RDONLY|unix.MS_NOSUID|unix.MS_NODEV, "size=1m,nr_inodes=1024,mode=0755"); err != nil {
		return err
	}
	if err := unix.Unmount(oldRoot, unix.MNT_DETACH); err != nil {
		return &mountError{op: "umount", target: oldRoot, err: err}
	}
	if err := os.Chdir(newRoot); err != nil {
		return err
	}
	if err := unix.PivotRoot(".", "."); err != nil {
		return setupErr("pivot_root", &mountError{op: "pivot_root", target: newRoot, err: err})
	}
	if err := unix.Unmount(".", unix.MNT_DETACH); err != nil {
		return &mountError{op: "umount", target: "old root", err: err}
	}
	if err := os.Chdir("/"); err != nil {
		return err
	}
	// Nothing of the host may remain: the only mounts are ours.
	return checkNoHostRoot()
}

// bindSystem shows /usr read-only, and /bin, /sbin, /lib* as the host has
// them: symlinks on merged-/usr hosts, read-only binds otherwise.
func bindSystem() error {
	if err := bind(oldRoot+"/usr", newRoot+"/usr", unix.MS_RDONLY|unix.MS_NODEV|unix.MS_NOSUID); err != nil {
		return err
	}
	for _, d := range []string{"bin", "sbin", "lib", "lib32", "lib64", "libx32"} {
		src := oldRoot + "/" + d
		st, err := os.Lstat(src)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return &mountError{op: "lstat", target: src, err: err}
		}
		if st.Mode()&os.ModeSymlink != 0 {
			link, err := os.Readlink(src)
			if err != nil {
				return &mountError{op: "readlink", target: src, err: err}
			}
			if err := os.Symlink(link, newRoot+"/"+d); err != nil {
				return &mountError{op: "symlink", target: d, err: err}
			}
			continue
		}
		if err := bind(src, newRoot+"/"+d, unix.MS_RDONLY|unix.MS_NODEV|unix.MS_NOSUID); err != nil {
			return err
		}
	}
	return nil
}

// etcBinds are host files and directories a sandbox may read: certificates,
// the dynamic loader cache, Debian's alternatives links, the time zone.
var etcBinds = []string{"ssl", "ca-certificates", "ca-certificates.conf", "pki", "alternatives",
	"ld.so.cache", "ld.so.conf", "ld.so.conf.d", "localtime", "mime.types", "protocols", "services"}

func writeEtc(p *setupParams) error {
	etc := newRoot + "/etc"
	if err := os.Mkdir(etc, 0o755); err != nil {
		return &mountError{op: "mkdir", target: "/etc", err: err}
	}
	resolv, err := os.ReadFile(oldRoot + "/etc/resolv.conf")
	if err != nil {
		resolv = []byte("nameserver 127.0.0.1\n")
	}
	files := map[string]string{
		"passwd":        "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n",
		"group":         "root:x:0:\nnogroup:x:65534:\n",
		"hosts":         "127.0.0.1\tlocalhost " + p.Hostname + "\n::1\tlocalhost ip6-localhost ip6-loopback\n",
		"hostname":      p.Hostname + "\n",
		"nsswitch.conf": "passwd: files\ngroup: files\nshadow: files\nhosts: files dns\nnetworks: files\nprotocols: files\nservices: files\n",
		"resolv.conf":   string(resolv),
	}
	for name, content := range files {
		if err := os.WriteFile(etc+"/"+name, []byte(content), 0o644); err != nil {
			return &mountError{op: "write", target: "/etc/" + name, err: err}
		}
	}
	for _, name := range etcBinds {
		src := oldRoot + "/etc/" + name
		st, err := os.Lstat(src)
		if err != nil {
			continue
		}
		if st.Mode()&os.ModeSymlink != 0 {
			link, err := os.Readlink(src)
			if err == nil {
				err = os.Symlink(link, etc+"/"+name)
			}
			if err != nil {
				return &mountError{op: "symlink", target: "/etc/" + name, err: err}
			}
			continue
		}
		if err := bind(src, etc+"/"+name, unix.MS_RDONLY|unix.MS_NOSUID|unix.MS_NODEV); err != nil {
			return err
		}
	}
	return nil
}

// procMasked are /proc entries a sandbox must not read: they are covered by
// an empty, mode 0000, read-only file (open fails with EACCES).
var procMasked = []string{"kcore", "kallsyms", "keys", "key-users", "kmsg", "sysrq-trigger", "timer_list",
	"sched_debug", "kpagecount", "kpageflags", "kpagecgroup", "vmallocinfo", "config.gz", "latency_stats", "modules"}

// procReadOnly are /proc subtrees shown read-only.
var procReadOnly = []string{"sys", "bus", "fs", "irq"}

func mountProc() error {
	proc := newRoot + "/proc"
	if err := os.Mkdir(proc, 0o555); err != nil {
		return &mountError{op: "mkdir", target: "/proc", err: err}
	}
	if err := mnt("proc", proc, "proc", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, ""); err != nil {
		return err
	}
	// The mask source lives in the scratch tmpfs; the binds keep it alive
	// after the scratch is unmounted.
	mask := "/.mask"
	f, err := os.OpenFile(mask, os.O_CREATE|os.O_WRONLY, 0)
	if err != nil {
		return &mountError{op: "create", target: mask, err: err}
	}
	f.Close()
	if err := os.Chmod(mask, 0); err != nil {
		return &mountError{op: "chmod", target: mask, err: err}
	}
	maskDir := "/.maskdir"
	if err := os.Mkdir(maskDir, 0); err != nil {
		return &mountError{op: "mkdir", target: maskDir, err: err}
	}
	for _, name := range procMasked {
		target := proc + "/" + name
		st, err := os.Lstat(target)
		if err != nil {
			continue
		}
		src := mask
		if st.IsDir() {
			src = maskDir
		}
		if err := mnt(src, target, "", unix.MS_BIND, ""); err != nil {
			return err
		}
		if err := mnt("", target, "", unix.MS_BIND|unix.MS_REMOUNT|unix.MS_RDONLY|unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, ""); err != nil {
			return err
		}
	}
	for _, name := range procReadOnly {
		target := proc + "/" + name
		if _, err := os.Lstat(target); err != nil {
			continue
		}
		if err := mnt(target, target, "", unix.MS_BIND|unix.MS_REC, ""); err != nil {
			return err
		}
		if err := mnt("", target, "", unix.MS_BIND|unix.MS_REMOUNT|unix.MS_RDONLY|unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, ""); err != nil {
			return err
		}
	}
	return nil
}

var devNodes = []string{"null", "zero", "full", "random", "urandom", "tty"}

func mountDev(p *setupParams) error {
	dev := newRoot + "/dev"
	if err := os.Mkdir(dev, 0o755); err != nil {
		return &mountError{op: "mkdir", target: "/dev", err: err}
	}
	if err := mnt("tmpfs", dev, "tmpfs", unix.MS_NOSUID|unix.MS_NOEXEC, "size=64k,nr_inodes=64,mode=0755"); err != nil {
		return err
	}
	for _, n := range devNodes {
		if err := touch(dev + "/" + n); err != nil {
			return &mountError{op: "create", target: "/dev/" + n, err: err}
		}
		if err := mnt(oldRoot+"/dev/"+n, dev+"/"+n, "", unix.MS_BIND, ""); err != nil {
			return err
		}
	}
	for _, d := range []string{"pts", "shm"} {
		if err := os.Mkdir(dev+"/"+d, 0o755); err != nil {
			return &mountError{op: "mkdir", target: "/dev/" + d, err: err}
		}
	}
	if err := mnt("devpts", dev+"/pts", "devpts", unix.MS_NOSUID|unix.MS_NOEXEC, "newinstance,ptmxmode=0666,mode=0620"); err != nil {
		return err
	}
	shmOpts := "size=" + strconv.FormatInt(p.TmpBytes, 10) + ",nr_inodes=4096,mode=1777"
	if err := mnt("tmpfs", dev+"/shm", "tmpfs", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, shmOpts); err != nil {
		return err
	}
	for link, target := range map[string]string{"ptmx": "pts/ptmx", "fd": "/proc/self/fd", "stdin": "/proc/self/fd/0",
		"stdout": "/proc/self/fd/1", "stderr": "/proc/self/fd/2"} {
		if err := os.Symlink(target, dev+"/"+link); err != nil {
			return &mountError{op: "symlink", target: "/dev/" + link, err: err}
		}
	}
	return mnt("", dev, "", unix.MS_REMOUNT|unix.MS_RDONLY|unix.MS_NOSUID|unix.MS_NOEXEC, "size=64k,nr_inodes=64,mode=0755")
}

// checkNoHostRoot fails if the host's root is still reachable.
func checkNoHostRoot() error {
	if _, err := os.Lstat(oldRoot); err == nil {
		return &mountError{op: "check", target: oldRoot, err: errors.New("old root still present")}
	}
	if _, err := os.Lstat(newRoot); err == nil {
		return &mountError{op: "check", target: newRoot, err: errors.New("scratch root still present")}
	}
	return nil
}
