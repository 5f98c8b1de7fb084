package fusefs

import (
	"context"
	"errors"
	"io/fs"
	"path"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	gofs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
	"golang.org/x/sys/unix"
)

// fsys is the state shared by every node of one mount.
type fsys struct {
	b        *beneath
	policy   atomic.Pointer[Policy]
	quota    *Quota
	readOnly bool
	asRoot   bool
	callers  []uint32
	// looseQuota: passthrough is on under a byte quota, so writes are
	// counted when files close (Options.LooseByteQuota).
	looseQuota bool
	root       *node

	// negTimeout is how long the kernel caches a name that does not
	// exist. InvalidateAll drops such negative entries below the root by
	// invalidating their directory's own entry, which takes its unused
	// children with it; the root has no entry of its own, so the names
	// missing there are recorded in rootMisses until they expire. When
	// the record is full, misses in the root are answered uncached.
	negTimeout time.Duration
	negMu      sync.Mutex
	rootMisses map[string]time.Time // → expiry
}

// maxRootMisses bounds the record of names cached as missing in the root.
const maxRootMisses = 4096

// cacheMiss reports whether the kernel may cache name in directory dir as
// missing, and records it if dir is the root.
func (s *fsys) cacheMiss(dir *node, name string) bool {
	if s.negTimeout <= 0 {
		return false
	}
	if dir != s.root {
		return true
	}
	now := time.Now()
	s.negMu.Lock()
	defer s.negMu.Unlock()
	if s.rootMisses == nil {
		s.rootMisses = map[string]time.Time{}
	}
	if len(s.rootMisses) >= maxRootMisses {
		for k, exp := range s.rootMisses {
			if now.After(exp) {
				delete(s.rootMisses, k)
			}
		}
		if len(s.rootMisses) >= maxRootMisses {
			return false
		}
	}
	// A little longer than the kernel keeps it, so the record never
	// expires first.
	s.rootMisses[name] = now.Add(s.negTimeout + time.Second)
	return true
}

// takeRootMisses empties the record and returns the names the kernel may
// still cache as missing in the root.
func (s *fsys) takeRootMisses() []string {
	now := time.Now()
	s.negMu.Lock()
	all := s.rootMisses
	s.rootMisses = nil
	s.negMu.Unlock()
	out := make([]string, 0, len(all))
	for name, exp := range all {
		if now.Before(exp) {
			out = append(out, name)
		}
	}
	return out
}

// uncachedMiss makes an ENOENT from Lookup reach the kernel as a plain
// error, which it does not cache: go-fuse turns ENOENT into a cached
// negative entry only while the reply's entry timeout is zero.
func uncachedMiss(out *fuse.EntryOut) { out.SetEntryTimeout(time.Nanosecond) }

// allowed checks that the calling process may use the mount at all.
func (s *fsys) allowed(ctx context.Context) syscall.Errno {
	if len(s.callers) == 0 {
		return 0
	}
	caller, ok := fuse.FromContext(ctx)
	if !ok {
		return syscall.EACCES
	}
	if caller.Uid == 0 || slices.Contains(s.callers, caller.Uid) {
		return 0
	}
	return syscall.EACCES
}

func (s *fsys) pol() *Policy { return s.policy.Load() }

// node is one inode of the view. It holds no descriptor: every operation
// resolves the node's current path below the backing directory, checks the
// policy on that path and acts on it with *at system calls, so the path that
// was checked is the path that is used.
type node struct {
	gofs.Inode
	sys *fsys
	// mu serialises size changes (writes, truncates, fallocate) of this
	// inode when bytes are counted, so growth is measured exactly.
	mu sync.Mutex
	// counted is the size of this file the quota knows of, for files
	// written through passthrough under a loose quota; -1 when unknown.
	counted int64
}

// newNode returns a node of s.
func (s *fsys) newNode() *node { return &node{sys: s, counted: -1} }

var (
	_ gofs.NodeLookuper       = (*node)(nil)
	_ gofs.NodeReaddirer      = (*node)(nil)
	_ gofs.NodeOpendirHandler = (*node)(nil)
	_ gofs.NodeGetattrer      = (*node)(nil)
	_ gofs.NodeSetattrer      = (*node)(nil)
	_ gofs.NodeOpener         = (*node)(nil)
	_ gofs.NodeCreater        = (*node)(nil)
	_ gofs.NodeMkdirer        = (*node)(nil)
	_ gofs.NodeMknoder        = (*node)(nil)
	_ gofs.NodeSymlinker      = (*node)(nil)
	_ gofs.NodeLinker         = (*node)(nil)
	_ gofs.NodeUnlinker       = (*node)(nil)
	_ gofs.NodeRmdirer        = (*node)(nil)
	_ gofs.NodeRenamer        = (*node)(nil)
	_ gofs.NodeReadlinker     = (*node)(nil)
	_ gofs.NodeWriter         = (*node)(nil)
	_ gofs.NodeWritever       = (*node)(nil)
	_ gofs.NodeAllocater      = (*node)(nil)
	_ gofs.NodeIoctler        = (*node)(nil)
	_ gofs.NodeAccesser       = (*node)(nil)
	_ gofs.NodeStatfser       = (*node)(nil)
	_ gofs.NodeOnForgetter    = (*node)(nil)
	_ gofs.NodeFlusher        = (*node)(nil)
)

