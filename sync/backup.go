package sync

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	gosync "sync"
	"sync/atomic"
	"time"
)

// BackupOptions tune one backup.
type BackupOptions struct {
	// State, when set, is read to the end and stored as the snapshot's state
	// stream (for bulkhead, a Badger backup stream).
	State io.Reader
	// Config is stored verbatim (encrypted) in the manifest.
	Config []byte
	Host   string
	Tags   []string
	// Parent is the snapshot whose unchanged files (same size, mtime, ctime,
	// inode) are taken over without reading them. "" means the latest
	// snapshot; "none" reads every file.
	Parent   string
	Progress ProgressFunc
}

// Backup stores the tree under dir (and opts.State) as a new snapshot. It
// holds a shared repository lock throughout, so a concurrent prune cannot
// delete packs it relies on. On error nothing references the packs it wrote;
// a later prune removes them.
func (r *Repository) Backup(ctx context.Context, dir string, opts BackupOptions) (*Snapshot, error) {
	start := time.Now()
	lk, err := r.lock(ctx, false, "backup")
	if err != nil {
		return nil, fmt.Errorf("backup %s: %w", dir, err)
	}
	defer lk.unlock(ctx)
	snap, err := r.backup(ctx, dir, opts, start)
	if err != nil {
		return nil, fmt.Errorf("backup %s: %w", dir, err)
	}
	return snap, nil
}

func (r *Repository) backup(ctx context.Context, dir string, opts BackupOptions, start time.Time) (*Snapshot, error) {
	// Re-read the index under the lock: a prune since Open may have removed
	// packs, and blobs must only dedup against packs that still exist.
	if err := r.loadIndex(ctx); err != nil {
		var ie *IndexError
		if !errors.As(err, &ie) {
			return nil, err
		}
	}
	var parent *Snapshot
	if opts.Parent != "none" {
		ref := opts.Parent
		if ref == "" {
			ref = "latest"
		}
		p, err := r.FindSnapshot(ctx, ref)
		switch {
		case err == nil:
			parent = p
		case errors.Is(err, ErrNotFound) && opts.Parent == "":
		case errors.Is(err, ErrCorrupt) && opts.Parent == "":
			// A damaged latest manifest must not stop new backups: read
			// every file instead (Verify reports the damage).
			r.logger.Warn("latest snapshot unreadable; backing up without a parent", "err", err)
		default:
			return nil, fmt.Errorf("parent snapshot: %w", err)
		}
	}

	snap := &Snapshot{Version: manifestVersion, ID: randomHex(8), Time: start.UTC(), Host: opts.Host, Tags: opts.Tags, Config: opts.Config}
	if parent != nil {
		snap.Parent = parent.ID
	}
	tree, skipped, err := scanTree(ctx, dir)
	if err != nil {
		return nil, err
	}
	snap.Stats.Skipped = skipped

	meter := newProgressMeter(opts.Progress, "backup")
	for i := range tree {
		if tree[i].Type == TypeFile {
			meter.tfiles++
			meter.tbytes += tree[i].Size
		}
	}
	up := r.newUploader(ctx, &meter.transferred)
	var parentNodes map[string]*Node
	if parent != nil {
		parentNodes = make(map[string]*Node, len(parent.Tree))
		for i := range parent.Tree {
			parentNodes[parent.Tree[i].Path] = &parent.Tree[i]
		}
	}
	var toRead []int
	for i := range tree {
		n := &tree[i]
		switch n.Type {
		case TypeDir:
			snap.Stats.Dirs++
			continue
		case TypeSymlink:
			snap.Stats.Symlinks++
			continue
		}
		snap.Stats.Files++
		if p := parentNodes[n.Path]; p != nil && r.unchanged(p, n) {
			n.Chunks = p.Chunks
			meter.files++
			meter.bytes += n.Size
			snap.Stats.Bytes += n.Size
			continue
		}
		toRead = append(toRead, i)
	}
	meter.report(false)

	// Read changed files on several goroutines, each hashing, compressing
	// and sealing its chunks straight from its own read buffer: small files
	// make a single reader wait on open/read syscalls, and handing chunks to
	// other goroutines would cost a copy of every byte.
	var mu gosync.Mutex // guards meter, snap.Stats, tree sizes
	progress := func(files, bytes int64) {
		mu.Lock()
		meter.files += files
		meter.bytes += bytes
		meter.report(false)
		mu.Unlock()
	}
	next := make(chan int)
	var readers gosync.WaitGroup
	for range min(fileReaders, len(toRead)) {
		readers.Go(func() {
			var bufs chunkBuffers
			for i := range next {
				n := &tree[i]
				refs, size, err := r.chunkStream(up, dir, filepath.FromSlash(n.Path), nil, &bufs, progress)
				if err != nil {
					up.cancel(fmt.Errorf("read %s: %w", n.Path, err))
					continue
				}
				mu.Lock()
				n.Size = size // the file may have changed since the scan
				n.Chunks = refs
				snap.Stats.BytesRead += size
				snap.Stats.Bytes += size
				mu.Unlock()
				progress(1, 0) // its bytes were counted chunk by chunk
			}
		})
	}
	for _, i := range toRead {
		if up.ctx.Err() != nil {
			break
		}
		select {
		case next <- i:
		case <-up.ctx.Done():
		}
	}
	close(next)
	readers.Wait()
	if up.ctx.Err() != nil {
		_, err := up.finish()
		return nil, err
	}
	if opts.State != nil {
		var bufs chunkBuffers
		refs, size, err := r.chunkStream(up, "", "", opts.State, &bufs, progress)
		if err != nil {
			up.abort()
			return nil, fmt.Errorf("read state stream: %w", err)
		}
		snap.State = &Content{Size: size, Chunks: refs}
		snap.Stats.Bytes += size
		snap.Stats.BytesRead += size
	}
	packs, err := up.finish()
	if err != nil {
		return nil, err
	}
	snap.Tree = tree
	snap.Stats.NewBlobs, snap.Stats.BytesNew = up.newBlobs, up.newBytes
	snap.Stats.BytesUploaded, snap.Stats.Packs = meter.transferred.Load(), int64(len(packs))

	if len(packs) > 0 {
		if _, err := r.writeIndex(ctx, packs); err != nil {
			return nil, err
		}
	}
	if err := r.checkPacksExist(ctx, snap); err != nil {
		return nil, err
	}
	snap.Stats.Duration = time.Since(start)
	if err := r.saveSnapshot(ctx, snap); err != nil {
		return nil, err
	}
	meter.report(true)
	r.logger.Info("backup done", "snapshot", snap.ID, "files", snap.Stats.Files, "bytes", snap.Stats.Bytes,
		"uploaded", snap.Stats.BytesUploaded, "duration", snap.Stats.Duration)
	return snap, nil
}

