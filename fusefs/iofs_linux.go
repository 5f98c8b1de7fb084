package fusefs

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path"
	"strings"
	"syscall"
	"time"

	gofs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
)

// ReadOnlyFS is what MountFS serves: a file system that can list
// directories, stat without following links, and read links (a snapshot's
// view, sync.SnapshotFS, is one).
type ReadOnlyFS interface {
	fs.ReadDirFS
	fs.ReadLinkFS
}

// MountFS serves src read-only at mountpoint (nosuid, nodev, ro; only the
// mounting user may enter) until Unmount. Files are read through fsys on
// demand, so a snapshot is browsed without being restored. The returned
// Server supports Unmount and Wait only (it has no policy).
func MountFS(ctx context.Context, src ReadOnlyFS, mountpoint string, log *slog.Logger) (*Server, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.Default()
	}
	log = log.With("subsystem", "fusefs", "mountpoint", mountpoint)
	timeout := time.Minute // the content never changes
	mo := fuse.MountOptions{
		Name:          strings.TrimPrefix(FSType, "fuse."), // so umount and CleanupStale know it
		FsName:        "bulkhead-snapshot",
		DisableXAttrs: true,
		MaxWrite:      1 << 20,
		Logger:        slog.NewLogLogger(log.Handler(), slog.LevelDebug),
	}
	if os.Geteuid() == 0 {
		mo.DirectMountStrict = true
		mo.DirectMountFlags = syscall.MS_NOSUID | syscall.MS_NODEV | syscall.MS_RDONLY
	} else {
		mo.Options = []string{"nosuid", "nodev", "ro"}
	}
	root := &ioNode{fsys: src, rel: "."}
	srv, err := gofs.Mount(mountpoint, root, &gofs.Options{MountOptions: mo, EntryTimeout: &timeout, AttrTimeout: &timeout})
	if err != nil {
		return nil, fmt.Errorf("mount snapshot on %s: %w", mountpoint, err)
	}
	log.Info("read-only view mounted")
	return &Server{fuse: srv, sys: &fsys{asRoot: os.Geteuid() == 0}, mountpoint: mountpoint, log: log}, nil
}

// ioNode is one path of a ReadOnlyFS.
type ioNode struct {
	gofs.Inode
	fsys ReadOnlyFS
	rel  string
}

var (
	_ gofs.NodeLookuper   = (*ioNode)(nil)
	_ gofs.NodeGetattrer  = (*ioNode)(nil)
	_ gofs.NodeReaddirer  = (*ioNode)(nil)
	_ gofs.NodeOpener     = (*ioNode)(nil)
	_ gofs.NodeReader     = (*ioNode)(nil)
	_ gofs.NodeReadlinker = (*ioNode)(nil)
)

func ioErrno(err error) syscall.Errno {
	switch {
	case err == nil:
		return 0
	case errors.Is(err, fs.ErrNotExist):
		return syscall.ENOENT
	case errors.Is(err, fs.ErrPermission):
		return syscall.EACCES
	case errors.Is(err, fs.ErrInvalid):
		return syscall.EINVAL
	}
	return syscall.EIO
}

func fillAttr(fi fs.FileInfo, out *fuse.Attr) {
	m := fi.Mode()
	out.Mode = uint32(m.Perm())
	switch {
	case m.IsDir():
		out.Mode |= syscall.S_IFDIR
	case m&fs.ModeSymlink != 0:
		out.Mode |= syscall.S_IFLNK
	default:
		out.Mode |= syscall.S_IFREG
	}
	out.Size = uint64(fi.Size())
	if m.IsDir() {
		out.Size = 4096
	}
	out.Blocks = (out.Size + 511) / 512
	t := fi.ModTime()
	out.SetTimes(&t, &t, &t)
	out.Nlink = 1
}

func (n *ioNode) Getattr(_ context.Context, _ gofs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	fi, err := fs.Lstat(n.fsys, n.rel)
	if err != nil {
		return ioErrno(err)
	}
	fillAttr(fi, &out.Attr)
	return 0
}

func (n *ioNode) Lookup(ctx context.Context, name string, out *fuse.EntryOut) (*gofs.Inode, syscall.Errno) {
	rel := path.Join(n.rel, name)
	fi, err := fs.Lstat(n.fsys, rel)
	if err != nil {
		return nil, ioErrno(err)
	}
	fillAttr(fi, &out.Attr)
	child := &ioNode{fsys: n.fsys, rel: rel}
	return n.NewInode(ctx, child, gofs.StableAttr{Mode: out.Attr.Mode & syscall.S_IFMT}), 0
}

func (n *ioNode) Readdir(context.Context) (gofs.DirStream, syscall.Errno) {
	entries, err := fs.ReadDir(n.fsys, n.rel)
	if err != nil {
		return nil, ioErrno(err)
	}
	out := make([]fuse.DirEntry, 0, len(entries))
	for _, e := range entries {
		mode := uint32(syscall.S_IFREG)
		switch {
		case e.IsDir():
			mode = syscall.S_IFDIR
		case e.Type()&fs.ModeSymlink != 0:
			mode = syscall.S_IFLNK
		}
		out = append(out, fuse.DirEntry{Name: e.Name(), Mode: mode})
	}
	return gofs.NewListDirStream(out), 0
}

func (n *ioNode) Open(_ context.Context, flags uint32) (gofs.FileHandle, uint32, syscall.Errno) {
	if flags&(syscall.O_WRONLY|syscall.O_RDWR|syscall.O_TRUNC|syscall.O_APPEND|syscall.O_CREAT) != 0 {
		return nil, 0, syscall.EROFS
	}
	return nil, fuse.FOPEN_KEEP_CACHE, 0
}

func (n *ioNode) Read(_ context.Context, _ gofs.FileHandle, dest []byte, off int64) (fuse.ReadResult, syscall.Errno) {
	f, err := n.fsys.Open(n.rel)
	if err != nil {
		return nil, ioErrno(err)
	}
	defer f.Close()
	ra, ok := f.(io.ReaderAt)
	if !ok {
		return nil, syscall.EIO
	}
	k, err := ra.ReadAt(dest, off)
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, ioErrno(err)
	}
	return fuse.ReadResultData(dest[:k]), 0
}

func (n *ioNode) Readlink(context.Context) ([]byte, syscall.Errno) {
	target, err := n.fsys.ReadLink(n.rel)
	if err != nil {
		return nil, ioErrno(err)
	}
	return []byte(target), 0
}
