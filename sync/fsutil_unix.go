//go:build unix

package sync

import (
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
// symlink (the path may have been swapped for one since the walk).
func openNoFollow(path string) (*os.File, error) {
	return os.OpenFile(path, os.O_RDONLY|oNoFollow, 0)
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
