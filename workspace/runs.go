package workspace

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"sync"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/bulkhead-dev/bulkhead/agent"
	"github.com/bulkhead-dev/bulkhead/kv"
)

// Keys of the agent wiring in a workspace's database.
const (
	prefixRun     = "run/"     // run/<id> → Run
	prefixJournal = "journal/" // journal/<run id>/<seq:8 BE> → agent.Entry (synced)
	prefixEvent   = "event/"   // event/<run id>/<seq:8 BE> → RunEvent (written when the run ends)
	prefixUsage   = "usage/"   // usage/<YYYY-MM-DD>/<provider/model> → agent.Usage
)

// RunStatus is where a run is in its life.
type RunStatus string

const (
	RunRunning     RunStatus = "running"
	RunSucceeded   RunStatus = "succeeded"
	RunFailed      RunStatus = "failed"
	RunCancelled   RunStatus = "cancelled"
	RunInterrupted RunStatus = "interrupted" // the process died while it ran
)

// Run is one agent run's record.
type Run struct {
	ID        string    `json:"id"`
	Workspace string    `json:"workspace"`
	Session   string    `json:"session"` // session key
	Status    RunStatus `json:"status"`
	// Message is the user message (cut to 4 KiB here; the journal has it whole).
	Message      string                 `json:"message"`
	Stop         string                 `json:"stop,omitempty"`
	Error        string                 `json:"error,omitempty"`
	Text         string                 `json:"text,omitempty"` // final answer
	Turns        int                    `json:"turns"`
	Usage        agent.Usage            `json:"usage"`
	UsageByModel map[string]agent.Usage `json:"usage_by_model,omitempty"`
	Events       uint64                 `json:"events"` // the last event sequence number
	CreatedAt    time.Time              `json:"created_at"`
	EndedAt      time.Time              `json:"ended_at,omitzero"`
	DurationMS   int64                  `json:"duration_ms,omitempty"`
}

// Ended reports whether the run is over.
func (r *Run) Ended() bool { return r.Status != RunRunning }

// RunIDRule is the pattern of run ids: a top-level id, and ".subN" for each
// subagent level.
const RunIDRule = `^r[0-9a-f]{24}(\.sub[0-9]{1,4})*$`

var runIDRE = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(RunIDRule) })

// ValidateRunID returns an error quoting RunIDRule unless id matches.
func ValidateRunID(id string) error {
	if !runIDRE().MatchString(id) {
		return fmt.Errorf("%w %q: must match %s", ErrInvalidRunID, id, RunIDRule)
	}
	return nil
}

// newRunID is "r" + 16 hex digits of the start time in nanoseconds + 8
// random: ids sort by start time.
func newRunID(now time.Time) string {
	var b [12]byte
	binary.BigEndian.PutUint64(b[:8], uint64(now.UnixNano()))
	_, _ = rand.Read(b[8:])
	return "r" + hex.EncodeToString(b[:])
}

func runKey(id string) []byte { return []byte(prefixRun + id) }

func seqKey(prefix, runID string, seq uint64) []byte {
	k := make([]byte, 0, len(prefix)+len(runID)+9)
	k = append(append(append(k, prefix...), runID...), '/')
	return binary.BigEndian.AppendUint64(k, seq)
}

func getRun(txn *badger.Txn, id string) (*Run, error) {
	item, err := txn.Get(runKey(id))
	if errors.Is(err, badger.ErrKeyNotFound) {
		return nil, fmt.Errorf("%w: %s", ErrRunNotFound, id)
	}
	if err != nil {
		return nil, err
	}
	var r Run
	if err := item.Value(func(v []byte) error { return json.Unmarshal(v, &r) }); err != nil {
		return nil, fmt.Errorf("decode run %s: %w", id, err)
	}
	return &r, nil
}

func putRun(txn *badger.Txn, r *Run) error {
	b, err := json.Marshal(r)
	if err != nil {
		return err
	}
	return txn.Set(runKey(r.ID), b)
}

// GetRun returns a run's record.
func (s *Service) GetRun(ctx context.Context, ws, id string) (*Run, error) {
	if err := ValidateRunID(id); err != nil {
		return nil, err
	}
	if l := s.ag.live(ws, id); l != nil {
		return l.snapshot(), nil
	}
	db, release, err := s.agentDB(ctx, ws)
	if err != nil {
		return nil, err
	}
	defer release()
	var r *Run
	err = db.View(func(txn *badger.Txn) error {
		r, err = getRun(txn, id)
		return err
	})
	return r, err
}

