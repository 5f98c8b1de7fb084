package embed

import (
	"context"
	"crypto/sha256"
	"fmt"
	"reflect"
	"testing"

	"github.com/dgraph-io/badger/v4"
)

func openBadger(t *testing.T, dir string) *badger.DB {
	t.Helper()
	opts := badger.DefaultOptions(dir).WithLogger(nil).WithMemTableSize(1 << 20).WithNumMemtables(2).
		WithBlockCacheSize(256 << 10).WithIndexCacheSize(256 << 10).WithValueLogFileSize(16 << 20).
		WithNumCompactors(2).WithBaseTableSize(1 << 20).WithValueThreshold(4 << 10)
	if dir == "" {
		// In memory there is no value log: values must fit under the threshold.
		opts = opts.WithInMemory(true).WithValueThreshold(64 << 10)
	}
	db, err := badger.Open(opts)
	if err != nil {
		t.Fatal(err)
	}
	return db
}

func keyOf(scope byte, text string) CacheKey {
	return CacheKey{Scope: [16]byte{scope}, Text: sha256.Sum256([]byte(text))}
}

// The cached embedder answers repeats from the cache and sends each distinct text once.
func TestWithCache(t *testing.T) {
	t.Parallel()
	for name, newCache := range map[string]func(t *testing.T) Cache{
		"memory": func(*testing.T) Cache { return NewMemoryCache(0) },
		"badger": func(t *testing.T) Cache {
			db := openBadger(t, "")
			t.Cleanup(func() { db.Close() })
			c, err := NewBadgerCache(bg(), db, []byte("embcache/"), 1000)
			if err != nil {
				t.Fatal(err)
			}
			return c
		},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			f := newFake(t, ProviderOpenAI, "text-embedding-3-small", 8)
			c := newCache(t)
			e := WithCache(f.embedder(f.config()), c)
			got, err := e.Embed(bg(), []string{"a", "b", "a", "c"})
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(f.batches, [][]string{{"a", "b", "c"}}) {
				t.Errorf("sent %v, want each distinct text once", f.batches)
			}
			for i, s := range []string{"a", "b", "a", "c"} {
				if !reflect.DeepEqual(got[i], vecFor(s, 8)) {
					t.Errorf("vector %d wrong", i)
				}
			}
			got[0][0] = 99 // callers may scribble; the cache must not change
			again, err := e.Embed(bg(), []string{"c", "d", "a"})
			if err != nil {
				t.Fatal(err)
			}
			if len(f.batches) != 2 || !reflect.DeepEqual(f.batches[1], []string{"d"}) {
				t.Errorf("second call sent %v, want only d", f.batches[1:])
			}
			if !reflect.DeepEqual(again[2], vecFor("a", 8)) {
				t.Errorf("cached vector was modified through a returned slice")
			}
			// Another model (or dimension count) on the same cache never sees these entries.
			f2 := newFake(t, ProviderOpenAI, "text-embedding-3-large", 8)
			if _, err := WithCache(f2.embedder(f2.config()), c).Embed(bg(), []string{"a"}); err != nil {
				t.Fatal(err)
			}
			if f2.count() != 1 {
				t.Errorf("another model was answered from this model's cache")
			}
		})
	}
}

func TestScopeSeparatesEndpointsAndInputTypes(t *testing.T) {
	t.Parallel()
	f := newFake(t, ProviderVoyage, "voyage-3", 4)
	docs := f.config()
	docs.InputType = "document"
	queries := docs
	queries.InputType = "query"
	other := newFake(t, ProviderVoyage, "voyage-3", 4)
	scopes := map[[16]byte]string{}
	for name, e := range map[string]Embedder{
		"docs": f.embedder(docs), "queries": f.embedder(queries), "other server": other.embedder(other.config()),
	} {
		s := scopeOf(e)
		if prev, dup := scopes[s]; dup {
			t.Errorf("%s and %s share a cache scope", name, prev)
		}
		scopes[s] = name
	}
}

