package kv

import (
	"container/list"
	"context"
	"errors"
	"fmt"
	"log/slog"
	gosync "sync"
	"time"

	"github.com/dgraph-io/badger/v4"
)

// Options configure a Pool.
type Options struct {
	// MaxOpen is the most databases kept open while unreferenced; beyond it
	// the least recently used unreferenced one is closed. Databases in use
	// are never closed, so more may be open briefly. Default 256.
	MaxOpen int
	// IdleGC is how long a database must go without Acquire before the
	// janitor runs value-log GC on it. Default 2 minutes; negative disables.
	IdleGC time.Duration
	// Logger receives Badger's messages and pool events. Default: discard.
	Logger *slog.Logger
}

// Pool hands out Badger databases by directory, opening them lazily and
// closing idle ones by LRU.
type Pool struct {
	opts Options
	log  *slog.Logger

	mu     gosync.Mutex
	dbs    map[string]*entry
	lru    *list.List // of *entry, front = most recently released
	closed bool

	stop chan struct{}
	done chan struct{}
}

type entry struct {
	dir      string
	db       *badger.DB
	refs     int
	elem     *list.Element // in lru while refs == 0
	lastUsed time.Time
	gcDone   bool // value-log GC ran since the last use
	// opening is closed when the open attempt finishes; err holds its result.
	opening chan struct{}
	err     error
}

// NewPool returns a Pool and starts its janitor.
func NewPool(opts Options) *Pool {
	if opts.MaxOpen <= 0 {
		opts.MaxOpen = 256
	}
	if opts.IdleGC == 0 {
		opts.IdleGC = 2 * time.Minute
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	p := &Pool{
		opts: opts,
		log:  opts.Logger.With("subsystem", "kv"),
		dbs:  make(map[string]*entry),
		lru:  list.New(),
		stop: make(chan struct{}),
		done: make(chan struct{}),
	}
	go p.janitor()
	return p
}

// Acquire returns the database in dir, opening it (and creating it if
// missing) with SmallOptions and key. release must be called exactly once
// when the caller is done; until then the database stays open.
func (p *Pool) Acquire(ctx context.Context, dir string, key []byte) (db *badger.DB, release func(), err error) {
	for {
		p.mu.Lock()
		if p.closed {
			p.mu.Unlock()
			return nil, nil, ErrClosed
		}
		e, ok := p.dbs[dir]
		if !ok {
			e = &entry{dir: dir, opening: make(chan struct{})}
			p.dbs[dir] = e
			p.mu.Unlock()
			p.open(e, key)
			continue
		}
		select {
		case <-e.opening:
		default:
			p.mu.Unlock()
			select {
			case <-e.opening:
			case <-ctx.Done():
				return nil, nil, ctx.Err()
			}
			continue
		}
		if e.err != nil {
			err := e.err
			delete(p.dbs, dir)
			p.mu.Unlock()
			return nil, nil, err
		}
		if e.elem != nil {
			p.lru.Remove(e.elem)
			e.elem = nil
		}
		e.refs++
		e.lastUsed = time.Now()
		e.gcDone = false
		p.mu.Unlock()
		var once gosync.Once
		return e.db, func() { once.Do(func() { p.release(e) }) }, nil
	}
}

func (p *Pool) open(e *entry, key []byte) {
	opts, err := SmallOptions(e.dir, key, p.opts.Logger)
	if err == nil {
		e.db, err = badger.Open(opts)
		if err != nil {
			err = fmt.Errorf("open database %s: %w", e.dir, err)
		}
	}
	p.mu.Lock()
	e.err = err
	close(e.opening)
	p.mu.Unlock()
}

func (p *Pool) release(e *entry) {
	p.mu.Lock()
	e.refs--
	e.lastUsed = time.Now()
	var victims []*entry
	if e.refs == 0 {
		e.elem = p.lru.PushFront(e)
		for p.lru.Len() > p.opts.MaxOpen {
			v := p.lru.Remove(p.lru.Back()).(*entry)
			v.elem = nil
			delete(p.dbs, v.dir)
			victims = append(victims, v)
		}
	}
	p.mu.Unlock()
	for _, v := range victims {
		p.closeEntry(v)
	}
}

func (p *Pool) closeEntry(e *entry) {
	if err := e.db.Close(); err != nil {
		p.log.Error("close database", "dir", e.dir, "err", err)
	}
}

// Close closes the database in dir if it is open, waiting for no one: it
// returns an error if the database is in use. Callers use it before deleting
// the directory.
func (p *Pool) Close(dir string) error {
	p.mu.Lock()
	e, ok := p.dbs[dir]
	if !ok {
		p.mu.Unlock()
		return nil
	}
	select {
	case <-e.opening:
	default:
		p.mu.Unlock()
		return fmt.Errorf("close %s: database is being opened", dir)
	}
	if e.err == nil && e.refs > 0 {
		p.mu.Unlock()
		return fmt.Errorf("close %s: database in use (%d references)", dir, e.refs)
	}
	if e.elem != nil {
		p.lru.Remove(e.elem)
		e.elem = nil
	}
	delete(p.dbs, dir)
	p.mu.Unlock()
	if e.err != nil {
		return nil
	}
	return e.db.Close()
}

// OpenCount reports how many databases are open.
func (p *Pool) OpenCount() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.dbs)
}