// ListRuns returns a workspace's runs, newest first, at most limit (0: 100).
func (s *Service) ListRuns(ctx context.Context, ws string, limit int) ([]Run, error) {
	if limit <= 0 {
		limit = 100
	}
	db, release, err := s.agentDB(ctx, ws)
	if err != nil {
		return nil, err
	}
	defer release()
	out := []Run{}
	err = db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte(prefixRun), Reverse: true, PrefetchValues: true})
		defer it.Close()
		// Reverse iteration starts at the last key with the prefix.
		for it.Seek(append([]byte(prefixRun), 0xff)); it.Valid() && len(out) < limit; it.Next() {
			var r Run
			if err := it.Item().Value(func(v []byte) error { return json.Unmarshal(v, &r) }); err != nil {
				return fmt.Errorf("decode run %s: %w", it.Item().Key(), err)
			}
			if l := s.ag.live(ws, r.ID); l != nil {
				r = *l.snapshot()
			}
			out = append(out, r)
		}
		return nil
	})
	return out, err
}

// runJournal is agent.Journal over a workspace's database: one key per
// entry, each append synced to disk before it returns (every entry records a
// finished step).
type runJournal struct {
	db *badger.DB
}

var _ agent.Journal = (*runJournal)(nil)

// Append implements agent.Journal. It refuses an entry whose Seq is not the
// next one of its run.
func (j *runJournal) Append(_ context.Context, e agent.Entry) error {
	if err := ValidateRunID(e.RunID); err != nil {
		return err
	}
	if e.Seq == 0 {
		return fmt.Errorf("journal append %s: seq 0", e.RunID)
	}
	b, err := json.Marshal(e)
	if err != nil {
		return err
	}
	update := kv.UpdateSync
	if e.Kind == agent.EntryRunStart {
		// Not a finished step: the user message entry right after it is
		// synced, and a sync covers every earlier write.
		update = func(db *badger.DB, fn func(*badger.Txn) error) error { return db.Update(fn) }
	}
	return update(j.db, func(txn *badger.Txn) error {
		if _, err := txn.Get(seqKey(prefixJournal, e.RunID, e.Seq)); err == nil {
			return fmt.Errorf("journal append %s: seq %d already recorded", e.RunID, e.Seq)
		}
		if e.Seq > 1 {
			if _, err := txn.Get(seqKey(prefixJournal, e.RunID, e.Seq-1)); err != nil {
				return fmt.Errorf("journal append %s: seq %d without %d: %w", e.RunID, e.Seq, e.Seq-1, err)
			}
		}
		return txn.Set(seqKey(prefixJournal, e.RunID, e.Seq), b)
	})
}

// Read implements agent.Journal.
func (j *runJournal) Read(_ context.Context, runID string, after uint64) ([]agent.Entry, error) {
	var out []agent.Entry
	prefix := []byte(prefixJournal + runID + "/")
	err := j.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: prefix, PrefetchValues: true})
		defer it.Close()
		for it.Seek(seqKey(prefixJournal, runID, after+1)); it.Valid(); it.Next() {
			var e agent.Entry
			if err := it.Item().Value(func(v []byte) error { return json.Unmarshal(v, &e) }); err != nil {
				return fmt.Errorf("decode journal entry %s: %w", it.Item().Key(), err)
			}
			out = append(out, e)
		}
		return nil
	})
	return out, err
}

// Journal returns a run's journal entries with Seq > after.
func (s *Service) Journal(ctx context.Context, ws, runID string, after uint64) ([]agent.Entry, error) {
	if err := ValidateRunID(runID); err != nil {
		return nil, err
	}
	db, release, err := s.agentDB(ctx, ws)
	if err != nil {
		return nil, err
	}
	defer release()
	return (&runJournal{db: db}).Read(ctx, runID, after)
}

// UsageDay is what a workspace's runs used on one day, by "provider/model".
type UsageDay struct {
	Day    string                 `json:"day"` // YYYY-MM-DD, UTC
	Models map[string]agent.Usage `json:"models"`
	Total  agent.Usage            `json:"total"`
}

func usageDay(t time.Time) string { return t.UTC().Format(time.DateOnly) }

func addUsage(txn *badger.Txn, day string, byModel map[string]agent.Usage) error {
	for model, u := range byModel {
		k := []byte(prefixUsage + day + "/" + model)
		var cur agent.Usage
		item, err := txn.Get(k)
		switch {
		case err == nil:
			if err := item.Value(func(v []byte) error { return json.Unmarshal(v, &cur) }); err != nil {
				return fmt.Errorf("decode usage %s: %w", k, err)
			}
		case !errors.Is(err, badger.ErrKeyNotFound):
			return err
		}
		cur.Add(u)
		b, _ := json.Marshal(cur)
		if err := txn.Set(k, b); err != nil {
			return err
		}
	}
	return nil
}

