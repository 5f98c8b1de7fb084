package memory_test

import (
	"context"
	"hash/fnv"
	"strings"
	"testing"
	"unicode"

	"github.com/dgraph-io/badger/v4"
)

// openDB opens a Badger database in dir for a test; closed at cleanup.
func openDB(tb testing.TB, dir string) *badger.DB {
	tb.Helper()
	db, err := badger.Open(badger.DefaultOptions(dir).WithLogger(nil).
		WithMemTableSize(8 << 20).WithValueLogFileSize(16 << 20).WithNumCompactors(2))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = db.Close() })
	return db
}

// hashEmbedder is a deterministic fake embedder: a bag of hashed lowercase
// words, so texts sharing words point the same way. Fields override its
// output to test bad answers.
type hashEmbedder struct {
	dim   int
	model string
	// bad, if set, rewrites the vectors before they are returned.
	bad func(vs [][]float32) [][]float32
}

func (e *hashEmbedder) Model() string {
	if e.model != "" {
		return e.model
	}
	return "fake/hash"
}

func (e *hashEmbedder) Embed(_ context.Context, texts []string) ([][]float32, error) {
	out := make([][]float32, len(texts))
	for i, t := range texts {
		v := make([]float32, e.dim)
		for _, w := range strings.FieldsFunc(strings.ToLower(t), func(r rune) bool { return !unicode.IsLetter(r) && !unicode.IsDigit(r) }) {
			h := fnv.New64a()
			h.Write([]byte(w))
			x := h.Sum64()
			v[x%uint64(e.dim)] += 1
			v[(x>>20)%uint64(e.dim)] += 0.5
		}
		v[0] += 0.01 // never all zeros
		out[i] = v
	}
	if e.bad != nil {
		out = e.bad(out)
	}
	return out, nil
}
