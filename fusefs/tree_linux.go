package fusefs

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"slices"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// maxSymlinks bounds symlink hops in one resolution, as the kernel does.
const maxSymlinks = 40

// TreeOptions configure a Tree.
type TreeOptions struct {
	// Policy is checked on every path, after symlinks are resolved; nil
	// means DefaultPolicy.
	Policy *Policy
	// Quota is shared with the mount of the same directory; nil means no
	// limits.
	Quota *Quota
	// UID and GID own entries the Tree creates when Chown is set (the
	// workspace's host uid, so the sandbox sees its own files).
	UID, GID int
	Chown    bool
	// OnChange, if set, is called with the resolved path of every entry
	// the Tree creates, changes, removes or renames (both names), so a
	// mount of the same directory can drop its caches: pass
	// (*Server).Invalidate.
	OnChange func(rel string)
}

// Tree is the host-side route into a backing directory: the agent's file
// tools read, write, list and search through it under the same Policy and
// Quota as the FUSE view. Symlinks are followed only while they stay below
// the root; every step is checked against the policy, and the final
// operation opens the resolved path with openat2 RESOLVE_NO_SYMLINKS, so a
// concurrent swap makes it fail instead of escaping.
//
// Paths are slash-separated and relative to the root, as in io/fs. Errors
// are *fs.PathError wrapping ErrDenied (also for hidden paths, which are
// reported as not existing: errors.Is(err, fs.ErrNotExist) holds too),
// ErrReadOnly, ErrOutsideRoot, ErrModeNotAllowed, ErrSpecialFile,
// ErrQuotaBytes, ErrQuotaInodes or a syscall error.
type Tree struct {
	b      *beneath
	policy atomic.Pointer[Policy]
	quota  *Quota
	opts   TreeOptions
}

// OpenTree opens dir as a Tree. Close releases it.
func OpenTree(dir string, opts TreeOptions) (*Tree, error) {
	b, err := openBeneath(dir)
	if err != nil {
		return nil, err
	}
	t := &Tree{b: b, quota: opts.Quota, opts: opts}
	p := opts.Policy
	if p == nil {
		p = DefaultPolicy()
	}
	t.policy.Store(p)
	return t, nil
}

// Close releases the tree's directory descriptor.
func (t *Tree) Close() error { return t.b.close() }

func (t *Tree) changed(rel ...string) {
	if t.opts.OnChange == nil {
		return
	}
	for _, r := range rel {
		t.opts.OnChange(r)
	}
}

// SetPolicy replaces the policy for every later call.
func (t *Tree) SetPolicy(p *Policy) { t.policy.Store(p) }

// hiddenError reports a denied path as not existing, while keeping
// ErrDenied visible to callers that check for it.
type hiddenError struct{ err error }

func (e *hiddenError) Error() string { return e.err.Error() }
func (e *hiddenError) Is(target error) bool {
	return target == fs.ErrNotExist || errors.Is(e.err, target)
}

func pathErr(op, name string, err error) error {
	if errors.Is(err, ErrDenied) {
		err = &hiddenError{err}
	}
	return &fs.PathError{Op: op, Path: name, Err: err}
}

// resolve follows rel below the root, checking every step against the
// policy, and returns the symlink-free relative path it names. When
// followLast is false a symlink in the last element is not followed. The
// last element may not exist; earlier ones must.
func (t *Tree) resolve(rel string, followLast bool) (string, error) {
	if strings.HasPrefix(rel, "/") {
		return "", fmt.Errorf("%w: %q is absolute", ErrOutsideRoot, rel)
	}
	pol := t.policy.Load()
	todo := strings.Split(rel, "/")
	var done []string
	hops := 0
	for len(todo) > 0 {
		seg := todo[0]
		todo = todo[1:]
		switch seg {
		case "", ".":
			continue
		case "..":
			if len(done) == 0 {
				return "", fmt.Errorf("%w: %q", ErrOutsideRoot, rel)
			}
			done = done[:len(done)-1]
			continue
		}
		cand := path.Join(append(slices.Clone(done), seg)...)
		if err := pol.CheckRead(cand); err != nil {
			return "", err
		}
		last := len(todo) == 0
		var st unix.Stat_t
		err := t.b.lstat(cand, &st)
		if errors.Is(err, unix.ENOENT) && last {
			done = append(done, seg)
			break
		}
		if err != nil {
			return "", err
		}
		if st.Mode&unix.S_IFMT != unix.S_IFLNK || (last && !followLast) {
			done = append(done, seg)
			continue
		}
		hops++
		if hops > maxSymlinks {
			return "", unix.ELOOP
		}
		target, err := t.readlink(cand)
		if err != nil {
			return "", err
		}
		if strings.HasPrefix(target, "/") {
			return "", fmt.Errorf("%w: %s links to absolute path %q", ErrOutsideRoot, cand, target)
		}
		todo = append(strings.Split(target, "/"), todo...)
	}
	return path.Join(done...), nil
}

