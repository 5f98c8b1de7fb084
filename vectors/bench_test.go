package vectors

import (
	"fmt"
	"sync"
	"testing"

	"github.com/bulkhead-dev/bulkhead/vectors/internal/synth"
)

// The full comparison with coder/hnsw and the 100k x 384 run live in
// internal/vbench (make bench-vectors). These benchmarks are the small,
// benchstat-friendly side: graph against brute force in the same run.

var benchData = sync.OnceValues(buildBenchIndex)

// insertData is a separate index, so inserting does not change what the
// search benchmark measures.
var insertData = sync.OnceValues(buildBenchIndex)

func buildBenchIndex() (*Index, [][]float32) {
	gen := synth.New(synth.Spec{Dim: 128, Seed: 3})
	ix, err := New(Config{Dim: 128})
	if err != nil {
		panic(err)
	}
	for i, v := range gen.Draw(20000, 1) {
		if err := ix.Add(fmt.Sprint(i), v); err != nil {
			panic(err)
		}
	}
	return ix, gen.Draw(256, 2)
}

func BenchmarkSearch20kx128(b *testing.B) {
	ix, queries := benchData()
	for _, mode := range []string{"graph", "brute"} {
		b.Run(mode, func(b *testing.B) {
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				q := queries[i%len(queries)]
				i++
				var err error
				if mode == "graph" {
					_, err = ix.Search(q, 10)
				} else {
					_, err = ix.SearchExact(q, 10)
				}
				if err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkInsert20kx128(b *testing.B) {
	ix, _ := insertData()
	gen := synth.New(synth.Spec{Dim: 128, Seed: 3})
	extra := gen.Draw(4096, 9)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		// Upsert over a fixed id set keeps the index near 20k slots; the
		// tombstones it leaves are compacted as the ratio is passed.
		if err := ix.Upsert(fmt.Sprint("extra", i%4096), extra[i%4096]); err != nil {
			b.Fatal(err)
		}
		i++
	}
}
