package memory_test

import (
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/bulkhead-dev/bulkhead/memory"
	"github.com/dgraph-io/badger/v4"
)

func openStore(t *testing.T, db *badger.DB, prefix, dir string, emb memory.Embedder) *memory.Store {
	t.Helper()
	s, err := memory.Open(context.Background(), memory.Options{DB: db, Prefix: prefix, IndexDir: dir, Embedder: emb})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func hitIDs(r memory.Results) []string {
	var ids []string
	for _, h := range r.Hits {
		ids = append(ids, h.Chunk.ID)
	}
	return ids
}

func contains(ids []string, id string) bool {
	for _, x := range ids {
		if x == id {
			return true
		}
	}
	return false
}

func search(t *testing.T, s *memory.Store, q string) memory.Results {
	t.Helper()
	r, err := s.Search(context.Background(), memory.SearchOptions{Query: q})
	if err != nil {
		t.Fatalf("search %q: %v", q, err)
	}
	return r
}

func TestKeywordOnlySearchExplains(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := openStore(t, openDB(t, t.TempDir()), "", t.TempDir(), nil)
	ids, err := s.Add(ctx, []memory.Chunk{
		{Text: "The staging database migrates to Postgres 16 next Tuesday.", Tags: []string{"infra"}},
		{Text: "Alice prefers tea over coffee in the mornings."},
	})
	if err != nil {
		t.Fatal(err)
	}
	r := search(t, s, "When does the database migration happen?")
	if r.Mode != "keyword" || len(r.Hits) == 0 || r.Hits[0].Chunk.ID != ids[0] {
		t.Fatalf("mode %s hits %v, want keyword search with %s first", r.Mode, hitIDs(r), ids[0])
	}
	p := r.Hits[0].Parts
	if p.Text != 1 || p.TextRaw <= 0 || p.TextRank != 1 || p.Vector != 0 || p.Decay <= 0.99 || r.Hits[0].Score != p.Fused*p.Decay {
		t.Errorf("parts %+v score %v", p, r.Hits[0].Score)
	}
	if !contains(r.Keywords, "database") || contains(r.Keywords, "when") {
		t.Errorf("keywords %v", r.Keywords)
	}
	if r, err := s.Search(ctx, memory.SearchOptions{Query: "database", Tags: []string{"nope"}}); err != nil || len(r.Hits) != 0 {
		t.Errorf("tag filter: %v %v", hitIDs(r), err)
	}
}

func TestHybridSearch(t *testing.T) {
	t.Parallel()
	for _, fusion := range []memory.Fusion{memory.FusionWeighted, memory.FusionRRF} {
		ctx := context.Background()
		s, err := memory.Open(ctx, memory.Options{DB: openDB(t, t.TempDir()), IndexDir: t.TempDir(),
			Embedder: &hashEmbedder{dim: 64}, Config: memory.Config{Fusion: fusion}})
		if err != nil {
			t.Fatal(err)
		}
		ids, err := s.Add(ctx, []memory.Chunk{
			{Text: "The cat sat on the warm windowsill."},
			{Text: "Quarterly revenue grew by eight percent."},
		})
		if err != nil {
			t.Fatal(err)
		}
		r := search(t, s, "cat windowsill")
		if r.Mode != "hybrid" || len(r.Hits) == 0 || r.Hits[0].Chunk.ID != ids[0] {
			t.Fatalf("%s: mode %s hits %v", fusion, r.Mode, hitIDs(r))
		}
		p := r.Hits[0].Parts
		if p.Vector <= 0 || p.VectorRank != 1 || p.Text <= 0 || p.Fused <= 0 || p.Fused > 1.000001 {
			t.Errorf("%s: parts %+v", fusion, p)
		}
		_ = s.Close()
	}
}

// Two stores in one database, and a store pointed at another's index
// directory, never see the other's chunks.
func TestStoresIsolated(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := openDB(t, t.TempDir())
	dirA, dirB := t.TempDir(), t.TempDir()
	emb := &hashEmbedder{dim: 32}
	a := openStore(t, db, "ws/alice/memory/", dirA, emb)
	b := openStore(t, db, "ws/bob/memory/", dirB, emb)
	if _, err := a.Add(ctx, []memory.Chunk{{ID: "secret", Text: "alice's launch codes are hunter2"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Add(ctx, []memory.Chunk{{ID: "bobnote", Text: "bob likes launch parties"}}); err != nil {
		t.Fatal(err)
	}
	if ids := hitIDs(search(t, b, "launch codes hunter2")); contains(ids, "secret") || !contains(ids, "bobnote") {
		t.Errorf("bob searched and got %v", ids)
	}
	if _, err := b.Get(ctx, "secret"); !errors.Is(err, memory.ErrNotFound) {
		t.Errorf("bob got alice's chunk: %v", err)
	}
	if err := b.Delete(ctx, "secret"); !errors.Is(err, memory.ErrNotFound) {
		t.Errorf("bob deleted alice's chunk: %v", err)
	}
	list, err := b.List(ctx, memory.ListOptions{})
	if err != nil || len(list) != 1 || list[0].ID != "bobnote" {
		t.Errorf("bob lists %v, %v", list, err)
	}
	// Alice's index flushed to disk, then a third store opened on Alice's
	// index directory: it must rebuild from its own chunks, not serve hers.
	if err := a.Evict(); err != nil {
		t.Fatal(err)
	}
	c := openStore(t, db, "ws/carol/memory/", dirA, emb)
	if _, err := c.Add(ctx, []memory.Chunk{{ID: "carolnote", Text: "carol plans a launch"}}); err != nil {
		t.Fatal(err)
	}
	if ids := hitIDs(search(t, c, "launch codes hunter2")); contains(ids, "secret") {
		t.Errorf("carol, on alice's index dir, got %v", ids)
	}
	// And Alice, back on her (now rebuilt-for-carol) directory, gets hers back.
	_ = c.Close()
	a2 := openStore(t, db, "ws/alice/memory/", dirA, emb)
	if ids := hitIDs(search(t, a2, "launch codes hunter2")); contains(ids, "carolnote") || !contains(ids, "secret") {
		t.Errorf("alice after carol used her dir: %v", ids)
	}
}

func TestDeleteRemovesFromBothIndexes(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := openStore(t, openDB(t, t.TempDir()), "", t.TempDir(), &hashEmbedder{dim: 32})
	ids, err := s.Add(ctx, []memory.Chunk{{Text: "purple elephants dance"}, {Text: "green frogs sing"}})
	if err != nil {
		t.Fatal(err)
	}
	r := search(t, s, "purple elephants dance")
	if !contains(hitIDs(r), ids[0]) || r.Hits[0].Parts.VectorRank == 0 || r.Hits[0].Parts.TextRank == 0 {
		t.Fatalf("before delete: %+v", r.Hits)
	}
	if err := s.Delete(ctx, ids[0]); err != nil {
		t.Fatal(err)
	}
	// The vector half returns every chunk for any query (2 chunks < k), so
	// the deleted one would show up if either index still held it.
	r = search(t, s, "purple elephants dance")
	if contains(hitIDs(r), ids[0]) {
		t.Fatalf("deleted chunk still found: %v", hitIDs(r))
	}
	// And after a reload from disk.
	if err := s.Evict(); err != nil {
		t.Fatal(err)
	}
	if r = search(t, s, "purple elephants dance"); contains(hitIDs(r), ids[0]) {
		t.Fatalf("deleted chunk found after reload: %v", hitIDs(r))
	}
	if st, err := s.Stats(ctx); err != nil || st.Chunks != 1 || st.Embeddings != 1 {
		t.Errorf("stats %+v %v", st, err)
	}
}

func TestBadInput(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := openDB(t, t.TempDir())
	emb := &hashEmbedder{dim: 16}
	s := openStore(t, db, "", t.TempDir(), emb)
	if _, err := s.Add(ctx, []memory.Chunk{{Text: "hello world"}}); err != nil {
		t.Fatal(err)
	}
	queries := []struct {
		name  string
		query string
		want  error
	}{
		{"empty", "", memory.ErrEmptyQuery},
		{"blank", " \t\n", memory.ErrEmptyQuery},
		{"10 MB", strings.Repeat("a", 10<<20), memory.ErrQueryTooLong},
		{"invalid UTF-8", "hello \xff\xfe world", memory.ErrInvalidText},
	}
	kw := openStore(t, db, "kw/", t.TempDir(), nil)
	if _, err := kw.Search(ctx, memory.SearchOptions{Query: "What is it?"}); !errors.Is(err, memory.ErrEmptyQuery) {
		t.Errorf("stopword-only keyword query: %v, want ErrEmptyQuery", err)
	}
	for _, q := range queries {
		if _, err := s.Search(ctx, memory.SearchOptions{Query: q.query}); !errors.Is(err, q.want) {
			t.Errorf("%s query: err %v, want %v", q.name, err, q.want)
		}
	}
	chunks := []struct {
		name string
		c    memory.Chunk
		want error
	}{
		{"empty text", memory.Chunk{Text: "  "}, memory.ErrInvalidChunk},
		{"invalid UTF-8", memory.Chunk{Text: "\xc3\x28"}, memory.ErrInvalidText},
		{"too large", memory.Chunk{Text: strings.Repeat("x", 1<<20)}, memory.ErrInvalidChunk},
		{"bad id", memory.Chunk{ID: "../x", Text: "x"}, memory.ErrInvalidChunk},
		{"NUL in path", memory.Chunk{Text: "x", Path: "a\x00b"}, memory.ErrInvalidChunk},
	}
	for _, c := range chunks {
		if _, err := s.Add(ctx, []memory.Chunk{c.c}); !errors.Is(err, c.want) {
			t.Errorf("%s chunk: err %v, want %v", c.name, err, c.want)
		}
	}
	if err := s.Delete(ctx, "no-such-id"); !errors.Is(err, memory.ErrNotFound) {
		t.Errorf("delete unknown: %v", err)
	}

	bad := []struct {
		name string
		fn   func([][]float32) [][]float32
	}{
		{"wrong dimension", func(vs [][]float32) [][]float32 { vs[0] = vs[0][:8]; return vs }},
		{"NaN", func(vs [][]float32) [][]float32 { vs[0][3] = float32(math.NaN()); return vs }},
		{"Inf", func(vs [][]float32) [][]float32 { vs[0][3] = float32(math.Inf(1)); return vs }},
		{"zero", func(vs [][]float32) [][]float32 { vs[0] = make([]float32, 16); return vs }},
		{"too few", func(vs [][]float32) [][]float32 { return vs[:0] }},
	}
	for _, b := range bad {
		emb.bad = b.fn
		if _, err := s.Add(ctx, []memory.Chunk{{Text: "new text"}}); !errors.Is(err, memory.ErrBadEmbedding) {
			t.Errorf("add with %s embedding: %v", b.name, err)
		}
		if _, err := s.Search(ctx, memory.SearchOptions{Query: "hello"}); !errors.Is(err, memory.ErrBadEmbedding) {
			t.Errorf("search with %s embedding: %v", b.name, err)
		}
	}
	emb.bad = nil
	if st, err := s.Stats(ctx); err != nil || st.Chunks != 1 {
		t.Errorf("bad input changed the store: %+v %v", st, err)
	}
}

func TestDecayAndEvergreen(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	now := time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)
	s, err := memory.Open(ctx, memory.Options{DB: openDB(t, t.TempDir()), IndexDir: t.TempDir(),
		Now: func() time.Time { return now }, Config: memory.Config{MMRLambda: 1}})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	old := now.Add(-30 * 24 * time.Hour)
	if _, err := s.Add(ctx, []memory.Chunk{
		{ID: "old", Text: "the deploy key rotates monthly", Time: old},
		{ID: "pinned", Text: "the deploy key rotates monthly", Time: old, Pinned: true},
		{ID: "file", Text: "the deploy key rotates monthly", Time: old, Source: memory.SourceFile, Path: "MEMORY.md"},
		{ID: "other", Text: "the deploy key rotates monthly", Time: old, Source: memory.SourceFile, Path: "memory/notes.md"},
	}); err != nil {
		t.Fatal(err)
	}
	r := search(t, s, "deploy key")
	decay := map[string]float64{}
	for _, h := range r.Hits {
		decay[h.Chunk.ID] = h.Parts.Decay
	}
	if math.Abs(decay["old"]-0.5) > 1e-9 || math.Abs(decay["other"]-0.5) > 1e-9 || decay["pinned"] != 1 || decay["file"] != 1 {
		t.Errorf("decay %v: want 0.5 for 30-day-old chunks, 1 for pinned and MEMORY.md", decay)
	}
	if id := r.Hits[0].Chunk.ID; id != "file" && id != "pinned" {
		t.Errorf("an evergreen chunk should rank first, got %s", id)
	}
}

func TestEvictAndIdle(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, err := memory.Open(ctx, memory.Options{DB: openDB(t, t.TempDir()), IndexDir: t.TempDir(),
		Config: memory.Config{IdleTimeout: memory.Duration(50 * time.Millisecond)}})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := s.Add(ctx, []memory.Chunk{{ID: "a", Text: "remember the milk"}}); err != nil {
		t.Fatal(err)
	}
	search(t, s, "milk")
	deadline := time.Now().Add(5 * time.Second)
	for {
		st, err := s.Stats(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if !st.Loaded {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("indexes still loaded after the idle timeout")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if ids := hitIDs(search(t, s, "milk")); !contains(ids, "a") {
		t.Errorf("after idle eviction: %v", ids)
	}
}

func TestConfigValidate(t *testing.T) {
	t.Parallel()
	if err := memory.DefaultConfig().Validate(); err != nil {
		t.Fatalf("defaults invalid: %v", err)
	}
	d := memory.DefaultConfig()
	if d.VectorWeight != 0.7 || d.TextWeight != 0.3 || d.MMRLambda != 0.7 || time.Duration(d.DecayHalfLife) != 720*time.Hour {
		t.Errorf("defaults %+v", d)
	}
	bad := []memory.Config{
		{Fusion: "max"},
		{VectorWeight: -1, TextWeight: 1},
		{VectorWeight: math.NaN()},
		{MMRLambda: 1.5},
		{MinScore: 2},
		{CandidateMultiplier: 1000},
		{MaxQueryBytes: 1 << 30},
		{ChunkChars: 500, ChunkOverlap: 500},
	}
	for _, c := range bad {
		if err := c.WithDefaults().Validate(); !errors.Is(err, memory.ErrInvalidConfig) {
			t.Errorf("config %+v: err %v, want ErrInvalidConfig", c, err)
		}
	}
	var dur memory.Duration
	if err := dur.UnmarshalText([]byte("36h")); err != nil || time.Duration(dur) != 36*time.Hour {
		t.Errorf("duration %v %v", dur, err)
	}
}

// crashChild, run in a child process, writes to a store whose indexes are
// loaded and exits without closing anything.
func crashChild(dbDir, indexDir string) {
	ctx := context.Background()
	db, err := badger.Open(badger.DefaultOptions(dbDir).WithLogger(nil))
	if err != nil {
		os.Exit(2)
	}
	s, err := memory.Open(ctx, memory.Options{DB: db, IndexDir: indexDir})
	if err != nil {
		os.Exit(2)
	}
	if _, err := s.Search(ctx, memory.SearchOptions{Query: "load the indexes"}); err != nil {
		os.Exit(2)
	}
	if _, err := s.Add(ctx, []memory.Chunk{{ID: "after", Text: "written after the checkpoint"}}); err != nil {
		os.Exit(2)
	}
	if err := s.Delete(ctx, "before"); err != nil {
		os.Exit(2)
	}
	os.Exit(3) // crash: no Close, no checkpoint
}

func TestMain(m *testing.M) {
	if os.Getenv("MEMORY_CRASH_CHILD") == "1" {
		crashChild(os.Getenv("MEMORY_DB"), os.Getenv("MEMORY_INDEX"))
	}
	os.Exit(m.Run())
}

func TestCrashRepair(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dbDir, indexDir := t.TempDir(), t.TempDir()
	db := openDB(t, dbDir)
	s := openStore(t, db, "", indexDir, nil)
	if _, err := s.Add(ctx, []memory.Chunk{{ID: "before", Text: "written before the checkpoint"}}); err != nil {
		t.Fatal(err)
	}
	search(t, s, "checkpoint")
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "MEMORY_CRASH_CHILD=1", "MEMORY_DB="+dbDir, "MEMORY_INDEX="+indexDir)
	err := cmd.Run()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 3 {
		t.Fatalf("child: %v", err)
	}

	db2 := openDB(t, dbDir)
	s2 := openStore(t, db2, "", indexDir, nil)
	if ids := hitIDs(search(t, s2, "checkpoint")); !contains(ids, "after") || contains(ids, "before") {
		t.Fatalf("after crash: %v, want [after]", ids)
	}
	// Writes made while the indexes are not loaded are picked up too.
	if err := s2.Evict(); err != nil {
		t.Fatal(err)
	}
	if _, err := s2.Add(ctx, []memory.Chunk{{ID: "unloaded", Text: "checkpoint while unloaded"}}); err != nil {
		t.Fatal(err)
	}
	if ids := hitIDs(search(t, s2, "checkpoint")); !contains(ids, "unloaded") {
		t.Fatalf("write while unloaded missing: %v", ids)
	}
	// A lost or corrupt state file, or a deleted index, means a rebuild.
	for i, damage := range []func() error{
		func() error { return os.WriteFile(filepath.Join(indexDir, "state.json"), []byte("{garbage"), 0o600) },
		func() error { return os.RemoveAll(indexDir) },
		func() error { return os.RemoveAll(filepath.Join(indexDir, "text")) },
	} {
		if err := s2.Evict(); err != nil {
			t.Fatal(err)
		}
		if err := damage(); err != nil {
			t.Fatal(err)
		}
		if err := os.MkdirAll(indexDir, 0o700); err != nil {
			t.Fatal(err)
		}
		if ids := hitIDs(search(t, s2, "checkpoint")); len(ids) != 2 || contains(ids, "before") {
			t.Fatalf("after damage %d: %v", i, ids)
		}
	}
}

func TestReindex(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dir := t.TempDir()
	s := openStore(t, openDB(t, t.TempDir()), "", dir, &hashEmbedder{dim: 8})
	if _, err := s.Add(ctx, []memory.Chunk{{ID: "a", Text: "reindex me"}}); err != nil {
		t.Fatal(err)
	}
	search(t, s, "reindex")
	if err := s.Reindex(ctx); err != nil {
		t.Fatal(err)
	}
	if r := search(t, s, "reindex"); !contains(hitIDs(r), "a") || r.Mode != "hybrid" {
		t.Fatalf("after reindex: %v %s", hitIDs(r), r.Mode)
	}
}

// countingEmbedder counts the texts it embeds.
type countingEmbedder struct {
	hashEmbedder
	texts int
}

func (e *countingEmbedder) Embed(ctx context.Context, texts []string) ([][]float32, error) {
	e.texts += len(texts)
	return e.hashEmbedder.Embed(ctx, texts)
}

func TestReplaceKeepsUnchangedEmbeddings(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	emb := &countingEmbedder{hashEmbedder: hashEmbedder{dim: 8}}
	s := openStore(t, openDB(t, t.TempDir()), "", t.TempDir(), emb)
	when := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	a := memory.Chunk{ID: "f-a", Text: "first paragraph", Time: when}
	b := memory.Chunk{ID: "f-b", Text: "second paragraph", Time: when}
	if err := s.Replace(ctx, memory.SourceFile, "memory/x.md", []memory.Chunk{a, b}); err != nil {
		t.Fatal(err)
	}
	c := memory.Chunk{ID: "f-c", Text: "third paragraph", Time: when}
	if err := s.Replace(ctx, memory.SourceFile, "memory/x.md", []memory.Chunk{a, c}); err != nil {
		t.Fatal(err)
	}
	if emb.texts != 3 {
		t.Errorf("embedded %d texts, want 3 (the unchanged chunk is not embedded again)", emb.texts)
	}
	list, err := s.List(ctx, memory.ListOptions{Source: memory.SourceFile, Path: "memory/x.md"})
	if err != nil || len(list) != 2 {
		t.Fatalf("list %v %v", list, err)
	}
	if ids := hitIDs(search(t, s, "second paragraph")); contains(ids, "f-b") {
		t.Errorf("replaced chunk still found: %v", ids)
	}
}

// Searches, writes and evictions at once; run with -race.
func TestConcurrentUse(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := openStore(t, openDB(t, t.TempDir()), "", t.TempDir(), &hashEmbedder{dim: 16})
	done := make(chan error, 3)
	go func() {
		for i := 0; i < 40; i++ {
			if _, err := s.Add(ctx, []memory.Chunk{{Text: fmt.Sprintf("note %d about concurrency", i)}}); err != nil {
				done <- err
				return
			}
		}
		done <- nil
	}()
	go func() {
		for i := 0; i < 40; i++ {
			if _, err := s.Search(ctx, memory.SearchOptions{Query: "concurrency note"}); err != nil {
				done <- err
				return
			}
		}
		done <- nil
	}()
	go func() {
		for i := 0; i < 10; i++ {
			if err := s.Evict(); err != nil {
				done <- err
				return
			}
			time.Sleep(time.Millisecond)
		}
		done <- nil
	}()
	for i := 0; i < 3; i++ {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
	r, err := s.Search(ctx, memory.SearchOptions{Query: "concurrency", Limit: 10})
	if err != nil || len(r.Hits) != 10 {
		t.Fatalf("%d hits, %v", len(r.Hits), err)
	}
	if st, err := s.Stats(ctx); err != nil || st.Chunks != 40 {
		t.Fatalf("stats %+v %v", st, err)
	}
}

func TestTranscriptContext(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := openStore(t, openDB(t, t.TempDir()), "", t.TempDir(), nil)
	ids, err := s.IndexTranscript(ctx, "bulkhead:alice:session:1", []memory.Turn{
		{Seq: 0, Speaker: "Bob", Text: "Where did you go for the holidays?"},
		{Seq: 1, Speaker: "Ann", Text: "  "},
		{Seq: 2, Speaker: "Ann", Text: "We went hiking in Patagonia."},
		{Seq: 3, Speaker: "Bob", Text: "Sounds amazing!"},
	})
	if err != nil {
		t.Fatal(err)
	}
	if ids[1] != "" || ids[0] == "" || ids[2] == "" {
		t.Fatalf("ids %v", ids)
	}
	c, err := s.Get(ctx, ids[2])
	if err != nil || c.Text != "Ann: We went hiking in Patagonia." || c.Source != memory.SourceSession ||
		c.Context != "Bob: Where did you go for the holidays?\nBob: Sounds amazing!" {
		t.Fatalf("chunk %+v %v", c, err)
	}
	// The answer is found by words only its question holds.
	if got := hitIDs(search(t, s, "holidays")); len(got) < 2 || got[0] != ids[0] || !contains(got, ids[2]) {
		t.Errorf("holidays: %v", got)
	}
	// Indexing the same turns again replaces them.
	if _, err := s.IndexTranscript(ctx, "bulkhead:alice:session:1", []memory.Turn{{Seq: 3, Speaker: "Bob", Text: "Sounds amazing!"}}); err != nil {
		t.Fatal(err)
	}
	if st, err := s.Stats(ctx); err != nil || st.Chunks != 3 {
		t.Errorf("stats %+v %v", st, err)
	}
}

func TestReindexEmbedsWhatIsMissing(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db, dir := openDB(t, t.TempDir()), t.TempDir()
	plain := openStore(t, db, "", dir, nil)
	if _, err := plain.Add(ctx, []memory.Chunk{{ID: "a", Text: "added before any embedder"}}); err != nil {
		t.Fatal(err)
	}
	if err := plain.Close(); err != nil {
		t.Fatal(err)
	}
	for _, model := range []string{"one/model", "two/model"} {
		s := openStore(t, db, "", dir, &hashEmbedder{dim: 8, model: model})
		if err := s.Reindex(ctx); err != nil {
			t.Fatal(err)
		}
		c, err := s.Get(ctx, "a")
		if err != nil || c.Model != model {
			t.Fatalf("after reindex with %s: %+v %v", model, c, err)
		}
		r := search(t, s, "embedder")
		if r.Mode != "hybrid" || len(r.Hits) != 1 || r.Hits[0].Parts.VectorRank != 1 {
			t.Fatalf("%s: mode %s hits %+v", model, r.Mode, r.Hits)
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
	}
}
