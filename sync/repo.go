package sync

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	gosync "sync"
)

const configName = "config"

// repoConfig is the plain (unencrypted) config object: enough to tell a
// repository exists and whether a key opens it.
type repoConfig struct {
	Version  int    `json:"version"`
	ID       string `json:"id"`
	KeyCheck []byte `json:"key_check"` // seal(repository id, aad "key check")
}

// Repository is an open snapshot repository.
type Repository struct {
	store  Store
	keys   *keys
	id     string
	index  *index
	logger *slog.Logger
}

// Options tune a repository handle.
type Options struct {
	Logger *slog.Logger // defaults to slog.Default()
}

// Init creates a repository in an empty store, keyed by dataKey, and opens it.
// It fails with ErrExists if the store already holds one.
func Init(ctx context.Context, store Store, dataKey []byte, opts Options) (*Repository, error) {
	k, err := deriveKeys(dataKey)
	if err != nil {
		return nil, fmt.Errorf("init repository: %w", err)
	}
	id := randomHex(16)
	cfg := repoConfig{Version: 1, ID: id, KeyCheck: k.seal(nil, []byte(id), "key check")}
	b, err := json.Marshal(cfg)
	if err != nil {
		return nil, fmt.Errorf("init repository: %w", err)
	}
	if err := store.PutIfAbsent(ctx, configName, bytes.NewReader(b), int64(len(b))); err != nil {
		return nil, fmt.Errorf("init repository: %w", err)
	}
	return newRepository(store, k, id, opts), nil
}

// Open opens the repository in store with dataKey. A key that does not open
// the repository gives ErrWrongKey; a store without one ErrNoRepository.
func Open(ctx context.Context, store Store, dataKey []byte, opts Options) (*Repository, error) {
	k, err := deriveKeys(dataKey)
	if err != nil {
		return nil, fmt.Errorf("open repository: %w", err)
	}
	b, err := readAll(ctx, store, configName)
	if errors.Is(err, ErrNotFound) {
		return nil, fmt.Errorf("open repository: %w", ErrNoRepository)
	}
	if err != nil {
		return nil, fmt.Errorf("open repository: %w", err)
	}
	var cfg repoConfig
	if err := json.Unmarshal(b, &cfg); err != nil {
		return nil, fmt.Errorf("open repository: config: %w: %v", ErrCorrupt, err)
	}
	if cfg.Version != 1 {
		return nil, fmt.Errorf("open repository: config: unsupported version %d", cfg.Version)
	}
	pt, err := k.open(cfg.KeyCheck, "key check")
	if err != nil || string(pt) != cfg.ID {
		return nil, fmt.Errorf("open repository %s: %w", cfg.ID, ErrWrongKey)
	}
	r := newRepository(store, k, cfg.ID, opts)
	if err := r.loadIndex(ctx); err != nil {
		var ie *IndexError
		if !errors.As(err, &ie) {
			return nil, fmt.Errorf("open repository: %w", err)
		}
		// Unreadable index objects are reported by Verify; the blobs they
		// listed are simply not deduplicated against.
		r.logger.Warn("unreadable index objects", "count", len(ie.Objects), "err", err)
	}
	return r, nil
}

func newRepository(store Store, k *keys, id string, opts Options) *Repository {
	logger := opts.Logger
	if logger == nil {
		logger = slog.Default()
	}
	return &Repository{store: store, keys: k, id: id, index: newIndex(), logger: logger.With("subsystem", "sync", "repository", id)}
}

// ID returns the repository's random id.
func (r *Repository) ID() string { return r.id }

// Store returns the repository's object store.
func (r *Repository) Store() Store { return r.store }

// readBlob fetches, authenticates and decompresses one blob.
func (r *Repository) readBlob(ctx context.Context, id ID) ([]byte, error) {
	loc, ok := r.index.lookup(id)
	if !ok {
		return nil, fmt.Errorf("read blob %s: %w", id, ErrNotFound)
	}
	sealed, err := readRange(ctx, r.store, packName(loc.Pack), int64(loc.Offset), int64(loc.Length))
	if err != nil {
		return nil, fmt.Errorf("read blob %s: %w", id, err)
	}
	plain, err := r.keys.openBlob(id, sealed, loc.Raw)
	if err != nil {
		return nil, fmt.Errorf("read blob %s in pack %s: %w", id, loc.Pack, err)
	}
	return plain, nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return hex.EncodeToString(b)
}

// parallel runs fn(0..n-1) on up to workers goroutines, stopping early when
// ctx is done.
func parallel(ctx context.Context, n, workers int, fn func(i int)) {
	var wg gosync.WaitGroup
	next := make(chan int)
	for range min(workers, n) {
		wg.Go(func() {
			for i := range next {
				fn(i)
			}
		})
	}
	for i := 0; i < n && ctx.Err() == nil; i++ {
		next <- i
	}
	close(next)
	wg.Wait()
}
