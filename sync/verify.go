package sync

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	gosync "sync"
)

// VerifyOptions choose how deep Verify goes.
type VerifyOptions struct {
	// ReadData is the fraction (0..1] of packs to download and authenticate
	// blob by blob; 0 checks structure only, 1 reads everything.
	ReadData float64
	Progress ProgressFunc
}

// Problem is one thing Verify found wrong. Object names the stored object
// at fault; Snapshot and Path, when set, say what data it affects.
type Problem struct {
	Object   string `json:"object,omitempty"`
	Snapshot string `json:"snapshot,omitempty"`
	Path     string `json:"path,omitempty"` // "" with Snapshot set: the state stream or the manifest itself
	Message  string `json:"message"`
}

func (p Problem) String() string {
	var b strings.Builder
	if p.Snapshot != "" {
		fmt.Fprintf(&b, "snapshot %s", p.Snapshot)
		if p.Path != "" {
			fmt.Fprintf(&b, " file %q", p.Path)
		}
		b.WriteString(": ")
	}
	if p.Object != "" {
		fmt.Fprintf(&b, "%s: ", p.Object)
	}
	b.WriteString(p.Message)
	return b.String()
}

// VerifyReport is Verify's result. The repository is sound when Problems is
// empty; UnusedPacks (left by interrupted backups, removed by prune) are not
// problems.
type VerifyReport struct {
	Snapshots   int       `json:"snapshots"`
	Indexes     int       `json:"indexes"`
	Packs       int       `json:"packs"`
	PacksRead   int       `json:"packs_read"`
	BlobsRead   int       `json:"blobs_read"`
	UnusedPacks int       `json:"unused_packs"`
	Problems    []Problem `json:"problems"`
}

// OK reports whether no problem was found.
func (v *VerifyReport) OK() bool { return len(v.Problems) == 0 }

// Verify checks the repository: every manifest and index object decrypts
// and parses; every blob a snapshot references is indexed and its pack
// exists with the indexed size; and, for the chosen fraction of packs, the
// pack's hash matches its name, its header matches the index, and every
// blob authenticates and matches its id. A problem in a pack is reported
// against every snapshot file that uses it. The error return is for
// failures to run the check (store unreachable), not for what it found.
func (r *Repository) Verify(ctx context.Context, opts VerifyOptions) (*VerifyReport, error) {
	rep := &VerifyReport{}
	add := func(p Problem) { rep.Problems = append(rep.Problems, p) }

	// Index objects, read fresh.
	fresh := &Repository{store: r.store, keys: r.keys, id: r.id, index: newIndex(), logger: r.logger}
	if err := fresh.loadIndex(ctx); err != nil {
		var ie *IndexError
		if !errors.As(err, &ie) {
			return nil, fmt.Errorf("verify: %w", err)
		}
		for name, e := range ie.Objects {
			add(Problem{Object: name, Message: e.Error()})
		}
	}
	rep.Indexes = len(fresh.index.loaded)
	indexed := fresh.index.packSizes()

	// Packs present in the store.
	stored := map[ID]int64{}
	if err := r.store.List(ctx, "data/", func(oi ObjectInfo) error {
		if id, ok := parsePackName(oi.Name); ok {
			stored[id] = oi.Size
		} else {
			add(Problem{Object: oi.Name, Message: "unexpected object under data/"})
		}
		return nil
	}); err != nil {
		return nil, fmt.Errorf("verify: %w", err)
	}
	rep.Packs = len(stored)

	// Snapshots.
	snaps, err := fresh.Snapshots(ctx)
	if err != nil {
		if snaps == nil && !errors.Is(err, ErrCorrupt) {
			return nil, fmt.Errorf("verify: %w", err)
		}
		for _, e := range unwrapJoin(err) {
			add(Problem{Message: e.Error()})
		}
	}
	rep.Snapshots = len(snaps)

	// users[pack] lists the (snapshot, path) pairs that need it.
	type use struct{ snap, path string }
	users := map[ID]map[use]bool{}
	badPack := map[ID]string{}
	for id, size := range indexed {
		got, ok := stored[id]
		switch {
		case !ok:
			badPack[id] = "pack is missing"
		case got != size:
			badPack[id] = fmt.Sprintf("pack is %d bytes, index says %d", got, size)
		}
	}
	for _, s := range snaps {
		reported := map[string]bool{}
		s.blobs(func(path string, c ChunkRef) {
			loc, ok := fresh.index.lookup(c.ID)
			if !ok {
				if !reported[path] {
					reported[path] = true
					add(Problem{Snapshot: s.ID, Path: path, Message: fmt.Sprintf("blob %s is in no index", c.ID)})
				}
				return
			}
			if loc.Raw != c.Size && !reported[path] {
				reported[path] = true
				add(Problem{Snapshot: s.ID, Path: path, Message: fmt.Sprintf("blob %s is %d bytes in the index, %d in the manifest", c.ID, loc.Raw, c.Size)})
			}
			if users[loc.Pack] == nil {
				users[loc.Pack] = map[use]bool{}
			}
			users[loc.Pack][use{s.ID, path}] = true
		})
	}
	for id := range stored {
		if _, ok := indexed[id]; !ok {
			rep.UnusedPacks++
		} else if len(users[id]) == 0 {
			rep.UnusedPacks++
		}
	}

	// Read back a sample of packs.
	if opts.ReadData > 0 {
		var candidates []ID
		for id := range indexed {
			if _, bad := badPack[id]; !bad {
				candidates = append(candidates, id)
			}
		}
		slices.SortFunc(candidates, func(a, b ID) int { return strings.Compare(a.String(), b.String()) })
		if opts.ReadData < 1 {
			rand.Shuffle(len(candidates), func(i, j int) { candidates[i], candidates[j] = candidates[j], candidates[i] })
			n := int(float64(len(candidates))*opts.ReadData + 0.999)
			candidates = candidates[:min(n, len(candidates))]
		}
		meter := newProgressMeter(opts.Progress, "verify")
		meter.tfiles = int64(len(candidates))
		for _, id := range candidates {
			meter.tbytes += indexed[id]
		}
		var mu gosync.Mutex
		parallel(ctx, len(candidates), 4, func(i int) {
			id := candidates[i]
			n, msg, err := fresh.checkPack(ctx, id)
			mu.Lock()
			defer mu.Unlock()
			rep.PacksRead++
			rep.BlobsRead += n
			if err != nil && msg == "" {
				msg = err.Error()
			}
			if msg != "" {
				badPack[id] = msg
			}
			meter.files++
			meter.bytes += indexed[id]
			meter.transferred.Add(indexed[id])
			meter.report(false)
		})
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("verify: %w", err)
		}
		meter.report(true)
	}

	for id, msg := range badPack {
		name := packName(id)
		if len(users[id]) == 0 {
			add(Problem{Object: name, Message: msg})
			continue
		}
		for u := range users[id] {
			add(Problem{Object: name, Snapshot: u.snap, Path: u.path, Message: msg})
		}
	}
	slices.SortFunc(rep.Problems, func(a, b Problem) int { return strings.Compare(a.String(), b.String()) })
	return rep, nil
}

