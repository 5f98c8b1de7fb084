package vectors

import (
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestConcurrentReadersAndWriter runs searches on several goroutines while
// one writer adds, upserts, deletes and compacts through the graph
// threshold and back. Run with -race: the race detector is the main check;
// the readers also check each answer is well formed.
func TestConcurrentReadersAndWriter(t *testing.T) {
	t.Parallel()
	const dim = 16
	rng := rand.New(rand.NewPCG(21, 22))
	vecs := randVecs(rng, 1200, dim)
	queries := randVecs(rng, 64, dim)
	ix := mustNew(t, Config{Dim: dim, ExactThreshold: 300, M: 8, EfConstruction: 40})
	var stop atomic.Bool
	var searches atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for r := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := r; !stop.Load(); i++ {
				res, err := ix.Search(queries[i%len(queries)], 10)
				if err != nil {
					errs <- err
					return
				}
				seen := map[string]bool{}
				for j, x := range res {
					if x.ID == "" || seen[x.ID] || (j > 0 && x.Score > res[j-1].Score) {
						errs <- fmt.Errorf("malformed answer %v", res)
						return
					}
					seen[x.ID] = true
				}
				_ = ix.Len()
				_ = ix.Stats()
				searches.Add(1)
			}
		}()
	}
	// Start writing once the readers run: on a loaded machine the writer
	// could otherwise finish before any reader was scheduled.
	for deadline := time.Now().Add(30 * time.Second); searches.Load() < 4; {
		if time.Now().After(deadline) {
			t.Fatal("readers never started")
		}
		time.Sleep(time.Millisecond)
	}
	for i, v := range vecs {
		id := fmt.Sprint(i % 900)
		if err := ix.Upsert(id, v); err != nil {
			t.Fatal(err)
		}
		if i%5 == 0 {
			ix.Delete(fmt.Sprint(rng.IntN(900)))
		}
		if i%400 == 399 {
			ix.Compact()
		}
	}
	for i := range 900 {
		ix.Delete(fmt.Sprint(i))
		if i%300 == 0 {
			ix.Compact()
		}
	}
	stop.Store(true)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if searches.Load() == 0 {
		t.Fatal("no search ran")
	}
	if n := ix.Len(); n != 0 {
		t.Fatalf("Len = %d after deleting everything", n)
	}
}

// TestSearchesRunDuringRebuilds stops the threshold graph build and a
// compaction at the point where their new layout is built but not yet
// swapped in, and requires a search from another goroutine to finish there:
// readers are not held up by the long writes. The test is not parallel
// because it sets a package hook.
func TestSearchesRunDuringRebuilds(t *testing.T) {
	const dim = 8
	rng := rand.New(rand.NewPCG(31, 32))
	vecs := randVecs(rng, 300, dim)
	ix := mustNew(t, Config{Dim: dim, ExactThreshold: 200})
	var rebuilds int
	testHookRebuilt = func() {
		rebuilds++
		done := make(chan error, 1)
		go func() {
			_, err := ix.Search(vecs[0], 5)
			done <- err
		}()
		select {
		case err := <-done:
			if err != nil {
				t.Error(err)
			}
		case <-time.After(10 * time.Second):
			t.Error("a search was blocked by a rebuild")
		}
	}
	defer func() { testHookRebuilt = nil }()
	for i, v := range vecs {
		if err := ix.Add(fmt.Sprint(i), v); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 100 {
		ix.Delete(fmt.Sprint(i))
	}
	ix.Compact()
	if rebuilds < 2 {
		t.Fatalf("hook ran %d times, want the graph build and a compaction", rebuilds)
	}
}
