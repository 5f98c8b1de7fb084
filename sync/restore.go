package sync

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	gosync "sync"
	"time"
)

// RestoreOptions tune one restore.
type RestoreOptions struct {
	// Delete removes entries under the target directory that the snapshot
	// does not have (an exact in-place restore).
	Delete bool
	// State, when set, receives the snapshot's state stream.
	State io.Writer
	// Owner, when set, owns every restored entry (lchown; needs privilege).
	// Otherwise entries belong to the calling user.
	Owner    *Owner
	Progress ProgressFunc
}

// Owner is a numeric uid and gid.
type Owner struct{ UID, GID int }

// Restore recreates the snapshot's tree under dir (created if missing):
// directories, files (holes where a chunk is all zeros), symlinks, modes and
// mtimes. Ownership is not stored: entries belong to the caller, or to
// opts.Owner. Existing
// entries that the snapshot replaces are removed first, never followed or
// written through, so a symlink left in dir cannot redirect a write. It holds
// a shared lock, so a prune cannot remove packs mid-restore.
func (r *Repository) Restore(ctx context.Context, snap *Snapshot, dir string, opts RestoreOptions) error {
	if err := snap.validate(); err != nil {
		return fmt.Errorf("restore %s: %w: %v", snap.ID, ErrCorrupt, err)
	}
	lk, err := r.lockForRead(ctx, "restore")
	if err != nil {
		return fmt.Errorf("restore %s into %s: %w", snap.ID, dir, err)
	}
	defer lk.unlock(ctx)
	if err := r.restore(ctx, snap, dir, opts); err != nil {
		return fmt.Errorf("restore %s into %s: %w", snap.ID, dir, err)
	}
	return nil
}

// lockForRead takes a shared lock, so no prune removes packs while they are
// read, and refreshes the index, which may predate the snapshot.
func (r *Repository) lockForRead(ctx context.Context, purpose string) (*repoLock, error) {
	lk, err := r.lock(ctx, false, purpose)
	if err != nil {
		return nil, err
	}
	if err := r.loadIndex(ctx); err != nil {
		var ie *IndexError
		if !errors.As(err, &ie) {
			lk.unlock(ctx)
			return nil, err
		}
	}
	return lk, nil
}

type restoreTarget struct {
	node   int
	offset int64
}

type restoreBlob struct {
	id      ID
	loc     blobLoc
	targets []restoreTarget
}

func (r *Repository) restore(ctx context.Context, snap *Snapshot, dir string, opts RestoreOptions) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	meter := newProgressMeter(opts.Progress, "restore")
	// Plan first, so a snapshot with missing blobs fails before touching dir.
	blobs := map[ID]*restoreBlob{}
	for i := range snap.Tree {
		n := &snap.Tree[i]
		if n.Type != TypeFile {
			continue
		}
		meter.tfiles++
		meter.tbytes += n.Size
		var off int64
		for _, c := range n.Chunks {
			b := blobs[c.ID]
			if b == nil {
				loc, ok := r.index.lookup(c.ID)
				if !ok {
					return fmt.Errorf("%s: blob %s: %w", n.Path, c.ID, ErrNotFound)
				}
				b = &restoreBlob{id: c.ID, loc: loc}
				blobs[c.ID] = b
			}
			b.targets = append(b.targets, restoreTarget{node: i, offset: off})
			off += int64(c.Size)
		}
	}
	byPack := map[ID][]*restoreBlob{}
	for _, b := range blobs {
		byPack[b.loc.Pack] = append(byPack[b.loc.Pack], b)
	}

	paths := make([]string, len(snap.Tree))
	for i := range snap.Tree {
		paths[i] = filepath.Join(dir, filepath.FromSlash(snap.Tree[i].Path))
	}
	if err := createEntries(snap, paths); err != nil {
		return err
	}
	if opts.Delete {
		if err := removeExtra(dir, snap); err != nil {
			return err
		}
	}

	// Fetch packs in parallel; each worker reads runs of nearby blobs with
	// one ranged GET and writes them to every file that uses them.
	var mu gosync.Mutex
	var firstErr error
	packIDs := make([]ID, 0, len(byPack))
	for id := range byPack {
		packIDs = append(packIDs, id)
	}
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	parallel(wctx, len(packIDs), 4, func(i int) {
		err := r.restorePack(wctx, packIDs[i], byPack[packIDs[i]], snap, paths, meter, &mu)
		if err != nil {
			mu.Lock()
			if firstErr == nil {
				firstErr = err
			}
			mu.Unlock()
			cancel()
		}
	})
	if firstErr != nil {
		return firstErr
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := setMetadata(snap, paths, opts.Owner); err != nil {
		return err
	}
	meter.files = meter.tfiles
	if opts.State != nil && snap.State != nil {
		if err := r.restoreState(ctx, snap, opts.State); err != nil {
			return err
		}
	}
	meter.report(true)
	return nil
}

// createEntries makes directories, empty files of the right size and
// symlinks, replacing whatever was at each path.
func createEntries(snap *Snapshot, paths []string) error {
	for i := range snap.Tree {
		n, p := &snap.Tree[i], paths[i]
		fi, err := os.Lstat(p)
		exists := err == nil
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
		if n.Type == TypeDir {
			if exists && fi.IsDir() {
				// Make sure we can write into it; final modes come last.
				if err := os.Chmod(p, 0o700); err != nil {
					return err
				}
				continue
			}
			if exists {
				if err := os.RemoveAll(p); err != nil {
					return err
				}
			}
			if err := os.Mkdir(p, 0o700); err != nil {
				return err
			}
			continue
		}
		if exists {
			if err := os.RemoveAll(p); err != nil {
				return err
			}
		}
		switch n.Type {
		case TypeSymlink:
			if err := os.Symlink(n.Target, p); err != nil {
				return err
			}
		case TypeFile:
			f, err := createNoFollow(p)
			if err != nil {
				return err
			}
			err = f.Truncate(n.Size)
			if cerr := f.Close(); err == nil {
				err = cerr
			}
			if err != nil {
				return err
			}
		}
	}
	return nil
}

