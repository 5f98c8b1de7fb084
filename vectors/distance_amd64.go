package vectors

import "golang.org/x/sys/cpu"

// useAVX2 selects the assembly kernel. Both AVX2 and FMA are required; the
// operating system's support for the YMM state is part of what x/sys/cpu
// checks before reporting AVX2.
var useAVX2 = cpu.X86.HasAVX2 && cpu.X86.HasFMA

//go:noescape
func dotAVX2(a, b *float32, n int) float32

// dot returns the inner product of a and b[:len(a)].
func dot(a, b []float32) float32 {
	if useAVX2 && len(a) >= 16 {
		_ = b[len(a)-1]
		return dotAVX2(&a[0], &b[0], len(a))
	}
	return dotGeneric(a, b)
}

//go:noescape
func prefetchRange(p *float32, n int)

// prefetch hints v into the cache ahead of its use by dot: the graph walk
// reads vectors at random addresses, and starting every neighbour's loads
// before the first distance is computed overlaps their memory latency.
func prefetch(v []float32) {
	if len(v) > 0 {
		prefetchRange(&v[0], 4*len(v))
	}
}
