package board

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/bulkhead-dev/bulkhead/kv"
	"github.com/bulkhead-dev/bulkhead/sandbox"
	"github.com/bulkhead-dev/bulkhead/workspace"
)

// Workspaces is what the board needs of the tenant service; *workspace.Service
// implements it.
type Workspaces interface {
	Create(ctx context.Context, id string, cfg *workspace.Config) (*workspace.Workspace, error)
	Get(ctx context.Context, id string) (*workspace.Workspace, error)
	Delete(ctx context.Context, id string) error
	Configure(ctx context.Context, id string, replacement *workspace.Config, sets []string) (*workspace.Workspace, error)
	FilesDir(id string) string
	ControlDB() *badger.DB
	// Exec runs a command in the workspace's sandbox (git runs there).
	Exec(ctx context.Context, id string, cmd sandbox.Command) (sandbox.Result, error)
	// FilesChanged tells the sandbox's file view that files changed on the
	// host behind its back.
	FilesChanged(id string)
}

var _ Workspaces = (*workspace.Service)(nil)

// Options configure a Board.
type Options struct {
	Logger *slog.Logger
	// Concurrency is the most ticket runs at once on this node (over every
	// heartbeat and dispatch of this Board); 0 means DefaultConcurrency().
	Concurrency int
	// LeaseTTL is how long a lease lives without renewal; default 2 minutes.
	// Runs renew at a third of it.
	LeaseTTL time.Duration
	// FailureBackoff is the wait after a first failed run, doubled per
	// further failure up to 32 times; default 30 s.
	FailureBackoff time.Duration
	// IdleRetry is how long a ticket that a successful run left in progress
	// waits before it is worked again without a new human comment (the
	// agent may be waiting for an answer); default 30 minutes.
	IdleRetry time.Duration
	// Runner runs tickets; it may also be set later with SetRunner.
	Runner TicketRunner
	// Now is the clock; default time.Now.
	Now func() time.Time
}

// Board is the board of every project on one node. It is safe for
// concurrent use. Leases live in the database, so Boards in different
// processes (or several in one) never run a ticket twice.
type Board struct {
	ws    Workspaces
	db    *badger.DB
	log   *slog.Logger
	opts  Options
	git   repoLocks
	logs  *runLogs
	slots chan struct{}

	mu     sync.Mutex
	runner TicketRunner
	last   *BeatStatus
}

// New returns a Board over ws.
func New(ws Workspaces, opts Options) *Board {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Concurrency <= 0 {
		opts.Concurrency = DefaultConcurrency()
	}
	if opts.LeaseTTL <= 0 {
		opts.LeaseTTL = 2 * time.Minute
	}
	if opts.FailureBackoff <= 0 {
		opts.FailureBackoff = 30 * time.Second
	}
	if opts.IdleRetry <= 0 {
		opts.IdleRetry = 30 * time.Minute
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	return &Board{
		ws:     ws,
		db:     ws.ControlDB(),
		log:    opts.Logger.With("subsystem", "board"),
		opts:   opts,
		logs:   newRunLogs(),
		slots:  make(chan struct{}, opts.Concurrency),
		runner: opts.Runner,
	}
}

var (
	sharedMu sync.Mutex
	shared   = map[Workspaces]*Board{}
)

// For returns the node's Board for ws, making it with opts on first use.
// The server's routes and the scheduler in `bulkhead serve` share it, so run
// logs reach the web UI and one concurrency limit covers both.
func For(ws Workspaces, opts Options) *Board {
	sharedMu.Lock()
	defer sharedMu.Unlock()
	if b := shared[ws]; b != nil {
		return b
	}
	b := New(ws, opts)
	shared[ws] = b
	return b
}

// SetRunner sets the TicketRunner used by heartbeats and dispatches.
func (b *Board) SetRunner(r TicketRunner) {
	b.mu.Lock()
	b.runner = r
	b.mu.Unlock()
}

// SetRunnerIfUnset sets r unless a runner is already set (tests and
// embedders set theirs first).
func (b *Board) SetRunnerIfUnset(r TicketRunner) {
	b.mu.Lock()
	if b.runner == nil {
		b.runner = r
	}
	b.mu.Unlock()
}

func (b *Board) getRunner() TicketRunner {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.runner
}

// Concurrency is the node's limit on simultaneous runs.
func (b *Board) Concurrency() int { return cap(b.slots) }

// Running is the number of runs in progress in this process.
func (b *Board) Running() int { return len(b.slots) }

// control database keys
const (
	prefixProject = "board/project/"
	prefixTicket  = "board/ticket/"
	prefixComment = "board/comment/"
	prefixSeq     = "board/seq/"
	prefixLease   = "lease/"
)

func projectKey(p string) []byte { return []byte(prefixProject + p) }
func ticketPrefix(p string) []byte {
	return []byte(prefixTicket + p + "/")
}
func ticketKey(p string, id int64) []byte {
	return fmt.Appendf(nil, "%s%s/%012d", prefixTicket, p, id)
}
func commentPrefix(p string, id int64) []byte {
	return fmt.Appendf(nil, "%s%s/%012d/", prefixComment, p, id)
}
func commentKey(p string, id, seq int64) []byte {
	return fmt.Appendf(nil, "%s%s/%012d/%08d", prefixComment, p, id, seq)
}
func seqKey(p string) []byte   { return []byte(prefixSeq + p) }
func leaseKey(p string) []byte { return []byte(prefixLease + p) }

// update runs fn in a read-write transaction, synced, retried when Badger
// reports a conflict with a concurrent transaction (fn then sees the
// winner's writes and decides again).
func (b *Board) update(fn func(*badger.Txn) error) error {
	for attempt := 0; ; attempt++ {
		err := kv.UpdateSync(b.db, fn)
		if !errors.Is(err, badger.ErrConflict) || attempt == 50 {
			return err
		}
		time.Sleep(time.Duration(attempt+1) * time.Millisecond)
	}
}

func getJSON(txn *badger.Txn, key []byte, v any) (bool, error) {
	item, err := txn.Get(key)
	if errors.Is(err, badger.ErrKeyNotFound) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	return true, item.Value(func(b []byte) error {
		if err := json.Unmarshal(b, v); err != nil {
			return fmt.Errorf("decode %s: %w", key, err)
		}
		return nil
	})
}

func putJSON(txn *badger.Txn, key []byte, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return txn.Set(key, b)
}

func scan[T any](txn *badger.Txn, prefix []byte, fn func(*T) error) error {
	it := txn.NewIterator(badger.IteratorOptions{Prefix: prefix, PrefetchValues: true})
	defer it.Close()
	for it.Rewind(); it.Valid(); it.Next() {
		var v T
		if err := it.Item().Value(func(b []byte) error { return json.Unmarshal(b, &v) }); err != nil {
			return fmt.Errorf("decode %s: %w", it.Item().Key(), err)
		}
		if err := fn(&v); err != nil {
			return err
		}
	}
	return nil
}