// relPath returns the node's path relative to the root. A node that is no
// longer linked into the tree (unlinked while open) has no path: ENOENT, so
// a path-based operation can never fall back to the root.
func (n *node) relPath() (string, syscall.Errno) {
	var segs []string
	cur := &n.Inode
	root := &n.sys.root.Inode
	for cur != root {
		name, parent := cur.Parent()
		if parent == nil {
			return "", syscall.ENOENT
		}
		segs = append(segs, name)
		cur = parent
	}
	slices.Reverse(segs)
	return strings.Join(segs, "/"), 0
}

// childPath returns the relative path of name in directory n.
func (n *node) childPath(name string) (string, syscall.Errno) {
	dir, errno := n.relPath()
	if errno != 0 {
		return "", errno
	}
	if name == "" || name == "." || name == ".." || strings.Contains(name, "/") {
		return "", syscall.EINVAL
	}
	return path.Join(dir, name), 0
}

// errnoOf maps policy and quota errors to the errno a caller in the sandbox
// sees; anything else is a system call error passed through.
func errnoOf(err error) syscall.Errno {
	switch {
	case err == nil:
		return 0
	case errors.Is(err, ErrDenied), errors.Is(err, ErrOutsideRoot):
		return syscall.EACCES
	case errors.Is(err, ErrReadOnly):
		return syscall.EROFS
	case errors.Is(err, ErrModeNotAllowed), errors.Is(err, ErrSpecialFile):
		return syscall.EPERM
	case errors.Is(err, ErrQuotaBytes), errors.Is(err, ErrQuotaInodes):
		return syscall.EDQUOT
	}
	return gofs.ToErrno(err)
}

// writable checks that rel may be changed through this mount.
func (s *fsys) writable(rel string) syscall.Errno {
	if s.pol().Hidden(rel) {
		return syscall.ENOENT
	}
	if s.readOnly {
		return syscall.EROFS
	}
	return errnoOf(s.pol().CheckWrite(rel))
}

// creatable checks that a new entry may be made at rel. A denied name gives
// EACCES whether or not something exists there.
func (s *fsys) creatable(rel string, mode uint32) syscall.Errno {
	if s.readOnly {
		return syscall.EROFS
	}
	if err := s.pol().CheckWrite(rel); err != nil {
		return errnoOf(err)
	}
	return errnoOf(s.pol().CheckMode(fileMode(mode)))
}

// fileMode converts a raw st_mode to an fs.FileMode.
func fileMode(m uint32) fs.FileMode {
	mode := fs.FileMode(m & 0o777)
	switch m & syscall.S_IFMT {
	case syscall.S_IFDIR:
		mode |= fs.ModeDir
	case syscall.S_IFLNK:
		mode |= fs.ModeSymlink
	case syscall.S_IFCHR:
		mode |= fs.ModeDevice | fs.ModeCharDevice
	case syscall.S_IFBLK:
		mode |= fs.ModeDevice
	case syscall.S_IFIFO:
		mode |= fs.ModeNamedPipe
	case syscall.S_IFSOCK:
		mode |= fs.ModeSocket
	case syscall.S_IFREG, 0:
	default:
		mode |= fs.ModeIrregular
	}
	if m&syscall.S_ISUID != 0 {
		mode |= fs.ModeSetuid
	}
	if m&syscall.S_ISGID != 0 {
		mode |= fs.ModeSetgid
	}
	if m&syscall.S_ISVTX != 0 {
		mode |= fs.ModeSticky
	}
	return mode
}

// statAt fills st for name in dirfd (or dirfd itself when name is ""),
// without following a symlink, and returns the birth time as an inode
// generation so that a reused inode number is not mistaken for the old file.
func statAt(dirfd int, name string, st *syscall.Stat_t) (gen uint64, err error) {
	flags := unix.AT_SYMLINK_NOFOLLOW
	if name == "" {
		flags |= unix.AT_EMPTY_PATH
	}
	var x unix.Statx_t
	if err := unix.Statx(dirfd, name, flags, unix.STATX_BASIC_STATS|unix.STATX_BTIME, &x); err != nil {
		return 0, err
	}
	*st = syscall.Stat_t{
		Dev:     unix.Mkdev(x.Dev_major, x.Dev_minor),
		Ino:     x.Ino,
		Nlink:   uint64(x.Nlink),
		Mode:    uint32(x.Mode),
		Uid:     x.Uid,
		Gid:     x.Gid,
		Rdev:    unix.Mkdev(x.Rdev_major, x.Rdev_minor),
		Size:    int64(x.Size),
		Blksize: int64(x.Blksize),
		Blocks:  int64(x.Blocks),
		Atim:    syscall.Timespec{Sec: x.Atime.Sec, Nsec: int64(x.Atime.Nsec)},
		Mtim:    syscall.Timespec{Sec: x.Mtime.Sec, Nsec: int64(x.Mtime.Nsec)},
		Ctim:    syscall.Timespec{Sec: x.Ctime.Sec, Nsec: int64(x.Ctime.Nsec)},
	}
	gen = 1
	if x.Mask&unix.STATX_BTIME != 0 {
		gen = uint64(x.Btime.Sec)*1e9 + uint64(x.Btime.Nsec)
	}
	return gen, nil
}

func (n *node) newChild(ctx context.Context, st *syscall.Stat_t, gen uint64, out *fuse.EntryOut) *gofs.Inode {
	out.Attr.FromStat(st)
	child := n.sys.newNode()
	return n.NewInode(ctx, child, gofs.StableAttr{Mode: st.Mode & syscall.S_IFMT, Ino: st.Ino, Gen: gen})
}

