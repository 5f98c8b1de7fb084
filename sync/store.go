package sync

import (
	"context"
	"fmt"
	"io"
	"strings"
	"time"
)

// Store is a flat object store: a local directory (package sync/local) or an
// S3 bucket prefix (package sync/s3).
//
// Contract, checked by the suite in sync/storetest:
//   - Names are slash-separated relative paths built from [a-zA-Z0-9._-]
//     segments (see ValidName); no segment is empty, "." or "..".
//   - Put replaces an object atomically: a reader sees the old or the new
//     content, never a mix or a prefix.
//   - PutIfAbsent creates the object only if no object of that name exists;
//     otherwise it returns an error wrapping ErrExists. Of several concurrent
//     calls for one name exactly one succeeds.
//   - Get, GetRange and Stat of a missing object return an error wrapping
//     ErrNotFound. GetRange with length < 0 reads to the end.
//   - List calls fn for every object whose name starts with prefix, in no
//     particular order; an error from fn stops the listing and is returned.
//   - Delete of a missing object is not an error.
//
// Every method takes ctx first and is safe for concurrent use.
type Store interface {
	Put(ctx context.Context, name string, r io.Reader, size int64) error
	PutIfAbsent(ctx context.Context, name string, r io.Reader, size int64) error
	Get(ctx context.Context, name string) (io.ReadCloser, error)
	GetRange(ctx context.Context, name string, offset, length int64) (io.ReadCloser, error)
	Stat(ctx context.Context, name string) (ObjectInfo, error)
	List(ctx context.Context, prefix string, fn func(ObjectInfo) error) error
	Delete(ctx context.Context, name string) error
}

// ObjectInfo describes one stored object.
type ObjectInfo struct {
	Name    string
	Size    int64
	ModTime time.Time
}

// ValidName reports whether name follows the Store naming rules.
func ValidName(name string) error {
	if name == "" || len(name) > 512 {
		return fmt.Errorf("%w: %q", ErrInvalidName, name)
	}
	for _, seg := range strings.Split(name, "/") {
		if seg == "" || seg == "." || seg == ".." {
			return fmt.Errorf("%w: %q", ErrInvalidName, name)
		}
		for _, c := range seg {
			ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-'
			if !ok {
				return fmt.Errorf("%w: %q", ErrInvalidName, name)
			}
		}
	}
	return nil
}

// readAll reads a whole object.
func readAll(ctx context.Context, s Store, name string) ([]byte, error) {
	rc, err := s.Get(ctx, name)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	return io.ReadAll(rc)
}

// readRange reads length bytes at offset of an object; a short object is an
// error wrapping ErrCorrupt.
func readRange(ctx context.Context, s Store, name string, offset, length int64) ([]byte, error) {
	rc, err := s.GetRange(ctx, name, offset, length)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	buf := make([]byte, length)
	if _, err := io.ReadFull(rc, buf); err != nil {
		if err == io.ErrUnexpectedEOF || err == io.EOF {
			return nil, fmt.Errorf("read %s [%d,+%d): %w: object too short", name, offset, length, ErrCorrupt)
		}
		return nil, fmt.Errorf("read %s [%d,+%d): %w", name, offset, length, err)
	}
	return buf, nil
}
