package vectors

import (
	"fmt"
	"math"
	"math/rand/v2"
	"sync"
)

// Limits on what an index accepts; the decoder enforces the same ones.
const (
	MaxDim   = 1 << 16 // largest vector dimension
	MaxIDLen = 4096    // longest id, in bytes
	maxSlots = 1<<31 - 1
	maxLevel = 16 // cap on a node's HNSW level; 16^16 nodes would be needed to reach it by chance
)

// Metric says how two vectors are compared. Scores are larger for closer
// vectors under both.
type Metric uint8

const (
	// Cosine normalises every vector to unit length at insert and every
	// query at search; the score is the cosine similarity in [-1, 1].
	Cosine Metric = iota + 1
	// Dot compares raw vectors by inner product; the score is that product.
	Dot
)

func (m Metric) String() string {
	switch m {
	case Cosine:
		return "cosine"
	case Dot:
		return "dot"
	}
	return fmt.Sprintf("Metric(%d)", uint8(m))
}

// Config sets an index's shape. Dim is required; zero values of the other
// fields take the defaults documented on each.
type Config struct {
	// Dim is the length of every vector.
	Dim int
	// Metric defaults to Cosine.
	Metric Metric
	// ExactThreshold is the number of live vectors at which the index builds
	// its HNSW graph; below it, searches are exact brute force. Default 4096.
	// The Add that crosses the threshold pays for building the graph.
	ExactThreshold int
	// M is the number of links a node keeps per upper layer (2*M on the
	// bottom layer). Default 16.
	M int
	// EfConstruction is the candidate list size while inserting. Default 128.
	EfConstruction int
	// EfSearch is the default candidate list size while searching (at least
	// k is always used). Default 64.
	EfSearch int
	// MaxTombstoneRatio is the share of deleted slots in the graph at which
	// a write compacts the index. Default 0.25; a negative value turns
	// automatic compaction off (Compact still works).
	MaxTombstoneRatio float64
	// Seed seeds the level generator, so that the same inserts in the same
	// order build the same graph. Default 1.
	Seed uint64
}

func (c Config) withDefaults() (Config, error) {
	if c.Dim < 1 || c.Dim > MaxDim {
		return c, fmt.Errorf("%w: dim %d not in [1, %d]", ErrInvalidConfig, c.Dim, MaxDim)
	}
	if c.Metric == 0 {
		c.Metric = Cosine
	}
	if c.Metric != Cosine && c.Metric != Dot {
		return c, fmt.Errorf("%w: unknown metric %d", ErrInvalidConfig, c.Metric)
	}
	if c.ExactThreshold == 0 {
		c.ExactThreshold = 4096
	}
	if c.M == 0 {
		c.M = 16
	}
	if c.EfConstruction == 0 {
		c.EfConstruction = 128
	}
	if c.EfSearch == 0 {
		c.EfSearch = 64
	}
	if c.MaxTombstoneRatio == 0 {
		c.MaxTombstoneRatio = 0.25
	}
	if c.Seed == 0 {
		c.Seed = 1
	}
	switch {
	case c.ExactThreshold < 1 || c.ExactThreshold > maxSlots:
		return c, fmt.Errorf("%w: exact threshold %d not in [1, %d]", ErrInvalidConfig, c.ExactThreshold, maxSlots)
	case c.M < 2 || c.M > 256:
		return c, fmt.Errorf("%w: M %d not in [2, 256]", ErrInvalidConfig, c.M)
	case c.EfConstruction < 1 || c.EfConstruction > 1<<16:
		return c, fmt.Errorf("%w: efConstruction %d not in [1, 65536]", ErrInvalidConfig, c.EfConstruction)
	case c.EfSearch < 1 || c.EfSearch > 1<<16:
		return c, fmt.Errorf("%w: efSearch %d not in [1, 65536]", ErrInvalidConfig, c.EfSearch)
	case math.IsNaN(c.MaxTombstoneRatio) || c.MaxTombstoneRatio > 1:
		return c, fmt.Errorf("%w: tombstone ratio %v > 1", ErrInvalidConfig, c.MaxTombstoneRatio)
	}
	return c, nil
}