// chownToCaller gives a new entry to the uid and gid of the process that
// made it, when the server runs as root (otherwise it is the server's).
func (s *fsys) chownToCaller(ctx context.Context, dirfd int, name string) error {
	if !s.asRoot {
		return nil
	}
	caller, ok := fuse.FromContext(ctx)
	if !ok {
		return nil
	}
	return unix.Fchownat(dirfd, name, int(caller.Uid), int(caller.Gid), unix.AT_SYMLINK_NOFOLLOW)
}

func (n *node) Lookup(ctx context.Context, name string, out *fuse.EntryOut) (*gofs.Inode, syscall.Errno) {
	if errno := n.sys.allowed(ctx); errno != 0 {
		return nil, errno
	}
	rel, errno := n.childPath(name)
	if errno != 0 {
		return nil, errno
	}
	if n.sys.pol().Hidden(rel) {
		// Not cached, so allowing the name later needs no invalidation.
		uncachedMiss(out)
		return nil, syscall.ENOENT
	}
	// One openat2 answers a miss (the common case before a create);
	// a hit is then stat'ed through the descriptor.
	fd, err := n.sys.b.open(rel, unix.O_PATH|unix.O_NOFOLLOW, 0)
	if err != nil {
		errno := gofs.ToErrno(err)
		if errno != syscall.ENOENT || !n.sys.cacheMiss(n, name) {
			uncachedMiss(out)
		}
		return nil, errno
	}
	var st syscall.Stat_t
	gen, err := statAt(fd, "", &st)
	unix.Close(fd)
	if err != nil {
		return nil, gofs.ToErrno(err)
	}
	return n.newChild(ctx, &st, gen, out), 0
}

// OpendirHandle opens a directory for listing and lets the kernel cache
// the listing (FOPEN_CACHE_DIR). The kernel drops it when the directory
// changes through the view, when Invalidate or InvalidateAll says so, and
// when the directory's mtime differs after its attributes expire.
func (n *node) OpendirHandle(ctx context.Context, flags uint32) (gofs.FileHandle, uint32, syscall.Errno) {
	ds, errno := n.Readdir(ctx)
	if errno != 0 {
		return nil, 0, errno
	}
	return &dirHandle{ds: ds}, fuse.FOPEN_CACHE_DIR | fuse.FOPEN_KEEP_CACHE, 0
}

func (n *node) Readdir(ctx context.Context) (gofs.DirStream, syscall.Errno) {
	if errno := n.sys.allowed(ctx); errno != 0 {
		return nil, errno
	}
	rel, errno := n.relPath()
	if errno != 0 {
		return nil, errno
	}
	fd, err := n.sys.b.open(rel, unix.O_RDONLY|unix.O_DIRECTORY, 0)
	if err != nil {
		return nil, gofs.ToErrno(err)
	}
	inner, errno := gofs.NewLoopbackDirStreamFd(fd)
	if errno != 0 {
		unix.Close(fd)
		return nil, errno
	}
	return &filteredDir{inner: inner, dir: rel, sys: n.sys}, 0
}

func (n *node) Getattr(ctx context.Context, f gofs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	if errno := n.sys.allowed(ctx); errno != 0 {
		return errno
	}
	if fg, ok := f.(gofs.FileGetattrer); ok {
		return fg.Getattr(ctx, out)
	}
	rel, errno := n.relPath()
	if errno != 0 {
		return errno
	}
	var st syscall.Stat_t
	if _, err := statRel(n.sys.b, rel, &st); err != nil {
		return gofs.ToErrno(err)
	}
	out.FromStat(&st)
	return 0
}

func (n *node) Access(ctx context.Context, mask uint32) syscall.Errno {
	if errno := n.sys.allowed(ctx); errno != 0 {
		return errno
	}
	rel, errno := n.relPath()
	if errno != 0 {
		return errno
	}
	if n.sys.pol().Hidden(rel) {
		return syscall.ENOENT
	}
	if mask&unix.W_OK != 0 {
		return n.sys.writable(rel)
	}
	return 0
}

func (n *node) Statfs(ctx context.Context, out *fuse.StatfsOut) syscall.Errno {
	if errno := n.sys.allowed(ctx); errno != 0 {
		return errno
	}
	var st syscall.Statfs_t
	if err := syscall.Fstatfs(n.sys.b.fd, &st); err != nil {
		return gofs.ToErrno(err)
	}
	out.FromStatfsT(&st)
	lim := n.sys.quota.Limits()
	bytes, inodes := n.sys.quota.Usage()
	if lim.Bytes > 0 && out.Bsize > 0 {
		bs := uint64(out.Bsize)
		out.Blocks = uint64(lim.Bytes) / bs
		free := uint64(max(lim.Bytes-bytes, 0)) / bs
		out.Bfree = min(out.Bfree, free)
		out.Bavail = min(out.Bavail, free)
	}
	if lim.Inodes > 0 {
		out.Files = uint64(lim.Inodes)
		out.Ffree = uint64(max(lim.Inodes-inodes, 0))
	}
	return 0
}

func (n *node) Readlink(ctx context.Context) ([]byte, syscall.Errno) {
	if errno := n.sys.allowed(ctx); errno != 0 {
		return nil, errno
	}
	rel, errno := n.relPath()
	if errno != 0 {
		return nil, errno
	}
	dfd, name, err := n.sys.b.parent(rel)
	if err != nil {
		return nil, gofs.ToErrno(err)
	}
	defer unix.Close(dfd)
	for size := 256; ; size *= 2 {
		buf := make([]byte, size)
		m, err := unix.Readlinkat(dfd, name, buf)
		if err != nil {
			return nil, gofs.ToErrno(err)
		}
		if m < size {
			return buf[:m], 0
		}
	}
}

