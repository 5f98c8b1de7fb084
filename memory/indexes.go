package memory

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/bulkhead-dev/bulkhead/textindex"
	"github.com/bulkhead-dev/bulkhead/vectors"
	"github.com/dgraph-io/badger/v4"
)

// stateFormat changes whenever what the index directory holds changes
// meaning (analysis, layout); a different format forces a rebuild.
const stateFormat = 2

// indexState is state.json in the index directory.
type indexState struct {
	Format   int    `json:"format"`
	Instance string `json:"instance"`
	Seq      uint64 `json:"seq"`
	// Model and Dim describe the saved vector index, if any.
	Model string `json:"model,omitempty"`
	Dim   int    `json:"dim,omitempty"`
}

// indexes are the loaded derived indexes.
type indexes struct {
	text    textindex.Index
	vec     *vectors.Index // nil without an embedder or embeddings
	model   string         // embedding model vec holds
	applied uint64         // sequence the indexes reflect
	// vecDirty: vec differs from the file saved in the index directory.
	vecDirty bool
}

func (s *Store) statePath() string { return filepath.Join(s.dir, "state.json") }
func (s *Store) textDir() string   { return filepath.Join(s.dir, "text") }
func (s *Store) vecDir() string    { return filepath.Join(s.dir, "vectors") }

// loaded returns the indexes, loading them if needed, with imu held shared;
// the caller must call s.imu.RUnlock when done with them.
func (s *Store) loaded(ctx context.Context) (*indexes, error) {
	s.imu.RLock()
	if s.ix != nil {
		ix := s.ix
		s.touch()
		return ix, nil
	}
	s.imu.RUnlock()
	s.wmu.Lock()
	if s.closed {
		s.wmu.Unlock()
		return nil, ErrClosed
	}
	if s.ix == nil {
		if err := s.loadLocked(ctx); err != nil {
			s.wmu.Unlock()
			return nil, fmt.Errorf("load memory indexes: %w", err)
		}
	}
	s.imu.RLock()
	ix := s.ix
	s.wmu.Unlock()
	if ix == nil {
		s.imu.RUnlock()
		return nil, ErrClosed
	}
	s.touch()
	return ix, nil
}

// loadLocked opens the indexes, replaying the change log past the sequence
// state.json records, or rebuilding from Badger when that is not possible.
// The caller holds wmu, so no write runs meanwhile.
func (s *Store) loadLocked(ctx context.Context) error {
	var m meta
	if err := s.db.View(func(txn *badger.Txn) error { _, err := getJSON(txn, s.k.meta(), &m); return err }); err != nil {
		return fmt.Errorf("read meta: %w", err)
	}
	st, err := s.readState()
	reason := ""
	switch {
	case err != nil:
		reason = err.Error()
	case st.Format != stateFormat:
		reason = fmt.Sprintf("format %d, want %d", st.Format, stateFormat)
	case st.Instance != m.Instance:
		reason = "index belongs to another store"
	case st.Seq > m.Seq:
		reason = fmt.Sprintf("index at sequence %d is ahead of the store at %d", st.Seq, m.Seq)
	case st.Seq < m.Trimmed:
		reason = fmt.Sprintf("index at sequence %d predates the change log (trimmed to %d)", st.Seq, m.Trimmed)
	}
	if _, err := os.Stat(s.textDir()); reason == "" && err != nil {
		reason = "text index missing"
	}
	if reason != "" {
		s.log.Info("rebuilding memory indexes", "reason", reason)
		// Forget the old state first: a crash during the rebuild must not
		// leave a state file vouching for a half-built index.
		if err := os.Remove(s.statePath()); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("remove index state: %w", err)
		}
		if err := os.RemoveAll(s.textDir()); err != nil {
			return fmt.Errorf("remove text index: %w", err)
		}
		if err := os.RemoveAll(s.vecDir()); err != nil {
			return fmt.Errorf("remove vector index: %w", err)
		}
	}
	text, err := textindex.OpenBluge(s.textDir())
	if err != nil {
		return err
	}
	ix := &indexes{text: text}
	if err := s.loadVectors(ctx, ix, m, st, reason != ""); err != nil {
		_ = text.Close()
		return err
	}
	if reason != "" {
		err = s.rebuildText(ctx, ix)
	} else if st.Seq < m.Seq {
		err = s.replay(ctx, ix, st.Seq)
	}
	if err == nil && reason == "" {
		// A damaged index that still opens: compare sizes, rebuild if off.
		err = s.checkCount(ctx, ix)
	}
	if err != nil {
		_ = ix.text.Close()
		return err
	}
	ix.applied = m.Seq
	s.imu.Lock()
	s.ix = ix
	s.imu.Unlock()
	// Record that the directory now covers m.Seq and drop the log it no
	// longer needs.
	return s.checkpoint(ctx, ix)
}

