package memory

import (
	"math"
	"strings"
	"testing"
	"unicode/utf8"
)

func FuzzDecodeEmbedding(f *testing.F) {
	f.Add(encodeEmbedding("fake/hash", []float32{1, 2, 3}))
	f.Add([]byte{})
	f.Add([]byte{0xff, 0xff, 'a'})
	f.Add(encodeEmbedding("", []float32{float32(math.NaN())}))
	f.Fuzz(func(t *testing.T, b []byte) {
		model, v, err := decodeEmbedding(b)
		if err != nil {
			return
		}
		again := encodeEmbedding(model, v)
		if string(again) != string(b) {
			t.Fatalf("round trip changed %x to %x", b, again)
		}
	})
}

func FuzzChunkMarkdown(f *testing.F) {
	f.Add("# T\nline\n\n## U\n"+strings.Repeat("word ", 300), 200, 40)
	f.Add("no newline at all", 100, 0)
	f.Add(strings.Repeat("é", 500), 101, 100)
	f.Fuzz(func(t *testing.T, text string, size, overlap int) {
		if size < 100 || size > 5000 || overlap < 0 || overlap >= size || !utf8.ValidString(text) {
			return
		}
		for i, c := range chunkMarkdown(text, size, overlap) {
			if len(c) > size {
				t.Fatalf("chunk %d is %d bytes > %d", i, len(c), size)
			}
			if !utf8.ValidString(c) {
				t.Fatalf("chunk %d is not valid UTF-8", i)
			}
			if strings.TrimSpace(c) == "" {
				t.Fatalf("chunk %d is blank", i)
			}
		}
	})
}