// openFlags are the flags passed on to the backing file: the kernel keeps
// the file offset for O_APPEND, FMODE_EXEC is not an open(2) flag, and
// creation and truncation are done by the server itself.
func openFlags(flags uint32) int {
	f := int(flags) &^ (unix.O_APPEND | fuse.FMODE_EXEC | unix.O_CREAT | unix.O_EXCL | unix.O_TRUNC)
	return f | unix.O_NOFOLLOW
}

func wantsWrite(flags uint32) bool {
	return flags&unix.O_ACCMODE != unix.O_RDONLY || flags&unix.O_TRUNC != 0
}

func (n *node) Open(ctx context.Context, flags uint32) (gofs.FileHandle, uint32, syscall.Errno) {
	if errno := n.sys.allowed(ctx); errno != 0 {
		return nil, 0, errno
	}
	rel, errno := n.relPath()
	if errno != 0 {
		return nil, 0, errno
	}
	if n.sys.pol().Hidden(rel) {
		return nil, 0, syscall.ENOENT
	}
	if wantsWrite(flags) {
		if errno := n.sys.writable(rel); errno != 0 {
			return nil, 0, errno
		}
	}
	fd, err := n.sys.b.open(rel, openFlags(flags), 0)
	if err != nil {
		return nil, 0, gofs.ToErrno(err)
	}
	if flags&unix.O_TRUNC != 0 {
		if errno := n.truncateFd(fd); errno != 0 {
			unix.Close(fd)
			return nil, 0, errno
		}
	}
	if wantsWrite(flags) && n.sys.looseQuota {
		return n.trackWrites(fd)
	}
	return gofs.NewLoopbackFile(fd), 0, 0
}

// trackWrites returns a handle for a file opened for writing through
// passthrough under a loose quota: opening is refused when the quota is
// already used up, and the growth is counted when the handle closes.
func (n *node) trackWrites(fd int) (gofs.FileHandle, uint32, syscall.Errno) {
	if err := n.sys.quota.reserveBytes(1); err != nil {
		unix.Close(fd)
		return nil, 0, errnoOf(err)
	}
	n.sys.quota.addBytes(-1)
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.counted < 0 {
		var st unix.Stat_t
		if err := unix.Fstat(fd, &st); err != nil {
			unix.Close(fd)
			return nil, 0, gofs.ToErrno(err)
		}
		n.counted = st.Size
	}
	return &trackedFile{LoopbackFile: gofs.NewLoopbackFile(fd).(*gofs.LoopbackFile), n: n}, 0, 0
}

// settle counts what the file grew or shrank by since it was last counted.
// The caller holds n.mu.
func (n *node) settle(size int64) {
	if n.counted >= 0 {
		n.sys.quota.addBytes(size - n.counted)
	}
	n.counted = size
}

// trackedFile counts its file's size against the quota when it closes.
type trackedFile struct {
	*gofs.LoopbackFile
	n *node
}

func (f *trackedFile) Release(ctx context.Context) syscall.Errno {
	var out fuse.AttrOut
	if errno := f.LoopbackFile.Getattr(ctx, &out); errno == 0 {
		f.n.mu.Lock()
		f.n.settle(int64(out.Size))
		f.n.mu.Unlock()
	}
	return f.LoopbackFile.Release(ctx)
}

// truncateFd empties an open file and gives its bytes back to the quota.
func (n *node) truncateFd(fd int) syscall.Errno {
	n.mu.Lock()
	defer n.mu.Unlock()
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return gofs.ToErrno(err)
	}
	if err := unix.Ftruncate(fd, 0); err != nil {
		return gofs.ToErrno(err)
	}
	if st.Mode&unix.S_IFMT == unix.S_IFREG {
		if n.sys.looseQuota {
			n.settle(st.Size) // count passthrough growth before dropping it
			n.counted = 0
		}
		n.sys.quota.addBytes(-st.Size)
	}
	return 0
}