// loadVectors loads the saved vector index when the state vouches for it,
// else builds one from the stored embeddings of the embedder's model.
func (s *Store) loadVectors(ctx context.Context, ix *indexes, m meta, st indexState, rebuild bool) error {
	if s.emb == nil || m.Dim == 0 || m.Model != s.emb.Model() {
		return nil
	}
	if !rebuild && st.Model == m.Model && st.Dim == m.Dim {
		vec, err := vectors.LoadFile(ctx, s.vecDir())
		if err == nil && vec.Config().Dim == m.Dim {
			ix.vec, ix.model = vec, m.Model
			return nil
		}
		s.log.Info("rebuilding memory vector index", "reason", err)
	}
	vec, err := vectors.New(vectors.Config{Dim: m.Dim})
	if err != nil {
		return fmt.Errorf("new vector index: %w", err)
	}
	err = s.db.View(func(txn *badger.Txn) error {
		prefix := s.k.embeds()
		it := txn.NewIterator(badger.IteratorOptions{Prefix: prefix, PrefetchValues: true, PrefetchSize: 256})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			if err := ctx.Err(); err != nil {
				return err
			}
			id := string(it.Item().Key()[len(prefix):])
			var model string
			var v []float32
			if err := it.Item().Value(func(b []byte) (err error) { model, v, err = decodeEmbedding(b); return err }); err != nil {
				return fmt.Errorf("decode embedding %s: %w", id, err)
			}
			if model != m.Model || len(v) != m.Dim {
				continue
			}
			if err := vec.Upsert(id, v); err != nil {
				return fmt.Errorf("index embedding %s: %w", id, err)
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("load vectors: %w", err)
	}
	ix.vec, ix.model, ix.vecDirty = vec, m.Model, true
	return nil
}

// checkCount rebuilds the text index when it does not hold exactly as many
// documents as the store holds chunks.
func (s *Store) checkCount(ctx context.Context, ix *indexes) error {
	n, err := ix.text.Count(ctx)
	if err != nil {
		return err
	}
	var want int
	if err := s.db.View(func(txn *badger.Txn) error { want = countPrefix(txn, s.k.chunks()); return nil }); err != nil {
		return fmt.Errorf("count chunks: %w", err)
	}
	if n == uint64(want) {
		return nil
	}
	s.log.Info("rebuilding memory text index", "reason", "size mismatch", "indexed", n, "chunks", want)
	if err := ix.text.Close(); err != nil {
		return err
	}
	if err := os.RemoveAll(s.textDir()); err != nil {
		return fmt.Errorf("remove text index: %w", err)
	}
	text, err := textindex.OpenBluge(s.textDir())
	if err != nil {
		return err
	}
	ix.text = text
	return s.rebuildText(ctx, ix)
}

// rebuildText indexes every stored chunk.
func (s *Store) rebuildText(ctx context.Context, ix *indexes) error {
	const batch = 2000
	docs := make([]textindex.Doc, 0, batch)
	flush := func() error {
		if len(docs) == 0 {
			return nil
		}
		err := ix.text.Upsert(ctx, docs)
		docs = docs[:0]
		return err
	}
	err := s.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: s.k.chunks(), PrefetchValues: true, PrefetchSize: 256})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			var c Chunk
			if err := it.Item().Value(func(b []byte) error { return jsonUnmarshal(b, &c) }); err != nil {
				return fmt.Errorf("decode chunk %q: %w", it.Item().Key(), err)
			}
			docs = append(docs, textindex.Doc{ID: c.ID, Text: c.Text, Context: c.Context})
			if len(docs) == batch {
				if err := flush(); err != nil {
					return err
				}
			}
		}
		return flush()
	})
	if err != nil {
		return fmt.Errorf("rebuild text index: %w", err)
	}
	return nil
}

