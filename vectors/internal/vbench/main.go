// Package main (vbench) compares the vectors package's HNSW index with brute-force
// search and with github.com/coder/hnsw on clustered synthetic data, and
// prints one table per data size. It is run by `make bench-vectors`; being a
// separate main package, coder/hnsw never enters the product binary.
package main

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/coder/hnsw"

	"github.com/bulkhead-dev/bulkhead/vectors"
	"github.com/bulkhead-dev/bulkhead/vectors/internal/synth"
)

func main() {
	sizes := flag.String("sizes", "10000,100000", "comma-separated data set sizes")
	dim := flag.Int("dim", 384, "vector dimension")
	nq := flag.Int("queries", 1000, "queries per size (brute force runs at most 200 of them)")
	efs := flag.String("ef", "32,64,128", "efSearch values to run for our index and coder/hnsw")
	m := flag.Int("m", 16, "M for both HNSW indexes")
	efc := flag.Int("efc", 128, "efConstruction for our index")
	seed := flag.Uint64("seed", 42, "data seed")
	skipCoder := flag.Bool("skip-coder", false, "leave out coder/hnsw")
	latent := flag.Int("latent", 0, "latent dimension of the synthetic data (0: synth default)")
	spread := flag.Float64("spread", 0, "within-cluster spread (0: synth default)")
	noise := flag.Float64("noise", 0, "isotropic noise (0: synth default)")
	flag.Parse()

	var efList []int
	for _, f := range strings.Split(*efs, ",") {
		v, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil {
			fatal(fmt.Errorf("parse -ef: %w", err))
		}
		efList = append(efList, v)
	}
	for _, f := range strings.Split(*sizes, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil {
			fatal(fmt.Errorf("parse -sizes: %w", err))
		}
		run(synth.Spec{Dim: *dim, Seed: *seed, Latent: *latent, Spread: *spread, Noise: *noise}, n, *nq, *m, *efc, efList, *skipCoder)
	}
}

func fatal(err error) {
	fmt.Fprintln(os.Stderr, "vbench:", err)
	os.Exit(1)
}

type row struct {
	name      string
	ef        int
	build     time.Duration // wall clock
	buildCPU  time.Duration
	bytesPerV float64
}

func run(spec synth.Spec, n, nq, m, efc int, efList []int, skipCoder bool) {
	dim := spec.Dim
	gen := synth.New(spec)
	spec = gen.Spec()
	data := gen.Draw(n, 1)
	queries := gen.Draw(nq, 2)
	ids := make([]string, n)
	for i := range ids {
		ids[i] = "v" + strconv.Itoa(i)
	}
	fmt.Printf("\n== %d x %d, clustered (%d clusters, %d-d latent, spread %.2f, noise %.2f, seed %d), %d queries, M=%d efConstruction=%d, GOMAXPROCS=%d\n",
		n, dim, spec.Clusters, spec.Latent, spec.Spread, spec.Noise, spec.Seed, nq, m, efc, runtime.GOMAXPROCS(0))

	// Build each contender in turn, measuring its heap growth; then time
	// their queries interleaved in rounds, so load from other processes on
	// this shared machine hits all of them alike.
	type contender struct {
		row
		search func(q []float32) []string
		maxQ   int // queries it runs (brute force is slow: a subset)
		hits   int
		ran    int
		took   time.Duration // wall clock
		cpu    time.Duration // process CPU time: robust to sharing the machine
	}
	var cs []*contender

	// The brute-force contender is an index that never builds a graph: the
	// same storage and distance kernel as ours, every slot scored. It also
	// gives the ground truth.
	heap0 := heapInUse()
	t0, c0 := time.Now(), cpuTime()
	exact, err := vectors.New(vectors.Config{Dim: dim, ExactThreshold: n + 1})
	if err != nil {
		fatal(err)
	}
	for i, v := range data {
		if err := exact.Add(ids[i], v); err != nil {
			fatal(err)
		}
	}
	brute := &contender{row: row{name: "brute force", build: time.Since(t0), buildCPU: cpuTime() - c0}, maxQ: min(nq, 200)}
	brute.bytesPerV = float64(heapInUse()-heap0) / float64(n)
	brute.search = func(q []float32) []string { return ids10(exact.SearchExact(q, 10)) }
	cs = append(cs, brute)
	truth := make([]map[string]bool, nq)
	for i, q := range queries {
		truth[i] = make(map[string]bool, 10)
		for _, id := range brute.search(q) {
			truth[i][id] = true
		}
	}

	heap0 = heapInUse()
	t0, c0 = time.Now(), cpuTime()
	ix, err := vectors.New(vectors.Config{Dim: dim, M: m, EfConstruction: efc})
	if err != nil {
		fatal(err)
	}
	for i, v := range data {
		if err := ix.Add(ids[i], v); err != nil {
			fatal(err)
		}
	}
	ours := row{name: "vectors (ours)", build: time.Since(t0), buildCPU: cpuTime() - c0}
	ours.bytesPerV = float64(heapInUse()-heap0) / float64(n)
	for _, ef := range efList {
		c := &contender{row: ours, maxQ: nq}
		c.ef = ef
		c.search = func(q []float32) []string { return ids10(ix.SearchEf(q, 10, ef)) }
		cs = append(cs, c)
	}

	if !skipCoder {
		heap0 = heapInUse()
		t0, c0 = time.Now(), cpuTime()
		g := hnsw.NewGraph[string]()
		g.M = m
		g.Ml = 0.25
		g.Distance = hnsw.CosineDistance
		for i, v := range data {
			g.Add(hnsw.MakeNode(ids[i], append([]float32(nil), v...)))
		}
		coder := row{name: "coder/hnsw v0.6.1", build: time.Since(t0), buildCPU: cpuTime() - c0}
		coder.bytesPerV = float64(heapInUse()-heap0) / float64(n)
		for _, ef := range efList {
			c := &contender{row: coder, maxQ: nq}
			c.ef = ef
			c.search = func(q []float32) []string {
				g.EfSearch = ef
				res := g.Search(q, 10)
				out := make([]string, len(res))
				for i, r := range res {
					out[i] = r.Key
				}
				return out
			}
			cs = append(cs, c)
		}
	}

	const rounds = 10
	for r := range rounds {
		for _, c := range cs {
			lo, hi := r*c.maxQ/rounds, (r+1)*c.maxQ/rounds
			results := make([][]string, 0, hi-lo)
			t0, c0 := time.Now(), cpuTime()
			for _, q := range queries[lo:hi] {
				results = append(results, c.search(q))
			}
			c.took += time.Since(t0)
			c.cpu += cpuTime() - c0
			for i, res := range results {
				for _, id := range res {
					if truth[lo+i][id] {
						c.hits++
					}
				}
			}
			c.ran += hi - lo
		}
	}
	bruteQPS := float64(brute.ran) / brute.cpu.Seconds()

	tw := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "index\tefSearch\trecall@10\tqueries/cpu-s\tx brute\tqueries/wall-s\tbuild cpu\tbuild wall\tbuild x ours\tbytes/vector\t")
	for _, c := range cs {
		ef := "-"
		if c.ef > 0 {
			ef = strconv.Itoa(c.ef)
		}
		recall := float64(c.hits) / float64(10*c.ran)
		qps := float64(c.ran) / c.cpu.Seconds()
		wallQPS := float64(c.ran) / c.took.Seconds()
		fmt.Fprintf(tw, "%s\t%s\t%.3f\t%.0f\t%.1f\t%.0f\t%s\t%s\t%.2f\t%.0f\t\n",
			c.name, ef, recall, qps, qps/bruteQPS, wallQPS, c.buildCPU.Round(time.Millisecond), c.build.Round(time.Millisecond),
			c.buildCPU.Seconds()/ours.buildCPU.Seconds(), c.bytesPerV)
	}
	tw.Flush()

	editPhase(exact, ix, ids, queries, efList)

	// The data set must stay live until every heap measurement is taken,
	// or its release during the last build would be subtracted from that
	// contender's bytes per vector.
	runtime.KeepAlive(data)
}

