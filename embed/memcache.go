package embed

import (
	"container/list"
	"context"
	"fmt"
	"sync"
)

// MemoryCache is an in-memory LRU Cache capped in bytes (vector bytes plus a
// fixed per-entry overhead). Make one per workspace.
type MemoryCache struct {
	mu       sync.Mutex
	maxBytes int
	bytes    int
	order    *list.List // front = most recently used; values are *memEntry
	entries  map[CacheKey]*list.Element
}

type memEntry struct {
	key CacheKey
	vec []float32
}

const memEntryOverhead = 160 // key, list element, map slot, slice header

// NewMemoryCache returns an LRU holding at most maxBytes; maxBytes <= 0 means 64 MiB.
func NewMemoryCache(maxBytes int) *MemoryCache {
	if maxBytes <= 0 {
		maxBytes = 64 << 20
	}
	return &MemoryCache{maxBytes: maxBytes, order: list.New(), entries: map[CacheKey]*list.Element{}}
}

func entrySize(v []float32) int { return 4*len(v) + memEntryOverhead }

// Lookup returns the cached vectors (shared; WithCache copies them) and marks them used.
func (c *MemoryCache) Lookup(_ context.Context, keys []CacheKey) ([][]float32, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([][]float32, len(keys))
	for i, k := range keys {
		if el, ok := c.entries[k]; ok {
			c.order.MoveToFront(el)
			out[i] = el.Value.(*memEntry).vec
		}
	}
	return out, nil
}

// Store adds vectors, evicting the least recently used beyond the cap.
// A vector larger than the whole cap is not stored.
func (c *MemoryCache) Store(_ context.Context, keys []CacheKey, vecs [][]float32) error {
	if len(keys) != len(vecs) {
		return fmt.Errorf("store %d vectors under %d keys", len(vecs), len(keys))
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for i, k := range keys {
		v := append([]float32(nil), vecs[i]...)
		size := entrySize(v)
		if size > c.maxBytes {
			continue
		}
		if el, ok := c.entries[k]; ok {
			c.bytes += size - entrySize(el.Value.(*memEntry).vec)
			el.Value.(*memEntry).vec = v
			c.order.MoveToFront(el)
		} else {
			c.entries[k] = c.order.PushFront(&memEntry{key: k, vec: v})
			c.bytes += size
		}
		for c.bytes > c.maxBytes {
			last := c.order.Back()
			e := last.Value.(*memEntry)
			c.order.Remove(last)
			delete(c.entries, e.key)
			c.bytes -= entrySize(e.vec)
		}
	}
	return nil
}

// Len returns the number of entries; Bytes the accounted size.
func (c *MemoryCache) Len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.entries)
}

// Bytes returns the accounted size of the entries.
func (c *MemoryCache) Bytes() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.bytes
}