func (n *node) Create(ctx context.Context, name string, flags uint32, mode uint32, out *fuse.EntryOut) (*gofs.Inode, gofs.FileHandle, uint32, syscall.Errno) {
	if errno := n.sys.allowed(ctx); errno != 0 {
		return nil, nil, 0, errno
	}
	rel, errno := n.childPath(name)
	if errno != 0 {
		return nil, nil, 0, errno
	}
	if errno := n.sys.creatable(rel, syscall.S_IFREG|mode); errno != 0 {
		return nil, nil, 0, errno
	}
	dfd, base, err := n.sys.b.parent(rel)
	if err != nil {
		return nil, nil, 0, gofs.ToErrno(err)
	}
	defer unix.Close(dfd)

	if err := n.sys.quota.reserveInode(); err != nil {
		return nil, nil, 0, errnoOf(err)
	}
	created := true
	fd, err := unix.Openat(dfd, base, openFlags(flags)|unix.O_CREAT|unix.O_EXCL|unix.O_CLOEXEC, mode)
	if errors.Is(err, unix.EEXIST) && flags&unix.O_EXCL == 0 {
		// Someone made it since the kernel's lookup: open what is there.
		n.sys.quota.releaseInode()
		created = false
		fd, err = unix.Openat(dfd, base, openFlags(flags)|unix.O_CLOEXEC, 0)
	}
	if err != nil {
		if created {
			n.sys.quota.releaseInode()
		}
		return nil, nil, 0, gofs.ToErrno(err)
	}
	if created {
		if err := n.sys.chownToCaller(ctx, dfd, base); err != nil {
			unix.Close(fd)
			unix.Unlinkat(dfd, base, 0)
			n.sys.quota.releaseInode()
			return nil, nil, 0, gofs.ToErrno(err)
		}
	}
	var st syscall.Stat_t
	gen, err := statAt(fd, "", &st)
	if err != nil {
		unix.Close(fd)
		return nil, nil, 0, gofs.ToErrno(err)
	}
	ch := n.newChild(ctx, &st, gen, out)
	cn := ch.Operations().(*node)
	if !created && flags&unix.O_TRUNC != 0 {
		if errno := cn.truncateFd(fd); errno != 0 {
			unix.Close(fd)
			return nil, nil, 0, errno
		}
		out.Attr.Size = 0
	}
	if n.sys.looseQuota {
		fh, _, errno := cn.trackWrites(fd)
		if errno != 0 {
			return nil, nil, 0, errno
		}
		return ch, fh, 0, 0
	}
	return ch, gofs.NewLoopbackFile(fd), 0, 0
}

// makeEntry runs mk to create rel (counting one inode against the quota),
// hands it to the caller and returns its new inode.
func (n *node) makeEntry(ctx context.Context, rel string, out *fuse.EntryOut, mk func(dfd int, name string) error, undo func(dfd int, name string)) (*gofs.Inode, syscall.Errno) {
	dfd, base, err := n.sys.b.parent(rel)
	if err != nil {
		return nil, gofs.ToErrno(err)
	}
	defer unix.Close(dfd)
	if err := n.sys.quota.reserveInode(); err != nil {
		return nil, errnoOf(err)
	}
	if err := mk(dfd, base); err != nil {
		n.sys.quota.releaseInode()
		return nil, gofs.ToErrno(err)
	}
	err = n.sys.chownToCaller(ctx, dfd, base)
	if err == nil {
		var st syscall.Stat_t
		var gen uint64
		if gen, err = statAt(dfd, base, &st); err == nil {
			return n.newChild(ctx, &st, gen, out), 0
		}
	}
	undo(dfd, base)
	n.sys.quota.releaseInode()
	return nil, gofs.ToErrno(err)
}

func unlinkFile(dfd int, name string) { unix.Unlinkat(dfd, name, 0) }
func removeDir(dfd int, name string)  { unix.Unlinkat(dfd, name, unix.AT_REMOVEDIR) }

func (n *node) Mkdir(ctx context.Context, name string, mode uint32, out *fuse.EntryOut) (*gofs.Inode, syscall.Errno) {
	if errno := n.sys.allowed(ctx); errno != 0 {
		return nil, errno
	}
	rel, errno := n.childPath(name)
	if errno != 0 {
		return nil, errno
	}
	if errno := n.sys.creatable(rel, syscall.S_IFDIR|mode); errno != 0 {
		return nil, errno
	}
	return n.makeEntry(ctx, rel, out, func(dfd int, name string) error {
		return unix.Mkdirat(dfd, name, mode)
	}, removeDir)
}

func (n *node) Mknod(ctx context.Context, name string, mode, rdev uint32, out *fuse.EntryOut) (*gofs.Inode, syscall.Errno) {
	if errno := n.sys.allowed(ctx); errno != 0 {
		return nil, errno
	}
	rel, errno := n.childPath(name)
	if errno != 0 {
		return nil, errno
	}
	if errno := n.sys.creatable(rel, mode); errno != 0 {
		return nil, errno
	}
	return n.makeEntry(ctx, rel, out, func(dfd int, name string) error {
		return unix.Mknodat(dfd, name, mode, int(rdev))
	}, unlinkFile)
}

func (n *node) Symlink(ctx context.Context, target, name string, out *fuse.EntryOut) (*gofs.Inode, syscall.Errno) {
	if errno := n.sys.allowed(ctx); errno != 0 {
		return nil, errno
	}
	rel, errno := n.childPath(name)
	if errno != 0 {
		return nil, errno
	}
	if errno := n.sys.creatable(rel, syscall.S_IFLNK|0o777); errno != 0 {
		return nil, errno
	}
	return n.makeEntry(ctx, rel, out, func(dfd int, name string) error {
		return unix.Symlinkat(target, dfd, name)
	}, unlinkFile)
}

func (n *node) Link(ctx context.Context, target gofs.InodeEmbedder, name string, out *fuse.EntryOut) (*gofs.Inode, syscall.Errno) {
	if errno := n.sys.allowed(ctx); errno != 0 {
		return nil, errno
	}
	tn, ok := target.(*node)
	if !ok || tn.sys != n.sys {
		return nil, syscall.EXDEV
	}
	src, errno := tn.relPath()
	if errno != 0 {
		return nil, errno
	}
	rel, errno := n.childPath(name)
	if errno != 0 {
		return nil, errno
	}
	// A second name for a read-only file would make it writable.
	if errno := n.sys.writable(src); errno != 0 {
		return nil, errno
	}
	if errno := n.sys.creatable(rel, syscall.S_IFREG); errno != 0 {
		return nil, errno
	}
	sfd, sname, err := n.sys.b.parent(src)
	if err != nil {
		return nil, gofs.ToErrno(err)
	}
	defer unix.Close(sfd)
	dfd, dname, err := n.sys.b.parent(rel)
	if err != nil {
		return nil, gofs.ToErrno(err)
	}
	defer unix.Close(dfd)
	if err := unix.Linkat(sfd, sname, dfd, dname, 0); err != nil {
		return nil, gofs.ToErrno(err)
	}
	var st syscall.Stat_t
	gen, err := statAt(dfd, dname, &st)
	if err != nil {
		return nil, gofs.ToErrno(err)
	}
	return n.newChild(ctx, &st, gen, out), 0
}

