package memory

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/dgraph-io/badger/v4"
)

// Options says where a store keeps its data.
type Options struct {
	// DB holds the chunks; the caller opens and closes it.
	DB *badger.DB
	// Prefix is the key prefix of this store in DB (default "memory/"). Two
	// stores in one DB need prefixes where neither is a prefix of the other.
	Prefix string
	// IndexDir holds the derived indexes; created if missing. One per store.
	IndexDir string
	// Embedder is optional; without it search is keyword-only.
	Embedder Embedder
	Config   Config
	Logger   *slog.Logger
	// Now is the clock (default time.Now); tests set it.
	Now func() time.Time
}

// Store is one tenant's memory.
type Store struct {
	db   *badger.DB
	k    keys
	dir  string
	emb  Embedder
	cfg  Config
	log  *slog.Logger
	now  func() time.Time
	inst string

	wmu    sync.Mutex   // serialises writes, index loading and eviction
	imu    sync.RWMutex // searches hold it shared; eviction exclusively
	ix     *indexes     // nil while not loaded
	closed bool

	idleMu sync.Mutex
	idle   *time.Timer
}

// Open opens the store described by o, creating its records on first use.
// It does not load the indexes; the first search does.
func Open(ctx context.Context, o Options) (*Store, error) {
	if o.DB == nil {
		return nil, fmt.Errorf("%w: no database", ErrInvalidConfig)
	}
	if o.IndexDir == "" {
		return nil, fmt.Errorf("%w: no index directory", ErrInvalidConfig)
	}
	if o.Prefix == "" {
		o.Prefix = DefaultPrefix
	}
	cfg := o.Config.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if o.Embedder != nil && (o.Embedder.Model() == "" || len(o.Embedder.Model()) > 256) {
		return nil, fmt.Errorf("%w: embedder model name must be 1-256 bytes", ErrInvalidConfig)
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if err := os.MkdirAll(o.IndexDir, 0o700); err != nil {
		return nil, fmt.Errorf("create index directory: %w", err)
	}
	s := &Store{
		db: o.DB, k: keys{o.Prefix}, dir: o.IndexDir, emb: o.Embedder, cfg: cfg,
		log: o.Logger.With("subsystem", "memory"), now: o.Now,
	}
	err := s.db.Update(func(txn *badger.Txn) error {
		var m meta
		found, err := getJSON(txn, s.k.meta(), &m)
		if err != nil || found {
			s.inst = m.Instance
			return err
		}
		var b [16]byte
		_, _ = rand.Read(b[:])
		m.Instance = hex.EncodeToString(b[:])
		s.inst = m.Instance
		return setJSON(txn, s.k.meta(), m)
	})
	if err != nil {
		return nil, fmt.Errorf("open memory store: %w", err)
	}
	return s, ctx.Err()
}

// Config returns the store's configuration with defaults filled in.
func (s *Store) Config() Config { return s.cfg }

// write runs fn in one Badger transaction that also bumps the sequence and
// logs the ids fn touched; then applies those ids to the loaded indexes.
// The caller holds wmu.
func (s *Store) write(ctx context.Context, fn func(txn *badger.Txn, m *meta) ([]string, error)) error {
	if s.closed {
		return ErrClosed
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	var touched []string
	var seq uint64
	err := s.db.Update(func(txn *badger.Txn) error {
		var m meta
		if _, err := getJSON(txn, s.k.meta(), &m); err != nil {
			return fmt.Errorf("read meta: %w", err)
		}
		ids, err := fn(txn, &m)
		if err != nil {
			return err
		}
		if len(ids) == 0 {
			return nil
		}
		m.Seq++
		seq = m.Seq
		for _, id := range ids {
			if err := txn.Set(s.k.log(m.Seq, id), nil); err != nil {
				return fmt.Errorf("write change log: %w", err)
			}
		}
		touched = ids
		return setJSON(txn, s.k.meta(), m)
	})
	if err != nil || len(touched) == 0 {
		return err
	}
	if s.ix != nil {
		if err := s.ix.apply(ctx, s, touched); err != nil {
			// The change is in Badger and its log; drop the indexes so
			// the next load replays it.
			s.log.Warn("apply change to indexes; they will be repaired on next load", "err", err)
			s.dropIndexesLocked()
			return nil
		}
		s.ix.applied = seq
		s.touch()
	}
	return nil
}

// maxTxnChunks bounds how many chunks one Badger transaction writes.
const maxTxnChunks = 256

// Add stores chunks (replacing any with the same id), embedding them first
// when the store has an embedder. It returns their ids.
func (s *Store) Add(ctx context.Context, chunks []Chunk) ([]string, error) {
	now := s.now()
	cs := make([]Chunk, len(chunks))
	for i, c := range chunks {
		c.Tags = append([]string(nil), c.Tags...)
		if err := c.check(s.cfg.MaxChunkBytes, now); err != nil {
			return nil, fmt.Errorf("add chunk %d: %w", i, err)
		}
		cs[i] = c
	}
	vecs, err := s.embed(ctx, cs)
	if err != nil {
		return nil, err
	}
	s.wmu.Lock()
	defer s.wmu.Unlock()
	for start := 0; start < len(cs); start += maxTxnChunks {
		end := min(start+maxTxnChunks, len(cs))
		err := s.write(ctx, func(txn *badger.Txn, m *meta) ([]string, error) {
			return s.putChunks(txn, m, cs[start:end], sub(vecs, start, end))
		})
		if err != nil {
			return nil, fmt.Errorf("add chunks: %w", err)
		}
	}
	ids := make([]string, len(cs))
	for i, c := range cs {
		ids[i] = c.ID
	}
	return ids, nil
}

func sub(v [][]float32, start, end int) [][]float32 {
	if v == nil {
		return nil
	}
	return v[start:end]
}

// embed returns one vector per chunk, or nil without an embedder.
func (s *Store) embed(ctx context.Context, cs []Chunk) ([][]float32, error) {
	if s.emb == nil || len(cs) == 0 {
		return nil, nil
	}
	var m meta
	if err := s.db.View(func(txn *badger.Txn) error { _, err := getJSON(txn, s.k.meta(), &m); return err }); err != nil {
		return nil, fmt.Errorf("read meta: %w", err)
	}
	dim := m.Dim
	if m.Model != s.emb.Model() {
		dim = 0
	}
	out := make([][]float32, 0, len(cs))
	for start := 0; start < len(cs); start += s.cfg.EmbedBatch {
		end := min(start+s.cfg.EmbedBatch, len(cs))
		texts := make([]string, 0, end-start)
		for _, c := range cs[start:end] {
			texts = append(texts, c.Text)
		}
		vs, err := s.emb.Embed(ctx, texts)
		if err != nil {
			return nil, fmt.Errorf("embed chunks: %w", err)
		}
		if len(vs) != len(texts) {
			return nil, fmt.Errorf("embed chunks: %w: %d vectors for %d texts", ErrBadEmbedding, len(vs), len(texts))
		}
		for i, v := range vs {
			if err := checkVector(v, dim); err != nil {
				return nil, fmt.Errorf("embed chunk %d: %w", start+i, err)
			}
			dim = len(v)
		}
		out = append(out, vs...)
	}
	return out, nil
}

// putChunks writes chunks and their embeddings in txn.
func (s *Store) putChunks(txn *badger.Txn, m *meta, cs []Chunk, vecs [][]float32) ([]string, error) {
	if vecs != nil {
		model := s.emb.Model()
		if m.Model != model || m.Dim != len(vecs[0]) {
			// A new model (or the first embedding) sets the dimension;
			// embeddings of the old model stay until reindexed but are
			// not searched.
			m.Model, m.Dim = model, len(vecs[0])
		}
	}
	ids := make([]string, 0, len(cs))
	for i, c := range cs {
		var old Chunk
		found, err := getJSON(txn, s.k.chunk(c.ID), &old)
		if err != nil {
			return nil, fmt.Errorf("read chunk %s: %w", c.ID, err)
		}
		if found && (old.Source != c.Source || old.Path != c.Path) {
			if err := txn.Delete(s.k.pathOf(old)); err != nil {
				return nil, err
			}
		}
		if vecs != nil {
			c.Model = m.Model
			if err := txn.Set(s.k.embed(c.ID), encodeEmbedding(c.Model, vecs[i])); err != nil {
				return nil, err
			}
		} else if err := txn.Delete(s.k.embed(c.ID)); err != nil {
			return nil, err
		}
		if err := setJSON(txn, s.k.chunk(c.ID), c); err != nil {
			return nil, err
		}
		if err := txn.Set(s.k.pathOf(c), nil); err != nil {
			return nil, err
		}
		ids = append(ids, c.ID)
	}
	return ids, nil
}

// Delete removes chunks by id from Badger and both indexes. It fails with
// ErrNotFound, deleting nothing, if any id is unknown.
func (s *Store) Delete(ctx context.Context, ids ...string) error {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	err := s.write(ctx, func(txn *badger.Txn, _ *meta) ([]string, error) {
		for _, id := range ids {
			if err := s.deleteChunk(txn, id); err != nil {
				return nil, err
			}
		}
		return ids, nil
	})
	if err != nil {
		return fmt.Errorf("delete chunks: %w", err)
	}
	return nil
}

func (s *Store) deleteChunk(txn *badger.Txn, id string) error {
	var c Chunk
	found, err := getJSON(txn, s.k.chunk(id), &c)
	if err != nil {
		return fmt.Errorf("read chunk %s: %w", id, err)
	}
	if !found || !validID(id) {
		return fmt.Errorf("%w: %q", ErrNotFound, id)
	}
	for _, key := range [][]byte{s.k.chunk(id), s.k.embed(id), s.k.pathOf(c)} {
		if err := txn.Delete(key); err != nil {
			return err
		}
	}
	return nil
}

// idsAt lists the ids of chunks with source and path.
func (s *Store) idsAt(txn *badger.Txn, source, path string) []string {
	prefix := []byte(s.k.byPath(source, path))
	it := txn.NewIterator(badger.IteratorOptions{Prefix: prefix})
	defer it.Close()
	var ids []string
	for it.Rewind(); it.Valid(); it.Next() {
		ids = append(ids, string(it.Item().Key()[len(prefix):]))
	}
	return ids
}

// Replace makes chunks the whole content of (source, path): chunks there
// whose id is not among them are deleted, and chunks whose id and text are
// already stored keep their embedding instead of being embedded again.
// Passing no chunks deletes the path.
func (s *Store) Replace(ctx context.Context, source, path string, chunks []Chunk) error {
	now := s.now()
	want := map[string]bool{}
	cs := make([]Chunk, 0, len(chunks))
	for i, c := range chunks {
		c.Source, c.Path = source, path
		if err := c.check(s.cfg.MaxChunkBytes, now); err != nil {
			return fmt.Errorf("replace %s %s chunk %d: %w", source, path, i, err)
		}
		if !want[c.ID] {
			want[c.ID] = true
			cs = append(cs, c)
		}
	}
	// Keep unchanged chunks (same id, text and metadata) as they are.
	var fresh []Chunk
	err := s.db.View(func(txn *badger.Txn) error {
		for _, c := range cs {
			var old Chunk
			found, err := getJSON(txn, s.k.chunk(c.ID), &old)
			if err != nil {
				return err
			}
			if found && old.Text == c.Text && old.Pinned == c.Pinned && old.Time.Equal(c.Time) &&
				strings.Join(old.Tags, ",") == strings.Join(c.Tags, ",") && (s.emb == nil || old.Model == s.emb.Model()) {
				continue
			}
			fresh = append(fresh, c)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("replace %s %s: %w", source, path, err)
	}
	vecs, err := s.embed(ctx, fresh)
	if err != nil {
		return err
	}
	s.wmu.Lock()
	defer s.wmu.Unlock()
	err = s.write(ctx, func(txn *badger.Txn, m *meta) ([]string, error) {
		// Which chunks to drop is decided here, in the writing
		// transaction, so a concurrent write to the path cannot leave
		// strays.
		var stale []string
		for _, id := range s.idsAt(txn, source, path) {
			if !want[id] {
				stale = append(stale, id)
				if err := s.deleteChunk(txn, id); err != nil && !errors.Is(err, ErrNotFound) {
					return nil, err
				}
			}
		}
		ids, err := s.putChunks(txn, m, fresh, vecs)
		return append(ids, stale...), err
	})
	if err != nil {
		return fmt.Errorf("replace %s %s: %w", source, path, err)
	}
	return nil
}

// Get returns one chunk.
func (s *Store) Get(ctx context.Context, id string) (Chunk, error) {
	var c Chunk
	err := s.db.View(func(txn *badger.Txn) error {
		found, err := getJSON(txn, s.k.chunk(id), &c)
		if err == nil && (!found || !validID(id)) {
			err = fmt.Errorf("%w: %q", ErrNotFound, id)
		}
		return err
	})
	if err != nil {
		return Chunk{}, fmt.Errorf("get chunk: %w", err)
	}
	return c, ctx.Err()
}

// ListOptions filters List.
type ListOptions struct {
	Source string // only this source, if set
	Path   string // only this path, if set (with Source)
	Limit  int    // at most this many (0: all)
}

// List returns chunks, newest first.
func (s *Store) List(ctx context.Context, o ListOptions) ([]Chunk, error) {
	var out []Chunk
	err := s.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: s.k.chunks(), PrefetchValues: true, PrefetchSize: 64})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			if err := ctx.Err(); err != nil {
				return err
			}
			var c Chunk
			if err := it.Item().Value(func(b []byte) error { return jsonUnmarshal(b, &c) }); err != nil {
				return fmt.Errorf("decode chunk %q: %w", it.Item().Key(), err)
			}
			if (o.Source != "" && c.Source != o.Source) || (o.Path != "" && c.Path != o.Path) {
				continue
			}
			out = append(out, c)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list chunks: %w", err)
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Time.After(out[j].Time) })
	if o.Limit > 0 && len(out) > o.Limit {
		out = out[:o.Limit]
	}
	return out, nil
}

