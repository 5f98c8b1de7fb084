package vectors

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// editedIndex builds an index in the mode asked for, with tombstones in
// graph mode, and returns it with probe queries.
func editedIndex(t testing.TB, graph bool, metric Metric) (*Index, [][]float32) {
	t.Helper()
	const dim = 12
	rng := rand.New(rand.NewPCG(11, 12))
	threshold := 100000
	if graph {
		threshold = 40
	}
	ix := mustNew(t, Config{Dim: dim, Metric: metric, ExactThreshold: threshold, M: 6, MaxTombstoneRatio: -1})
	for i, v := range randVecs(rng, 300, dim) {
		if err := ix.Add(fmt.Sprintf("chunk-%d", i), v); err != nil {
			t.Fatal(err)
		}
	}
	for i := 0; i < 300; i += 7 {
		ix.Delete(fmt.Sprintf("chunk-%d", i))
	}
	for i, v := range randVecs(rng, 10, dim) {
		if err := ix.Upsert(fmt.Sprintf("chunk-%d", i*3), v); err != nil {
			t.Fatal(err)
		}
	}
	return ix, randVecs(rng, 20, dim)
}

func encode(t testing.TB, ix *Index) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := ix.Save(&buf); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func sameAnswers(t *testing.T, a, b *Index, queries [][]float32) {
	t.Helper()
	if a.Stats() != b.Stats() || a.Config() != b.Config() {
		t.Fatalf("stats/config differ: %+v %+v / %+v %+v", a.Stats(), a.Config(), b.Stats(), b.Config())
	}
	for _, q := range queries {
		ra, err := a.Search(q, 10)
		if err != nil {
			t.Fatal(err)
		}
		rb, err := b.Search(q, 10)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(ra, rb) {
			t.Fatalf("answers differ:\n%v\n%v", ra, rb)
		}
	}
}

func TestSaveLoadRoundTrip(t *testing.T) {
	t.Parallel()
	for _, graph := range []bool{false, true} {
		for _, metric := range []Metric{Cosine, Dot} {
			t.Run(fmt.Sprintf("graph=%v/%v", graph, metric), func(t *testing.T) {
				t.Parallel()
				ix, queries := editedIndex(t, graph, metric)
				if graph && ix.Stats().Tombstones == 0 {
					t.Fatal("test index has no tombstones")
				}
				data := encode(t, ix)
				got, err := Load(bytes.NewReader(data))
				if err != nil {
					t.Fatal(err)
				}
				sameAnswers(t, ix, got, queries)
				if again := encode(t, got); !bytes.Equal(again, data) {
					t.Fatal("re-encoding a loaded index changed its bytes")
				}
				// The level generator's state is saved too: the same
				// inserts after loading build the same graph.
				rng := rand.New(rand.NewPCG(99, 99))
				for i, v := range randVecs(rng, 50, 12) {
					id := fmt.Sprintf("late-%d", i)
					if err := ix.Add(id, v); err != nil {
						t.Fatal(err)
					}
					if err := got.Add(id, v); err != nil {
						t.Fatal(err)
					}
				}
				ix.Compact()
				got.Compact()
				sameAnswers(t, ix, got, queries)
			})
		}
	}
}

func TestSaveFileLoadFile(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dir := t.TempDir()
	if _, err := LoadFile(ctx, dir); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("LoadFile of an empty dir = %v, want fs.ErrNotExist", err)
	}
	ix, queries := editedIndex(t, true, Cosine)
	if err := ix.SaveFile(ctx, dir); err != nil {
		t.Fatal(err)
	}
	// Overwrite with a changed index: the rename replaces the old file.
	ix.Delete("chunk-1")
	if err := ix.SaveFile(ctx, dir); err != nil {
		t.Fatal(err)
	}
	got, err := LoadFile(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	sameAnswers(t, ix, got, queries)
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 || entries[0].Name() != FileName {
		t.Fatalf("dir holds %v, want only %s (temp files must not stay)", entries, FileName)
	}
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	if err := ix.SaveFile(cancelled, dir); !errors.Is(err, context.Canceled) {
		t.Fatalf("SaveFile with a cancelled ctx = %v", err)
	}
	if err := ix.SaveFile(ctx, filepath.Join(dir, "missing")); err == nil {
		t.Fatal("SaveFile into a missing dir succeeded")
	}
}

