package vectors

// cand is a node with its distance to the current query; smaller is closer.
type cand struct {
	d  float32
	id uint32
}

// minHeap pops the closest candidate first. The heap is written out rather
// than built on container/heap so that pushing does not box values into
// interfaces: the search loops run it millions of times.
type minHeap []cand

func (h *minHeap) push(c cand) {
	s := append(*h, c)
	i := len(s) - 1
	for i > 0 {
		p := (i - 1) / 2
		if s[p].d <= s[i].d {
			break
		}
		s[p], s[i] = s[i], s[p]
		i = p
	}
	*h = s
}

func (h *minHeap) pop() cand {
	s := *h
	top := s[0]
	last := len(s) - 1
	s[0] = s[last]
	*h = s[:last]
	h.down()
	return top
}

// down restores the heap after its root was replaced.
func (h *minHeap) down() {
	s := *h
	i := 0
	for {
		l := 2*i + 1
		if l >= len(s) {
			return
		}
		m := l
		if r := l + 1; r < len(s) && s[r].d < s[l].d {
			m = r
		}
		if s[i].d <= s[m].d {
			return
		}
		s[i], s[m] = s[m], s[i]
		i = m
	}
}

// maxHeap keeps the farthest candidate on top, so a bounded result set can
// drop its worst member in O(log n). It is a minHeap of negated distances.
type maxHeap struct{ h minHeap }

func (m *maxHeap) len() int       { return len(m.h) }
func (m *maxHeap) reset()         { m.h = m.h[:0] }
func (m *maxHeap) worst() float32 { return -m.h[0].d }
func (m *maxHeap) push(c cand)    { m.h.push(cand{-c.d, c.id}) }

func (m *maxHeap) pop() cand {
	c := m.h.pop()
	return cand{-c.d, c.id}
}

// replaceWorst swaps the farthest member for c.
func (m *maxHeap) replaceWorst(c cand) {
	m.h[0] = cand{-c.d, c.id}
	m.h.down()
}

// drainSorted empties the heap into dst in ascending distance order.
func (m *maxHeap) drainSorted(dst []cand) []cand {
	n := m.len()
	start := len(dst)
	for range n {
		dst = append(dst, cand{})
	}
	for i := n - 1; i >= 0; i-- {
		dst[start+i] = m.pop()
	}
	return dst
}
