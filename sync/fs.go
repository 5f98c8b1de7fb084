package sync

import (
	"context"
	"errors"
	"io"
	"io/fs"
	"path"
	"slices"
	"sort"
	"strings"
	gosync "sync"
	"time"
)

// SnapshotFS is a read-only io/fs view of one snapshot that fetches and
// authenticates blobs on demand (a few recently used ones are cached). It
// implements fs.FS, fs.ReadDirFS, fs.StatFS and fs.ReadLinkFS, so a FUSE
// layer or an HTTP handler can serve a snapshot without restoring it.
// Open follows symlinks only while they stay inside the snapshot. Safe for
// concurrent use.
type SnapshotFS struct {
	r        *Repository
	ctx      context.Context
	snap     *Snapshot
	nodes    map[string]*Node
	children map[string][]*Node

	mu    gosync.Mutex
	cache map[ID][]byte
	order []ID // least recently used first
}

var (
	_ fs.ReadDirFS  = (*SnapshotFS)(nil)
	_ fs.StatFS     = (*SnapshotFS)(nil)
	_ fs.ReadLinkFS = (*SnapshotFS)(nil)
)

const fsCacheBlobs = 8

// FS returns a view of snap. ctx bounds every read made through it.
func (r *Repository) FS(ctx context.Context, snap *Snapshot) (*SnapshotFS, error) {
	if err := snap.validate(); err != nil {
		return nil, err
	}
	if err := r.loadIndex(ctx); err != nil {
		var ie *IndexError
		if !errors.As(err, &ie) {
			return nil, err
		}
	}
	f := &SnapshotFS{r: r, ctx: ctx, snap: snap, nodes: map[string]*Node{}, children: map[string][]*Node{}, cache: map[ID][]byte{}}
	for i := range snap.Tree {
		n := &snap.Tree[i]
		f.nodes[n.Path] = n
		if n.Path != "." {
			f.children[path.Dir(n.Path)] = append(f.children[path.Dir(n.Path)], n)
		}
	}
	for _, c := range f.children {
		slices.SortFunc(c, func(a, b *Node) int { return strings.Compare(path.Base(a.Path), path.Base(b.Path)) })
	}
	return f, nil
}

// resolve follows symlinks in name's final element (and, through
// recursion, its parents) while they stay inside the snapshot.
func (f *SnapshotFS) resolve(name string, follow bool) (*Node, error) {
	for hops := 0; ; hops++ {
		if hops > 40 {
			return nil, errors.New("too many levels of symbolic links")
		}
		n := f.nodes[name]
		if n == nil {
			// A parent may be a symlink.
			dir, base := path.Split(name)
			if dir == "" {
				return nil, fs.ErrNotExist
			}
			pn, err := f.resolve(strings.TrimSuffix(dir, "/"), true)
			if err != nil || pn.Type != TypeDir || pn.Path+"/"+base == name {
				return nil, fs.ErrNotExist
			}
			name = path.Join(pn.Path, base)
			continue
		}
		if n.Type != TypeSymlink || !follow {
			return n, nil
		}
		if path.IsAbs(n.Target) {
			return nil, fs.ErrNotExist
		}
		target := path.Join(path.Dir(n.Path), n.Target)
		if target == ".." || strings.HasPrefix(target, "../") {
			return nil, fs.ErrNotExist
		}
		name = target
	}
}

func (f *SnapshotFS) lookup(op, name string, follow bool) (*Node, error) {
	if !fs.ValidPath(name) {
		return nil, &fs.PathError{Op: op, Path: name, Err: fs.ErrInvalid}
	}
	n, err := f.resolve(name, follow)
	if err != nil {
		return nil, &fs.PathError{Op: op, Path: name, Err: err}
	}
	return n, nil
}

// Open opens a file or directory.
func (f *SnapshotFS) Open(name string) (fs.File, error) {
	n, err := f.lookup("open", name, true)
	if err != nil {
		return nil, err
	}
	info := nodeInfo{n: n, name: path.Base(name)}
	if n.Type == TypeDir {
		return &snapDir{fs: f, info: info, entries: f.children[n.Path]}, nil
	}
	offs := make([]int64, len(n.Chunks)+1)
	for i, c := range n.Chunks {
		offs[i+1] = offs[i] + int64(c.Size)
	}
	return &snapFile{fs: f, info: info, offs: offs}, nil
}

// Stat describes name, following symlinks.
func (f *SnapshotFS) Stat(name string) (fs.FileInfo, error) {
	n, err := f.lookup("stat", name, true)
	if err != nil {
		return nil, err
	}
	return nodeInfo{n: n, name: path.Base(name)}, nil
}

// Lstat describes name without following a final symlink.
func (f *SnapshotFS) Lstat(name string) (fs.FileInfo, error) {
	n, err := f.lookup("lstat", name, false)
	if err != nil {
		return nil, err
	}
	return nodeInfo{n: n, name: path.Base(name)}, nil
}

// ReadLink returns a symlink's target as stored.
func (f *SnapshotFS) ReadLink(name string) (string, error) {
	n, err := f.lookup("readlink", name, false)
	if err != nil {
		return "", err
	}
	if n.Type != TypeSymlink {
		return "", &fs.PathError{Op: "readlink", Path: name, Err: fs.ErrInvalid}
	}
	return n.Target, nil
}