// Shutdown stops the janitor and closes every database. Databases still
// referenced are closed too; their holders get Badger's closed-DB errors.
func (p *Pool) Shutdown() error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil
	}
	p.closed = true
	all := make([]*entry, 0, len(p.dbs))
	for _, e := range p.dbs {
		all = append(all, e)
	}
	p.dbs = nil
	p.lru.Init()
	p.mu.Unlock()
	close(p.stop)
	<-p.done
	var errs []error
	for _, e := range all {
		<-e.opening
		if e.err == nil {
			if err := e.db.Close(); err != nil {
				errs = append(errs, fmt.Errorf("close %s: %w", e.dir, err))
			}
		}
	}
	return errors.Join(errs...)
}

// janitor runs value-log GC on databases idle for at least IdleGC.
func (p *Pool) janitor() {
	defer close(p.done)
	if p.opts.IdleGC < 0 {
		<-p.stop
		return
	}
	tick := time.NewTicker(max(p.opts.IdleGC/4, time.Second))
	defer tick.Stop()
	for {
		select {
		case <-p.stop:
			return
		case <-tick.C:
			p.gcIdle()
		}
	}
}

func (p *Pool) gcIdle() {
	now := time.Now()
	p.mu.Lock()
	var idle []*entry
	for _, e := range p.dbs {
		if e.elem != nil && !e.gcDone && now.Sub(e.lastUsed) >= p.opts.IdleGC {
			e.refs++ // hold it open while collecting
			p.lru.Remove(e.elem)
			e.elem = nil
			idle = append(idle, e)
		}
	}
	p.mu.Unlock()
	for _, e := range idle {
		n := 0
		for e.db.RunValueLogGC(0.5) == nil {
			n++
		}
		if n > 0 {
			p.log.Debug("value-log gc", "dir", e.dir, "files", n)
		}
		p.mu.Lock()
		e.gcDone = true
		p.mu.Unlock()
		t := e.lastUsed
		p.release(e)
		p.mu.Lock()
		e.lastUsed = t // GC is not use
		p.mu.Unlock()
	}
}

// UpdateSync runs fn in a read-write transaction and then syncs the database
// to stable storage, for writes that must survive power loss (not only a
// process crash, which every committed write survives).
func UpdateSync(db *badger.DB, fn func(*badger.Txn) error) error {
	if err := db.Update(fn); err != nil {
		return err
	}
	return db.Sync()
}