// unchanged reports whether cur can reuse prev's chunks without reading.
func (r *Repository) unchanged(prev, cur *Node) bool {
	if prev.Type != TypeFile || prev.Size != cur.Size || prev.MTime != cur.MTime ||
		prev.CTime != cur.CTime || prev.Inode != cur.Inode || cur.Inode == 0 {
		return false
	}
	for _, c := range prev.Chunks {
		if _, ok := r.index.lookup(c.ID); !ok {
			return false
		}
	}
	return true
}

// checkPacksExist makes sure every pack the snapshot needs is in the store,
// so a snapshot never references missing data even if a lock was broken.
func (r *Repository) checkPacksExist(ctx context.Context, snap *Snapshot) error {
	need := map[ID]bool{}
	var missing error
	snap.blobs(func(path string, c ChunkRef) {
		loc, ok := r.index.lookup(c.ID)
		if !ok && missing == nil {
			missing = fmt.Errorf("blob %s of %q is in no index", c.ID, path)
		}
		need[loc.Pack] = true
	})
	if missing != nil {
		return missing
	}
	if len(need) == 0 {
		return nil
	}
	if err := r.store.List(ctx, "data/", func(oi ObjectInfo) error {
		if id, ok := parsePackName(oi.Name); ok {
			delete(need, id)
		}
		return nil
	}); err != nil {
		return fmt.Errorf("check packs: %w", err)
	}
	for id := range need {
		return fmt.Errorf("check packs: pack %s vanished during backup (was the repository lock broken?)", id)
	}
	return nil
}

