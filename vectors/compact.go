package vectors

// compact removes tombstones. The caller holds the write lock.
//
// Repair comes first: every live node with a deleted neighbour at some level
// gets a new link list, chosen with the same heuristic as at insert from its
// live neighbours plus the live nodes within two deleted hops (the deleted
// neighbour's own links, and theirs if those are deleted too). Deleted
// nodes' lists are only read, never written, so the order nodes are repaired
// in does not matter. Then live slots are renumbered densely.
func (ix *Index) compact() {
	if ix.g == nil || ix.nDead == 0 {
		return
	}
	if len(ix.slots) < ix.cfg.ExactThreshold {
		ix.dropGraph()
		return
	}
	ix.repair()
	ix.renumber()
}

func (ix *Index) repair() {
	g := ix.g
	s := ix.ws
	var frontier, next []uint32
	for u := range uint32(len(ix.ids)) {
		if ix.dead[u] {
			continue
		}
		uv := ix.vec(u)
		for l := 0; l <= int(g.levels[u]); l++ {
			links := g.neighbors(u, l)
			hasDead := false
			for _, x := range links {
				if ix.dead[x] {
					hasDead = true
					break
				}
			}
			if !hasDead {
				continue
			}
			s.startVisit(len(ix.ids))
			s.visit(u)
			s.tmp = s.tmp[:0]
			frontier = frontier[:0]
			for _, x := range links {
				s.visit(x)
				if ix.dead[x] {
					frontier = append(frontier, x)
				} else {
					s.tmp = append(s.tmp, cand{ix.dist(uv, x), x})
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
							s.tmp = append(s.tmp, cand{ix.dist(uv, y), y})
						}
					}
				}
				frontier, next = next, frontier
			}
			sortCands(s.tmp)
			s.sel = ix.selectHeuristic(s.tmp, g.mmax(l), s.sel[:0])
			g.setNeighbors(u, l, s.sel)
		}
	}
}

// renumber drops dead slots and rewrites every link through the new
// numbering. After repair no live list names a dead slot; a link that still
// would is dropped rather than trusted.
func (ix *Index) renumber() {
	g := ix.g
	dim := ix.cfg.Dim
	n := len(ix.slots)
	newID := make([]uint32, len(ix.ids))
	ng := newGraph(ix.cfg, n)
	vecs := make([]float32, 0, n*dim)
	ids := make([]string, 0, n)
	// Keep a live entry point; otherwise promote a live node of the highest
	// remaining level.
	keepEntry := !ix.dead[g.entry]
	var entry uint32 = noEntry
	entryLevel := -1
	next := uint32(0)
	for old := range uint32(len(ix.ids)) {
		if ix.dead[old] {
			newID[old] = noEntry
			continue
		}
		newID[old] = next
		lv := int(g.levels[old])
		if !keepEntry && lv > entryLevel {
			entry, entryLevel = next, lv
		}
		vecs = append(vecs, ix.vec(old)...)
		ids = append(ids, ix.ids[old])
		ng.addSlot(lv)
		next++
	}
	if keepEntry {
		entry, entryLevel = newID[g.entry], int(g.levels[g.entry])
	}
	var buf []uint32
	for old := range uint32(len(ix.ids)) {
		nu := newID[old]
		if nu == noEntry {
			continue
		}
		for l := 0; l <= int(g.levels[old]); l++ {
			buf = buf[:0]
			for _, x := range g.neighbors(old, l) {
				if y := newID[x]; y != noEntry {
					buf = append(buf, y)
				}
			}
			ng.setNeighbors(nu, l, buf)
		}
	}
	ng.entry, ng.maxLevel = entry, entryLevel
	ix.g = ng
	ix.vecs = vecs
	ix.ids = ids
	ix.dead = make([]bool, n)
	ix.nDead = 0
	for i, id := range ids {
		ix.slots[id] = uint32(i)
	}
}

// dropGraph returns to exact mode, keeping only live slots.
func (ix *Index) dropGraph() {
	dim := ix.cfg.Dim
	n := len(ix.slots)
	vecs := make([]float32, 0, n*dim)
	ids := make([]string, 0, n)
	for old := range uint32(len(ix.ids)) {
		if ix.dead[old] {
			continue
		}
		vecs = append(vecs, ix.vec(old)...)
		ids = append(ids, ix.ids[old])
	}
	ix.g, ix.dead, ix.nDead = nil, nil, 0
	ix.vecs, ix.ids = vecs, ids
	for i, id := range ids {
		ix.slots[id] = uint32(i)
	}
}
