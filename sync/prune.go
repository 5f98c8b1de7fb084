package sync

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"
)

// Retention says which snapshots prune keeps: the Last newest, plus the
// newest snapshot of each of the Hourly most recent hours that have one, of
// the Daily most recent days, and of the Weekly most recent ISO weeks (all in
// UTC). A snapshot kept by any rule is kept.
type Retention struct {
	Last   int `json:"last"`
	Hourly int `json:"hourly"`
	Daily  int `json:"daily"`
	Weekly int `json:"weekly"`
}

// DefaultGrace is how old a pack that no index lists must be before prune
// deletes it. Such packs come from interrupted backups, or from one still
// running whose lock went stale; the grace period protects the latter.
const DefaultGrace = 2 * time.Hour

// PruneOptions tune one prune.
type PruneOptions struct {
	Keep   Retention
	DryRun bool // report what would go, change nothing
	// Grace overrides DefaultGrace when positive.
	Grace time.Duration
	// RepackUnused is the fraction of unused bytes above which a partly used
	// pack is rewritten with only its used blobs (default 0.3 when 0;
	// negative disables repacking).
	RepackUnused float64
	Progress     ProgressFunc
}

// PruneResult says what prune did (or would do with DryRun).
type PruneResult struct {
	Kept          []string `json:"kept"`
	Forgotten     []string `json:"forgotten"`
	PacksDeleted  int      `json:"packs_deleted"`
	PacksRepacked int      `json:"packs_repacked"`
	BytesFreed    int64    `json:"bytes_freed"`
	DryRun        bool     `json:"dry_run"`
}

// Prune forgets snapshots the retention policy does not keep and deletes
// packs no remaining snapshot uses. It holds an exclusive lock, so it fails
// with ErrLocked while a backup runs, and it never deletes a pack that is
// indexed-but-used or unindexed-but-younger-than-the-grace-period. It
// refuses to run when any manifest or index object is unreadable, since it
// could not tell what they protect.
func (r *Repository) Prune(ctx context.Context, opts PruneOptions) (*PruneResult, error) {
	gcStart := time.Now()
	if opts.Keep == (Retention{}) {
		return nil, errors.New("prune: retention policy keeps nothing; refusing to delete every snapshot")
	}
	lk, err := r.lock(ctx, true, "prune")
	if err != nil {
		return nil, fmt.Errorf("prune: %w", err)
	}
	defer lk.unlock(ctx)
	res, err := r.prune(ctx, opts, gcStart, lk.name)
	if err != nil {
		return nil, fmt.Errorf("prune: %w", err)
	}
	return res, nil
}

