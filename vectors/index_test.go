package vectors

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"sort"
	"strings"
	"testing"
)

func randVecs(rng *rand.Rand, n, dim int) [][]float32 {
	out := make([][]float32, n)
	for i := range out {
		v := make([]float32, dim)
		for j := range v {
			v[j] = float32(rng.NormFloat64())
		}
		out[i] = v
	}
	return out
}

// reference scores every vector in float64, independently of the index.
func reference(m Metric, data map[string][]float32, q []float32, k int) []Result {
	score := func(a, b []float32) float64 {
		var d, na, nb float64
		for i := range a {
			d += float64(a[i]) * float64(b[i])
			na += float64(a[i]) * float64(a[i])
			nb += float64(b[i]) * float64(b[i])
		}
		if m == Cosine {
			return d / math.Sqrt(na*nb)
		}
		return d
	}
	var out []Result
	for id, v := range data {
		out = append(out, Result{ID: id, Score: float32(score(q, v))})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Score > out[j].Score })
	return out[:min(k, len(out))]
}

func mustNew(t testing.TB, cfg Config) *Index {
	t.Helper()
	ix, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return ix
}

func TestConfigValidation(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		cfg  Config
	}{
		{"zero dim", Config{}},
		{"negative dim", Config{Dim: -1}},
		{"huge dim", Config{Dim: MaxDim + 1}},
		{"unknown metric", Config{Dim: 4, Metric: 9}},
		{"M too small", Config{Dim: 4, M: 1}},
		{"M too large", Config{Dim: 4, M: 1000}},
		{"negative threshold", Config{Dim: 4, ExactThreshold: -5}},
		{"huge threshold", Config{Dim: 4, ExactThreshold: 1 << 40}},
		{"negative efConstruction", Config{Dim: 4, EfConstruction: -1}},
		{"negative efSearch", Config{Dim: 4, EfSearch: -1}},
		{"ratio above one", Config{Dim: 4, MaxTombstoneRatio: 2}},
		{"ratio NaN", Config{Dim: 4, MaxTombstoneRatio: math.NaN()}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if _, err := New(tt.cfg); !errors.Is(err, ErrInvalidConfig) {
				t.Fatalf("New(%+v) = %v, want ErrInvalidConfig", tt.cfg, err)
			}
		})
	}
	ix := mustNew(t, Config{Dim: 8})
	c := ix.Config()
	if c.Metric != Cosine || c.M != 16 || c.ExactThreshold != 4096 || c.EfSearch != 64 {
		t.Fatalf("defaults not applied: %+v", c)
	}
}

func TestInputValidation(t *testing.T) {
	t.Parallel()
	nan, inf := float32(math.NaN()), float32(math.Inf(1))
	for _, m := range []Metric{Cosine, Dot} {
		ix := mustNew(t, Config{Dim: 3, Metric: m})
		if err := ix.Add("a", []float32{1, 2, 3}); err != nil {
			t.Fatal(err)
		}
		tests := []struct {
			name string
			id   string
			vec  []float32
			want error
		}{
			{"short", "b", []float32{1, 2}, ErrDimension},
			{"long", "b", []float32{1, 2, 3, 4}, ErrDimension},
			{"nil", "b", nil, ErrDimension},
			{"NaN", "b", []float32{1, nan, 3}, ErrNonFinite},
			{"+Inf", "b", []float32{inf, 0, 0}, ErrNonFinite},
			{"-Inf", "b", []float32{0, 0, -inf}, ErrNonFinite},
			{"zero", "b", []float32{0, 0, 0}, ErrZeroVector},
			{"empty id", "", []float32{1, 2, 3}, ErrEmptyID},
			{"long id", strings.Repeat("x", MaxIDLen+1), []float32{1, 2, 3}, ErrIDTooLong},
			{"duplicate", "a", []float32{3, 2, 1}, ErrDuplicateID},
		}
		if m == Dot {
			tests = append(tests, struct {
				name string
				id   string
				vec  []float32
				want error
			}{"overflowing norm", "b", []float32{1e30, 1e30, 1e30}, ErrNonFinite})
		}
		for _, tt := range tests {
			t.Run(fmt.Sprintf("%v/%s", m, tt.name), func(t *testing.T) {
				if err := ix.Add(tt.id, tt.vec); !errors.Is(err, tt.want) {
					t.Fatalf("Add = %v, want %v", err, tt.want)
				}
				if tt.want == ErrDuplicateID {
					return
				}
				if err := ix.Upsert(tt.id, tt.vec); !errors.Is(err, tt.want) {
					t.Fatalf("Upsert = %v, want %v", err, tt.want)
				}
				if tt.id != "b" {
					return
				}
				if _, err := ix.Search(tt.vec, 1); !errors.Is(err, tt.want) {
					t.Fatalf("Search = %v, want %v", err, tt.want)
				}
			})
		}
		if ix.Len() != 1 {
			t.Fatalf("rejected inputs changed the index: Len = %d", ix.Len())
		}
		for _, k := range []int{0, -1} {
			if _, err := ix.Search([]float32{1, 2, 3}, k); !errors.Is(err, ErrInvalidK) {
				t.Fatalf("Search k=%d = %v, want ErrInvalidK", k, err)
			}
		}
		if _, err := ix.SearchEf([]float32{1, 2, 3}, 1, 0); !errors.Is(err, ErrInvalidConfig) {
			t.Fatalf("SearchEf ef=0 = %v, want ErrInvalidConfig", err)
		}
	}
}