func (n *node) remove(name string, flags int) syscall.Errno {
	rel, errno := n.childPath(name)
	if errno != 0 {
		return errno
	}
	if errno := n.sys.writable(rel); errno != 0 {
		return errno
	}
	dfd, base, err := n.sys.b.parent(rel)
	if err != nil {
		return gofs.ToErrno(err)
	}
	defer unix.Close(dfd)
	var st syscall.Stat_t
	if _, err := statAt(dfd, base, &st); err != nil {
		return gofs.ToErrno(err)
	}
	if err := unix.Unlinkat(dfd, base, flags); err != nil {
		return gofs.ToErrno(err)
	}
	forgetRemovedIn(n.sys.quota, &st)
	return 0
}

func (n *node) Unlink(ctx context.Context, name string) syscall.Errno {
	if errno := n.sys.allowed(ctx); errno != 0 {
		return errno
	}
	return n.remove(name, 0)
}

func (n *node) Rmdir(ctx context.Context, name string) syscall.Errno {
	if errno := n.sys.allowed(ctx); errno != 0 {
		return errno
	}
	return n.remove(name, unix.AT_REMOVEDIR)
}

func (n *node) Rename(ctx context.Context, name string, newParent gofs.InodeEmbedder, newName string, flags uint32) syscall.Errno {
	if errno := n.sys.allowed(ctx); errno != 0 {
		return errno
	}
	np, ok := newParent.(*node)
	if !ok || np.sys != n.sys {
		return syscall.EXDEV
	}
	from, errno := n.childPath(name)
	if errno != 0 {
		return errno
	}
	to, errno := np.childPath(newName)
	if errno != 0 {
		return errno
	}
	pol := n.sys.pol()
	if pol.Hidden(from) {
		return syscall.ENOENT
	}
	if flags&unix.RENAME_WHITEOUT != 0 && pol.CheckMode(fs.ModeDevice|fs.ModeCharDevice) != nil {
		return syscall.EPERM // a whiteout is a character device the server would make as root
	}
	if n.sys.readOnly {
		return syscall.EROFS
	}
	ffd, fname, err := n.sys.b.parent(from)
	if err != nil {
		return gofs.ToErrno(err)
	}
	defer unix.Close(ffd)
	tfd, tname, err := n.sys.b.parent(to)
	if err != nil {
		return gofs.ToErrno(err)
	}
	defer unix.Close(tfd)

	var fst, tst syscall.Stat_t
	if _, err := statAt(ffd, fname, &fst); err != nil {
		return gofs.ToErrno(err)
	}
	_, terr := statAt(tfd, tname, &tst)
	targetExists := terr == nil
	if terr != nil && !errors.Is(terr, unix.ENOENT) {
		return gofs.ToErrno(terr)
	}
	isDir := func(st *syscall.Stat_t) bool { return st.Mode&syscall.S_IFMT == syscall.S_IFDIR }
	if err := pol.CheckRename(from, to, isDir(&fst)); err != nil {
		return errnoOf(err)
	}
	if flags&unix.RENAME_EXCHANGE != 0 && targetExists {
		if err := pol.CheckRename(to, from, isDir(&tst)); err != nil {
			return errnoOf(err)
		}
	}
	if err := unix.Renameat2(ffd, fname, tfd, tname, uint(flags)); err != nil {
		return gofs.ToErrno(err)
	}
	if targetExists && flags&unix.RENAME_EXCHANGE == 0 && !(fst.Dev == tst.Dev && fst.Ino == tst.Ino) {
		forgetRemovedIn(n.sys.quota, &tst)
	}
	return 0
}

func (n *node) Setattr(ctx context.Context, f gofs.FileHandle, in *fuse.SetAttrIn, out *fuse.AttrOut) syscall.Errno {
	if errno := n.sys.allowed(ctx); errno != 0 {
		return errno
	}
	rel, errno := n.relPath()
	if errno != 0 {
		return errno
	}
	if errno := n.sys.writable(rel); errno != 0 {
		return errno
	}
	kind := n.StableAttr().Mode & syscall.S_IFMT
	if m, ok := in.GetMode(); ok {
		if err := n.sys.pol().CheckMode(fileMode(kind | m&0o7777)); err != nil {
			return errnoOf(err)
		}
	}
	uid, uok := in.GetUID()
	gid, gok := in.GetGID()
	if (uok || gok) && n.sys.asRoot {
		// The server is root; it must not hand files to other users.
		caller, ok := fuse.FromContext(ctx)
		if !ok || (uok && uid != caller.Uid) || (gok && gid != caller.Gid) {
			return syscall.EPERM
		}
	}
	size, sok := in.GetSize()

	n.mu.Lock()
	defer n.mu.Unlock()
	// An open file does the work itself (futimens, fchmod, ftruncate and
	// fstat on its descriptor); otherwise the node is opened by path.
	_, fileSets := f.(gofs.FileSetattrer)
	_, fileGets := f.(gofs.FileGetattrer)
	fd := -1
	if !fileSets || !fileGets {
		var err error
		fd, err = n.sys.b.open(rel, unix.O_PATH|unix.O_NOFOLLOW, 0)
		if err != nil {
			return gofs.ToErrno(err)
		}
		defer unix.Close(fd)
	}
	var before syscall.Stat_t
	if sok {
		if errno := n.statNode(f, fd, &before); errno != 0 {
			return errno
		}
		if n.sys.looseQuota {
			n.settle(before.Size)
		}
		if err := n.sys.quota.reserveBytes(int64(size) - before.Size); err != nil {
			return errnoOf(err)
		}
	}
	if errno := n.setattr(f, fd, kind, in, out); errno != 0 {
		if sok {
			n.sys.quota.addBytes(before.Size - int64(size))
		}
		return errno
	}
	if sok && n.sys.looseQuota {
		n.counted = int64(out.Size)
	}
	return 0
}