func readUsage(txn *badger.Txn, day string) (UsageDay, error) {
	out := UsageDay{Day: day, Models: map[string]agent.Usage{}}
	prefix := []byte(prefixUsage + day + "/")
	it := txn.NewIterator(badger.IteratorOptions{Prefix: prefix, PrefetchValues: true})
	defer it.Close()
	for it.Rewind(); it.Valid(); it.Next() {
		var u agent.Usage
		if err := it.Item().Value(func(v []byte) error { return json.Unmarshal(v, &u) }); err != nil {
			return out, fmt.Errorf("decode usage %s: %w", it.Item().Key(), err)
		}
		out.Models[string(bytes.TrimPrefix(it.Item().Key(), prefix))] = u
		out.Total.Add(u)
	}
	return out, nil
}

// Usage returns what a workspace's runs used on day (YYYY-MM-DD, UTC; ""
// for today).
func (s *Service) Usage(ctx context.Context, ws, day string) (UsageDay, error) {
	if day == "" {
		day = usageDay(time.Now())
	}
	if _, err := time.Parse(time.DateOnly, day); err != nil {
		return UsageDay{}, fmt.Errorf("usage day %q: want YYYY-MM-DD", day)
	}
	db, release, err := s.agentDB(ctx, ws)
	if err != nil {
		return UsageDay{}, err
	}
	defer release()
	var out UsageDay
	err = db.View(func(txn *badger.Txn) error {
		out, err = readUsage(txn, day)
		return err
	})
	return out, err
}

// agentDB is DB for the agent wiring: the first time this process opens a
// workspace's database for it, runs a crash left "running" are marked
// interrupted and their sessions get every finished step (see recoverRuns).
func (s *Service) agentDB(ctx context.Context, ws string) (*badger.DB, func(), error) {
	db, release, err := s.DB(ctx, ws)
	if err != nil {
		return nil, nil, err
	}
	if err := s.ag.recoverOnce(ws, func() error { return recoverRuns(ctx, db, s.ag.isLive(ws)) }); err != nil {
		release()
		return nil, nil, fmt.Errorf("recover runs of %s: %w", ws, err)
	}
	return db, release, nil
}

// recoverRuns marks runs left "running" interrupted, except those live in
// this process, and replays each one's journal into its session, so the
// session's transcript holds every step that finished before the crash.
func recoverRuns(ctx context.Context, db *badger.DB, live func(id string) bool) error {
	var stale []*Run
	err := db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte(prefixRun), PrefetchValues: true})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			var r Run
			if err := it.Item().Value(func(v []byte) error { return json.Unmarshal(v, &r) }); err != nil {
				return fmt.Errorf("decode run %s: %w", it.Item().Key(), err)
			}
			if r.Status == RunRunning && !live(r.ID) {
				stale = append(stale, &r)
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	j := &runJournal{db: db}
	for _, r := range stale {
		entries, err := j.Read(ctx, r.ID, 0)
		if err != nil {
			return err
		}
		r.Status, r.Stop, r.Error = RunInterrupted, agent.StopError, "interrupted: the process running it stopped"
		r.Events = 0
		if len(entries) > 0 {
			last := entries[len(entries)-1]
			r.EndedAt = last.Time
			if last.Kind == agent.EntryRunEnd {
				// The run ended (its run_end entry is synced) but its final
				// record, written without a sync, was lost.
				var end struct {
					Stop  string      `json:"stop"`
					Error string      `json:"error"`
					Usage agent.Usage `json:"usage"`
				}
				if json.Unmarshal(last.Data, &end) == nil {
					r.Stop, r.Error, r.Usage = end.Stop, end.Error, end.Usage
					r.Status = statusOf(end.Stop)
				}
			}
		}
		ref, err := refFromKey(r.Workspace, r.Session)
		err = kv.UpdateSync(db, func(txn *badger.Txn) error {
			if err == nil {
				sess, serr := getSession(txn, ref)
				if serr == nil {
					sess.Transcript = agent.Replay(sess.Transcript, entries)
					sess.UpdatedAt = time.Now().UTC()
					if perr := putSession(txn, sess); perr != nil {
						return perr
					}
				}
			}
			return putRun(txn, r)
		})
		if err != nil {
			return fmt.Errorf("mark run %s interrupted: %w", r.ID, err)
		}
	}
	return nil
}

// refFromKey parses bulkhead:{ws}:{kind}:{id}.
func refFromKey(ws, key string) (SessionRef, error) {
	rest, ok := bytes.CutPrefix([]byte(key), []byte("bulkhead:"+ws+":"))
	if !ok {
		return SessionRef{}, fmt.Errorf("%w: key %q", ErrInvalidSession, key)
	}
	return ParseSessionRef(string(rest))
}

// statusOf maps a runner stop reason to a run status.
func statusOf(stop string) RunStatus {
	switch stop {
	case agent.StopDone:
		return RunSucceeded
	case agent.StopCanceled:
		return RunCancelled
	}
	return RunFailed
}
