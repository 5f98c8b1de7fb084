package embed

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"sync"

	"github.com/dgraph-io/badger/v4"
)

// BadgerCache is a persistent Cache inside a Badger DB the caller owns,
// under a key prefix, capped at maxEntries. Pass the workspace's own DB: the
// cache never reads outside its prefix, and one DB per workspace keeps
// tenants apart.
//
// Layout under prefix:
//
//	'e' scope(16) text(32) → seq(8, big-endian) ‖ vector (little-endian float32s)
//	'o' seq(8, big-endian) → scope(16) text(32)
//
// The 'o' keys order entries by their last stamp; eviction removes the
// oldest. A hit on an entry older than half the cap is stamped again, so the
// order approximates LRU at a bounded write cost. Only one BadgerCache may
// use a (DB, prefix) at a time.
type BadgerCache struct {
	db         *badger.DB
	prefix     []byte
	maxEntries int

	mu    sync.Mutex // serialises writes and guards next and count
	next  uint64     // next stamp
	count int        // number of 'o' keys
}

const (
	tagEntry = 'e'
	tagOrder = 'o'
	keyLen   = 16 + 32
)

// NewBadgerCache opens the cache under prefix (which must be non-empty),
// counting what is there and evicting down to maxEntries (<= 0 means 100,000).
func NewBadgerCache(ctx context.Context, db *badger.DB, prefix []byte, maxEntries int) (*BadgerCache, error) {
	if db == nil || len(prefix) == 0 {
		return nil, fmt.Errorf("%w: badger cache needs a DB and a non-empty prefix", ErrConfig)
	}
	if maxEntries <= 0 {
		maxEntries = 100_000
	}
	c := &BadgerCache{db: db, prefix: bytes.Clone(prefix), maxEntries: maxEntries}
	err := db.View(func(txn *badger.Txn) error {
		opts := badger.DefaultIteratorOptions
		opts.PrefetchValues = false
		opts.Prefix = c.key(tagOrder)
		it := txn.NewIterator(opts)
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			k := it.Item().Key()
			if len(k) != len(opts.Prefix)+8 {
				continue
			}
			c.count++
			if s := binary.BigEndian.Uint64(k[len(opts.Prefix):]); s >= c.next {
				c.next = s + 1
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("open embedding cache: %w", err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.evictLocked(ctx); err != nil {
		return nil, err
	}
	return c, nil
}

func (c *BadgerCache) key(tag byte, parts ...[]byte) []byte {
	k := append(bytes.Clone(c.prefix), tag)
	for _, p := range parts {
		k = append(k, p...)
	}
	return k
}

func (c *BadgerCache) entryKey(k CacheKey) []byte { return c.key(tagEntry, k.Scope[:], k.Text[:]) }

func (c *BadgerCache) orderKey(seq uint64) []byte {
	return c.key(tagOrder, binary.BigEndian.AppendUint64(nil, seq))
}

// Lookup reads the entries; hits that have aged past half the cap are re-stamped.
func (c *BadgerCache) Lookup(ctx context.Context, keys []CacheKey) ([][]float32, error) {
	out := make([][]float32, len(keys))
	var stale []CacheKey
	err := c.db.View(func(txn *badger.Txn) error {
		for i, k := range keys {
			item, err := txn.Get(c.entryKey(k))
			if errors.Is(err, badger.ErrKeyNotFound) {
				continue
			}
			if err != nil {
				return err
			}
			val, err := item.ValueCopy(nil)
			if err != nil {
				return err
			}
			if len(val) < 8 {
				continue // damaged entry: a miss, replaced on store
			}
			v, err := decodeVector(val[8:])
			if err != nil {
				continue
			}
			out[i] = v
			c.mu.Lock()
			old := binary.BigEndian.Uint64(val)+uint64(c.maxEntries/2) < c.next
			c.mu.Unlock()
			if old {
				stale = append(stale, k)
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read embedding cache: %w", err)
	}
	if len(stale) > 0 {
		if err := c.restamp(ctx, stale); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// Store writes new entries (existing ones are kept) and evicts beyond the cap.
func (c *BadgerCache) Store(ctx context.Context, keys []CacheKey, vecs [][]float32) error {
	if len(keys) != len(vecs) {
		return fmt.Errorf("store %d vectors under %d keys", len(vecs), len(keys))
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	w := c.newWriter()
	defer w.discard()
	for i, k := range keys {
		if err := ctx.Err(); err != nil {
			return err
		}
		ek := c.entryKey(k)
		item, err := w.txn.Get(ek)
		switch {
		case err == nil:
			val, err := item.ValueCopy(nil)
			if err == nil && len(val) == 8+4*len(vecs[i]) {
				continue // present and whole
			}
			if err == nil && len(val) >= 8 { // damaged: replace, dropping its order key
				if err := w.del(c.orderKey(binary.BigEndian.Uint64(val))); err != nil {
					return err
				}
				c.count--
			}
		case !errors.Is(err, badger.ErrKeyNotFound):
			return fmt.Errorf("write embedding cache: %w", err)
		}
		// The order key goes first: if the entry write is lost, eviction drops the orphan order key.
		if err := w.set(c.orderKey(c.next), append(k.Scope[:], k.Text[:]...)); err != nil {
			return err
		}
		val := encodeVector(binary.BigEndian.AppendUint64(make([]byte, 0, 8+4*len(vecs[i])), c.next), vecs[i])
		if err := w.set(ek, val); err != nil {
			return err
		}
		c.next++
		c.count++
	}
	if err := w.commit(); err != nil {
		return err
	}
	return c.evictLocked(ctx)
}

// restamp gives entries a new stamp so eviction treats them as recently used.
func (c *BadgerCache) restamp(ctx context.Context, keys []CacheKey) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	w := c.newWriter()
	defer w.discard()
	for _, k := range keys {
		if err := ctx.Err(); err != nil {
			return err
		}
		ek := c.entryKey(k)
		item, err := w.txn.Get(ek)
		if errors.Is(err, badger.ErrKeyNotFound) {
			continue // evicted meanwhile
		}
		if err != nil {
			return fmt.Errorf("write embedding cache: %w", err)
		}
		val, err := item.ValueCopy(nil)
		if err != nil || len(val) < 8 {
			continue
		}
		if err := w.del(c.orderKey(binary.BigEndian.Uint64(val))); err != nil {
			return err
		}
		binary.BigEndian.PutUint64(val, c.next)
		if err := w.set(c.orderKey(c.next), append(k.Scope[:], k.Text[:]...)); err != nil {
			return err
		}
		if err := w.set(ek, val); err != nil {
			return err
		}
		c.next++
	}
	return w.commit()
}

// evictLocked removes the oldest entries until count <= maxEntries.
func (c *BadgerCache) evictLocked(ctx context.Context) error {
	for c.count > c.maxEntries {
		if err := ctx.Err(); err != nil {
			return err
		}
		want := min(c.count-c.maxEntries, 1000)
		removed := 0
		err := c.db.Update(func(txn *badger.Txn) error {
			dels, n, err := c.oldest(txn, want)
			if err != nil {
				return err
			}
			removed = n
			for _, k := range dels {
				if err := txn.Delete(k); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("evict embedding cache: %w", err)
		}
		if removed == 0 {
			c.count = 0 // nothing left to evict: the count was wrong
			return nil
		}
		c.count -= removed
	}
	return nil
}

// oldest returns the keys to delete for the n oldest order keys: each order
// key, and its entry when the entry still carries that stamp.
func (c *BadgerCache) oldest(txn *badger.Txn, n int) (dels [][]byte, removed int, err error) {
	opts := badger.DefaultIteratorOptions
	opts.Prefix = c.key(tagOrder)
	it := txn.NewIterator(opts)
	defer it.Close()
	for it.Rewind(); it.Valid() && removed < n; it.Next() {
		item := it.Item()
		ok := item.KeyCopy(nil)
		ref, err := item.ValueCopy(nil)
		if err != nil {
			return nil, 0, err
		}
		dels = append(dels, ok)
		removed++
		if len(ref) != keyLen {
			continue
		}
		ek := c.key(tagEntry, ref)
		e, err := txn.Get(ek)
		if err != nil {
			continue // orphan order key
		}
		val, err := e.ValueCopy(nil)
		if err == nil && len(val) >= 8 && bytes.Equal(val[:8], ok[len(ok)-8:]) {
			dels = append(dels, ek)
		}
	}
	return dels, removed, nil
}

// Len returns the number of entries the cache counts.
func (c *BadgerCache) Len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.count
}

// writer is a read-write transaction that commits and starts anew when it
// grows past Badger's batch limit.
type writer struct {
	db  *badger.DB
	txn *badger.Txn
}

func (c *BadgerCache) newWriter() *writer { return &writer{db: c.db, txn: c.db.NewTransaction(true)} }

func (w *writer) set(k, v []byte) error {
	return w.retryTooBig(func() error { return w.txn.Set(k, v) })
}

func (w *writer) del(k []byte) error {
	return w.retryTooBig(func() error { return w.txn.Delete(k) })
}

func (w *writer) retryTooBig(op func() error) error {
	err := op()
	if errors.Is(err, badger.ErrTxnTooBig) {
		if err := w.commit(); err != nil {
			return err
		}
		w.txn = w.db.NewTransaction(true)
		err = op()
	}
	if err != nil {
		return fmt.Errorf("write embedding cache: %w", err)
	}
	return nil
}

func (w *writer) commit() error {
	if err := w.txn.Commit(); err != nil {
		return fmt.Errorf("commit embedding cache: %w", err)
	}
	return nil
}

func (w *writer) discard() { w.txn.Discard() }
