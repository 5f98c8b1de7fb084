package vectors

import (
	"fmt"
	"testing"

	"github.com/bulkhead-dev/bulkhead/vectors/internal/synth"
)

// minRecall is the recall@10 the graph must keep against exact search on
// clustered data, fresh and after heavy editing. The suite searches with
// efSearch 24, well under the default 64, where a healthy graph scores about
// 0.97-0.99 and a damaged one falls below the bar (efSearch 12 already does).
const minRecall = 0.95

func recallAt10(t *testing.T, ix *Index, queries [][]float32) float64 {
	t.Helper()
	hits := 0
	for _, q := range queries {
		want, err := ix.SearchExact(q, 10)
		if err != nil {
			t.Fatal(err)
		}
		got, err := ix.Search(q, 10)
		if err != nil {
			t.Fatal(err)
		}
		in := map[string]bool{}
		for _, w := range want {
			in[w.ID] = true
		}
		for _, g := range got {
			if in[g.ID] {
				hits++
			}
		}
	}
	return float64(hits) / float64(10*len(queries))
}

// TestRecallClustered is the recall suite: build, then delete 30%, upsert
// 10% of the rest to new vectors and add new ones, and check recall with
// tombstones in place and again after compaction.
func TestRecallClustered(t *testing.T) {
	t.Parallel()
	n, dim := 8000, 96
	if raceEnabled { // the race detector slows the build about tenfold
		n, dim = 3000, 48
	}
	gen := synth.New(synth.Spec{Dim: dim, Seed: 7, Latent: 48, Spread: 1, Noise: 0.2})
	data := gen.Draw(n, 1)
	queries := gen.Draw(200, 2)
	fresh := gen.Draw(n/5, 3)
	ix := mustNew(t, Config{Dim: dim, ExactThreshold: 1000, MaxTombstoneRatio: -1, EfSearch: 24})
	for i, v := range data {
		if err := ix.Add(fmt.Sprint(i), v); err != nil {
			t.Fatal(err)
		}
	}
	if !ix.Stats().Graph {
		t.Fatal("recall suite is not exercising the graph")
	}
	if r := recallAt10(t, ix, queries); r < minRecall {
		t.Fatalf("fresh graph: recall@10 = %.3f < %.2f", r, minRecall)
	} else {
		t.Logf("fresh graph: recall@10 = %.3f", r)
	}

	for i := 0; i < n; i += 10 {
		for j := i; j < i+3 && j < n; j++ {
			ix.Delete(fmt.Sprint(j))
		}
	}
	for i, v := range fresh {
		id := fmt.Sprint(3 + 10*i) // a live id: upsert moves it
		if i%2 == 1 {
			id = fmt.Sprint("new", i)
		}
		if err := ix.Upsert(id, v); err != nil {
			t.Fatal(err)
		}
	}
	st := ix.Stats()
	if st.Tombstones < n/3 {
		t.Fatalf("expected many tombstones, have %+v", st)
	}
	if r := recallAt10(t, ix, queries); r < minRecall {
		t.Fatalf("with %d tombstones: recall@10 = %.3f < %.2f", st.Tombstones, r, minRecall)
	} else {
		t.Logf("with %d tombstones: recall@10 = %.3f", st.Tombstones, r)
	}
	ix.Compact()
	if r := recallAt10(t, ix, queries); r < minRecall {
		t.Fatalf("after compaction: recall@10 = %.3f < %.2f", r, minRecall)
	} else {
		t.Logf("after compaction: recall@10 = %.3f", r)
	}
	// Every live vector must still be reachable: its own vector finds it.
	missing := 0
	for i, v := range data {
		id := fmt.Sprint(i)
		if !ix.Contains(id) || i%10 == 3 {
			continue
		}
		res, err := ix.Search(v, 1)
		if err != nil {
			t.Fatal(err)
		}
		if res[0].ID != id {
			missing++
		}
	}
	if missing > 0 {
		t.Fatalf("after compaction %d live vectors are not found by their own vector", missing)
	}
}
