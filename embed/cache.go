package embed

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"math"
	"strconv"
)

// CacheKey names one cached vector: the embedder's scope (provider, model,
// dimensions, endpoint and input type) and the SHA-256 of the text.
type CacheKey struct {
	Scope [16]byte // truncated SHA-256 of provider, model, dimensions, endpoint and input type
	Text  [32]byte // SHA-256 of the text
}

// Cache stores vectors by key. Lookup returns one entry per key, nil for a
// miss. Implementations are safe for concurrent use; one Cache serves one
// workspace.
type Cache interface {
	Lookup(ctx context.Context, keys []CacheKey) ([][]float32, error)
	Store(ctx context.Context, keys []CacheKey, vecs [][]float32) error
}

// scoped is implemented by embedders whose answers depend on more than
// provider and model (the endpoint, the input type).
type scoped interface{ cacheScope() string }

func scopeOf(e Embedder) [16]byte {
	h := sha256.New()
	for _, s := range []string{e.Name(), e.Model(), strconv.Itoa(e.Dimensions())} {
		h.Write([]byte(s))
		h.Write([]byte{0})
	}
	if s, ok := e.(scoped); ok {
		h.Write([]byte(s.cacheScope()))
	}
	var out [16]byte
	copy(out[:], h.Sum(nil))
	return out
}

// WithCache returns an Embedder that answers from c where it can and asks e
// for the rest, storing what e returns. Identical texts in one call are sent
// once. A cached vector of the wrong length is treated as a miss.
func WithCache(e Embedder, c Cache) Embedder {
	return &cachedEmbedder{Embedder: e, cache: c, scope: scopeOf(e)}
}

type cachedEmbedder struct {
	Embedder
	cache Cache
	scope [16]byte
}

func (c *cachedEmbedder) Embed(ctx context.Context, texts []string) ([][]float32, error) {
	keys := make([]CacheKey, len(texts))
	for i, t := range texts {
		keys[i] = CacheKey{Scope: c.scope, Text: sha256.Sum256([]byte(t))}
	}
	out, err := c.cache.Lookup(ctx, keys)
	if err != nil {
		return nil, fmt.Errorf("embed cache lookup: %w", err)
	}
	if len(out) != len(keys) {
		return nil, fmt.Errorf("embed cache lookup: %d entries for %d keys", len(out), len(keys))
	}
	dims := c.Dimensions()
	var missTexts []string
	var missKeys []CacheKey
	firstMiss := map[[32]byte]int{} // text hash → index in missTexts
	for i, v := range out {
		if v != nil && len(v) == dims {
			out[i] = append([]float32(nil), v...) // callers may scribble on results
			continue
		}
		out[i] = nil
		if _, ok := firstMiss[keys[i].Text]; !ok {
			firstMiss[keys[i].Text] = len(missTexts)
			missTexts = append(missTexts, texts[i])
			missKeys = append(missKeys, keys[i])
		}
	}
	if len(missTexts) == 0 {
		return out, nil
	}
	fresh, err := c.Embedder.Embed(ctx, missTexts)
	if err != nil {
		return nil, err
	}
	if len(fresh) != len(missTexts) {
		return nil, fmt.Errorf("%w: got %d vectors for %d texts", ErrWrongCount, len(fresh), len(missTexts))
	}
	if err := c.cache.Store(ctx, missKeys, fresh); err != nil {
		return nil, fmt.Errorf("embed cache store: %w", err)
	}
	for i := range out {
		if out[i] == nil {
			out[i] = append([]float32(nil), fresh[firstMiss[keys[i].Text]]...)
		}
	}
	return out, nil
}

// encodeVector is the stored form of a vector: little-endian float32s.
func encodeVector(dst []byte, v []float32) []byte {
	for _, x := range v {
		dst = binary.LittleEndian.AppendUint32(dst, math.Float32bits(x))
	}
	return dst
}

func decodeVector(b []byte) ([]float32, error) {
	if len(b)%4 != 0 {
		return nil, fmt.Errorf("stored vector of %d bytes is not a multiple of 4", len(b))
	}
	v := make([]float32, len(b)/4)
	for i := range v {
		v[i] = math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:]))
	}
	return v, nil
}