// scanTree lists dir recursively (lstat, no symlinks followed), in WalkDir
// order: every directory before its contents.
func scanTree(ctx context.Context, dir string) ([]Node, int64, error) {
	var tree []Node
	var skipped int64
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		n := Node{Path: filepath.ToSlash(rel), Mode: unixMode(fi.Mode()), MTime: fi.ModTime().UnixNano()}
		switch {
		case fi.IsDir():
			n.Type = TypeDir
		case fi.Mode().IsRegular():
			n.Type = TypeFile
			n.Size = fi.Size()
			n.Inode, n.CTime = statExtra(fi)
		case fi.Mode()&fs.ModeSymlink != 0:
			n.Type = TypeSymlink
			if n.Target, err = os.Readlink(p); err != nil {
				return err
			}
		default:
			skipped++
			return nil
		}
		if n.Path == "." && n.Type != TypeDir {
			return fmt.Errorf("%s is not a directory", dir)
		}
		tree = append(tree, n)
		return nil
	})
	if err != nil {
		return nil, 0, fmt.Errorf("scan: %w", err)
	}
	return tree, skipped, nil
}

func unixMode(m fs.FileMode) uint32 {
	u := uint32(m.Perm())
	if m&fs.ModeSetuid != 0 {
		u |= 0o4000
	}
	if m&fs.ModeSetgid != 0 {
		u |= 0o2000
	}
	if m&fs.ModeSticky != 0 {
		u |= 0o1000
	}
	return u
}

func fileMode(u uint32) fs.FileMode {
	m := fs.FileMode(u & 0o777)
	if u&0o4000 != 0 {
		m |= fs.ModeSetuid
	}
	if u&0o2000 != 0 {
		m |= fs.ModeSetgid
	}
	if u&0o1000 != 0 {
		m |= fs.ModeSticky
	}
	return m
}

// fileReaders is how many files Backup reads (and chunks, hashes,
// compresses and seals) at once: more than the core count, so that one
// waiting on a read still leaves the cores busy.
const fileReaders = 4

// chunkBuffers are one reader's buffers, reused for every file it reads:
// the chunker's read buffer and the compressor's output.
type chunkBuffers struct {
	read    []byte
	scratch []byte
}

// chunkStream splits the file rel under root (or rd when rel is "") into
// chunks and hands each to the uploader, which hashes and stores it before
// the next is read. It returns the chunk refs and the byte count.
func (r *Repository) chunkStream(up *uploader, root, rel string, rd io.Reader, bufs *chunkBuffers, progress func(files, bytes int64)) ([]ChunkRef, int64, error) {
	if rel != "" {
		f, err := openBeneath(root, rel)
		if err != nil {
			return nil, 0, err
		}
		defer f.Close()
		rd = f
	}
	ch := newChunker(rd, &r.keys.gear, bufs.read)
	defer func() { bufs.read = ch.buf }() // keep it if it grew
	var refs []ChunkRef
	var size int64
	for {
		chunk, err := ch.next()
		if err == io.EOF {
			return refs, size, nil
		}
		if err != nil {
			return nil, 0, err
		}
		id, err := up.add(chunk, &bufs.scratch)
		if err != nil {
			return nil, 0, err
		}
		refs = append(refs, ChunkRef{ID: id, Size: uint32(len(chunk))})
		size += int64(len(chunk))
		progress(0, int64(len(chunk)))
	}
}

// Upload pipeline bounds. Stores are latency bound (an fsync, an HTTP round
// trip), so more uploads than cores pay. Every pack in flight holds a
// buffer of about TargetPackSize bytes: uploadConcurrency being sent, one
// being filled and one whose last blobs are still being sealed. The buffers
// are reused for the whole operation, so the memory is bounded and touched
// once.
const (
	uploadConcurrency = 4
	packBuffers       = uploadConcurrency + 2
)

// uploader deduplicates, compresses, seals and packs blobs on the callers'
// goroutines and uploads full packs on uploadConcurrency more.
type uploader struct {
	r        *Repository
	ctx      context.Context
	cancel   context.CancelCauseFunc
	packs    chan *packBuilder
	free     chan []byte // pack buffers; nil means not yet allocated
	senders  gosync.WaitGroup
	uploaded *atomic.Int64

	repack bool // rewrite blobs even if the index has them

	mu       gosync.Mutex
	seen     map[ID]bool // blobs stored in this operation
	cur      *packBuilder
	written  []indexPack
	newBlobs int64
	newBytes int64
}