// statNode stats the open file f, or fd when f is nil.
func (n *node) statNode(f gofs.FileHandle, fd int, st *syscall.Stat_t) syscall.Errno {
	if f != nil {
		if fg, ok := f.(gofs.FileGetattrer); ok {
			var out fuse.AttrOut
			if errno := fg.Getattr(context.Background(), &out); errno != 0 {
				return errno
			}
			st.Mode = out.Mode
			st.Size = int64(out.Size)
			st.Ino = out.Ino
			st.Nlink = uint64(out.Nlink)
			st.Uid, st.Gid = out.Uid, out.Gid
			st.Blocks = int64(out.Blocks)
			st.Blksize = int64(out.Blksize)
			st.Rdev = uint64(out.Rdev)
			st.Atim = syscall.Timespec{Sec: int64(out.Atime), Nsec: int64(out.Atimensec)}
			st.Mtim = syscall.Timespec{Sec: int64(out.Mtime), Nsec: int64(out.Mtimensec)}
			st.Ctim = syscall.Timespec{Sec: int64(out.Ctime), Nsec: int64(out.Ctimensec)}
			return 0
		}
	}
	_, err := statAt(fd, "", st)
	return gofs.ToErrno(err)
}

// setattr applies in and fills out with the attributes after. With an open
// file the file does the work; otherwise fd is an O_PATH descriptor of the
// node and every change goes through it, so a path swapped in the meantime
// is never touched.
func (n *node) setattr(f gofs.FileHandle, fd int, kind uint32, in *fuse.SetAttrIn, out *fuse.AttrOut) syscall.Errno {
	if fs, ok := f.(gofs.FileSetattrer); ok && f != nil {
		return fs.Setattr(context.Background(), in, out) // stats the file after
	}
	if errno := n.setattrFd(fd, kind, in); errno != 0 {
		return errno
	}
	var st syscall.Stat_t
	if _, err := statAt(fd, "", &st); err != nil {
		return gofs.ToErrno(err)
	}
	out.FromStat(&st)
	return 0
}

// setattrFd applies in through fd, an O_PATH descriptor of the node.
func (n *node) setattrFd(fd int, kind uint32, in *fuse.SetAttrIn) syscall.Errno {
	if m, ok := in.GetMode(); ok {
		if kind == syscall.S_IFLNK {
			return syscall.EOPNOTSUPP
		}
		if err := unix.Chmod(procPath(fd), m&0o7777); err != nil {
			return gofs.ToErrno(err)
		}
	}
	uid, uok := in.GetUID()
	gid, gok := in.GetGID()
	if uok || gok {
		u, g := -1, -1
		if uok {
			u = int(uid)
		}
		if gok {
			g = int(gid)
		}
		if err := unix.Fchownat(fd, "", u, g, unix.AT_EMPTY_PATH|unix.AT_SYMLINK_NOFOLLOW); err != nil {
			return gofs.ToErrno(err)
		}
	}
	if size, ok := in.GetSize(); ok {
		if err := unix.Truncate(procPath(fd), int64(size)); err != nil {
			return gofs.ToErrno(err)
		}
	}
	mtime, mok := in.GetMTime()
	atime, aok := in.GetATime()
	if mok || aok {
		ts := []unix.Timespec{{Nsec: unix.UTIME_OMIT}, {Nsec: unix.UTIME_OMIT}}
		if aok {
			ts[0] = unix.NsecToTimespec(atime.UnixNano())
		}
		if mok {
			ts[1] = unix.NsecToTimespec(mtime.UnixNano())
		}
		if err := unix.UtimesNanoAt(fd, "", ts, unix.AT_EMPTY_PATH|unix.AT_SYMLINK_NOFOLLOW); err != nil {
			return gofs.ToErrno(err)
		}
	}
	return 0
}

// fileSize returns the current size of the open file f.
func fileSize(ctx context.Context, f gofs.FileHandle) (int64, syscall.Errno) {
	fg, ok := f.(gofs.FileGetattrer)
	if !ok {
		return 0, syscall.EBADF
	}
	var out fuse.AttrOut
	if errno := fg.Getattr(ctx, &out); errno != 0 {
		return 0, errno
	}
	return int64(out.Size), 0
}