func TestMemoryCacheLRU(t *testing.T) {
	t.Parallel()
	v := make([]float32, 100) // 400 bytes + overhead per entry
	c := NewMemoryCache(3 * entrySize(v))
	ctx := bg()
	put := func(s string) {
		if err := c.Store(ctx, []CacheKey{keyOf(1, s)}, [][]float32{v}); err != nil {
			t.Fatal(err)
		}
	}
	has := func(s string) bool {
		got, _ := c.Lookup(ctx, []CacheKey{keyOf(1, s)})
		return got[0] != nil
	}
	put("a")
	put("b")
	put("c")
	if !has("a") { // a becomes most recent
		t.Fatal("a missing")
	}
	put("d") // evicts b, the least recently used
	if has("b") || !has("a") || !has("c") || !has("d") {
		t.Errorf("LRU order wrong: a=%v b=%v c=%v d=%v", has("a"), has("b"), has("c"), has("d"))
	}
	if c.Len() != 3 || c.Bytes() > 3*entrySize(v) {
		t.Errorf("len %d bytes %d, cap %d", c.Len(), c.Bytes(), 3*entrySize(v))
	}
	if err := c.Store(ctx, []CacheKey{keyOf(1, "huge")}, [][]float32{make([]float32, 10000)}); err != nil || has("huge") || c.Len() != 3 {
		t.Errorf("entry larger than the cap was stored or evicted others")
	}
}

func TestBadgerCachePersistsAndCaps(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	ctx := bg()
	db := openBadger(t, dir)
	c, err := NewBadgerCache(ctx, db, []byte("ws/emb/"), 10)
	if err != nil {
		t.Fatal(err)
	}
	vec := func(i int) []float32 { return []float32{float32(i), 1, 2} }
	for i := range 25 {
		if err := c.Store(ctx, []CacheKey{keyOf(1, fmt.Sprint(i))}, [][]float32{vec(i)}); err != nil {
			t.Fatal(err)
		}
		if i == 5 { // touch an old entry so it counts as recently used
			if got, _ := c.Lookup(ctx, []CacheKey{keyOf(1, "0")}); got[0] == nil {
				t.Fatal("entry 0 missing early")
			}
		}
	}
	if c.Len() != 10 {
		t.Errorf("len %d, want the cap 10", c.Len())
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	db = openBadger(t, dir)
	defer db.Close()
	c, err = NewBadgerCache(ctx, db, []byte("ws/emb/"), 10)
	if err != nil {
		t.Fatal(err)
	}
	if c.Len() != 10 {
		t.Errorf("after reopen len %d, want 10", c.Len())
	}
	keys := make([]CacheKey, 25)
	for i := range keys {
		keys[i] = keyOf(1, fmt.Sprint(i))
	}
	got, err := c.Lookup(ctx, keys)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 25 {
		if want := i >= 15; (got[i] != nil) != want {
			t.Errorf("entry %d present=%v, want %v", i, got[i] != nil, want)
		}
		if got[i] != nil && !reflect.DeepEqual(got[i], vec(i)) {
			t.Errorf("entry %d = %v", i, got[i])
		}
	}
	// Counting entries under the prefix agrees with Len: eviction removed the values too.
	n := 0
	db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte("ws/emb/e")})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			n++
		}
		return nil
	})
	if n != 10 {
		t.Errorf("%d entry keys stored, want 10", n)
	}
	// A lower cap on reopen evicts at once.
	c, err = NewBadgerCache(ctx, db, []byte("ws/emb/"), 4)
	if err != nil || c.Len() != 4 {
		t.Errorf("reopen with cap 4: len %d, %v", c.Len(), err)
	}
}