func (r *Repository) newUploader(ctx context.Context, uploaded *atomic.Int64) *uploader {
	ctx, cancel := context.WithCancelCause(ctx)
	u := &uploader{
		r: r, ctx: ctx, cancel: cancel, uploaded: uploaded,
		packs: make(chan *packBuilder, packBuffers),
		free:  make(chan []byte, packBuffers),
		seen:  map[ID]bool{},
	}
	for range packBuffers {
		u.free <- nil
	}
	for range uploadConcurrency {
		u.senders.Go(u.send)
	}
	return u
}

// add stores one blob unless the repository or this operation already has
// it, and returns its id. It is safe for concurrent use; chunk is not kept
// after it returns. scratch holds the caller's compression buffer.
func (u *uploader) add(chunk []byte, scratch *[]byte) (ID, error) {
	k := u.r.keys
	id := k.blobID(chunk)
	u.mu.Lock()
	_, known := u.r.index.lookup(id)
	dup := known && !u.repack || u.seen[id]
	u.seen[id] = true
	u.mu.Unlock()
	if err := u.ctx.Err(); err != nil {
		return id, context.Cause(u.ctx)
	}
	if dup {
		return id, nil
	}
	payload, enc := encodeBlob(chunk, scratch)
	n := sealedBlobSize(len(payload))
	p, slot, full, err := u.reserve(id, n, len(chunk))
	if err != nil {
		return id, err
	}
	// Seal straight into the pack: no copy of the ciphertext.
	k.sealBlobInto(slot, id, payload, enc)
	p.writers.Done()
	if full {
		u.packs <- p // never blocks: the channel holds every buffer
	}
	return id, nil
}

// reserve returns a slot of n bytes in the pack being filled, taking a
// fresh buffer when there is none; full reports that the caller must send
// the pack once its slot is sealed.
func (u *uploader) reserve(id ID, n, raw int) (p *packBuilder, slot []byte, full bool, err error) {
	for {
		u.mu.Lock()
		if p = u.cur; p != nil {
			slot = p.reserve(id, n, raw)
			if p.size() >= TargetPackSize {
				u.cur, full = nil, true
			}
			u.newBlobs++
			u.newBytes += int64(raw)
			u.mu.Unlock()
			return p, slot, full, nil
		}
		u.mu.Unlock()
		// Wait for a buffer without holding the lock: the senders need it.
		var buf []byte
		select {
		case buf = <-u.free:
		case <-u.ctx.Done():
			return nil, nil, false, context.Cause(u.ctx)
		}
		u.mu.Lock()
		if u.cur == nil {
			u.cur = newPackBuilder(buf)
			buf = nil
		}
		u.mu.Unlock()
		if buf != nil {
			u.free <- buf // another caller started a pack meanwhile
		}
	}
}

func (u *uploader) send() {
	for p := range u.packs {
		if u.ctx.Err() != nil {
			p.writers.Wait() // nobody may seal into a reused buffer
			u.free <- p.release()
			continue
		}
		data, id := p.finish(u.r.keys)
		err := u.r.store.Put(u.ctx, packName(id), bytes.NewReader(data), int64(len(data)))
		u.free <- p.release()
		if err != nil {
			u.cancel(fmt.Errorf("upload pack %s: %w", id, err))
			continue
		}
		u.uploaded.Add(int64(len(data)))
		u.mu.Lock()
		u.written = append(u.written, indexPack{ID: id, Size: int64(len(data)), Blobs: p.entries})
		u.mu.Unlock()
	}
}

// finish flushes the last pack, waits for all uploads and returns the packs
// written. No add may run during or after it.
func (u *uploader) finish() ([]indexPack, error) {
	if p := u.cur; p != nil {
		u.cur = nil
		if p.size() > 0 && u.ctx.Err() == nil {
			u.packs <- p
		} else {
			p.writers.Wait()
			u.free <- p.release()
		}
	}
	close(u.packs)
	u.senders.Wait()
	if err := u.ctx.Err(); err != nil {
		return nil, context.Cause(u.ctx)
	}
	u.cancel(nil)
	return u.written, nil
}

// abort stops the pipeline after an error elsewhere.
func (u *uploader) abort() {
	u.cancel(errors.New("backup aborted"))
	u.finish()
}