// Result is one search hit.
type Result struct {
	ID    string
	Score float32
}

// Stats describes an index at one moment.
type Stats struct {
	Len        int  // live vectors
	Tombstones int  // deleted slots still in the graph, removed by Compact
	Graph      bool // searches use the HNSW graph rather than brute force
	MaxLevel   int  // top layer of the graph
}

// Index is an in-memory vector index: exact search while small, HNSW once it
// holds Config.ExactThreshold vectors. Its methods are safe for concurrent
// use: searches share a read lock, writes take the write lock.
type Index struct {
	// wmu serialises writers (and Save) across all their phases; mu guards
	// the layout against readers. A writer that rebuilds (the graph at the
	// threshold, compaction) holds wmu and builds under mu's read lock, so
	// searches are blocked only while the result is swapped in.
	wmu   sync.Mutex
	mu    sync.RWMutex
	cfg   Config
	vecs  []float32 // slot i is vecs[i*dim : (i+1)*dim]
	ids   []string  // slot → id; "" for a deleted slot
	slots map[string]uint32
	dead  []bool // per slot, graph mode only
	nDead int
	g     *graph // nil in exact mode
	pcg   *rand.PCG
	rng   *rand.Rand
	ws    *scratch // the writer's scratch and level generator: touched only under wmu
	pool  sync.Pool
}

// New returns an empty index.
func New(cfg Config) (*Index, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	ix := &Index{cfg: cfg, slots: make(map[string]uint32)}
	ix.pcg = rand.NewPCG(cfg.Seed, cfg.Seed^0x9e3779b97f4a7c15)
	ix.rng = rand.New(ix.pcg)
	ix.ws = new(scratch)
	return ix, nil
}

// Config returns the index's configuration with defaults filled in.
func (ix *Index) Config() Config { return ix.cfg }

// Len returns the number of live vectors.
func (ix *Index) Len() int {
	ix.mu.RLock()
	defer ix.mu.RUnlock()
	return len(ix.slots)
}

// Stats returns counters describing the index.
func (ix *Index) Stats() Stats {
	ix.mu.RLock()
	defer ix.mu.RUnlock()
	st := Stats{Len: len(ix.slots), Tombstones: ix.nDead, Graph: ix.g != nil}
	if ix.g != nil {
		st.MaxLevel = ix.g.maxLevel
	}
	return st
}

// Contains reports whether id is in the index.
func (ix *Index) Contains(id string) bool {
	ix.mu.RLock()
	defer ix.mu.RUnlock()
	_, ok := ix.slots[id]
	return ok
}

// Add inserts vec under id, which must not be in the index yet.
func (ix *Index) Add(id string, vec []float32) error { return ix.put(id, vec, false) }

// Upsert inserts vec under id, replacing any vector id already has.
func (ix *Index) Upsert(id string, vec []float32) error { return ix.put(id, vec, true) }

// Delete removes id and reports whether it was present. In graph mode the
// slot becomes a tombstone that searches walk through but never return,
// until compaction reconnects its neighbours and drops it.
func (ix *Index) Delete(id string) bool {
	ix.wmu.Lock()
	defer ix.wmu.Unlock()
	ix.mu.Lock()
	slot, ok := ix.slots[id]
	if ok {
		ix.remove(slot)
	}
	ix.mu.Unlock()
	if ok {
		ix.maybeCompact()
	}
	return ok
}

// Compact drops tombstones: every live node that linked to a deleted one is
// relinked from its surviving neighbours and the deleted node's neighbours,
// then slots are renumbered densely. Below the exact threshold the graph is
// dropped instead. Searches continue while it runs, against the old layout;
// other writers wait.
func (ix *Index) Compact() {
	ix.wmu.Lock()
	defer ix.wmu.Unlock()
	ix.compact()
}

