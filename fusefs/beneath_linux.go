package fusefs

import (
	"errors"
	"fmt"
	"path"
	"strings"

	"golang.org/x/sys/unix"
)

// resolveFlags confine every open below the root: no "..", no absolute
// paths, no symlinks (the kernel resolves symlinks inside the mount one
// policy-checked lookup at a time, so the server never needs to follow one),
// and no crossing into another mount, which also keeps the server off its
// own mount.
const resolveFlags = unix.RESOLVE_BENEATH | unix.RESOLVE_NO_SYMLINKS |
	unix.RESOLVE_NO_MAGICLINKS | unix.RESOLVE_NO_XDEV

// beneath is an O_PATH descriptor of a backing directory that opens paths
// below it without ever leaving it.
type beneath struct {
	fd  int
	dir string
}

func openBeneath(dir string) (*beneath, error) {
	fd, err := unix.Open(dir, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("open backing directory %s: %w", dir, err)
	}
	return &beneath{fd: fd, dir: dir}, nil
}

func (b *beneath) close() error { return unix.Close(b.fd) }

// open opens rel (a relative path, "" for the root) with flags. A symlink
// anywhere in rel fails with ELOOP, unless it is the last element and flags
// hold O_PATH|O_NOFOLLOW.
func (b *beneath) open(rel string, flags int, mode uint32) (int, error) {
	if rel == "" {
		rel = "."
	}
	how := unix.OpenHow{
		Flags:   uint64(flags | unix.O_CLOEXEC),
		Mode:    uint64(mode),
		Resolve: resolveFlags,
	}
	for range 16 {
		fd, err := unix.Openat2(b.fd, rel, &how)
		// EAGAIN: a rename raced with the lookup; the kernel asks us to
		// retry rather than risk a wrong answer.
		if errors.Is(err, unix.EAGAIN) || errors.Is(err, unix.EINTR) {
			continue
		}
		return fd, err
	}
	return -1, unix.EAGAIN
}

// parent opens the directory holding rel and returns it with rel's last
// element. The caller closes the descriptor.
func (b *beneath) parent(rel string) (int, string, error) {
	dir, name := path.Split(rel)
	if name == "" || name == "." || name == ".." || strings.Contains(name, "/") {
		return -1, "", unix.EINVAL
	}
	fd, err := b.open(strings.TrimSuffix(dir, "/"), unix.O_PATH|unix.O_DIRECTORY, 0)
	if err != nil {
		return -1, "", err
	}
	return fd, name, nil
}

// lstat returns the attributes of rel itself (a symlink is not followed).
func (b *beneath) lstat(rel string, st *unix.Stat_t) error {
	if rel == "" {
		return unix.Fstat(b.fd, st)
	}
	dfd, name, err := b.parent(rel)
	if err != nil {
		return err
	}
	defer unix.Close(dfd)
	return unix.Fstatat(dfd, name, st, unix.AT_SYMLINK_NOFOLLOW)
}

// procPath names an open descriptor so that path-only system calls (chmod,
// truncate, utimensat on an O_PATH descriptor) act on exactly that inode.
func procPath(fd int) string { return fmt.Sprintf("/proc/self/fd/%d", fd) }