// editPhase deletes every fifth vector from ours and the exact index,
// compacts ours, and reports recall and speed again, then the cost of
// saving and loading ours.
func editPhase(exact, ix *vectors.Index, ids []string, queries [][]float32, efList []int) {
	for i := 0; i < len(ids); i += 5 {
		exact.Delete(ids[i])
		ix.Delete(ids[i])
	}
	t0, c0 := time.Now(), cpuTime()
	ix.Compact()
	compactWall, compactCPU := time.Since(t0), cpuTime()-c0
	fmt.Printf("after deleting every 5th vector (%d left): compaction %s cpu, %s wall\n",
		ix.Len(), compactCPU.Round(time.Millisecond), compactWall.Round(time.Millisecond))
	truth := make([]map[string]bool, len(queries))
	for i, q := range queries {
		truth[i] = map[string]bool{}
		for _, id := range ids10(exact.SearchExact(q, 10)) {
			truth[i][id] = true
		}
	}
	for _, ef := range efList {
		hits := 0
		got := make([][]string, len(queries))
		c0 := cpuTime()
		for i, q := range queries {
			got[i] = ids10(ix.SearchEf(q, 10, ef))
		}
		took := cpuTime() - c0
		for i := range got {
			for _, id := range got[i] {
				if truth[i][id] {
					hits++
				}
			}
		}
		fmt.Printf("  ours ef=%d: recall@10 %.3f, %.0f queries/cpu-s\n",
			ef, float64(hits)/float64(10*len(queries)), float64(len(queries))/took.Seconds())
	}
	var buf bytes.Buffer
	t0, c0 = time.Now(), cpuTime()
	if err := ix.Save(&buf); err != nil {
		fatal(err)
	}
	saveWall, saveCPU := time.Since(t0), cpuTime()-c0
	size := buf.Len()
	t0, c0 = time.Now(), cpuTime()
	loaded, err := vectors.Load(&buf)
	if err != nil {
		fatal(err)
	}
	loadWall, loadCPU := time.Since(t0), cpuTime()-c0
	fmt.Printf("saved index (to memory): %.0f bytes/vector; save %s cpu (%s wall), load %s cpu (%s wall); loaded Len %d\n",
		float64(size)/float64(ix.Len()), saveCPU.Round(time.Millisecond), saveWall.Round(time.Millisecond),
		loadCPU.Round(time.Millisecond), loadWall.Round(time.Millisecond), loaded.Len())
}

func ids10(res []vectors.Result, err error) []string {
	if err != nil {
		fatal(err)
	}
	out := make([]string, len(res))
	for i, r := range res {
		out[i] = r.ID
	}
	return out
}

// cpuTime is the CPU time this process has used. With GOMAXPROCS=1 it is
// the single-threaded work done, whatever else the machine is running.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		fatal(fmt.Errorf("getrusage: %w", err))
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func heapInUse() uint64 {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}