func (t *Tree) readlink(rel string) (string, error) {
	dfd, name, err := t.b.parent(rel)
	if err != nil {
		return "", err
	}
	defer unix.Close(dfd)
	buf := make([]byte, unix.PathMax)
	n, err := unix.Readlinkat(dfd, name, buf)
	if err != nil {
		return "", err
	}
	return string(buf[:n]), nil
}

// Resolve returns the symlink-free path rel names, following symlinks that
// stay below the root, or an error if a step is denied or leaves the root.
func (t *Tree) Resolve(rel string) (string, error) {
	r, err := t.resolve(rel, true)
	if err != nil {
		return "", pathErr("resolve", rel, err)
	}
	return r, nil
}

// Open opens rel for reading.
func (t *Tree) Open(rel string) (*os.File, error) {
	r, err := t.resolve(rel, true)
	if err != nil {
		return nil, pathErr("open", rel, err)
	}
	pfd, err := t.b.open(r, unix.O_PATH|unix.O_NOFOLLOW, 0)
	if err != nil {
		return nil, pathErr("open", rel, err)
	}
	defer unix.Close(pfd)
	fd, err := reopenPlain(pfd, unix.O_RDONLY)
	if err != nil {
		return nil, pathErr("open", rel, err)
	}
	return os.NewFile(uintptr(fd), r), nil
}

// reopenPlain opens the inode behind the O_PATH descriptor pfd with flags,
// if it is a regular file or a directory. Going through the descriptor
// rather than the path means the inode checked is the inode opened, and a
// device node or fifo is never opened by the host process.
func reopenPlain(pfd, flags int) (int, error) {
	var st unix.Stat_t
	if err := unix.Fstat(pfd, &st); err != nil {
		return -1, err
	}
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFREG, unix.S_IFDIR:
	default:
		return -1, fmt.Errorf("%w: mode %o", ErrSpecialFile, st.Mode)
	}
	return unix.Open(procPath(pfd), flags|unix.O_CLOEXEC, 0)
}

// ReadFile returns the contents of rel.
func (t *Tree) ReadFile(rel string) ([]byte, error) {
	f, err := t.Open(rel)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return io.ReadAll(f)
}

// Stat returns the attributes of what rel names, following symlinks.
func (t *Tree) Stat(rel string) (fs.FileInfo, error) { return t.stat("stat", rel, true) }

// Lstat returns the attributes of rel itself.
func (t *Tree) Lstat(rel string) (fs.FileInfo, error) { return t.stat("lstat", rel, false) }

func (t *Tree) stat(op, rel string, follow bool) (fs.FileInfo, error) {
	r, err := t.resolve(rel, follow)
	if err != nil {
		return nil, pathErr(op, rel, err)
	}
	var st syscall.Stat_t
	if _, err := statRel(t.b, r, &st); err != nil {
		return nil, pathErr(op, rel, err)
	}
	return newFileInfo(path.Base("/"+r), &st), nil
}

// statRel stats rel below the root of b without following a symlink.
func statRel(b *beneath, rel string, st *syscall.Stat_t) (uint64, error) {
	if rel == "" {
		return statAt(b.fd, "", st)
	}
	dfd, name, err := b.parent(rel)
	if err != nil {
		return 0, err
	}
	defer unix.Close(dfd)
	return statAt(dfd, name, st)
}