// TestMatchesReference checks results against an independent float64
// computation: exactly in exact mode, at high recall in graph mode (the
// threshold is set low so the graph is built).
func TestMatchesReference(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		metric    Metric
		threshold int
		n         int
		minRecall float64
	}{
		{"cosine exact", Cosine, 10000, 300, 1},
		{"dot exact", Dot, 10000, 300, 1},
		{"cosine graph", Cosine, 64, 1500, 0.97},
		{"dot graph", Dot, 64, 1500, 0.9},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			const dim, k = 24, 10
			rng := rand.New(rand.NewPCG(7, 7))
			ix := mustNew(t, Config{Dim: dim, Metric: tt.metric, ExactThreshold: tt.threshold, EfSearch: 100})
			data := map[string][]float32{}
			for i, v := range randVecs(rng, tt.n, dim) {
				id := fmt.Sprintf("id%d", i)
				data[id] = v
				if err := ix.Add(id, v); err != nil {
					t.Fatal(err)
				}
			}
			if got, want := ix.Stats().Graph, tt.n >= tt.threshold; got != want {
				t.Fatalf("graph mode = %v, want %v", got, want)
			}
			hits, total := 0, 0
			for _, q := range randVecs(rng, 50, dim) {
				got, err := ix.Search(q, k)
				if err != nil {
					t.Fatal(err)
				}
				want := reference(tt.metric, data, q, k)
				if len(got) != k {
					t.Fatalf("got %d results, want %d", len(got), k)
				}
				if !slices.IsSortedFunc(got, func(a, b Result) int { return cmpScore(b.Score, a.Score) }) {
					t.Fatalf("results not sorted by score: %v", got)
				}
				wantSet := map[string]float32{}
				for _, w := range want {
					wantSet[w.ID] = w.Score
				}
				for _, g := range got {
					if s, ok := wantSet[g.ID]; ok {
						hits++
						if math.Abs(float64(s-g.Score)) > 1e-4*math.Max(1, math.Abs(float64(s))) {
							t.Fatalf("%s: score %v, reference %v", g.ID, g.Score, s)
						}
					}
				}
				total += k
			}
			if r := float64(hits) / float64(total); r < tt.minRecall {
				t.Fatalf("recall %.3f < %.3f", r, tt.minRecall)
			}
		})
	}
}

