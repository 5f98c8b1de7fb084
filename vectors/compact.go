package vectors

// testHookRebuilt, when set by a test, runs while a rebuild (compaction or
// the threshold graph build) still holds the read lock, before the swap.
var testHookRebuilt func()

// layout is everything compaction replaces, built aside and swapped in.
type layout struct {
	g     *graph
	vecs  []float32
	ids   []string
	slots map[string]uint32
	dead  []bool
}

// compact removes tombstones. The caller holds the writer mutex and not
// ix.mu: the compacted layout is built under the read lock, while searches
// go on against the old one, and swapped in under the write lock.
//
// Each live node with a deleted neighbour at some level gets a new link
// list, chosen with the same heuristic as at insert from its live neighbours
// plus the live nodes within two deleted hops (the deleted neighbour's own
// links, and theirs if those are deleted too). Live slots are renumbered
// densely. Below the exact threshold the graph is dropped instead.
func (ix *Index) compact() {
	if ix.g == nil || ix.nDead == 0 {
		return
	}
	ix.mu.RLock()
	var next layout
	if len(ix.slots) < ix.cfg.ExactThreshold {
		next = ix.withoutGraph()
	} else {
		next = ix.repaired()
	}
	if testHookRebuilt != nil {
		testHookRebuilt()
	}
	ix.mu.RUnlock()
	ix.mu.Lock()
	ix.g, ix.vecs, ix.ids, ix.slots, ix.dead = next.g, next.vecs, next.ids, next.slots, next.dead
	ix.nDead = 0
	ix.mu.Unlock()
}

// liveSlots copies the live slots' vectors and ids densely and returns them
// with the old-to-new slot map (noEntry for dead slots).
func (ix *Index) liveSlots() (layout, []uint32) {
	n := len(ix.slots)
	out := layout{
		vecs:  make([]float32, 0, n*ix.cfg.Dim),
		ids:   make([]string, 0, n),
		slots: make(map[string]uint32, n),
	}
	newID := make([]uint32, len(ix.ids))
	for old := range uint32(len(ix.ids)) {
		if ix.dead[old] {
			newID[old] = noEntry
			continue
		}
		newID[old] = uint32(len(out.ids))
		out.slots[ix.ids[old]] = newID[old]
		out.ids = append(out.ids, ix.ids[old])
		out.vecs = append(out.vecs, ix.vec(old)...)
	}
	return out, newID
}

// withoutGraph is the exact-mode layout of the live slots.
func (ix *Index) withoutGraph() layout {
	out, _ := ix.liveSlots()
	return out
}

// repaired is the graph-mode layout of the live slots with every link to a
// tombstone replaced. It only reads the current layout.
func (ix *Index) repaired() layout {
	g := ix.g
	s := ix.ws
	out, newID := ix.liveSlots()
	ng := newGraph(ix.cfg, len(out.ids))
	out.g = ng
	out.dead = make([]bool, len(out.ids))

	// Keep a live entry point; otherwise promote a live node of the highest
	// remaining level.
	entry, entryLevel := uint32(noEntry), -1
	for old := range uint32(len(ix.ids)) {
		if newID[old] == noEntry {
			continue
		}
		lv := int(g.levels[old])
		ng.addSlot(lv)
		if lv > entryLevel {
			entry, entryLevel = newID[old], lv
		}
	}
	if !ix.dead[g.entry] {
		entry, entryLevel = newID[g.entry], int(g.levels[g.entry])
	}
	ng.entry, ng.maxLevel = entry, entryLevel

	var frontier, next, mapped []uint32
	for old := range uint32(len(ix.ids)) {
		nu := newID[old]
		if nu == noEntry {
			continue
		}
		uv := ix.vec(old)
		for l := 0; l <= int(g.levels[old]); l++ {
			links := g.neighbors(old, l)
			hasDead := false
			for _, x := range links {
				if ix.dead[x] {
					hasDead = true
					break
				}
			}
			if hasDead {
				s.startVisit(len(ix.ids))
				s.visit(old)
				frontier = frontier[:0]
				// Candidates: live neighbours and the live nodes within
				// two dead hops. Their vectors are prefetched and scored
				// in one pass.
				s.batch = s.batch[:0]
				for _, x := range links {
					s.visit(x)
					if ix.dead[x] {
						frontier = append(frontier, x)
					} else {
						s.batch = append(s.batch, x)
						prefetch(ix.vec(x))
					}
				}
				for hop := 0; hop < 2 && len(frontier) > 0; hop++ {
					next = next[:0]
					for _, d := range frontier {
						for _, y := range g.neighbors(d, l) {
							if s.visit(y) {
								continue
							}
							if ix.dead[y] {
								next = append(next, y)
							} else {
								s.batch = append(s.batch, y)
								prefetch(ix.vec(y))
							}
						}
					}
					frontier, next = next, frontier
				}
				s.tmp = s.tmp[:0]
				for _, y := range s.batch {
					s.tmp = append(s.tmp, cand{ix.dist(uv, y), y})
				}
				sortCands(s.tmp)
				s.sel = ix.selectHeuristic(s.tmp, g.mmax(l), s.sel[:0])
				links = s.sel
			}
			mapped = mapped[:0]
			for _, x := range links {
				if y := newID[x]; y != noEntry {
					mapped = append(mapped, y)
				}
			}
			ng.setNeighbors(nu, l, mapped)
		}
	}
	return out
}