// ReadDir lists rel, leaving out denied entries, sorted by name.
func (t *Tree) ReadDir(rel string) ([]fs.DirEntry, error) {
	r, err := t.resolve(rel, true)
	if err != nil {
		return nil, pathErr("readdir", rel, err)
	}
	fd, err := t.b.open(r, unix.O_RDONLY|unix.O_DIRECTORY, 0)
	if err != nil {
		return nil, pathErr("readdir", rel, err)
	}
	f := os.NewFile(uintptr(fd), r)
	defer f.Close()
	names, err := f.Readdirnames(-1)
	if err != nil {
		return nil, pathErr("readdir", rel, err)
	}
	slices.Sort(names)
	pol := t.policy.Load()
	out := make([]fs.DirEntry, 0, len(names))
	for _, name := range names {
		if pol.Hidden(path.Join(r, name)) {
			continue
		}
		var st syscall.Stat_t
		if _, err := statAt(fd, name, &st); err != nil {
			if errors.Is(err, unix.ENOENT) {
				continue // removed since the listing
			}
			return nil, pathErr("readdir", rel, err)
		}
		out = append(out, fs.FileInfoToDirEntry(newFileInfo(name, &st)))
	}
	return out, nil
}

// WalkDir walks the tree below rel like fs.WalkDir, without denied entries
// and without following symlinks.
func (t *Tree) WalkDir(rel string, fn fs.WalkDirFunc) error {
	if rel == "" {
		rel = "."
	}
	return fs.WalkDir(t.FS(), rel, fn)
}

