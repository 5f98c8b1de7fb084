package sync

import (
	"io"
	"io/fs"
	"path/filepath"
	"syscall"

	"golang.org/x/sys/unix"
)

func ctimespec(st *syscall.Stat_t) syscall.Timespec { return st.Ctim }

// openBeneath opens the regular file rel under root for reading, refusing
// to follow any symlink on the way, to leave root, or to cross a mount
// (openat2 RESOLVE_BENEATH|RESOLVE_NO_SYMLINKS|RESOLVE_NO_XDEV): the tree
// belongs to a tenant, and a directory swapped for a symlink since the walk
// must not make a backup running as root read a host file into the
// tenant's snapshot. Kernels without openat2 get openNoFollow.
func openBeneath(root, rel string) (io.ReadCloser, error) {
	dfd, err := unix.Open(root, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &fs.PathError{Op: "open", Path: root, Err: err}
	}
	defer unix.Close(dfd)
	how := unix.OpenHow{Flags: unix.O_RDONLY | unix.O_NOFOLLOW | unix.O_CLOEXEC,
		Resolve: unix.RESOLVE_BENEATH | unix.RESOLVE_NO_SYMLINKS | unix.RESOLVE_NO_MAGICLINKS | unix.RESOLVE_NO_XDEV}
	for {
		fd, err := unix.Openat2(dfd, rel, &how)
		switch {
		case err == unix.EINTR || err == unix.EAGAIN:
			continue
		case err == unix.ENOSYS:
			return openNoFollow(filepath.Join(root, rel))
		case err != nil:
			return nil, &fs.PathError{Op: "open", Path: filepath.Join(root, rel), Err: err}
		}
		return fdReader{fd: fd, path: filepath.Join(root, rel)}, nil
	}
}
