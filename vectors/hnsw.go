package vectors

import (
	"math"
	"slices"
)

// This file is the HNSW graph of Malkov & Yashunin, "Efficient and robust
// approximate nearest neighbor search using Hierarchical Navigable Small
// World graphs" (2016/2018): a node's level is drawn from an exponential
// distribution (Algorithm 1), upper layers are descended greedily and each
// layer from the node's level down is searched with a candidate list
// (Algorithm 2), and links are chosen by the diversity heuristic
// (Algorithm 4, without extending candidates or keeping pruned ones).

const noEntry = math.MaxUint32

// graph holds the links. Layer 0 lives in one flat slab, one fixed-size
// record per slot ([count, link, link, ...], m0+1 words), so a search walks
// contiguous memory and inserts do not allocate per node. Upper layers, which
// only about 1/M of the nodes have, are a slab per node laid out the same way
// with m+1 words per level.
type graph struct {
	m, m0    int
	efC      int
	ml       float64
	levels   []uint8
	links0   []uint32
	upper    [][]uint32
	entry    uint32
	maxLevel int
}

func newGraph(cfg Config, capacity int) *graph {
	return &graph{
		m:      cfg.M,
		m0:     2 * cfg.M,
		efC:    cfg.EfConstruction,
		ml:     1 / math.Log(float64(cfg.M)),
		levels: make([]uint8, 0, capacity),
		links0: make([]uint32, 0, capacity*(2*cfg.M+1)),
		upper:  make([][]uint32, 0, capacity),
		entry:  noEntry,
	}
}

func (g *graph) mmax(level int) int {
	if level == 0 {
		return g.m0
	}
	return g.m
}

// record returns the [count, links...] words of slot at level.
func (g *graph) record(slot uint32, level int) []uint32 {
	if level == 0 {
		base := int(slot) * (g.m0 + 1)
		return g.links0[base : base+g.m0+1 : base+g.m0+1]
	}
	base := (level - 1) * (g.m + 1)
	return g.upper[slot][base : base+g.m+1 : base+g.m+1]
}

func (g *graph) neighbors(slot uint32, level int) []uint32 {
	r := g.record(slot, level)
	return r[1 : 1+r[0]]
}

func (g *graph) setNeighbors(slot uint32, level int, links []uint32) {
	r := g.record(slot, level)
	r[0] = uint32(copy(r[1:], links))
}

// addSlot appends an unlinked slot of the given level.
func (g *graph) addSlot(level int) {
	g.levels = append(g.levels, uint8(level))
	g.links0 = append(g.links0, make([]uint32, g.m0+1)...)
	var up []uint32
	if level > 0 {
		up = make([]uint32, level*(g.m+1))
	}
	g.upper = append(g.upper, up)
}

// scratch is per-search working memory, pooled so that a search allocates
// only its result slice.
type scratch struct {
	visited []uint32 // visited[slot] == epoch marks slot as seen
	epoch   uint32
	cands   minHeap
	res     maxHeap
	out     []cand
	eps     []cand
	tmp     []cand
	sel     []uint32
	sel2    []uint32
	batch   []uint32
	q       []float32
}

// startVisit begins a new visited set over n slots in O(1), except when the
// epoch counter wraps or the index has grown.
func (s *scratch) startVisit(n int) {
	if len(s.visited) < n {
		s.visited = make([]uint32, n+n/4)
		s.epoch = 0
	}
	s.epoch++
	if s.epoch == 0 {
		clear(s.visited)
		s.epoch = 1
	}
}

// visit marks slot and reports whether it was already marked.
func (s *scratch) visit(slot uint32) bool {
	if s.visited[slot] == s.epoch {
		return true
	}
	s.visited[slot] = s.epoch
	return false
}

func (ix *Index) randomLevel(g *graph) int {
	u := ix.rng.Float64() // [0, 1)
	l := int(-math.Log(1-u) * g.ml)
	return min(l, maxLevel)
}

// isDead reports whether slot is a tombstone. An index in exact mode, or one
// whose graph is being built, has no dead slice and no tombstones.
func (ix *Index) isDead(slot uint32) bool {
	return ix.dead != nil && ix.dead[slot]
}

// buildGraph switches an exact-mode index to graph mode. The caller holds
// the writer mutex and not ix.mu: the graph is built under the read lock,
// reading the slots while searches go on by brute force, and swapped in
// under the write lock.
func (ix *Index) buildGraph() {
	ix.mu.RLock()
	n := len(ix.ids)
	g := newGraph(ix.cfg, n+n/4)
	for slot := range n {
		ix.insert(g, uint32(slot))
	}
	if testHookRebuilt != nil {
		testHookRebuilt()
	}
	ix.mu.RUnlock()
	dead := make([]bool, n, n+n/4)
	ix.mu.Lock()
	ix.g, ix.dead, ix.nDead = g, dead, 0
	ix.mu.Unlock()
}

// greedy descends one layer: move to the closest neighbour until none is
// closer (the ef = 1 case of searchLayer, without the heaps).
func (ix *Index) greedy(g *graph, q []float32, ep uint32, epd float32, level int) (uint32, float32) {
	for changed := true; changed; {
		changed = false
		for _, x := range g.neighbors(ep, level) {
			if d := ix.dist(q, x); d < epd {
				ep, epd, changed = x, d, true
			}
		}
	}
	return ep, epd
}