// ReadDir lists a directory, sorted by name.
func (f *SnapshotFS) ReadDir(name string) ([]fs.DirEntry, error) {
	n, err := f.lookup("readdir", name, true)
	if err != nil {
		return nil, err
	}
	if n.Type != TypeDir {
		return nil, &fs.PathError{Op: "readdir", Path: name, Err: errors.New("not a directory")}
	}
	out := make([]fs.DirEntry, 0, len(f.children[n.Path]))
	for _, c := range f.children[n.Path] {
		out = append(out, fs.FileInfoToDirEntry(nodeInfo{n: c, name: path.Base(c.Path)}))
	}
	return out, nil
}

// blob returns a blob's plaintext through the cache.
func (f *SnapshotFS) blob(id ID) ([]byte, error) {
	f.mu.Lock()
	if b, ok := f.cache[id]; ok {
		i := slices.Index(f.order, id)
		f.order = append(slices.Delete(f.order, i, i+1), id)
		f.mu.Unlock()
		return b, nil
	}
	f.mu.Unlock()
	b, err := f.r.readBlob(f.ctx, id)
	if err != nil {
		return nil, err
	}
	f.mu.Lock()
	if _, ok := f.cache[id]; !ok {
		f.cache[id] = b
		f.order = append(f.order, id)
		if len(f.order) > fsCacheBlobs {
			delete(f.cache, f.order[0])
			f.order = f.order[1:]
		}
	}
	f.mu.Unlock()
	return b, nil
}

type nodeInfo struct {
	n    *Node
	name string
}

func (i nodeInfo) Name() string { return i.name }
func (i nodeInfo) Size() int64 {
	if i.n.Type == TypeSymlink {
		return int64(len(i.n.Target))
	}
	return i.n.Size
}
func (i nodeInfo) Mode() fs.FileMode {
	m := fileMode(i.n.Mode)
	switch i.n.Type {
	case TypeDir:
		m |= fs.ModeDir
	case TypeSymlink:
		m |= fs.ModeSymlink
	}
	return m
}
func (i nodeInfo) ModTime() time.Time { return time.Unix(0, i.n.MTime) }
func (i nodeInfo) IsDir() bool        { return i.n.Type == TypeDir }
func (i nodeInfo) Sys() any           { return i.n }

type snapFile struct {
	fs   *SnapshotFS
	info nodeInfo
	offs []int64 // chunk start offsets, then the size
	pos  int64
}

func (f *snapFile) Stat() (fs.FileInfo, error) { return f.info, nil }
func (f *snapFile) Close() error               { return nil }

func (f *snapFile) Read(p []byte) (int, error) {
	n, err := f.ReadAt(p, f.pos)
	f.pos += int64(n)
	if err == io.EOF && n > 0 {
		err = nil
	}
	return n, err
}

// ReadAt reads from the chunks that cover [off, off+len(p)).
func (f *snapFile) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, &fs.PathError{Op: "read", Path: f.info.name, Err: fs.ErrInvalid}
	}
	size := f.offs[len(f.offs)-1]
	n := 0
	for n < len(p) && off < size {
		i := sort.Search(len(f.offs)-1, func(i int) bool { return f.offs[i+1] > off })
		b, err := f.fs.blob(f.info.n.Chunks[i].ID)
		if err != nil {
			return n, &fs.PathError{Op: "read", Path: f.info.name, Err: err}
		}
		c := copy(p[n:], b[off-f.offs[i]:])
		n += c
		off += int64(c)
	}
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

// Seek implements io.Seeker.
func (f *snapFile) Seek(offset int64, whence int) (int64, error) {
	switch whence {
	case io.SeekCurrent:
		offset += f.pos
	case io.SeekEnd:
		offset += f.offs[len(f.offs)-1]
	}
	if offset < 0 {
		return 0, &fs.PathError{Op: "seek", Path: f.info.name, Err: fs.ErrInvalid}
	}
	f.pos = offset
	return offset, nil
}

type snapDir struct {
	fs      *SnapshotFS
	info    nodeInfo
	entries []*Node
	pos     int
}

func (d *snapDir) Stat() (fs.FileInfo, error) { return d.info, nil }
func (d *snapDir) Close() error               { return nil }
func (d *snapDir) Read([]byte) (int, error) {
	return 0, &fs.PathError{Op: "read", Path: d.info.name, Err: errors.New("is a directory")}
}

// ReadDir implements fs.ReadDirFile.
func (d *snapDir) ReadDir(count int) ([]fs.DirEntry, error) {
	rest := d.entries[d.pos:]
	if count > 0 && len(rest) == 0 {
		return nil, io.EOF
	}
	if count > 0 && len(rest) > count {
		rest = rest[:count]
	}
	d.pos += len(rest)
	out := make([]fs.DirEntry, len(rest))
	for i, c := range rest {
		out[i] = fs.FileInfoToDirEntry(nodeInfo{n: c, name: path.Base(c.Path)})
	}
	return out, nil
}
