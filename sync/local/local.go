package local

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	bsync "github.com/bulkhead-dev/bulkhead/sync"
)

const tmpDir = ".tmp"

// Store is a directory-backed object store.
type Store struct {
	root string
}

var _ bsync.Store = (*Store)(nil)

// Open returns the store rooted at dir, creating dir if needed and removing
// temporary files a crashed writer left behind.
func Open(dir string) (*Store, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("open local store %s: %w", dir, err)
	}
	if err := os.MkdirAll(abs, 0o700); err != nil {
		return nil, fmt.Errorf("open local store %s: %w", dir, err)
	}
	if err := os.RemoveAll(filepath.Join(abs, tmpDir)); err != nil {
		return nil, fmt.Errorf("open local store %s: clear temp dir: %w", dir, err)
	}
	if err := os.Mkdir(filepath.Join(abs, tmpDir), 0o700); err != nil {
		return nil, fmt.Errorf("open local store %s: %w", dir, err)
	}
	return &Store{root: abs}, nil
}

// Root returns the store's directory.
func (s *Store) Root() string { return s.root }

func (s *Store) path(name string) (string, error) {
	if err := bsync.ValidName(name); err != nil {
		return "", err
	}
	if name == tmpDir || strings.HasPrefix(name, tmpDir+"/") {
		return "", fmt.Errorf("%w: %q is reserved", bsync.ErrInvalidName, name)
	}
	return filepath.Join(s.root, filepath.FromSlash(name)), nil
}

// writeTemp copies r into a fresh fsynced temporary file and returns its path.
func (s *Store) writeTemp(ctx context.Context, r io.Reader, size int64) (string, error) {
	var rnd [12]byte
	if _, err := rand.Read(rnd[:]); err != nil {
		return "", err
	}
	tmp := filepath.Join(s.root, tmpDir, hex.EncodeToString(rnd[:]))
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return "", err
	}
	n, err := io.Copy(f, ctxReader{ctx, r})
	if err == nil && size >= 0 && n != size {
		err = fmt.Errorf("wrote %d bytes, expected %d", n, size)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(tmp)
		return "", err
	}
	return tmp, nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}

// stage writes r to a temporary file and creates the parent directory of
// name's final path; the caller moves the temporary file into place.
func (s *Store) stage(ctx context.Context, name string, r io.Reader, size int64) (final, tmp string, err error) {
	final, err = s.path(name)
	if err != nil {
		return "", "", err
	}
	tmp, err = s.writeTemp(ctx, r, size)
	if err != nil {
		return "", "", fmt.Errorf("put %s: %w", name, err)
	}
	if err := os.MkdirAll(filepath.Dir(final), 0o700); err != nil {
		os.Remove(tmp)
		return "", "", fmt.Errorf("put %s: %w", name, err)
	}
	return final, tmp, nil
}

// Put stores r under name, replacing any existing object atomically.
func (s *Store) Put(ctx context.Context, name string, r io.Reader, size int64) error {
	p, tmp, err := s.stage(ctx, name, r, size)
	if err != nil {
		return err
	}
	if err := os.Rename(tmp, p); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("put %s: %w", name, err)
	}
	if err := syncDir(filepath.Dir(p)); err != nil {
		return fmt.Errorf("put %s: sync dir: %w", name, err)
	}
	return nil
}

// PutIfAbsent stores r under name unless an object of that name exists, in
// which case it returns an error wrapping sync.ErrExists.
func (s *Store) PutIfAbsent(ctx context.Context, name string, r io.Reader, size int64) error {
	p, tmp, err := s.stage(ctx, name, r, size)
	if err != nil {
		return err
	}
	defer os.Remove(tmp)
	// link(2) fails with EEXIST if the name is taken: an atomic create.
	if err := os.Link(tmp, p); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("put %s: %w", name, bsync.ErrExists)
		}
		return fmt.Errorf("put %s: %w", name, err)
	}
	if err := syncDir(filepath.Dir(p)); err != nil {
		return fmt.Errorf("put %s: sync dir: %w", name, err)
	}
	return nil
}

func notFound(op, name string, err error) error {
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("%s %s: %w", op, name, bsync.ErrNotFound)
	}
	return fmt.Errorf("%s %s: %w", op, name, err)
}

// Get opens the object for reading.
func (s *Store) Get(ctx context.Context, name string) (io.ReadCloser, error) {
	return s.GetRange(ctx, name, 0, -1)
}

// GetRange opens length bytes of the object starting at offset; length < 0
// reads to the end.
func (s *Store) GetRange(ctx context.Context, name string, offset, length int64) (io.ReadCloser, error) {
	p, err := s.path(name)
	if err != nil {
		return nil, err
	}
	if offset < 0 {
		return nil, fmt.Errorf("get %s: negative offset %d", name, offset)
	}
	f, err := os.Open(p)
	if err != nil {
		return nil, notFound("get", name, err)
	}
	if fi, err := f.Stat(); err != nil || !fi.Mode().IsRegular() {
		f.Close()
		return nil, fmt.Errorf("get %s: %w", name, bsync.ErrNotFound)
	}
	var r io.Reader = f
	if offset > 0 || length >= 0 {
		if length < 0 {
			length = 1<<63 - 1 - offset
		}
		r = io.NewSectionReader(f, offset, length)
	}
	return readCloser{ctxReader{ctx, r}, f}, nil
}

// Stat returns the object's size and modification time.
func (s *Store) Stat(ctx context.Context, name string) (bsync.ObjectInfo, error) {
	p, err := s.path(name)
	if err != nil {
		return bsync.ObjectInfo{}, err
	}
	fi, err := os.Stat(p)
	if err != nil {
		return bsync.ObjectInfo{}, notFound("stat", name, err)
	}
	if !fi.Mode().IsRegular() {
		return bsync.ObjectInfo{}, fmt.Errorf("stat %s: %w", name, bsync.ErrNotFound)
	}
	return bsync.ObjectInfo{Name: name, Size: fi.Size(), ModTime: fi.ModTime()}, nil
}

// List calls fn for every object whose name starts with prefix.
func (s *Store) List(ctx context.Context, prefix string, fn func(bsync.ObjectInfo) error) error {
	// Walk only the deepest directory the prefix names in full.
	start := s.root
	if i := strings.LastIndex(prefix, "/"); i >= 0 {
		start = filepath.Join(s.root, filepath.FromSlash(prefix[:i]))
	}
	err := filepath.WalkDir(start, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		rel, err := filepath.Rel(s.root, p)
		if err != nil {
			return err
		}
		name := filepath.ToSlash(rel)
		if d.IsDir() {
			if name == tmpDir {
				return filepath.SkipDir
			}
			return nil
		}
		if !d.Type().IsRegular() || !strings.HasPrefix(name, prefix) {
			return nil
		}
		fi, err := d.Info()
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil // deleted while listing
			}
			return err
		}
		return fn(bsync.ObjectInfo{Name: name, Size: fi.Size(), ModTime: fi.ModTime()})
	})
	if err != nil {
		return fmt.Errorf("list %q: %w", prefix, err)
	}
	return nil
}

// Delete removes the object; a missing object is not an error.
func (s *Store) Delete(ctx context.Context, name string) error {
	p, err := s.path(name)
	if err != nil {
		return err
	}
	if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("delete %s: %w", name, err)
	}
	return nil
}

type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}

type readCloser struct {
	io.Reader
	io.Closer
}
