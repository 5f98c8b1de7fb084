package vectors

import (
	"bytes"
	"errors"
	"fmt"
	"testing"
)

// FuzzDecode feeds arbitrary bytes to the decoder with the checksum check
// off, so mutations reach the structural validation. Whatever it accepts
// must be safe to search, edit, compact and save, and must load again with
// the checksum on.
func FuzzDecode(f *testing.F) {
	for _, graph := range []bool{false, true} {
		ix, _ := editedIndex(f, graph, Cosine)
		f.Add(encode(f, ix))
	}
	small := mustNew(f, Config{Dim: 2, Metric: Dot, ExactThreshold: 3, M: 2})
	for i, v := range [][]float32{{1, 0}, {0, 1}, {1, 1}, {-1, 2}, {3, -1}} {
		if err := small.Add(fmt.Sprint(i), v); err != nil {
			f.Fatal(err)
		}
	}
	small.Delete("2")
	f.Add(encode(f, small))
	f.Fuzz(func(t *testing.T, data []byte) {
		ix, err := decode(bytes.NewReader(data), false, int64(len(data)))
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("decode error does not wrap ErrCorrupt: %v", err)
			}
			return
		}
		dim := ix.Config().Dim
		q := make([]float32, dim)
		for i := range q {
			q[i] = float32(i%3) - 0.5
		}
		if _, err := ix.Search(q, 5); err != nil {
			t.Fatal(err)
		}
		if _, err := ix.SearchExact(q, 5); err != nil {
			t.Fatal(err)
		}
		if err := ix.Upsert("fuzz-new", q); err != nil {
			t.Fatal(err)
		}
		if !ix.Delete("fuzz-new") {
			t.Fatal("Delete of a just-added id returned false")
		}
		ix.Compact()
		if _, err := ix.Search(q, 3); err != nil {
			t.Fatal(err)
		}
		var buf bytes.Buffer
		if err := ix.Save(&buf); err != nil {
			t.Fatal(err)
		}
		again, err := Load(&buf)
		if err != nil {
			t.Fatalf("reload of a saved index: %v", err)
		}
		if again.Len() != ix.Len() {
			t.Fatalf("reload changed Len: %d -> %d", ix.Len(), again.Len())
		}
	})
}
