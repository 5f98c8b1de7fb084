//go:build unix

package sync

import (
	"io"
	"io/fs"
	"os"
	"syscall"

	"golang.org/x/sys/unix"
)

// statExtra returns the inode number and ctime (unix ns) of fi.
func statExtra(fi fs.FileInfo) (ino uint64, ctime int64) {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return 0, 0
	}
	return uint64(st.Ino), syscall.TimespecToNsec(ctimespec(st))
}

// openNoFollow opens a regular file for reading without following a final
// symlink (the path may have been swapped for one since the walk). Where
// the kernel offers more, openBeneath uses it.
//
// It returns a bare descriptor rather than an *os.File: os.OpenFile tries to
// register every file with the network poller (four fcntl calls and an
// epoll_ctl that fails for regular files), which costs more than reading a
// small file.
func openNoFollow(path string) (io.ReadCloser, error) {
	for {
		fd, err := unix.Open(path, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return nil, &fs.PathError{Op: "open", Path: path, Err: err}
		}
		return fdReader{fd: fd, path: path}, nil
	}
}

// fdReader reads a file through its descriptor with plain read(2) calls.
type fdReader struct {
	fd   int
	path string
}

func (f fdReader) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	for {
		n, err := unix.Read(f.fd, p)
		switch {
		case err == unix.EINTR:
			continue
		case err != nil:
			return 0, &fs.PathError{Op: "read", Path: f.path, Err: err}
		case n == 0:
			return 0, io.EOF
		}
		return n, nil
	}
}

func (f fdReader) Close() error {
	if err := unix.Close(f.fd); err != nil {
		return &fs.PathError{Op: "close", Path: f.path, Err: err}
	}
	return nil
}

// createNoFollow creates a new file for writing; it fails if anything, a
// symlink included, exists at path.
func createNoFollow(path string) (*os.File, error) {
	return os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL|oNoFollow, 0o600)
}

// lchtimes sets a symlink's own mtime.
func lchtimes(path string, mtimeNs int64) error {
	ts := unix.NsecToTimespec(mtimeNs)
	return unix.UtimesNanoAt(unix.AT_FDCWD, path, []unix.Timespec{ts, ts}, unix.AT_SYMLINK_NOFOLLOW)
}

const oNoFollow = syscall.O_NOFOLLOW