// grow runs op, which may extend the open file f up to end, with the growth
// reserved from the byte quota first and the reservation corrected to the
// real growth afterwards.
func (n *node) grow(ctx context.Context, f gofs.FileHandle, end int64, op func() syscall.Errno) syscall.Errno {
	if !n.sys.quota.limitsBytes() {
		return op()
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	before, errno := fileSize(ctx, f)
	if errno != 0 {
		return errno
	}
	if n.sys.looseQuota {
		n.settle(before) // growth other handles made through passthrough
	}
	reserved := max(end-before, 0)
	if err := n.sys.quota.reserveBytes(reserved); err != nil {
		return errnoOf(err)
	}
	errno = op()
	after, serr := fileSize(ctx, f)
	if serr != 0 {
		after = before + reserved
	}
	n.sys.quota.addBytes(after - before - reserved)
	if n.sys.looseQuota {
		n.counted = after
	}
	return errno
}

func (n *node) Write(ctx context.Context, f gofs.FileHandle, data []byte, off int64) (uint32, syscall.Errno) {
	fw, ok := f.(gofs.FileWriter)
	if !ok {
		return 0, syscall.EBADF
	}
	var written uint32
	errno := n.grow(ctx, f, off+int64(len(data)), func() syscall.Errno {
		var errno syscall.Errno
		written, errno = fw.Write(ctx, data, off)
		return errno
	})
	return written, errno
}

func (n *node) Writev(ctx context.Context, f gofs.FileHandle, data [][]byte, off int64) (uint32, syscall.Errno) {
	fw, ok := f.(gofs.FileWritever)
	if !ok {
		return 0, syscall.EBADF
	}
	total := int64(0)
	for _, d := range data {
		total += int64(len(d))
	}
	var written uint32
	errno := n.grow(ctx, f, off+total, func() syscall.Errno {
		var errno syscall.Errno
		written, errno = fw.Writev(ctx, data, off)
		return errno
	})
	return written, errno
}

func (n *node) Allocate(ctx context.Context, f gofs.FileHandle, off uint64, size uint64, mode uint32) syscall.Errno {
	fa, ok := f.(gofs.FileAllocater)
	if !ok {
		return syscall.EBADF
	}
	end := int64(off + size)
	if mode&unix.FALLOC_FL_KEEP_SIZE != 0 {
		end = 0
	}
	return n.grow(ctx, f, end, func() syscall.Errno {
		return fa.Allocate(ctx, off, size, mode)
	})
}

// Ioctl refuses every ioctl: the server would run them as itself on the
// backing file.
func (n *node) Ioctl(ctx context.Context, f gofs.FileHandle, cmd uint32, arg uint64, input []byte, output []byte) (int32, syscall.Errno) {
	return 0, syscall.ENOTTY
}

// Flush answers ENOSYS, which tells the kernel to stop sending FLUSH on
// every close(2): the backing files are local, so there is nothing to
// flush, and a round trip per close is the largest cost of small-file
// work. Locks are OFD locks on the backing descriptor, released with it.
func (n *node) Flush(ctx context.Context, f gofs.FileHandle) syscall.Errno {
	return syscall.ENOSYS
}

// OnForget has nothing to release: nodes hold no descriptors.
func (n *node) OnForget() {}

// filteredDir leaves denied names out of a directory listing, checking each
// name against the policy in force when it is read.
type filteredDir struct {
	inner   gofs.DirStream
	dir     string
	sys     *fsys
	next    *fuse.DirEntry
	nextErr syscall.Errno
}

func (d *filteredDir) HasNext() bool {
	for d.next == nil && d.nextErr == 0 && d.inner.HasNext() {
		e, errno := d.inner.Next()
		if errno != 0 {
			d.nextErr = errno
			return true
		}
		if e.Name != "." && e.Name != ".." && d.sys.pol().Hidden(path.Join(d.dir, e.Name)) {
			continue
		}
		d.next = &e
	}
	return d.next != nil || d.nextErr != 0
}

func (d *filteredDir) Next() (fuse.DirEntry, syscall.Errno) {
	if !d.HasNext() {
		return fuse.DirEntry{}, syscall.EBADF
	}
	if d.nextErr != 0 {
		errno := d.nextErr
		d.nextErr = 0
		return fuse.DirEntry{}, errno
	}
	e := *d.next
	d.next = nil
	return e, 0
}

func (d *filteredDir) Close() { d.inner.Close() }

// dirHandle is an open directory of the view.
type dirHandle struct{ ds gofs.DirStream }

var (
	_ gofs.FileReaddirenter = (*dirHandle)(nil)
	_ gofs.FileSeekdirer    = (*dirHandle)(nil)
	_ gofs.FileReleasedirer = (*dirHandle)(nil)
)

func (h *dirHandle) Readdirent(ctx context.Context) (*fuse.DirEntry, syscall.Errno) {
	if !h.ds.HasNext() {
		return nil, 0
	}
	e, errno := h.ds.Next()
	return &e, errno
}

func (h *dirHandle) Seekdir(ctx context.Context, off uint64) syscall.Errno {
	if sd, ok := h.ds.(gofs.FileSeekdirer); ok {
		return sd.Seekdir(ctx, off)
	}
	return syscall.ENOTSUP
}

func (h *dirHandle) Releasedir(ctx context.Context, flags uint32) { h.ds.Close() }

func (d *filteredDir) Seekdir(ctx context.Context, off uint64) syscall.Errno {
	sd, ok := d.inner.(gofs.FileSeekdirer)
	if !ok {
		return syscall.ENOTSUP
	}
	d.next, d.nextErr = nil, 0
	return sd.Seekdir(ctx, off)
}