// Search returns the k vectors scoring highest against query, best first.
// Fewer than k come back when the index holds fewer.
func (ix *Index) Search(query []float32, k int) ([]Result, error) {
	return ix.search(query, k, 0, false)
}

// SearchEf is Search with a candidate list of ef entries instead of
// Config.EfSearch: larger is slower and finds more of the true neighbours.
func (ix *Index) SearchEf(query []float32, k, ef int) ([]Result, error) {
	if ef < 1 || ef > 1<<16 {
		return nil, fmt.Errorf("%w: ef %d not in [1, 65536]", ErrInvalidConfig, ef)
	}
	return ix.search(query, k, ef, false)
}

// SearchExact scores every live vector: slow, exact, and the reference the
// graph is measured against.
func (ix *Index) SearchExact(query []float32, k int) ([]Result, error) {
	return ix.search(query, k, 0, true)
}

func (ix *Index) search(query []float32, k, ef int, exact bool) ([]Result, error) {
	if k < 1 {
		return nil, fmt.Errorf("%w: got %d", ErrInvalidK, k)
	}
	s := ix.getScratch()
	defer ix.pool.Put(s)
	q, err := ix.prepare(query, s.q[:0])
	s.q = q
	if err != nil {
		return nil, fmt.Errorf("query: %w", err)
	}

	ix.mu.RLock()
	defer ix.mu.RUnlock()
	if len(ix.slots) == 0 {
		return nil, nil
	}
	var hits []cand
	if exact || ix.g == nil {
		hits = ix.bruteForce(s, q, k)
	} else {
		if ef == 0 {
			ef = ix.cfg.EfSearch
		}
		ef = max(ef, k)
		hits = ix.searchGraph(s, q, k, ef)
	}
	out := make([]Result, len(hits))
	for i, h := range hits {
		out[i] = Result{ID: ix.ids[h.id], Score: -h.d}
	}
	return out, nil
}

func (ix *Index) getScratch() *scratch {
	if s, ok := ix.pool.Get().(*scratch); ok {
		return s
	}
	return new(scratch)
}

// bruteForce keeps the k closest live slots in a bounded max-heap.
func (ix *Index) bruteForce(s *scratch, q []float32, k int) []cand {
	dim := ix.cfg.Dim
	s.res.reset()
	for slot := range ix.ids {
		if ix.dead != nil && ix.dead[slot] {
			continue
		}
		d := -dot(q, ix.vecs[slot*dim:])
		if s.res.len() < k {
			s.res.push(cand{d, uint32(slot)})
		} else if d < s.res.worst() {
			s.res.replaceWorst(cand{d, uint32(slot)})
		}
	}
	s.out = s.res.drainSorted(s.out[:0])
	return s.out
}

// checkID validates an id.
func checkID(id string) error {
	if id == "" {
		return ErrEmptyID
	}
	if len(id) > MaxIDLen {
		return fmt.Errorf("%w: %d bytes > %d", ErrIDTooLong, len(id), MaxIDLen)
	}
	return nil
}

// check validates vec and returns its Euclidean norm.
func (ix *Index) check(vec []float32) (float64, error) {
	if len(vec) != ix.cfg.Dim {
		return 0, fmt.Errorf("%w: got %d, index has %d", ErrDimension, len(vec), ix.cfg.Dim)
	}
	for i, x := range vec {
		if x-x != 0 { // NaN and ±Inf are the only values for which this holds
			return 0, fmt.Errorf("%w: component %d is %v", ErrNonFinite, i, x)
		}
	}
	n := norm(vec)
	if n == 0 {
		return 0, ErrZeroVector
	}
	if ix.cfg.Metric == Dot && n > 1e15 {
		return 0, fmt.Errorf("%w: norm %g would overflow float32 inner products", ErrNonFinite, n)
	}
	return n, nil
}