// Stats describes a store.
type Stats struct {
	Chunks     int
	Embeddings int
	Loaded     bool   // indexes are in memory
	Seq        uint64 // writes so far
}

// Stats counts the store's chunks and embeddings.
func (s *Store) Stats(ctx context.Context) (Stats, error) {
	var st Stats
	err := s.db.View(func(txn *badger.Txn) error {
		var m meta
		if _, err := getJSON(txn, s.k.meta(), &m); err != nil {
			return err
		}
		st.Seq = m.Seq
		st.Chunks = countPrefix(txn, s.k.chunks())
		st.Embeddings = countPrefix(txn, s.k.embeds())
		return ctx.Err()
	})
	s.imu.RLock()
	st.Loaded = s.ix != nil
	s.imu.RUnlock()
	if err != nil {
		return Stats{}, fmt.Errorf("memory stats: %w", err)
	}
	return st, nil
}

func countPrefix(txn *badger.Txn, prefix []byte) int {
	it := txn.NewIterator(badger.IteratorOptions{Prefix: prefix})
	defer it.Close()
	n := 0
	for it.Rewind(); it.Valid(); it.Next() {
		if bytes.HasPrefix(it.Item().Key(), prefix) {
			n++
		}
	}
	return n
}

// Close flushes and closes the indexes. It does not close the database.
func (s *Store) Close() error {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	if s.closed {
		return ErrClosed
	}
	err := s.evictLocked()
	s.closed = true
	s.idleMu.Lock()
	if s.idle != nil {
		s.idle.Stop()
	}
	s.idleMu.Unlock()
	return err
}