// replay applies every logged change after sequence from.
func (s *Store) replay(ctx context.Context, ix *indexes, from uint64) error {
	seen := map[string]bool{}
	var ids []string
	err := s.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: s.k.logs()})
		defer it.Close()
		it.Seek(s.k.log(from+1, ""))
		for ; it.Valid(); it.Next() {
			_, id, err := s.k.parseLog(it.Item().KeyCopy(nil))
			if err != nil {
				return err
			}
			if !seen[id] {
				seen[id] = true
				ids = append(ids, id)
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("read change log: %w", err)
	}
	s.log.Info("replaying memory change log", "from", from, "chunks", len(ids))
	for start := 0; start < len(ids); start += 1000 {
		if err := ix.apply(ctx, s, ids[start:min(start+1000, len(ids))]); err != nil {
			return fmt.Errorf("replay change log: %w", err)
		}
	}
	return nil
}

// apply brings the indexes in line with Badger for ids.
func (ix *indexes) apply(ctx context.Context, s *Store, ids []string) error {
	var docs []textindex.Doc
	var gone []string
	vecs := map[string][]float32{}
	err := s.db.View(func(txn *badger.Txn) error {
		for _, id := range ids {
			var c Chunk
			found, err := getJSON(txn, s.k.chunk(id), &c)
			if err != nil {
				return fmt.Errorf("read chunk %s: %w", id, err)
			}
			if !found {
				gone = append(gone, id)
				continue
			}
			docs = append(docs, textindex.Doc{ID: id, Text: c.Text, Context: c.Context})
			if ix.vec == nil || c.Model != ix.model {
				continue
			}
			item, err := txn.Get(s.k.embed(id))
			if err != nil {
				return fmt.Errorf("read embedding %s: %w", id, err)
			}
			if err := item.Value(func(b []byte) error {
				_, v, err := decodeEmbedding(b)
				vecs[id] = v
				return err
			}); err != nil {
				return fmt.Errorf("decode embedding %s: %w", id, err)
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	if len(docs) > 0 {
		if err := ix.text.Upsert(ctx, docs); err != nil {
			return err
		}
	}
	if len(gone) > 0 {
		if err := ix.text.Delete(ctx, gone); err != nil {
			return err
		}
	}
	if ix.vec != nil {
		ix.vecDirty = true
		for _, d := range docs {
			if v, ok := vecs[d.ID]; ok {
				if err := ix.vec.Upsert(d.ID, v); err != nil {
					return fmt.Errorf("index embedding %s: %w", d.ID, err)
				}
			} else {
				ix.vec.Delete(d.ID)
			}
		}
		for _, id := range gone {
			ix.vec.Delete(id)
		}
	}
	return nil
}

func (s *Store) readState() (indexState, error) {
	var st indexState
	b, err := os.ReadFile(s.statePath())
	if err != nil {
		return st, fmt.Errorf("read index state: %w", err)
	}
	if err := json.Unmarshal(b, &st); err != nil {
		return st, fmt.Errorf("decode index state: %w", err)
	}
	return st, nil
}

// writeState atomically records the sequence the index directory covers.
func (s *Store) writeState(ix *indexes) error {
	st := indexState{Format: stateFormat, Instance: s.inst, Seq: ix.applied}
	if ix.vec != nil {
		st.Model, st.Dim = ix.model, ix.vec.Config().Dim
	}
	b, err := json.Marshal(st)
	if err != nil {
		return err
	}
	tmp := s.statePath() + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("write index state: %w", err)
	}
	_, err = f.Write(b)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, s.statePath())
	}
	if err != nil {
		return fmt.Errorf("write index state: %w", err)
	}
	return nil
}

// checkpoint saves the vector index if it changed, records the sequence the
// index directory now covers, and trims the change log up to it. The text
// index needs no flush: Bluge batches are durable when they return.
func (s *Store) checkpoint(ctx context.Context, ix *indexes) error {
	if ix.vec != nil && ix.vecDirty {
		if err := os.MkdirAll(s.vecDir(), 0o700); err != nil {
			return fmt.Errorf("create vector index directory: %w", err)
		}
		if err := ix.vec.SaveFile(ctx, s.vecDir()); err != nil {
			return err
		}
		ix.vecDirty = false
	}
	if err := s.writeState(ix); err != nil {
		return err
	}
	return s.trimLog(ix.applied)
}

// trimLog deletes change-log entries up to seq, a bounded batch per
// transaction, then records the trim point.
func (s *Store) trimLog(seq uint64) error {
	for {
		var keys [][]byte
		err := s.db.View(func(txn *badger.Txn) error {
			it := txn.NewIterator(badger.IteratorOptions{Prefix: s.k.logs()})
			defer it.Close()
			for it.Rewind(); it.Valid() && len(keys) < 1000; it.Next() {
				k := it.Item().KeyCopy(nil)
				at, _, err := s.k.parseLog(k)
				if err != nil {
					return err
				}
				if at > seq {
					break
				}
				keys = append(keys, k)
			}
			return nil
		})
		if err == nil && len(keys) > 0 {
			err = s.db.Update(func(txn *badger.Txn) error {
				for _, k := range keys {
					if err := txn.Delete(k); err != nil {
						return err
					}
				}
				return nil
			})
		}
		if err != nil {
			return fmt.Errorf("trim change log: %w", err)
		}
		if len(keys) < 1000 {
			break
		}
	}
	err := s.db.Update(func(txn *badger.Txn) error {
		var m meta
		if _, err := getJSON(txn, s.k.meta(), &m); err != nil {
			return err
		}
		if seq > m.Trimmed {
			m.Trimmed = seq
		}
		return setJSON(txn, s.k.meta(), m)
	})
	if err != nil {
		return fmt.Errorf("record log trim: %w", err)
	}
	return nil
}

// Evict flushes the indexes to disk and drops them from memory; the next
// search loads them again. The store stays open.
func (s *Store) Evict() error {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	return s.evictLocked()
}

func (s *Store) evictLocked() error {
	if s.ix == nil {
		return nil
	}
	s.imu.Lock()
	ix := s.ix
	s.ix = nil
	s.imu.Unlock()
	if err := ix.text.Close(); err != nil {
		return err
	}
	return s.checkpoint(context.Background(), ix)
}

// dropIndexesLocked forgets the indexes without recording a checkpoint, so
// the next load replays the log.
func (s *Store) dropIndexesLocked() {
	s.imu.Lock()
	ix := s.ix
	s.ix = nil
	s.imu.Unlock()
	if ix != nil {
		_ = ix.text.Close()
	}
}

// touch restarts the idle timer. Safe under imu or wmu.
func (s *Store) touch() {
	d := time.Duration(s.cfg.IdleTimeout)
	if d <= 0 {
		return
	}
	s.idleMu.Lock()
	defer s.idleMu.Unlock()
	if s.idle == nil {
		s.idle = time.AfterFunc(d, s.evictIdle)
		return
	}
	s.idle.Reset(d)
}

func (s *Store) evictIdle() {
	if err := s.Evict(); err != nil {
		s.log.Warn("evict idle memory indexes", "err", err)
	}
}

// Reindex embeds the chunks that lack an embedding of the store's embedder
// (none, or another model's), then throws the index directory's contents
// away and rebuilds both indexes from Badger.
func (s *Store) Reindex(ctx context.Context) error {
	if err := s.reembed(ctx); err != nil {
		return fmt.Errorf("reindex: %w", err)
	}
	s.wmu.Lock()
	defer s.wmu.Unlock()
	if s.closed {
		return ErrClosed
	}
	s.dropIndexesLocked()
	if err := os.Remove(s.statePath()); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("reindex: remove index state: %w", err)
	}
	if err := s.loadLocked(ctx); err != nil {
		return fmt.Errorf("reindex: %w", err)
	}
	return nil
}

