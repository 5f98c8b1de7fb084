package memory_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/bulkhead-dev/bulkhead/memory"
	"github.com/dgraph-io/badger/v4"
)

func Example() {
	ctx := context.Background()
	dir, _ := os.MkdirTemp("", "memory-example")
	defer os.RemoveAll(dir)
	db, err := badger.Open(badger.DefaultOptions(filepath.Join(dir, "state")).WithLogger(nil))
	if err != nil {
		panic(err)
	}
	defer db.Close()

	// No embedder: keyword-only search.
	store, err := memory.Open(ctx, memory.Options{DB: db, IndexDir: filepath.Join(dir, "index")})
	if err != nil {
		panic(err)
	}
	defer store.Close()
	_, err = store.Add(ctx, []memory.Chunk{
		{ID: "tea", Text: "Alice drinks green tea every morning.", Pinned: true},
		{ID: "db", Text: "The staging database moves to Postgres 16 on Tuesday."},
	})
	if err != nil {
		panic(err)
	}
	res, err := store.Search(ctx, memory.SearchOptions{Query: "What does Alice drink?"})
	if err != nil {
		panic(err)
	}
	h := res.Hits[0]
	fmt.Println(res.Mode, res.Keywords, h.Chunk.ID, h.Parts.Decay)
	// Output: keyword [alice drink] tea 1
}