// checkPack downloads one pack and authenticates it. It returns the number
// of blobs checked and a description of what is wrong ("" if nothing).
func (r *Repository) checkPack(ctx context.Context, id ID) (int, string, error) {
	data, err := readAll(ctx, r.store, packName(id))
	if err != nil {
		if errors.Is(err, ErrNotFound) {
			return 0, "pack is missing", nil
		}
		return 0, "", err
	}
	// A hash mismatch alone does not stop the check: the header and blobs
	// say which part is damaged.
	hashOK := packNameMatches(data, id)
	entries, err := r.keys.parsePackHeader(data, int64(len(data)))
	if err != nil {
		return 0, "pack header: " + err.Error(), nil
	}
	want := map[ID]blobLoc{}
	r.index.mu.RLock()
	for _, p := range r.index.loaded {
		for _, ip := range p {
			if ip.ID != id {
				continue
			}
			for _, b := range ip.Blobs {
				want[b.ID] = blobLoc{Pack: id, Offset: b.Offset, Length: b.Length, Raw: b.Raw}
			}
		}
	}
	r.index.mu.RUnlock()
	var bad []string
	for _, e := range entries {
		if w, ok := want[e.ID]; ok && (w.Offset != e.Offset || w.Length != e.Length || w.Raw != e.Raw) {
			bad = append(bad, fmt.Sprintf("blob %s: header and index disagree", e.ID))
		}
		delete(want, e.ID)
		if _, err := r.keys.openBlob(e.ID, data[e.Offset:e.Offset+e.Length], e.Raw); err != nil {
			bad = append(bad, err.Error())
		}
	}
	for bid := range want {
		bad = append(bad, fmt.Sprintf("blob %s is indexed in this pack but not in its header", bid))
	}
	if !hashOK {
		bad = append([]string{"content does not match the pack's name (SHA-256)"}, bad...)
	}
	if len(bad) > 3 {
		bad = append(bad[:3], fmt.Sprintf("and %d more", len(bad)-3))
	}
	return len(entries), strings.Join(bad, "; "), nil
}

func unwrapJoin(err error) []error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		return j.Unwrap()
	}
	return []error{err}
}