func (r *Repository) prune(ctx context.Context, opts PruneOptions, gcStart time.Time, lockName string) (*PruneResult, error) {
	grace := opts.Grace
	if grace <= 0 {
		grace = DefaultGrace
	}
	repackAt := opts.RepackUnused
	if repackAt == 0 {
		repackAt = 0.3
	}
	if err := r.removeStaleLocks(ctx, lockName); err != nil {
		return nil, err
	}
	// Read every index object anew: prune must see what is stored now,
	// not what this handle cached.
	r.index.reset()
	if err := r.loadIndex(ctx); err != nil {
		return nil, fmt.Errorf("%w (run verify)", err)
	}
	snaps, err := r.Snapshots(ctx)
	if err != nil {
		return nil, fmt.Errorf("%w (run verify)", err)
	}
	keep := SelectKeep(snaps, opts.Keep)
	res := &PruneResult{DryRun: opts.DryRun}
	used := map[ID]bool{}
	for _, s := range snaps {
		if !keep[s.ID] {
			res.Forgotten = append(res.Forgotten, s.ID)
			continue
		}
		res.Kept = append(res.Kept, s.ID)
		var missing error
		s.blobs(func(path string, c ChunkRef) {
			used[c.ID] = true
			if _, ok := r.index.lookup(c.ID); !ok && missing == nil {
				missing = fmt.Errorf("snapshot %s file %q: blob %s is in no index (run verify)", s.ID, path, c.ID)
			}
		})
		if missing != nil {
			return nil, missing
		}
	}

	// Classify indexed packs.
	r.index.mu.RLock()
	oldIndexes := make([]string, 0, len(r.index.loaded))
	packs := map[ID]indexPack{}
	for name, ps := range r.index.loaded {
		oldIndexes = append(oldIndexes, name)
		for _, p := range ps {
			packs[p.ID] = p // a pack listed twice has the same content
		}
	}
	r.index.mu.RUnlock()
	var drop, repack []ID
	var keepPacks []indexPack
	for id, p := range packs {
		var usedBytes, total int64
		for _, b := range p.Blobs {
			total += int64(b.Length)
			if used[b.ID] {
				usedBytes += int64(b.Length)
			}
		}
		switch {
		case usedBytes == 0:
			drop = append(drop, id)
			res.BytesFreed += p.Size
		case repackAt > 0 && float64(total-usedBytes) > repackAt*float64(total):
			repack = append(repack, id)
			res.BytesFreed += total - usedBytes
		default:
			keepPacks = append(keepPacks, p)
		}
	}
	// Unindexed packs old enough to be leftovers.
	if err := r.store.List(ctx, "data/", func(oi ObjectInfo) error {
		id, ok := parsePackName(oi.Name)
		if ok && packs[id].Size == 0 && oi.ModTime.Before(gcStart.Add(-grace)) {
			drop = append(drop, id)
			res.BytesFreed += oi.Size
		}
		return nil
	}); err != nil {
		return nil, err
	}
	res.PacksDeleted, res.PacksRepacked = len(drop), len(repack)
	if opts.DryRun {
		return res, nil
	}

	for _, id := range res.Forgotten {
		if err := r.forget(ctx, id); err != nil {
			return nil, err
		}
	}
	// Rewrite the used blobs of sparse packs into new packs.
	var newPacks []indexPack
	if len(repack) > 0 {
		meter := newProgressMeter(opts.Progress, "prune")
		up := r.newUploader(ctx, &meter.transferred)
		up.repack = true
		var scratch []byte
		for _, id := range repack {
			for _, b := range packs[id].Blobs {
				if !used[b.ID] {
					continue
				}
				plain, err := r.readBlob(ctx, b.ID)
				if err != nil {
					up.abort()
					return nil, fmt.Errorf("repack %s: %w", packName(id), err)
				}
				if _, err := up.add(plain, &scratch); err != nil {
					up.abort()
					return nil, fmt.Errorf("repack: %w", err)
				}
			}
		}
		if newPacks, err = up.finish(); err != nil {
			return nil, fmt.Errorf("repack: %w", err)
		}
		meter.report(true)
	}
	// One index for everything that stays, then drop the old index objects,
	// then the packs. A crash in between leaves extra index entries or
	// unindexed packs, both harmless.
	all := append(keepPacks, newPacks...)
	slices.SortFunc(all, func(a, b indexPack) int { return compareID(a.ID, b.ID) })
	if len(all) > 0 || len(oldIndexes) > 0 {
		if _, err := r.writeIndex(ctx, all); err != nil {
			return nil, err
		}
	}
	for _, name := range oldIndexes {
		if err := r.store.Delete(ctx, name); err != nil {
			return nil, err
		}
	}
	for _, id := range append(drop, repack...) {
		if err := r.store.Delete(ctx, packName(id)); err != nil {
			return nil, err
		}
	}
	if err := r.loadIndex(ctx); err != nil {
		return nil, err
	}
	r.logger.Info("prune done", "kept", len(res.Kept), "forgotten", len(res.Forgotten),
		"packs_deleted", res.PacksDeleted, "packs_repacked", res.PacksRepacked, "bytes_freed", res.BytesFreed)
	return res, nil
}

func compareID(a, b ID) int {
	for i := range a {
		if a[i] != b[i] {
			return int(a[i]) - int(b[i])
		}
	}
	return 0
}

// SelectKeep applies a retention policy to snapshots and returns the ids it
// keeps.
func SelectKeep(snaps []*Snapshot, keep Retention) map[string]bool {
	sorted := slices.Clone(snaps)
	slices.SortFunc(sorted, func(a, b *Snapshot) int { return b.Time.Compare(a.Time) }) // newest first
	out := map[string]bool{}
	for i, s := range sorted {
		if i < keep.Last {
			out[s.ID] = true
		}
	}
	buckets := []struct {
		n   int
		key func(time.Time) string
	}{
		{keep.Hourly, func(t time.Time) string { return t.Format("2006-01-02T15") }},
		{keep.Daily, func(t time.Time) string { return t.Format("2006-01-02") }},
		{keep.Weekly, func(t time.Time) string { y, w := t.ISOWeek(); return fmt.Sprintf("%d-W%02d", y, w) }},
	}
	for _, b := range buckets {
		left, last := b.n, ""
		for _, s := range sorted {
			if left == 0 {
				break
			}
			k := b.key(s.Time.UTC())
			if k != last {
				out[s.ID] = true
				last = k
				left--
			}
		}
	}
	return out
}