func cmpScore(a, b float32) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// TestUpdateAndDelete runs the same edit script in exact and graph mode and
// checks that every edit is visible to the next search.
func TestUpdateAndDelete(t *testing.T) {
	t.Parallel()
	for _, threshold := range []int{100000, 50} {
		t.Run(fmt.Sprintf("threshold=%d", threshold), func(t *testing.T) {
			t.Parallel()
			const dim = 16
			rng := rand.New(rand.NewPCG(3, 4))
			ix := mustNew(t, Config{Dim: dim, ExactThreshold: threshold, MaxTombstoneRatio: -1})
			vecs := randVecs(rng, 400, dim)
			for i, v := range vecs {
				if err := ix.Add(fmt.Sprint(i), v); err != nil {
					t.Fatal(err)
				}
			}
			top := func(q []float32) Result {
				t.Helper()
				res, err := ix.Search(q, 1)
				if err != nil || len(res) != 1 {
					t.Fatalf("Search = %v, %v", res, err)
				}
				return res[0]
			}
			// Upsert moves id 5 to a new vector.
			nv := randVecs(rng, 1, dim)[0]
			if err := ix.Upsert("5", nv); err != nil {
				t.Fatal(err)
			}
			if r := top(nv); r.ID != "5" || r.Score < 0.999 {
				t.Fatalf("after upsert, top hit for the new vector = %+v", r)
			}
			if r := top(vecs[5]); r.ID == "5" {
				t.Fatalf("after upsert, the old vector still finds id 5 (%+v)", r)
			}
			if ix.Len() != 400 {
				t.Fatalf("Len after upsert = %d", ix.Len())
			}
			// Delete every third id.
			for i := 0; i < 400; i += 3 {
				if !ix.Delete(fmt.Sprint(i)) {
					t.Fatalf("Delete(%d) = false", i)
				}
			}
			if ix.Delete("0") || ix.Delete("nope") {
				t.Fatal("Delete of an absent id returned true")
			}
			check := func(stage string) {
				t.Helper()
				for i := range 400 {
					id := fmt.Sprint(i)
					q := vecs[i]
					if i == 5 {
						q = nv
					}
					r := top(q)
					if i%3 == 0 {
						if r.ID == id || ix.Contains(id) {
							t.Fatalf("%s: deleted id %s still found", stage, id)
						}
					} else if r.ID != id {
						t.Fatalf("%s: own vector of %s finds %+v", stage, id, r)
					}
				}
			}
			check("tombstoned")
			if n := ix.Len(); n != 400-134 {
				t.Fatalf("Len = %d", n)
			}
			ix.Compact()
			if st := ix.Stats(); st.Tombstones != 0 || st.Len != 266 {
				t.Fatalf("after Compact: %+v", st)
			}
			check("compacted")
			// Re-adding a deleted id works.
			if err := ix.Add("0", vecs[0]); err != nil {
				t.Fatal(err)
			}
			if r := top(vecs[0]); r.ID != "0" {
				t.Fatalf("re-added id not found: %+v", r)
			}
		})
	}
}

// TestModeTransitions covers building the graph at the threshold, automatic
// compaction, and dropping back to exact mode.
func TestModeTransitions(t *testing.T) {
	t.Parallel()
	const dim = 8
	rng := rand.New(rand.NewPCG(9, 9))
	ix := mustNew(t, Config{Dim: dim, ExactThreshold: 200})
	vecs := randVecs(rng, 400, dim)
	for i, v := range vecs[:199] {
		if err := ix.Add(fmt.Sprint(i), v); err != nil {
			t.Fatal(err)
		}
	}
	if ix.Stats().Graph {
		t.Fatal("graph built below the threshold")
	}
	for i, v := range vecs[199:] {
		if err := ix.Add(fmt.Sprint(199+i), v); err != nil {
			t.Fatal(err)
		}
	}
	if !ix.Stats().Graph {
		t.Fatal("no graph at the threshold")
	}
	// 25% of 400 slots is 100: the 101st delete compacts.
	for i := range 101 {
		ix.Delete(fmt.Sprint(i))
	}
	if st := ix.Stats(); st.Tombstones != 0 || !st.Graph || st.Len != 299 {
		t.Fatalf("after automatic compaction: %+v", st)
	}
	for i := 101; i < 220; i++ {
		ix.Delete(fmt.Sprint(i))
	}
	ix.Compact()
	if st := ix.Stats(); st.Graph || st.Len != 180 || st.Tombstones != 0 {
		t.Fatalf("below the threshold after compaction: %+v", st)
	}
	for i := 220; i < 400; i++ {
		res, err := ix.Search(vecs[i], 1)
		if err != nil || res[0].ID != fmt.Sprint(i) {
			t.Fatalf("exact search after dropping the graph: %v %v", res, err)
		}
	}
	for i := 220; i < 400; i++ {
		ix.Delete(fmt.Sprint(i))
	}
	if res, err := ix.Search(vecs[0], 3); err != nil || len(res) != 0 {
		t.Fatalf("empty index search = %v, %v", res, err)
	}
}