// removeExtra deletes entries under dir that the snapshot does not list.
func removeExtra(dir string, snap *Snapshot) error {
	keep := make(map[string]bool, len(snap.Tree))
	for i := range snap.Tree {
		keep[snap.Tree[i].Path] = true
	}
	var extra []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			return err
		}
		if !keep[filepath.ToSlash(rel)] {
			extra = append(extra, p)
			if d.IsDir() {
				return filepath.SkipDir
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("find extra entries: %w", err)
	}
	for _, p := range extra {
		if err := os.RemoveAll(p); err != nil {
			return err
		}
	}
	return nil
}

// maxRunGap is the largest hole between two wanted blobs of a pack that is
// still read through rather than split into two requests.
const maxRunGap = 1 << 20

func (r *Repository) restorePack(ctx context.Context, pack ID, blobs []*restoreBlob, snap *Snapshot, paths []string, meter *progressMeter, mu *gosync.Mutex) error {
	slices.SortFunc(blobs, func(a, b *restoreBlob) int { return cmp.Compare(a.loc.Offset, b.loc.Offset) })
	for len(blobs) > 0 {
		// Grow a run while the next blob is close and the run stays small.
		n := 1
		start := int64(blobs[0].loc.Offset)
		end := start + int64(blobs[0].loc.Length)
		for n < len(blobs) {
			b := blobs[n].loc
			if int64(b.Offset)-end > maxRunGap || int64(b.Offset)+int64(b.Length)-start > 2*TargetPackSize {
				break
			}
			end = max(end, int64(b.Offset)+int64(b.Length))
			n++
		}
		data, err := readRange(ctx, r.store, packName(pack), start, end-start)
		if err != nil {
			return err
		}
		meter.transferred.Add(end - start)
		for _, b := range blobs[:n] {
			off := int64(b.loc.Offset) - start
			plain, err := r.keys.openBlob(b.id, data[off:off+int64(b.loc.Length)], b.loc.Raw)
			if err != nil {
				return fmt.Errorf("pack %s: %w", pack, err)
			}
			zero := allZero(plain)
			for _, t := range b.targets {
				if !zero {
					if err := writeAt(paths[t.node], plain, t.offset); err != nil {
						return fmt.Errorf("%s: %w", snap.Tree[t.node].Path, err)
					}
				}
				mu.Lock()
				meter.bytes += int64(len(plain))
				meter.report(false)
				mu.Unlock()
			}
		}
		blobs = blobs[n:]
	}
	return nil
}

func writeAt(path string, data []byte, off int64) error {
	f, err := os.OpenFile(path, os.O_WRONLY|oNoFollow, 0)
	if err != nil {
		return err
	}
	_, err = f.WriteAt(data, off)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

func allZero(b []byte) bool {
	for len(b) >= 8 {
		if b[0]|b[1]|b[2]|b[3]|b[4]|b[5]|b[6]|b[7] != 0 {
			return false
		}
		b = b[8:]
	}
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

// setMetadata applies owners, modes and mtimes: files and symlinks first,
// then directories deepest first (writing into a directory changes its
// mtime). Owners go before modes, since chown clears set-id bits.
func setMetadata(snap *Snapshot, paths []string, owner *Owner) error {
	if owner != nil {
		for _, p := range paths {
			if err := os.Lchown(p, owner.UID, owner.GID); err != nil {
				return err
			}
		}
	}
	for i := range snap.Tree {
		n, p := &snap.Tree[i], paths[i]
		switch n.Type {
		case TypeFile:
			if err := os.Chmod(p, fileMode(n.Mode)); err != nil {
				return err
			}
			t := time.Unix(0, n.MTime)
			if err := os.Chtimes(p, t, t); err != nil {
				return err
			}
		case TypeSymlink:
			if err := lchtimes(p, n.MTime); err != nil && !errors.Is(err, errors.ErrUnsupported) {
				return err
			}
		}
	}
	for i := len(snap.Tree) - 1; i >= 0; i-- {
		n, p := &snap.Tree[i], paths[i]
		if n.Type != TypeDir {
			continue
		}
		if err := os.Chmod(p, fileMode(n.Mode)); err != nil {
			return err
		}
		t := time.Unix(0, n.MTime)
		if err := os.Chtimes(p, t, t); err != nil {
			return err
		}
	}
	return nil
}

// RestoreState writes the snapshot's state stream to w. A snapshot without
// one gives ErrNotFound.
func (r *Repository) RestoreState(ctx context.Context, snap *Snapshot, w io.Writer) error {
	if snap.State == nil {
		return fmt.Errorf("restore state of %s: %w", snap.ID, ErrNotFound)
	}
	lk, err := r.lockForRead(ctx, "restore")
	if err != nil {
		return fmt.Errorf("restore state of %s: %w", snap.ID, err)
	}
	defer lk.unlock(ctx)
	if err := r.restoreState(ctx, snap, w); err != nil {
		return fmt.Errorf("restore state of %s: %w", snap.ID, err)
	}
	return nil
}

func (r *Repository) restoreState(ctx context.Context, snap *Snapshot, w io.Writer) error {
	for _, c := range snap.State.Chunks {
		plain, err := r.readBlob(ctx, c.ID)
		if err != nil {
			return err
		}
		if _, err := w.Write(plain); err != nil {
			return err
		}
	}
	return nil
}