// TestLoadRejectsDamage truncates the file at every length and flips every
// byte (on a small index) and requires ErrCorrupt each time.
func TestLoadRejectsDamage(t *testing.T) {
	t.Parallel()
	for _, graph := range []bool{false, true} {
		t.Run(fmt.Sprintf("graph=%v", graph), func(t *testing.T) {
			t.Parallel()
			const dim = 4
			rng := rand.New(rand.NewPCG(1, 1))
			ix := mustNew(t, Config{Dim: dim, ExactThreshold: 5, M: 3})
			for i, v := range randVecs(rng, 12, dim) {
				if err := ix.Add(fmt.Sprint(i), v); err != nil {
					t.Fatal(err)
				}
			}
			if graph {
				ix.Delete("4")
			} else {
				ix = mustNew(t, Config{Dim: dim})
				for i, v := range randVecs(rng, 12, dim) {
					if err := ix.Add(fmt.Sprint(i), v); err != nil {
						t.Fatal(err)
					}
				}
			}
			data := encode(t, ix)
			for n := range len(data) {
				_, err := Load(bytes.NewReader(data[:n]))
				if !errors.Is(err, ErrCorrupt) {
					t.Fatalf("truncated to %d of %d bytes: err = %v, want ErrCorrupt", n, len(data), err)
				}
			}
			for i := range data {
				bad := bytes.Clone(data)
				bad[i] ^= 0x10
				if _, err := Load(bytes.NewReader(bad)); !errors.Is(err, ErrCorrupt) {
					t.Fatalf("byte %d flipped: err = %v, want ErrCorrupt", i, err)
				}
			}
			if _, err := Load(bytes.NewReader(append(bytes.Clone(data), 0))); !errors.Is(err, ErrCorrupt) {
				t.Fatalf("trailing byte: err = %v, want ErrCorrupt", err)
			}
		})
	}
}

func TestLoadFileReportsTruncation(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dir := t.TempDir()
	ix, _ := editedIndex(t, true, Cosine)
	if err := ix.SaveFile(ctx, dir); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, FileName)
	st, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(p, st.Size()/2); err != nil {
		t.Fatal(err)
	}
	_, err = LoadFile(ctx, dir)
	if !errors.Is(err, ErrCorrupt) || !bytes.Contains([]byte(err.Error()), []byte("truncated")) {
		t.Fatalf("LoadFile of a half file = %v, want ErrCorrupt saying truncated", err)
	}
}

// TestLoadRejectsForgedStructure plays someone who can write the index file
// and so can also fix up its checksum: each case damages one structural
// invariant in memory and saves (Save computes a valid CRC); Load must still
// refuse the file, because a search over it could index out of range or
// return wrong answers.
func TestLoadRejectsForgedStructure(t *testing.T) {
	t.Parallel()
	upperNode := func(ix *Index) uint32 {
		for s, l := range ix.g.levels {
			if l > 0 && uint32(s) != ix.g.entry {
				return uint32(s)
			}
		}
		t.Fatal("no upper-level node besides the entry")
		return 0
	}
	lowerNode := func(ix *Index) uint32 {
		for s, l := range ix.g.levels {
			if l == 0 && !ix.dead[s] {
				return uint32(s)
			}
		}
		t.Fatal("no level-0 node")
		return 0
	}
	tests := []struct {
		name   string
		forge  func(ix *Index)
		reason string
	}{
		{"link out of range", func(ix *Index) { ix.g.record(0, 0)[1] = uint32(len(ix.ids)) + 5 }, "bad link"},
		{"self link", func(ix *Index) { ix.g.record(3, 0)[1] = 3 }, "bad link"},
		{"upper link to a level-0 node", func(ix *Index) {
			u := upperNode(ix)
			r := ix.g.record(u, 1)
			r[0] = max(r[0], 1)
			r[1] = lowerNode(ix)
		}, "bad link"},
		{"entry below the top level", func(ix *Index) { ix.g.entry = lowerNode(ix) }, "top level"},
		{"duplicate id", func(ix *Index) { ix.ids[1] = ix.ids[2] }, "duplicate id"},
		{"tombstone with an id", func(ix *Index) { ix.dead[lowerNode(ix)] = true }, "disagree"},
		{"live slot without an id", func(ix *Index) { ix.ids[lowerNode(ix)] = "" }, "disagree"},
		{"cosine vector not unit length", func(ix *Index) { ix.vec(2)[0] += 0.5 }, "norm"},
		{"NaN component", func(ix *Index) { ix.vec(2)[1] = float32(math.NaN()) }, "NaN"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ix, _ := editedIndex(t, true, Cosine)
			if ix.g.maxLevel < 1 {
				t.Fatal("test index has one level only")
			}
			tt.forge(ix)
			_, err := Load(bytes.NewReader(encode(t, ix)))
			if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), tt.reason) {
				t.Fatalf("Load = %v, want ErrCorrupt mentioning %q", err, tt.reason)
			}
		})
	}
}