// searchLayer is Algorithm 2: a best-first walk of one layer from eps that
// keeps the ef closest nodes found. Tombstones are walked through but, when
// skipDead is set, never enter the result. The result is s.out, sorted
// closest first.
func (ix *Index) searchLayer(g *graph, s *scratch, q []float32, eps []cand, ef, level int, skipDead bool) []cand {
	s.startVisit(len(ix.ids))
	s.cands = s.cands[:0]
	s.res.reset()
	for _, e := range eps {
		if s.visit(e.id) {
			continue
		}
		s.cands.push(e)
		if !skipDead || !ix.isDead(e.id) {
			s.res.push(e)
			if s.res.len() > ef {
				s.res.pop()
			}
		}
	}
	for len(s.cands) > 0 {
		c := s.cands.pop()
		if s.res.len() >= ef && c.d > s.res.worst() {
			break
		}
		// Mark and prefetch all new neighbours first, then score them.
		s.batch = s.batch[:0]
		for _, x := range g.neighbors(c.id, level) {
			if !s.visit(x) {
				s.batch = append(s.batch, x)
				prefetch(ix.vec(x))
			}
		}
		for _, x := range s.batch {
			d := ix.dist(q, x)
			if s.res.len() < ef || d < s.res.worst() {
				s.cands.push(cand{d, x})
				if !skipDead || !ix.isDead(x) {
					s.res.push(cand{d, x})
					if s.res.len() > ef {
						s.res.pop()
					}
				}
			}
		}
	}
	s.out = s.res.drainSorted(s.out[:0])
	return s.out
}

// searchGraph answers a query in graph mode.
func (ix *Index) searchGraph(s *scratch, q []float32, k, ef int) []cand {
	g := ix.g
	ep := g.entry
	epd := ix.dist(q, ep)
	for l := g.maxLevel; l > 0; l-- {
		ep, epd = ix.greedy(g, q, ep, epd, l)
	}
	s.eps = append(s.eps[:0], cand{epd, ep})
	out := ix.searchLayer(g, s, q, s.eps, ef, 0, true)
	if len(out) > k {
		out = out[:k]
	}
	return out
}

// insert links into g a slot whose vector is already stored (Algorithm 1).
// It uses the writer's scratch and level generator: the caller holds the
// writer mutex.
func (ix *Index) insert(g *graph, slot uint32) {
	s := ix.ws
	level := ix.randomLevel(g)
	g.addSlot(level)
	if g.entry == noEntry {
		g.entry, g.maxLevel = slot, level
		return
	}
	q := ix.vec(slot)
	ep := g.entry
	epd := ix.dist(q, ep)
	for l := g.maxLevel; l > level; l-- {
		ep, epd = ix.greedy(g, q, ep, epd, l)
	}
	s.eps = append(s.eps[:0], cand{epd, ep})
	for l := min(level, g.maxLevel); l >= 0; l-- {
		w := ix.searchLayer(g, s, q, s.eps, g.efC, l, true)
		if len(w) == 0 { // every node reached is a tombstone: link to them anyway
			w = ix.searchLayer(g, s, q, s.eps, g.efC, l, false)
		}
		s.sel = ix.selectHeuristic(w, g.m, s.sel[:0])
		g.setNeighbors(slot, l, s.sel)
		for _, e := range s.sel {
			ix.link(g, e, slot, l)
		}
		s.eps = append(s.eps[:0], w...)
	}
	if level > g.maxLevel {
		g.entry, g.maxLevel = slot, level
	}
}

// selectHeuristic is Algorithm 4: walk the candidates (sorted closest to the
// base first) and keep one only if it is closer to the base than to every
// candidate already kept, up to m. This keeps links pointing in different
// directions, which is what lets the graph cross between clusters.
func (ix *Index) selectHeuristic(cs []cand, m int, out []uint32) []uint32 {
	for _, c := range cs {
		if len(out) >= m {
			break
		}
		cv := ix.vec(c.id)
		keep := true
		for _, r := range out {
			if ix.dist(cv, r) < c.d {
				keep = false
				break
			}
		}
		if keep {
			out = append(out, c.id)
		}
	}
	return out
}

// link adds a back link from e to slot at level, re-selecting e's links with
// the heuristic when its list is full. Tombstones are dropped from the list
// when it is re-selected.
func (ix *Index) link(g *graph, e, slot uint32, level int) {
	r := g.record(e, level)
	n := int(r[0])
	if n < g.mmax(level) {
		r[1+n] = slot
		r[0]++
		return
	}
	s := ix.ws
	ev := ix.vec(e)
	s.tmp = s.tmp[:0]
	for _, x := range r[1 : 1+n] {
		if !ix.isDead(x) {
			s.tmp = append(s.tmp, cand{ix.dist(ev, x), x})
		}
	}
	s.tmp = append(s.tmp, cand{ix.dist(ev, slot), slot})
	sortCands(s.tmp)
	s.sel2 = ix.selectHeuristic(s.tmp, g.mmax(level), s.sel2[:0])
	g.setNeighbors(e, level, s.sel2)
}

func sortCands(cs []cand) {
	slices.SortFunc(cs, func(a, b cand) int {
		switch {
		case a.d < b.d:
			return -1
		case a.d > b.d:
			return 1
		}
		return int(a.id) - int(b.id)
	})
}
