package sync

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	gosync "sync"
	"time"
)

// Lock timing: a holder rewrites its lock every lockRefresh; a lock whose
// object was not rewritten for lockStale is ignored (its holder is presumed
// dead) and removed by the next prune.
var (
	lockRefresh = 5 * time.Minute
	lockStale   = 30 * time.Minute
)

type lockInfo struct {
	Exclusive bool      `json:"exclusive"`
	Time      time.Time `json:"time"`
	Host      string    `json:"host"`
	PID       int       `json:"pid"`
	Purpose   string    `json:"purpose"`
}

// LockError says who holds the lock that blocked an operation.
type LockError struct {
	Holder  string // lock object name
	Purpose string
	Host    string
	PID     int
	Since   time.Time
}

func (e *LockError) Error() string {
	return fmt.Sprintf("repository is locked by %s (pid %d on %s, since %s)", e.Purpose, e.PID, e.Host, e.Since.Format(time.RFC3339))
}

func (e *LockError) Unwrap() error { return ErrLocked }

// repoLock is a held lock.
type repoLock struct {
	r       *Repository
	name    string
	info    lockInfo
	stop    chan struct{}
	done    chan struct{}
	mu      gosync.Mutex
	lastErr error
}

// lock takes a shared (backup) or exclusive (prune) lock. The protocol:
// create our lock object, then list the others; if any conflicts (an
// exclusive one, or any at all when we want exclusive) and is not stale,
// remove ours and fail. Two racing lockers may both back off, but never both
// proceed, because each creates before it looks.
func (r *Repository) lock(ctx context.Context, exclusive bool, purpose string) (*repoLock, error) {
	host, _ := os.Hostname()
	l := &repoLock{
		r:    r,
		name: "locks/" + randomHex(16),
		info: lockInfo{Exclusive: exclusive, Time: time.Now().UTC(), Host: host, PID: os.Getpid(), Purpose: purpose},
		stop: make(chan struct{}),
		done: make(chan struct{}),
	}
	if err := l.write(ctx, true); err != nil {
		return nil, fmt.Errorf("lock repository: %w", err)
	}
	conflict, err := r.conflictingLock(ctx, l.name, exclusive)
	if err == nil && conflict != nil {
		err = conflict
	}
	if err != nil {
		r.store.Delete(context.WithoutCancel(ctx), l.name)
		return nil, fmt.Errorf("lock repository for %s: %w", purpose, err)
	}
	go l.refresh()
	return l, nil
}

func (l *repoLock) write(ctx context.Context, create bool) error {
	b, err := json.Marshal(l.info)
	if err != nil {
		return err
	}
	if create {
		return l.r.store.PutIfAbsent(ctx, l.name, bytes.NewReader(b), int64(len(b)))
	}
	return l.r.store.Put(ctx, l.name, bytes.NewReader(b), int64(len(b)))
}

func (l *repoLock) refresh() {
	defer close(l.done)
	t := time.NewTicker(lockRefresh)
	defer t.Stop()
	for {
		select {
		case <-l.stop:
			return
		case <-t.C:
			l.info.Time = time.Now().UTC()
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			err := l.write(ctx, false)
			cancel()
			if err != nil {
				l.r.logger.Warn("refresh repository lock", "lock", l.name, "err", err)
				l.mu.Lock()
				l.lastErr = err
				l.mu.Unlock()
			}
		}
	}
}

// unlock stops refreshing and removes the lock object.
func (l *repoLock) unlock(ctx context.Context) error {
	close(l.stop)
	<-l.done
	if err := l.r.store.Delete(context.WithoutCancel(ctx), l.name); err != nil {
		return fmt.Errorf("unlock repository: %w", err)
	}
	return nil
}

// A lock's age is judged by the store's modification time of the object,
// which each refresh renews, not by the holder's clock.
func (r *Repository) conflictingLock(ctx context.Context, own string, exclusive bool) (*LockError, error) {
	var others []ObjectInfo
	if err := r.store.List(ctx, "locks/", func(oi ObjectInfo) error {
		if oi.Name != own {
			others = append(others, oi)
		}
		return nil
	}); err != nil {
		return nil, err
	}
	for _, oi := range others {
		if time.Since(oi.ModTime) > lockStale {
			continue
		}
		b, err := readAll(ctx, r.store, oi.Name)
		if errors.Is(err, ErrNotFound) {
			continue // released meanwhile
		}
		if err != nil {
			return nil, err
		}
		var li lockInfo
		if err := json.Unmarshal(b, &li); err != nil {
			// Unreadable: treat it as exclusive until it goes stale.
			li = lockInfo{Exclusive: true, Time: oi.ModTime, Purpose: "unknown (" + strings.TrimPrefix(oi.Name, "locks/") + ")"}
		}
		if exclusive || li.Exclusive {
			return &LockError{Holder: oi.Name, Purpose: li.Purpose, Host: li.Host, PID: li.PID, Since: li.Time}, nil
		}
	}
	return nil, nil
}

// removeStaleLocks deletes locks whose holders stopped refreshing them.
func (r *Repository) removeStaleLocks(ctx context.Context, own string) error {
	var stale []string
	if err := r.store.List(ctx, "locks/", func(oi ObjectInfo) error {
		if oi.Name != own && time.Since(oi.ModTime) > lockStale {
			stale = append(stale, oi.Name)
		}
		return nil
	}); err != nil {
		return err
	}
	for _, name := range stale {
		if err := r.store.Delete(ctx, name); err != nil {
			return err
		}
	}
	return nil
}
