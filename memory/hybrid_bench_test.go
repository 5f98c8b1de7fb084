package memory_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/bulkhead-dev/bulkhead/memory"
)

func heapMiB() float64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return float64(m.HeapAlloc) / (1 << 20)
}

// BenchmarkHybrid100k reports hybrid search latency (p50, p99) over 100,000
// chunks of synthetic text with a deterministic 384-d fake embedder, the
// keyword-only latency in the same run, the cold load time, and the Go heap
// with the indexes loaded and after eviction.
func BenchmarkHybrid100k(b *testing.B) {
	const dim, queries = 384, 300
	n := 100_000
	if v, err := strconv.Atoi(os.Getenv("MEMORY_BENCH_CHUNKS")); err == nil && v > 0 {
		n = v // for profiling at a smaller size
	}
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(7, 7))
	vocab := make([]string, 5000)
	for i := range vocab {
		vocab[i] = fmt.Sprintf("w%04dx", i)
	}
	zipf := func() string { return vocab[int(float64(len(vocab))*rng.Float64()*rng.Float64())] }
	sentence := func(words int) string {
		ws := make([]string, words)
		for i := range ws {
			ws[i] = zipf()
		}
		return strings.Join(ws, " ")
	}
	for b.Loop() {
		dir := b.TempDir()
		db := openDB(b, filepath.Join(dir, "db"))
		emb := &hashEmbedder{dim: dim}
		open := func(e memory.Embedder) *memory.Store {
			s, err := memory.Open(ctx, memory.Options{DB: db, IndexDir: filepath.Join(dir, "index"), Embedder: e,
				Config: memory.Config{IdleTimeout: -1}})
			if err != nil {
				b.Fatal(err)
			}
			return s
		}
		s := open(emb)
		t0 := time.Now()
		batch := make([]memory.Chunk, 0, 1000)
		for i := 0; i < n; i++ {
			batch = append(batch, memory.Chunk{Text: sentence(24), Time: time.Now().Add(-time.Duration(i) * time.Minute)})
			if len(batch) == cap(batch) {
				if _, err := s.Add(ctx, batch); err != nil {
					b.Fatal(err)
				}
				batch = batch[:0]
			}
		}
		fmt.Printf("\nadded %d chunks (Badger only, indexes not loaded) in %v\n", n, time.Since(t0).Round(time.Millisecond))
		qs := make([]string, queries)
		for i := range qs {
			qs[i] = sentence(4)
		}
		t0 = time.Now()
		if _, err := s.Search(ctx, memory.SearchOptions{Query: qs[0]}); err != nil {
			b.Fatal(err)
		}
		fmt.Printf("first search (builds Bluge + HNSW from Badger): %v\n", time.Since(t0).Round(time.Millisecond))
		if err := s.Evict(); err != nil {
			b.Fatal(err)
		}
		t0 = time.Now()
		if _, err := s.Search(ctx, memory.SearchOptions{Query: qs[0]}); err != nil {
			b.Fatal(err)
		}
		fmt.Printf("cold load from the index directory + search: %v\n", time.Since(t0).Round(time.Millisecond))
		loaded := heapMiB()

		measure := func(name string, st *memory.Store) {
			lat := make([]time.Duration, 0, len(qs))
			for _, q := range qs {
				t := time.Now()
				r, err := st.Search(ctx, memory.SearchOptions{Query: q})
				lat = append(lat, time.Since(t))
				if err != nil || len(r.Hits) == 0 {
					b.Fatalf("%s %q: %d hits, %v", name, q, len(r.Hits), err)
				}
			}
			sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
			fmt.Printf("%-34s p50 %8v  p99 %8v  (%d queries, 10 results, x4 candidates, MMR, decay, expansion)\n",
				name, lat[len(lat)/2].Round(time.Microsecond), lat[len(lat)*99/100].Round(time.Microsecond), len(lat))
			if name == "hybrid" {
				b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-µs")
				b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs")
			}
		}
		measure("hybrid", s)
		if err := s.Evict(); err != nil {
			b.Fatal(err)
		}
		evicted := heapMiB()
		kw := open(nil) // same chunks and index directory, no embedder
		measure("keyword-only (same chunks)", kw)
		if err := kw.Close(); err != nil {
			b.Fatal(err)
		}
		if err := s.Close(); err != nil {
			b.Fatal(err)
		}
		closed := heapMiB()
		// The Badger database (its caches are most of the heap here) stays
		// open throughout; it belongs to the caller (kv's pool).
		fmt.Printf("Go heap: indexes loaded %.1f MiB; after Evict %.1f MiB (freed %.1f MiB); stores closed %.1f MiB "+
			"(an evicted store holds %.1f MiB more than a closed one)\n",
			loaded, evicted, loaded-evicted, closed, evicted-closed)
		b.ReportMetric(loaded-evicted, "freed-by-evict-MiB")
		b.ReportMetric(evicted-closed, "held-after-evict-MiB")
	}
}
