package fusefs

import (
	"context"
	"fmt"
	"io/fs"
	"path/filepath"
	"sync/atomic"
	"syscall"
)

// Limits are the quotas of one tree. Zero means unlimited.
type Limits struct {
	// Bytes caps the sum of the apparent sizes of regular files.
	Bytes int64
	// Inodes caps the number of files, directories, symlinks and other
	// inodes below the root (the root itself is not counted; hard links to
	// one inode count once).
	Inodes int64
}

// Quota tracks a tree's usage against its Limits. One Quota is shared by the
// FUSE server and the Tree of the same directory, so both routes count
// against one budget. A nil *Quota is valid and means no limits and no
// tracking.
type Quota struct {
	limits Limits
	bytes  atomic.Int64
	inodes atomic.Int64
}

// NewQuota measures the current usage of dir and returns a Quota with the
// given limits. It does not follow symlinks. Usage already above a limit is
// allowed; it only stops further growth.
func NewQuota(ctx context.Context, dir string, limits Limits) (*Quota, error) {
	q := &Quota{limits: limits}
	type key struct{ dev, ino uint64 }
	seen := map[key]bool{}
	var bytes, inodes int64
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if p == dir {
			return nil
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		st, ok := info.Sys().(*syscall.Stat_t)
		if ok && st.Nlink > 1 && !d.IsDir() {
			k := key{uint64(st.Dev), uint64(st.Ino)}
			if seen[k] {
				return nil
			}
			seen[k] = true
		}
		inodes++
		if info.Mode().IsRegular() {
			bytes += info.Size()
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("measure usage of %s: %w", dir, err)
	}
	q.bytes.Store(bytes)
	q.inodes.Store(inodes)
	return q, nil
}

// Limits returns the limits q enforces.
func (q *Quota) Limits() Limits {
	if q == nil {
		return Limits{}
	}
	return q.limits
}

// Usage returns the bytes and inodes in use.
func (q *Quota) Usage() (bytes, inodes int64) {
	if q == nil {
		return 0, 0
	}
	return q.bytes.Load(), q.inodes.Load()
}

// limitsBytes reports whether writes must be counted byte by byte.
func (q *Quota) limitsBytes() bool { return q != nil && q.limits.Bytes > 0 }

// reserveBytes takes n more bytes from the budget, or returns an error
// wrapping ErrQuotaBytes and takes nothing. n <= 0 always succeeds and
// gives bytes back.
func (q *Quota) reserveBytes(n int64) error {
	if q == nil || n == 0 {
		return nil
	}
	if n < 0 || q.limits.Bytes <= 0 {
		q.bytes.Add(n)
		return nil
	}
	for {
		cur := q.bytes.Load()
		if cur+n > q.limits.Bytes {
			return fmt.Errorf("%w: %d + %d bytes > %d", ErrQuotaBytes, cur, n, q.limits.Bytes)
		}
		if q.bytes.CompareAndSwap(cur, cur+n) {
			return nil
		}
	}
}

// addBytes changes the byte count without checking the limit, for space
// that is already used (or freed).
func (q *Quota) addBytes(n int64) {
	if q != nil {
		q.bytes.Add(n)
	}
}

// reserveInode takes one inode from the budget, or returns an error wrapping
// ErrQuotaInodes.
func (q *Quota) reserveInode() error {
	if q == nil {
		return nil
	}
	if q.limits.Inodes <= 0 {
		q.inodes.Add(1)
		return nil
	}
	for {
		cur := q.inodes.Load()
		if cur+1 > q.limits.Inodes {
			return fmt.Errorf("%w: %d inodes in use, limit %d", ErrQuotaInodes, cur, q.limits.Inodes)
		}
		if q.inodes.CompareAndSwap(cur, cur+1) {
			return nil
		}
	}
}

// releaseInode gives one inode back.
func (q *Quota) releaseInode() {
	if q != nil {
		q.inodes.Add(-1)
	}
}
