package vectors

import (
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
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