// TestDeleteEverythingInGraphMode leaves a graph of tombstones only (with
// automatic compaction off) and checks searches and inserts still work.
func TestDeleteEverythingInGraphMode(t *testing.T) {
	t.Parallel()
	const dim = 8
	rng := rand.New(rand.NewPCG(5, 5))
	ix := mustNew(t, Config{Dim: dim, ExactThreshold: 10, MaxTombstoneRatio: -1})
	vecs := randVecs(rng, 100, dim)
	for i, v := range vecs {
		if err := ix.Add(fmt.Sprint(i), v); err != nil {
			t.Fatal(err)
		}
	}
	for i := range vecs {
		ix.Delete(fmt.Sprint(i))
	}
	if res, err := ix.Search(vecs[0], 5); err != nil || len(res) != 0 {
		t.Fatalf("search over tombstones = %v, %v", res, err)
	}
	if err := ix.Add("new", vecs[3]); err != nil {
		t.Fatal(err)
	}
	if res, err := ix.Search(vecs[3], 5); err != nil || len(res) != 1 || res[0].ID != "new" {
		t.Fatalf("search after insert among tombstones = %v, %v", res, err)
	}
	ix.Compact()
	if st := ix.Stats(); st.Len != 1 || st.Graph || st.Tombstones != 0 {
		t.Fatalf("after Compact: %+v", st)
	}
}

func TestCosineNormalisesAndDotDoesNot(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		metric Metric
		want   float32
	}{{Cosine, 1}, {Dot, 4 * 2 * 3}} {
		ix := mustNew(t, Config{Dim: 3, Metric: tt.metric})
		if err := ix.Add("a", []float32{4, 0, 0}); err != nil {
			t.Fatal(err)
		}
		res, err := ix.Search([]float32{2 * 3, 0, 0}, 1)
		if err != nil {
			t.Fatal(err)
		}
		if math.Abs(float64(res[0].Score-tt.want)) > 1e-5 {
			t.Fatalf("%v score = %v, want %v", tt.metric, res[0].Score, tt.want)
		}
	}
}

func TestCallerSliceNotRetained(t *testing.T) {
	t.Parallel()
	ix := mustNew(t, Config{Dim: 2, Metric: Dot})
	v := []float32{1, 0}
	if err := ix.Add("a", v); err != nil {
		t.Fatal(err)
	}
	v[0], v[1] = 0, 1
	res, _ := ix.Search([]float32{1, 0}, 1)
	if res[0].Score != 1 {
		t.Fatalf("index aliases the caller's slice: score %v", res[0].Score)
	}
}

func TestSearchEfBelowKStillReturnsK(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(8, 8))
	ix := mustNew(t, Config{Dim: 8, ExactThreshold: 20})
	for i, v := range randVecs(rng, 200, 8) {
		if err := ix.Add(fmt.Sprint(i), v); err != nil {
			t.Fatal(err)
		}
	}
	q := randVecs(rng, 1, 8)[0]
	for _, ef := range []int{1, 5, 10, 300} {
		res, err := ix.SearchEf(q, 10, ef)
		if err != nil || len(res) != 10 {
			t.Fatalf("SearchEf(k=10, ef=%d) = %d results, %v", ef, len(res), err)
		}
	}
	// A wide search on 200 vectors is exact.
	wide, _ := ix.SearchEf(q, 10, 300)
	exact, _ := ix.SearchExact(q, 10)
	for i := range exact {
		if wide[i].ID != exact[i].ID {
			t.Fatalf("ef=300 over 200 vectors differs from exact: %v vs %v", wide, exact)
		}
	}
}

// TestHugeKIsBounded: a caller asking for an absurd k gets every live vector,
// and no allocation sized by k.
func TestHugeKIsBounded(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(6, 6))
	for _, threshold := range []int{1000, 20} {
		ix := mustNew(t, Config{Dim: 4, ExactThreshold: threshold})
		for i, v := range randVecs(rng, 100, 4) {
			if err := ix.Add(fmt.Sprint(i), v); err != nil {
				t.Fatal(err)
			}
		}
		ix.Delete("7")
		res, err := ix.Search([]float32{1, 2, 3, 4}, math.MaxInt)
		if err != nil || len(res) != 99 {
			t.Fatalf("threshold %d: k=MaxInt gave %d results, %v", threshold, len(res), err)
		}
	}
}