// The re-stamp on hit makes the persistent cache approximate LRU: an entry
// read often survives many later stores.
func TestBadgerCacheKeepsHotEntries(t *testing.T) {
	t.Parallel()
	ctx := bg()
	db := openBadger(t, "")
	defer db.Close()
	c, err := NewBadgerCache(ctx, db, []byte("p/"), 20)
	if err != nil {
		t.Fatal(err)
	}
	hot := keyOf(1, "hot")
	if err := c.Store(ctx, []CacheKey{hot}, [][]float32{{1}}); err != nil {
		t.Fatal(err)
	}
	for i := range 200 {
		if err := c.Store(ctx, []CacheKey{keyOf(1, fmt.Sprint(i))}, [][]float32{{2}}); err != nil {
			t.Fatal(err)
		}
		if got, _ := c.Lookup(ctx, []CacheKey{hot}); got[0] == nil {
			t.Fatalf("hot entry evicted after %d stores", i)
		}
	}
	if c.Len() != 20 {
		t.Errorf("len %d, want 20", c.Len())
	}
}

// Two workspaces, two DBs: nothing one caches is visible to the other, and
// a prefix never reads another prefix in the same DB.
func TestCacheIsolation(t *testing.T) {
	t.Parallel()
	ctx := bg()
	dbA, dbB := openBadger(t, ""), openBadger(t, "")
	defer dbA.Close()
	defer dbB.Close()
	a, err := NewBadgerCache(ctx, dbA, []byte("memory/embcache/"), 100)
	if err != nil {
		t.Fatal(err)
	}
	b, err := NewBadgerCache(ctx, dbB, []byte("memory/embcache/"), 100)
	if err != nil {
		t.Fatal(err)
	}
	other, err := NewBadgerCache(ctx, dbA, []byte("memory/other/"), 100)
	if err != nil {
		t.Fatal(err)
	}
	k := keyOf(7, "alice's private note")
	if err := a.Store(ctx, []CacheKey{k}, [][]float32{{1, 2, 3}}); err != nil {
		t.Fatal(err)
	}
	for name, c := range map[string]Cache{"workspace B": b, "other prefix": other, "memory cache of B": NewMemoryCache(0)} {
		got, err := c.Lookup(ctx, []CacheKey{k})
		if err != nil || got[0] != nil {
			t.Errorf("%s sees A's entry: %v %v", name, got, err)
		}
	}
	if got, _ := a.Lookup(ctx, []CacheKey{k}); got[0] == nil {
		t.Error("A lost its own entry")
	}
	// End to end: the same text embedded in two workspaces reaches the provider twice.
	f := newFake(t, ProviderGemini, "text-embedding-004", 4)
	for _, c := range []Cache{a, b} {
		if _, err := WithCache(f.embedder(f.config()), c).Embed(ctx, []string{"shared text"}); err != nil {
			t.Fatal(err)
		}
	}
	if f.count() != 2 {
		t.Errorf("%d provider calls for two workspaces, want 2", f.count())
	}
}

func TestBadgerCacheLargeBatch(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := openBadger(t, "")
	defer db.Close()
	c, err := NewBadgerCache(ctx, db, []byte("big/"), 5000)
	if err != nil {
		t.Fatal(err)
	}
	// 600 vectors of 1536 dims (3.6 MB) exceed one Badger transaction at a 1 MB memtable.
	keys := make([]CacheKey, 600)
	vecs := make([][]float32, 600)
	for i := range keys {
		keys[i] = keyOf(2, fmt.Sprint(i))
		vecs[i] = make([]float32, 1536)
		vecs[i][0] = float32(i)
	}
	if err := c.Store(ctx, keys, vecs); err != nil {
		t.Fatal(err)
	}
	got, err := c.Lookup(ctx, keys)
	if err != nil {
		t.Fatal(err)
	}
	for i := range got {
		if got[i] == nil || got[i][0] != float32(i) || len(got[i]) != 1536 {
			t.Fatalf("entry %d lost", i)
		}
	}
	if c.Len() != 600 {
		t.Errorf("len %d", c.Len())
	}
}
