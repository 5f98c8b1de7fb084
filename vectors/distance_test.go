package vectors

import (
	"math"
	"math/rand/v2"
	"testing"
)

func TestDotMatchesReference(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(1, 2))
	for _, n := range []int{1, 7, 8, 15, 16, 17, 31, 32, 33, 63, 100, 384, 385, 1536} {
		a := make([]float32, n)
		b := make([]float32, n+3) // longer b: only b[:len(a)] may be read
		for i := range a {
			a[i] = rng.Float32()*2 - 1
		}
		for i := range b {
			b[i] = rng.Float32()*2 - 1
		}
		var want float64
		for i := range a {
			want += float64(a[i]) * float64(b[i])
		}
		for name, fn := range map[string]func(a, b []float32) float32{"dot": dot, "generic": dotGeneric} {
			got := fn(a, b)
			if math.Abs(float64(got)-want) > 1e-4*math.Max(1, math.Abs(want)) {
				t.Errorf("%s n=%d: got %v want %v", name, n, got, want)
			}
		}
	}
}

func BenchmarkDot384(b *testing.B) {
	rng := rand.New(rand.NewPCG(1, 2))
	x := make([]float32, 384)
	y := make([]float32, 384)
	for i := range x {
		x[i], y[i] = rng.Float32(), rng.Float32()
	}
	var s float32
	b.Run("dispatch", func(b *testing.B) {
		for b.Loop() {
			s += dot(x, y)
		}
	})
	b.Run("generic", func(b *testing.B) {
		for b.Loop() {
			s += dotGeneric(x, y)
		}
	})
	_ = s
}
