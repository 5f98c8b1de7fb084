// Package synth makes deterministic clustered vectors for the vectors
// package's recall suite and benchmark.
//
// The model is a mixture of Gaussians in a low-dimensional latent space,
// mapped into the full dimension by one fixed random linear map, plus a
// little isotropic noise. Text embeddings look like that more than like
// uniform noise: they cluster by topic and their variance sits in far fewer
// directions than they have coordinates. Isotropic Gaussian clusters in 384
// dimensions would make every point nearly equidistant from its cluster mates,
// a case no approximate index (nor a real embedding model) meets.
package synth

import (
	"math"
	"math/rand/v2"
)

// Spec describes a data set. The same Spec always yields the same vectors.
type Spec struct {
	Dim      int     // output dimension
	Latent   int     // latent dimension (default 64)
	Clusters int     // mixture components (default 64)
	Spread   float64 // within-cluster standard deviation in latent space, relative to the centres' (default 0.5)
	Noise    float64 // isotropic noise standard deviation in output space (default 0.1)
	Seed     uint64
}

func (s Spec) norm() Spec {
	if s.Latent == 0 {
		s.Latent = 64
	}
	if s.Clusters == 0 {
		s.Clusters = 64
	}
	if s.Spread == 0 {
		s.Spread = 0.5
	}
	if s.Noise == 0 {
		s.Noise = 0.1
	}
	return s
}

// Generator draws vectors from one Spec.
type Generator struct {
	spec    Spec
	mix     []float64 // Dim x Latent, row-major
	centres [][]float64
}

// New builds the mixing map and cluster centres of spec.
func New(spec Spec) *Generator {
	spec = spec.norm()
	rng := rand.New(rand.NewPCG(spec.Seed, 0x5eed))
	g := &Generator{spec: spec, mix: make([]float64, spec.Dim*spec.Latent)}
	scale := 1 / math.Sqrt(float64(spec.Latent))
	for i := range g.mix {
		g.mix[i] = rng.NormFloat64() * scale
	}
	for range spec.Clusters {
		c := make([]float64, spec.Latent)
		for j := range c {
			c[j] = rng.NormFloat64()
		}
		g.centres = append(g.centres, c)
	}
	return g
}

// Spec returns the generator's Spec with defaults filled in.
func (g *Generator) Spec() Spec { return g.spec }

// Draw returns n vectors from the stream named by stream: use different
// streams for the data and the queries so queries are new points from the
// same distribution.
func (g *Generator) Draw(n int, stream uint64) [][]float32 {
	s := g.spec
	rng := rand.New(rand.NewPCG(s.Seed^0xda7a, stream))
	z := make([]float64, s.Latent)
	out := make([][]float32, n)
	flat := make([]float32, n*s.Dim)
	for i := range out {
		c := g.centres[rng.IntN(len(g.centres))]
		for j := range z {
			z[j] = c[j] + s.Spread*rng.NormFloat64()
		}
		v := flat[i*s.Dim : (i+1)*s.Dim : (i+1)*s.Dim]
		for d := range v {
			row := g.mix[d*s.Latent : (d+1)*s.Latent]
			var x float64
			for j, w := range row {
				x += w * z[j]
			}
			v[d] = float32(x + s.Noise*rng.NormFloat64())
		}
		out[i] = v
	}
	return out
}