// WriteFile writes data to rel, creating it with perm or truncating it.
// It counts against the quota: the inode if new, and the change in size.
func (t *Tree) WriteFile(rel string, data []byte, perm fs.FileMode) error {
	r, err := t.resolve(rel, true)
	if err != nil {
		return pathErr("write", rel, err)
	}
	pol := t.policy.Load()
	if err := pol.CheckWrite(r); err != nil {
		return pathErr("write", rel, err)
	}
	if err := pol.CheckMode(perm); err != nil {
		return pathErr("write", rel, err)
	}
	dfd, name, err := t.b.parent(r)
	if err != nil {
		return pathErr("write", rel, err)
	}
	defer unix.Close(dfd)
	if err := t.quota.reserveInode(); err != nil {
		return pathErr("write", rel, err)
	}
	created := true
	fd, err := unix.Openat(dfd, name, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, uint32(perm.Perm()))
	if errors.Is(err, unix.EEXIST) {
		t.quota.releaseInode()
		created = false
		var pfd int
		if pfd, err = unix.Openat(dfd, name, unix.O_PATH|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0); err == nil {
			fd, err = reopenPlain(pfd, unix.O_WRONLY)
			unix.Close(pfd)
		}
	}
	if err != nil {
		if created {
			t.quota.releaseInode()
		}
		return pathErr("write", rel, err)
	}
	f := os.NewFile(uintptr(fd), r)
	defer f.Close()
	fail := func(err error) error {
		if created {
			unix.Unlinkat(dfd, name, 0)
			t.quota.releaseInode()
		}
		return pathErr("write", rel, err)
	}
	if created && t.opts.Chown {
		if err := f.Chown(t.opts.UID, t.opts.GID); err != nil {
			return fail(err)
		}
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return fail(err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		return fail(unix.EISDIR)
	}
	if err := t.quota.reserveBytes(int64(len(data)) - st.Size); err != nil {
		return fail(err)
	}
	if err := f.Truncate(0); err != nil {
		t.quota.addBytes(st.Size - int64(len(data)))
		return fail(err)
	}
	n, err := f.Write(data)
	t.changed(r)
	if err != nil {
		t.quota.addBytes(int64(n - len(data)))
		return pathErr("write", rel, err)
	}
	return nil
}

// MkdirAll makes rel and any missing parents with perm.
func (t *Tree) MkdirAll(rel string, perm fs.FileMode) error {
	segs := strings.Split(path.Clean(rel), "/")
	for i := range segs {
		prefix := path.Join(segs[:i+1]...)
		if prefix == "." {
			continue
		}
		r, err := t.resolve(prefix, true)
		if err != nil {
			return pathErr("mkdir", prefix, err)
		}
		var st unix.Stat_t
		err = t.b.lstat(r, &st)
		if err == nil {
			if st.Mode&unix.S_IFMT != unix.S_IFDIR {
				return pathErr("mkdir", prefix, unix.ENOTDIR)
			}
			continue
		}
		if !errors.Is(err, unix.ENOENT) {
			return pathErr("mkdir", prefix, err)
		}
		if err := t.mkdir(r, perm); err != nil && !errors.Is(err, unix.EEXIST) {
			return pathErr("mkdir", prefix, err)
		}
		t.changed(r)
	}
	return nil
}

func (t *Tree) mkdir(r string, perm fs.FileMode) error {
	pol := t.policy.Load()
	if err := pol.CheckWrite(r); err != nil {
		return err
	}
	if err := pol.CheckMode(fs.ModeDir | perm); err != nil {
		return err
	}
	dfd, name, err := t.b.parent(r)
	if err != nil {
		return err
	}
	defer unix.Close(dfd)
	if err := t.quota.reserveInode(); err != nil {
		return err
	}
	if err := unix.Mkdirat(dfd, name, uint32(perm.Perm())); err != nil {
		t.quota.releaseInode()
		return err
	}
	if t.opts.Chown {
		if err := unix.Fchownat(dfd, name, t.opts.UID, t.opts.GID, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			unix.Unlinkat(dfd, name, unix.AT_REMOVEDIR)
			t.quota.releaseInode()
			return err
		}
	}
	return nil
}

// Remove removes the file, symlink or empty directory rel (a symlink itself,
// not its target).
func (t *Tree) Remove(rel string) error {
	r, err := t.resolve(rel, false)
	if err != nil {
		return pathErr("remove", rel, err)
	}
	if err := t.policy.Load().CheckWrite(r); err != nil || r == "" {
		if r == "" {
			err = unix.EBUSY
		}
		return pathErr("remove", rel, err)
	}
	dfd, name, err := t.b.parent(r)
	if err != nil {
		return pathErr("remove", rel, err)
	}
	defer unix.Close(dfd)
	var st syscall.Stat_t
	if _, err := statAt(dfd, name, &st); err != nil {
		return pathErr("remove", rel, err)
	}
	flags := 0
	if st.Mode&syscall.S_IFMT == syscall.S_IFDIR {
		flags = unix.AT_REMOVEDIR
	}
	if err := unix.Unlinkat(dfd, name, flags); err != nil {
		return pathErr("remove", rel, err)
	}
	forgetRemovedIn(t.quota, &st)
	t.changed(r)
	return nil
}

// Rename moves from to to, under the same rules as a rename in the mount.
func (t *Tree) Rename(from, to string) error {
	rf, err := t.resolve(from, false)
	if err != nil {
		return pathErr("rename", from, err)
	}
	rt, err := t.resolve(to, false)
	if err != nil {
		return pathErr("rename", to, err)
	}
	ffd, fname, err := t.b.parent(rf)
	if err != nil {
		return pathErr("rename", from, err)
	}
	defer unix.Close(ffd)
	tfd, tname, err := t.b.parent(rt)
	if err != nil {
		return pathErr("rename", to, err)
	}
	defer unix.Close(tfd)
	var fst, tst syscall.Stat_t
	if _, err := statAt(ffd, fname, &fst); err != nil {
		return pathErr("rename", from, err)
	}
	_, terr := statAt(tfd, tname, &tst)
	if terr != nil && !errors.Is(terr, unix.ENOENT) {
		return pathErr("rename", to, terr)
	}
	if err := t.policy.Load().CheckRename(rf, rt, fst.Mode&syscall.S_IFMT == syscall.S_IFDIR); err != nil {
		return pathErr("rename", from, err)
	}
	if err := unix.Renameat(ffd, fname, tfd, tname); err != nil {
		return pathErr("rename", from, err)
	}
	t.changed(rf, rt)
	if terr == nil && !(fst.Dev == tst.Dev && fst.Ino == tst.Ino) {
		forgetRemovedIn(t.quota, &tst)
	}
	return nil
}

// forgetRemovedIn gives a removed name's space back to q when it was the
// last link of its inode.
func forgetRemovedIn(q *Quota, st *syscall.Stat_t) {
	if st.Mode&syscall.S_IFMT != syscall.S_IFDIR && st.Nlink > 1 {
		return
	}
	q.releaseInode()
	if st.Mode&syscall.S_IFMT == syscall.S_IFREG {
		q.addBytes(-st.Size)
	}
}

// FS returns the tree as a read-only fs.FS (with ReadDir and Stat) for code
// written against io/fs, such as a grep tool using fs.WalkDir.
func (t *Tree) FS() fs.FS { return treeFS{t} }

type treeFS struct{ t *Tree }

var (
	_ fs.ReadDirFS  = treeFS{}
	_ fs.StatFS     = treeFS{}
	_ fs.ReadFileFS = treeFS{}
)

func fsName(op, name string) (string, error) {
	if !fs.ValidPath(name) {
		return "", &fs.PathError{Op: op, Path: name, Err: fs.ErrInvalid}
	}
	if name == "." {
		return "", nil
	}
	return name, nil
}

func (f treeFS) Open(name string) (fs.File, error) {
	rel, err := fsName("open", name)
	if err != nil {
		return nil, err
	}
	file, err := f.t.Open(rel)
	if err != nil {
		return nil, err
	}
	return &treeFile{File: file, t: f.t, rel: rel}, nil
}

func (f treeFS) ReadDir(name string) ([]fs.DirEntry, error) {
	rel, err := fsName("readdir", name)
	if err != nil {
		return nil, err
	}
	return f.t.ReadDir(rel)
}

func (f treeFS) Stat(name string) (fs.FileInfo, error) {
	rel, err := fsName("stat", name)
	if err != nil {
		return nil, err
	}
	return f.t.Stat(rel)
}

func (f treeFS) ReadFile(name string) ([]byte, error) {
	rel, err := fsName("read", name)
	if err != nil {
		return nil, err
	}
	return f.t.ReadFile(rel)
}

// treeFile is an open file of a treeFS whose directory listing obeys the
// policy.
type treeFile struct {
	*os.File
	t    *Tree
	rel  string
	ents []fs.DirEntry
	read bool
}

func (f *treeFile) ReadDir(n int) ([]fs.DirEntry, error) {
	if !f.read {
		ents, err := f.t.ReadDir(f.rel)
		if err != nil {
			return nil, err
		}
		f.ents, f.read = ents, true
	}
	if n <= 0 {
		out := f.ents
		f.ents = nil
		return out, nil
	}
	if len(f.ents) == 0 {
		return nil, io.EOF
	}
	k := min(n, len(f.ents))
	out := f.ents[:k]
	f.ents = f.ents[k:]
	return out, nil
}

// fileInfo is an fs.FileInfo built from a stat.
type fileInfo struct {
	name string
	st   syscall.Stat_t
}

func newFileInfo(name string, st *syscall.Stat_t) *fileInfo {
	if name == "/" || name == "" {
		name = "."
	}
	return &fileInfo{name: name, st: *st}
}

func (fi *fileInfo) Name() string       { return fi.name }
func (fi *fileInfo) Size() int64        { return fi.st.Size }
func (fi *fileInfo) Mode() fs.FileMode  { return fileMode(fi.st.Mode) }
func (fi *fileInfo) ModTime() time.Time { return time.Unix(fi.st.Mtim.Sec, fi.st.Mtim.Nsec) }
func (fi *fileInfo) IsDir() bool        { return fi.st.Mode&syscall.S_IFMT == syscall.S_IFDIR }
func (fi *fileInfo) Sys() any           { return &fi.st }