// reembed embeds, in batches, every chunk without an embedding of the
// current model. A chunk changed meanwhile is written back as it now is.
func (s *Store) reembed(ctx context.Context) error {
	if s.emb == nil {
		return nil
	}
	model := s.emb.Model()
	var todo []Chunk
	err := s.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: s.k.chunks(), PrefetchValues: true, PrefetchSize: 256})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			var c Chunk
			if err := it.Item().Value(func(b []byte) error { return jsonUnmarshal(b, &c) }); err != nil {
				return fmt.Errorf("decode chunk %q: %w", it.Item().Key(), err)
			}
			if c.Model != model {
				todo = append(todo, c)
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	const batch = 256
	for start := 0; start < len(todo); start += batch {
		cs := todo[start:min(start+batch, len(todo))]
		vecs, err := s.embed(ctx, cs)
		if err != nil {
			return err
		}
		s.wmu.Lock()
		err = s.write(ctx, func(txn *badger.Txn, m *meta) ([]string, error) {
			var keep []Chunk
			var kv [][]float32
			for i, c := range cs {
				var now Chunk
				found, err := getJSON(txn, s.k.chunk(c.ID), &now)
				if err != nil {
					return nil, err
				}
				if found && now.Text == c.Text {
					now.Model = ""
					keep = append(keep, now)
					kv = append(kv, vecs[i])
				}
			}
			if len(keep) == 0 {
				return nil, nil
			}
			return s.putChunks(txn, m, keep, kv)
		})
		s.wmu.Unlock()
		if err != nil {
			return err
		}
	}
	return nil
}