// store appends the form the index keeps of a checked vector of norm n to
// dst: unit length under Cosine, a copy under Dot.
func (ix *Index) store(dst, vec []float32, n float64) []float32 {
	if ix.cfg.Metric == Dot {
		return append(dst, vec...)
	}
	inv := 1 / n
	for _, x := range vec {
		dst = append(dst, float32(float64(x)*inv))
	}
	return dst
}

// prepare is check then store.
func (ix *Index) prepare(vec []float32, dst []float32) ([]float32, error) {
	n, err := ix.check(vec)
	if err != nil {
		return dst, err
	}
	return ix.store(dst, vec, n), nil
}

func (ix *Index) put(id string, vec []float32, upsert bool) error {
	if err := checkID(id); err != nil {
		return err
	}
	n, err := ix.check(vec)
	if err != nil {
		return fmt.Errorf("vector %q: %w", id, err)
	}
	ix.wmu.Lock()
	defer ix.wmu.Unlock()
	ix.mu.Lock()
	build, err := ix.putLocked(id, vec, n, upsert)
	ix.mu.Unlock()
	if err != nil {
		return err
	}
	if build {
		ix.buildGraph()
	}
	ix.maybeCompact()
	return nil
}

// putLocked stores vec under both locks and reports whether the index has
// reached the threshold and needs its graph built.
func (ix *Index) putLocked(id string, vec []float32, n float64, upsert bool) (bool, error) {
	if slot, ok := ix.slots[id]; ok {
		if !upsert {
			return false, fmt.Errorf("%w: %q", ErrDuplicateID, id)
		}
		if ix.g == nil { // exact mode: overwrite in place
			off := int(slot) * ix.cfg.Dim
			// A zero-length slice with capacity Dim: store's appends land
			// exactly on the slot.
			ix.store(ix.vecs[off:off:off+ix.cfg.Dim], vec, n)
			return false, nil
		}
		ix.remove(slot)
	}
	if len(ix.ids) >= maxSlots {
		return false, ErrFull
	}
	ix.vecs = ix.store(ix.vecs, vec, n)
	slot := uint32(len(ix.ids))
	ix.ids = append(ix.ids, id)
	ix.slots[id] = slot
	if ix.g != nil {
		ix.dead = append(ix.dead, false)
		ix.insert(ix.g, slot)
		return false, nil
	}
	return len(ix.slots) >= ix.cfg.ExactThreshold, nil
}

// remove deletes a slot: swap-remove in exact mode, a tombstone in graph
// mode. The caller holds both locks.
func (ix *Index) remove(slot uint32) {
	id := ix.ids[slot]
	delete(ix.slots, id)
	if ix.g != nil {
		ix.dead[slot] = true
		ix.ids[slot] = ""
		ix.nDead++
		return
	}
	dim := ix.cfg.Dim
	last := uint32(len(ix.ids) - 1)
	if slot != last {
		copy(ix.vecs[int(slot)*dim:int(slot+1)*dim], ix.vecs[int(last)*dim:])
		ix.ids[slot] = ix.ids[last]
		ix.slots[ix.ids[slot]] = slot
	}
	ix.ids[last] = ""
	ix.ids = ix.ids[:last]
	ix.vecs = ix.vecs[:int(last)*dim]
}

// maybeCompact compacts when tombstones pass the ratio. The caller holds
// wmu, which is enough to read the counters: only writers change them.
func (ix *Index) maybeCompact() {
	r := ix.cfg.MaxTombstoneRatio
	if ix.g == nil || r < 0 || ix.nDead < 64 {
		return
	}
	if float64(ix.nDead) > r*float64(len(ix.ids)) {
		ix.compact()
	}
}

func (ix *Index) vec(slot uint32) []float32 {
	d := ix.cfg.Dim
	return ix.vecs[int(slot)*d : int(slot+1)*d : int(slot+1)*d]
}

// dist is the distance the graph orders by: the negated score.
func (ix *Index) dist(q []float32, slot uint32) float32 {
	return -dot(q, ix.vecs[int(slot)*ix.cfg.Dim:])
}
