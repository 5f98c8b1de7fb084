//go:build !amd64

package vectors

// dot returns the inner product of a and b[:len(a)].
func dot(a, b []float32) float32 { return dotGeneric(a, b) }

// prefetch is a no-op where there is no assembly for it.
func prefetch(v []float32) {}
