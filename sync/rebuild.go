package sync

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	gosync "sync"
)

// RebuildResult says what RebuildIndex found.
type RebuildResult struct {
	Packs    int      `json:"packs"`     // packs indexed
	Blobs    int      `json:"blobs"`     // blobs indexed
	BadPacks []string `json:"bad_packs"` // packs whose header could not be read (left in place)
}

// RebuildIndex replaces every index object with one built from the pack
// headers themselves: the repair after an index object is lost or damaged.
// It holds the exclusive lock. Packs whose header does not authenticate are
// reported, not deleted.
func (r *Repository) RebuildIndex(ctx context.Context) (*RebuildResult, error) {
	lk, err := r.lock(ctx, true, "rebuild-index")
	if err != nil {
		return nil, fmt.Errorf("rebuild index: %w", err)
	}
	defer lk.unlock(ctx)
	res, err := r.rebuildIndex(ctx)
	if err != nil {
		return nil, fmt.Errorf("rebuild index: %w", err)
	}
	return res, nil
}

func (r *Repository) rebuildIndex(ctx context.Context) (*RebuildResult, error) {
	var packs []ObjectInfo
	var oldIndexes []string
	if err := r.store.List(ctx, "data/", func(oi ObjectInfo) error {
		if _, ok := parsePackName(oi.Name); ok {
			packs = append(packs, oi)
		}
		return nil
	}); err != nil {
		return nil, err
	}
	if err := r.store.List(ctx, "index/", func(oi ObjectInfo) error {
		oldIndexes = append(oldIndexes, oi.Name)
		return nil
	}); err != nil {
		return nil, err
	}
	res := &RebuildResult{}
	var mu gosync.Mutex
	var all []indexPack
	var firstErr error
	parallel(ctx, len(packs), 8, func(i int) {
		id, _ := parsePackName(packs[i].Name)
		entries, err := r.readPackHeader(ctx, packs[i].Name, packs[i].Size)
		mu.Lock()
		defer mu.Unlock()
		switch {
		case errors.Is(err, ErrCorrupt):
			res.BadPacks = append(res.BadPacks, packs[i].Name)
		case err != nil:
			if firstErr == nil {
				firstErr = err
			}
		default:
			all = append(all, indexPack{ID: id, Size: packs[i].Size, Blobs: entries})
			res.Blobs += len(entries)
		}
	})
	if firstErr != nil {
		return nil, firstErr
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	slices.SortFunc(all, func(a, b indexPack) int { return compareID(a.ID, b.ID) })
	slices.Sort(res.BadPacks)
	res.Packs = len(all)
	newName, err := r.writeIndex(ctx, all)
	if err != nil {
		return nil, err
	}
	for _, name := range oldIndexes {
		if name == newName {
			continue
		}
		if err := r.store.Delete(ctx, name); err != nil {
			return nil, err
		}
	}
	r.index.reset()
	if err := r.loadIndex(ctx); err != nil {
		return nil, err
	}
	return res, nil
}

// readPackHeader reads just a pack's header from its tail: two ranged reads.
func (r *Repository) readPackHeader(ctx context.Context, name string, size int64) ([]packEntry, error) {
	if size < int64(packTrailerSize) {
		return nil, fmt.Errorf("%s: %w: %d bytes", name, ErrCorrupt, size)
	}
	tr, err := readRange(ctx, r.store, name, size-int64(packTrailerSize), int64(packTrailerSize))
	if err != nil {
		return nil, err
	}
	hlen := int64(binary.LittleEndian.Uint32(tr))
	if hlen > size-int64(packTrailerSize) {
		return nil, fmt.Errorf("%s: %w: header length %d", name, ErrCorrupt, hlen)
	}
	tail, err := readRange(ctx, r.store, name, size-int64(packTrailerSize)-hlen, hlen+int64(packTrailerSize))
	if err != nil {
		return nil, err
	}
	entries, err := r.keys.parsePackHeader(tail, size)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return entries, nil
}
