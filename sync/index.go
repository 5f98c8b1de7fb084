package sync

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	gosync "sync"
)

// indexFile is the plaintext of one index object: the packs one backup (or
// one prune) wrote and the blobs in each.
type indexFile struct {
	Version int         `json:"version"`
	Packs   []indexPack `json:"packs"`
}

type indexPack struct {
	ID    ID          `json:"id"`
	Size  int64       `json:"size"`
	Blobs []packEntry `json:"blobs"`
}

// index is the in-memory union of all index objects.
type index struct {
	mu     gosync.RWMutex
	blobs  map[ID]blobLoc
	packs  map[ID]int64           // pack id -> size
	loaded map[string][]indexPack // index object name -> its packs
}

func newIndex() *index {
	return &index{blobs: map[ID]blobLoc{}, packs: map[ID]int64{}, loaded: map[string][]indexPack{}}
}

// reset forgets everything, so the next loadIndex reads every object anew.
func (ix *index) reset() {
	ix.mu.Lock()
	defer ix.mu.Unlock()
	ix.blobs, ix.packs, ix.loaded = map[ID]blobLoc{}, map[ID]int64{}, map[string][]indexPack{}
}

func (ix *index) lookup(id ID) (blobLoc, bool) {
	ix.mu.RLock()
	defer ix.mu.RUnlock()
	loc, ok := ix.blobs[id]
	return loc, ok
}

func (ix *index) addLocked(name string, packs []indexPack) {
	ix.loaded[name] = packs
	for _, p := range packs {
		ix.packs[p.ID] = p.Size
		for _, b := range p.Blobs {
			ix.blobs[b.ID] = blobLoc{Pack: p.ID, Offset: b.Offset, Length: b.Length, Raw: b.Raw}
		}
	}
}

func (ix *index) add(name string, packs []indexPack) {
	ix.mu.Lock()
	defer ix.mu.Unlock()
	ix.addLocked(name, packs)
}

// packSizes returns a copy of the known packs and their sizes.
func (ix *index) packSizes() map[ID]int64 {
	ix.mu.RLock()
	defer ix.mu.RUnlock()
	out := make(map[ID]int64, len(ix.packs))
	for k, v := range ix.packs {
		out[k] = v
	}
	return out
}

// IndexError reports index objects that could not be read; the rest of the
// index is loaded.
type IndexError struct {
	Objects map[string]error
}

func (e *IndexError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d unreadable index objects:", len(e.Objects))
	for name, err := range e.Objects {
		fmt.Fprintf(&b, " %s (%v);", name, err)
	}
	return b.String()
}

func (e *IndexError) Unwrap() error { return ErrCorrupt }

// loadIndex makes the in-memory index match the index objects in the store:
// new objects are read, vanished ones dropped. Unreadable objects are skipped
// and reported as an *IndexError after the rest is loaded.
func (r *Repository) loadIndex(ctx context.Context) error {
	var names []string
	if err := r.store.List(ctx, "index/", func(oi ObjectInfo) error {
		names = append(names, oi.Name)
		return nil
	}); err != nil {
		return fmt.Errorf("load index: %w", err)
	}
	ix := r.index
	ix.mu.RLock()
	present := map[string]bool{}
	var missing []string
	for _, n := range names {
		present[n] = true
		if _, ok := ix.loaded[n]; !ok {
			missing = append(missing, n)
		}
	}
	stale := len(present) != len(ix.loaded)+len(missing)
	ix.mu.RUnlock()

	type result struct {
		name  string
		packs []indexPack
		err   error
	}
	results := make([]result, len(missing))
	parallel(ctx, len(missing), 8, func(i int) {
		packs, err := r.readIndexFile(ctx, missing[i])
		results[i] = result{missing[i], packs, err}
	})
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("load index: %w", err)
	}
	bad := map[string]error{}
	ix.mu.Lock()
	if stale {
		// Some index objects vanished (a prune rewrote them): rebuild.
		old := ix.loaded
		ix.blobs, ix.packs, ix.loaded = map[ID]blobLoc{}, map[ID]int64{}, map[string][]indexPack{}
		for name, packs := range old {
			if present[name] {
				ix.addLocked(name, packs)
			}
		}
	}
	for _, res := range results {
		if res.err != nil {
			if errors.Is(res.err, ErrNotFound) {
				continue // removed between list and read
			}
			if !errors.Is(res.err, ErrCorrupt) {
				ix.mu.Unlock()
				return fmt.Errorf("load index: %w", res.err)
			}
			bad[res.name] = res.err
			continue
		}
		ix.addLocked(res.name, res.packs)
	}
	ix.mu.Unlock()
	if len(bad) > 0 {
		return &IndexError{Objects: bad}
	}
	return nil
}

func (r *Repository) readIndexFile(ctx context.Context, name string) ([]indexPack, error) {
	var f indexFile
	if err := r.readJSON(ctx, name, "index", &f); err != nil {
		return nil, err
	}
	if f.Version != 1 {
		return nil, fmt.Errorf("%w: %s: index version %d", ErrCorrupt, name, f.Version)
	}
	return f.Packs, nil
}

// writeIndex stores an index object for packs and adds it to the in-memory
// index. It returns the object's name.
func (r *Repository) writeIndex(ctx context.Context, packs []indexPack) (string, error) {
	name := "index/" + randomHex(16)
	if err := r.writeJSON(ctx, name, "index", indexFile{Version: 1, Packs: packs}, true); err != nil {
		return "", fmt.Errorf("write index: %w", err)
	}
	r.index.add(name, packs)
	return name, nil
}

// writeJSON stores v as zstd-compressed, sealed JSON; aad names its kind.
// With create it never replaces an existing object (ErrExists).
func (r *Repository) writeJSON(ctx context.Context, name, kind string, v any, create bool) error {
	plain, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encode %s: %w", name, err)
	}
	// Hex ids dominate manifests and indexes and compress about twofold;
	// sizing the output for that saves zstd growing it step by step.
	z := zenc.EncodeAll(plain, make([]byte, 0, len(plain)/2+4096))
	sealed := r.keys.seal(make([]byte, 0, len(z)+sealOverhead), z, kind)
	put := r.store.Put
	if create {
		put = r.store.PutIfAbsent
	}
	return put(ctx, name, bytes.NewReader(sealed), int64(len(sealed)))
}

// readJSON reverses writeJSON. Undecryptable or undecodable content is
// ErrCorrupt.
func (r *Repository) readJSON(ctx context.Context, name, kind string, v any) error {
	plain, err := r.readSealed(ctx, name, kind)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(plain, v); err != nil {
		return fmt.Errorf("%w: %s: %v", ErrCorrupt, name, err)
	}
	return nil
}

// maxMetadataSize bounds a decompressed index or manifest.
const maxMetadataSize = 1 << 30

func (r *Repository) readSealed(ctx context.Context, name, kind string) ([]byte, error) {
	sealed, err := readAll(ctx, r.store, name)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", name, err)
	}
	z, err := r.keys.open(sealed, kind)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", name, err)
	}
	plain, err := zdec.DecodeAll(z, nil)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w: decompress: %v", name, ErrCorrupt, err)
	}
	if len(plain) > maxMetadataSize {
		return nil, fmt.Errorf("read %s: %w: too large", name, ErrCorrupt)
	}
	return plain, nil
}
