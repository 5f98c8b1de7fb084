package workspace

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"path"
	"strings"
	gosync "sync"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/bulkhead-dev/bulkhead/agent"
	"github.com/bulkhead-dev/bulkhead/memory"
	"github.com/bulkhead-dev/bulkhead/sandbox"
)

// RunRequest starts a run.
type RunRequest struct {
	Message string `json:"message"`
	// Session is "id" or "kind:id"; empty starts a new session named after
	// the run.
	Session string `json:"session,omitempty"`
	// Model picks one of the workspace's configured models ("model" or
	// "provider/model") to try first; empty keeps the configured order.
	Model string `json:"model,omitempty"`
}

// RunEvent is one event of a run's stream. Seq numbers a run's events from
// 1 with no gaps; a client that saw Seq n resumes with after = n.
type RunEvent struct {
	Seq uint64 `json:"seq"`
	agent.Event
}

// errCancelled is the cause of a run cancelled through CancelRun.
var errCancelled = errors.New("run cancelled")

// liveRun is a run in progress in this process.
type liveRun struct {
	ws     string
	cancel context.CancelCauseFunc
	done   chan struct{} // closed when the run is recorded and cleaned up

	mu     gosync.Mutex
	rec    *Run
	events []RunEvent
	wake   chan struct{} // closed and replaced at every new event
	ended  bool          // the final record and every event are stored
}

func (l *liveRun) push(ev agent.Event) {
	l.mu.Lock()
	defer l.mu.Unlock()
	seq := uint64(len(l.events)) + 1
	l.events = append(l.events, RunEvent{Seq: seq, Event: ev})
	l.rec.Events = seq
	if ev.Kind == agent.EventTurnEnd && ev.RunID == l.rec.ID {
		l.rec.Turns = ev.Turn
		if ev.Usage != nil {
			l.rec.Usage.Add(*ev.Usage)
		}
	}
	close(l.wake)
	l.wake = make(chan struct{})
}

func (l *liveRun) snapshot() *Run {
	l.mu.Lock()
	defer l.mu.Unlock()
	r := *l.rec
	return &r
}

func keyFingerprint(keys []agent.Secret) string {
	h := sha256.New()
	for _, k := range keys {
		h.Write([]byte(k.Reveal()))
		h.Write([]byte{0})
	}
	return hex.EncodeToString(h.Sum(nil)[:8])
}

// StartRun starts an agent run in workspace ws and returns its record at
// once; the run goes on in the background (a client that goes away does not
// stop it: CancelRun does). Follow streams its events.
func (s *Service) StartRun(ctx context.Context, ws string, req RunRequest) (*Run, error) {
	if strings.TrimSpace(req.Message) == "" {
		return nil, ErrEmptyMessage
	}
	w, err := s.Get(ctx, ws)
	if err != nil {
		return nil, err
	}
	now := time.Now().UTC()
	id := newRunID(now)
	ref := SessionRef{Kind: KindSession, ID: id}
	if req.Session != "" {
		if ref, err = ParseSessionRef(req.Session); err != nil {
			return nil, err
		}
	}
	opts, _, err := s.ag.options()
	if err != nil {
		return nil, err
	}
	db, release, err := s.agentDB(ctx, ws)
	if err != nil {
		return nil, err
	}
	ok := false
	defer func() {
		if !ok {
			release()
		}
	}()
	q := opts.Quotas.withDefaults()
	if q.TokensPerDay > 0 {
		var u UsageDay
		if err := db.View(func(txn *badger.Txn) error { u, err = readUsage(txn, usageDay(now)); return err }); err != nil {
			return nil, err
		}
		if u.Total.Total() >= q.TokensPerDay {
			midnight := now.Truncate(24 * time.Hour).Add(24 * time.Hour)
			return nil, &QuotaError{Limit: "tokens_per_day", Value: fmt.Sprintf("%d of %d", u.Total.Total(), q.TokensPerDay), RetryAfter: midnight.Sub(now)}
		}
	}
	rec := &Run{ID: id, Workspace: ws, Session: SessionKey(ws, ref), Status: RunRunning, Message: cut(req.Message, 4096), CreatedAt: now}
	runCtx, cancel := context.WithCancelCause(context.WithoutCancel(ctx))
	l := &liveRun{ws: ws, cancel: cancel, done: make(chan struct{}), rec: rec, wake: make(chan struct{})}
	if err := s.ag.register(l, ref, q, now); err != nil {
		cancel(nil)
		return nil, err
	}
	defer func() {
		if !ok {
			s.ag.unregister(l)
			cancel(nil)
		}
	}()
	runner, cleanup, err := s.buildRunner(ctx, w, db, req.Model)
	if err != nil {
		return nil, err
	}
	defer func() {
		if !ok {
			cleanup()
		}
	}()
	var sess *Session
	// Not synced: the run's first finished step (the user message) is, and
	// a sync covers every earlier write.
	err = db.Update(func(txn *badger.Txn) error {
		sess, err = getSession(txn, ref)
		if errors.Is(err, ErrSessionNotFound) {
			sess, err = &Session{Key: rec.Session, Kind: ref.Kind, ID: ref.ID, CreatedAt: now}, nil
		}
		if err != nil {
			return err
		}
		sess.Runs = append(sess.Runs, id)
		sess.UpdatedAt = now
		if err := putSession(txn, sess); err != nil {
			return err
		}
		return putRun(txn, rec)
	})
	if err != nil {
		return nil, fmt.Errorf("record run: %w", err)
	}
	ok = true
	s.ag.wg.Add(1)
	go s.execute(runCtx, l, runner, sess, req.Message, db, func() { cleanup(); release() })
	return l.snapshot(), nil
}

func cut(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return agent.TruncateMiddle(s, n, "message")
}

// register checks the quotas and records l as live, atomically.
func (a *agentState) register(l *liveRun, ref SessionRef, q Quotas, now time.Time) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.init()
	n := 0
	for _, o := range a.runs {
		if o.ws != l.ws {
			continue
		}
		n++
		if o.rec.Session == l.rec.Session {
			return fmt.Errorf("%w: %s (run %s)", ErrSessionBusy, ref, o.rec.ID)
		}
	}
	if n >= q.MaxConcurrentRuns {
		return &QuotaError{Limit: "concurrent_runs", Value: fmt.Sprintf("%d running, at most %d", n, q.MaxConcurrentRuns), RetryAfter: time.Second}
	}
	recent := a.starts[l.ws][:0]
	for _, t := range a.starts[l.ws] {
		if now.Sub(t) < time.Minute {
			recent = append(recent, t)
		}
	}
	if len(recent) >= q.RunsPerMinute {
		a.starts[l.ws] = recent
		return &QuotaError{Limit: "runs_per_minute", Value: fmt.Sprintf("at most %d", q.RunsPerMinute), RetryAfter: recent[0].Add(time.Minute).Sub(now)}
	}
	a.starts[l.ws] = append(recent, now)
	a.runs[l.ws+"/"+l.rec.ID] = l
	return nil
}

func (a *agentState) unregister(l *liveRun) {
	a.mu.Lock()
	defer a.mu.Unlock()
	delete(a.runs, l.ws+"/"+l.rec.ID)
}

// execute runs the loop and records the outcome: the run record, the
// session transcript, the day's usage and the event stream.
func (s *Service) execute(ctx context.Context, l *liveRun, runner *agent.Runner, sess *Session, message string, db *badger.DB, cleanup func()) {
	defer s.ag.wg.Done()
	defer close(l.done)
	defer cleanup()
	defer l.cancel(nil)
	log := s.agentLogger(l.ws).With("run", l.rec.ID)
	start := time.Now()
	res, err := runner.Run(ctx, agent.RunInput{RunID: l.rec.ID, SessionID: l.rec.Session, History: sess.Transcript, Message: message, OnEvent: l.push})

	l.mu.Lock()
	rec := *l.rec
	events := l.events
	l.mu.Unlock()
	rec.EndedAt = time.Now().UTC()
	rec.DurationMS = time.Since(start).Milliseconds()
	rec.Status = RunFailed
	if res != nil {
		rec.Stop, rec.Text, rec.Turns, rec.Usage, rec.UsageByModel = res.Stop, res.Text, res.Turns, res.Usage, res.UsageByModel
		rec.Status = statusOf(res.Stop)
	}
	if err != nil {
		rec.Error = err.Error()
		if errors.Is(context.Cause(ctx), errCancelled) {
			rec.Status = RunCancelled
		}
	}
	rec.Events = uint64(len(events))
	history := sess.Transcript
	if werr := s.recordRun(db, &rec, events, res, history); werr != nil {
		log.Error("record run", "err", werr)
	}
	if res != nil && len(res.Transcript) > len(history) {
		s.indexTranscript(ctx, l.ws, rec.Session, len(history), res.Transcript[len(history):])
	}
	log.Info("run ended", "status", rec.Status, "turns", rec.Turns, "tokens", rec.Usage.Total(), "ms", rec.DurationMS)
	l.mu.Lock()
	l.rec = &rec
	l.ended = true
	close(l.wake)
	l.wake = make(chan struct{})
	l.mu.Unlock()
	s.ag.unregister(l)
}

func (s *Service) recordRun(db *badger.DB, rec *Run, events []RunEvent, res *agent.RunResult, history []agent.Message) error {
	wb := db.NewWriteBatch()
	for _, e := range events {
		b, err := json.Marshal(e)
		if err != nil {
			wb.Cancel()
			return err
		}
		if err := wb.Set(seqKey(prefixEvent, rec.ID, e.Seq), b); err != nil {
			wb.Cancel()
			return err
		}
	}
	if err := wb.Flush(); err != nil {
		return fmt.Errorf("store events: %w", err)
	}
	ref, rerr := refFromKey(rec.Workspace, rec.Session)
	// Not synced: the journal's run_end entry is, and recovery rebuilds
	// this record and the session from the journal if it is lost.
	return db.Update(func(txn *badger.Txn) error {
		if rerr == nil {
			sess, err := getSession(txn, ref)
			if err == nil {
				if res != nil && res.Transcript != nil {
					sess.Transcript = res.Transcript
				} else {
					entries, jerr := (&runJournal{db: db}).Read(context.Background(), rec.ID, 0)
					if jerr != nil {
						return jerr
					}
					sess.Transcript = agent.Replay(history, entries)
				}
				sess.Usage.Add(rec.Usage)
				sess.UpdatedAt = rec.EndedAt
				if err := putSession(txn, sess); err != nil {
					return err
				}
			}
		}
		if err := addUsage(txn, usageDay(rec.EndedAt), rec.UsageByModel); err != nil {
			return err
		}
		return putRun(txn, rec)
	})
}

// indexTranscript makes the run's new messages searchable in memory.
func (s *Service) indexTranscript(ctx context.Context, ws, key string, from int, msgs []agent.Message) {
	st, done, err := s.sharedMemory(context.WithoutCancel(ctx), ws)
	if err != nil {
		s.agentLogger(ws).Warn("index transcript", "err", err)
		return
	}
	defer done()
	turns := make([]memory.Turn, 0, len(msgs))
	now := time.Now()
	for i, m := range msgs {
		if t := m.Text(); strings.TrimSpace(t) != "" {
			turns = append(turns, memory.Turn{Seq: from + i, Speaker: string(m.Role), Text: t, Time: now})
		}
	}
	if len(turns) == 0 {
		return
	}
	if _, err := st.IndexTranscript(context.WithoutCancel(ctx), key, turns); err != nil {
		s.agentLogger(ws).Warn("index transcript", "err", err)
	}
}

// Follow calls fn with each event of run id after sequence number after, in
// order, and returns once the run has ended and fn has seen every event, or
// when ctx ends or fn fails. Following does not keep the run alive or stop
// it. A run interrupted by a crash has no stored stream; its journal is
// replayed as events instead (one per finished step, then run_end).
func (s *Service) Follow(ctx context.Context, ws, id string, after uint64, fn func(RunEvent) error) error {
	if err := ValidateRunID(id); err != nil {
		return err
	}
	if l := s.ag.live(ws, id); l != nil {
		for {
			l.mu.Lock()
			var batch []RunEvent
			if after < uint64(len(l.events)) {
				batch = l.events[after:]
			}
			wake, ended := l.wake, l.ended
			l.mu.Unlock()
			for _, e := range batch {
				if err := fn(e); err != nil {
					return err
				}
				after = e.Seq
			}
			if len(batch) > 0 {
				continue
			}
			if ended {
				return nil
			}
			select {
			case <-wake:
			case <-ctx.Done():
				return ctx.Err()
			}
		}
	}
	rec, err := s.GetRun(ctx, ws, id)
	if err != nil {
		return err
	}
	db, release, err := s.agentDB(ctx, ws)
	if err != nil {
		return err
	}
	defer release()
	var events []RunEvent
	if rec.Events > 0 {
		err = db.View(func(txn *badger.Txn) error {
			prefix := []byte(prefixEvent + id + "/")
			it := txn.NewIterator(badger.IteratorOptions{Prefix: prefix, PrefetchValues: true})
			defer it.Close()
			for it.Seek(seqKey(prefixEvent, id, after+1)); it.Valid(); it.Next() {
				var e RunEvent
				if err := it.Item().Value(func(v []byte) error { return json.Unmarshal(v, &e) }); err != nil {
					return fmt.Errorf("decode event %s: %w", it.Item().Key(), err)
				}
				events = append(events, e)
			}
			return nil
		})
	} else {
		events, err = s.journalEvents(ctx, db, rec, after)
	}
	if err != nil {
		return err
	}
	for _, e := range events {
		if err := fn(e); err != nil {
			return err
		}
	}
	return nil
}

// journalEvents turns a run's journal into events (for runs whose stream
// was lost with the process).
func (s *Service) journalEvents(ctx context.Context, db *badger.DB, rec *Run, after uint64) ([]RunEvent, error) {
	entries, err := (&runJournal{db: db}).Read(ctx, rec.ID, 0)
	if err != nil {
		return nil, err
	}
	var out []RunEvent
	for _, e := range entries {
		ev := agent.Event{RunID: rec.ID}
		switch {
		case e.Kind == agent.EntryRunStart:
			ev.Kind = agent.EventRunStart
		case e.Kind == agent.EntryMessage && e.Message != nil && e.Message.Role == agent.RoleAssistant:
			ev.Kind, ev.Text = agent.EventTurnEnd, e.Message.Text()
		case e.Kind == agent.EntryToolResult && e.Part != nil:
			ev.Kind = agent.EventToolResult
			ev.Result = &agent.ToolOutcome{Output: e.Part.Text, IsError: e.Part.IsError}
		case e.Kind == agent.EntryRunEnd:
			ev.Kind = agent.EventRunEnd
		default:
			ev.Kind = agent.EventNotice
			ev.Text = e.Kind
		}
		out = append(out, RunEvent{Seq: e.Seq, Event: ev})
	}
	last := uint64(len(entries))
	if rec.Ended() && (len(entries) == 0 || entries[len(entries)-1].Kind != agent.EntryRunEnd) {
		out = append(out, RunEvent{Seq: last + 1, Event: agent.Event{Kind: agent.EventRunEnd, RunID: rec.ID, Stop: rec.Stop, Err: rec.Error}})
	}
	i := 0
	for i < len(out) && out[i].Seq <= after {
		i++
	}
	return out[i:], nil
}

// CancelRun stops a run in progress; its finished steps stay recorded and
// its status becomes cancelled.
func (s *Service) CancelRun(ctx context.Context, ws, id string) error {
	if err := ValidateRunID(id); err != nil {
		return err
	}
	if l := s.ag.live(ws, id); l != nil {
		l.cancel(errCancelled)
		return nil
	}
	if _, err := s.GetRun(ctx, ws, id); err != nil {
		return err
	}
	return fmt.Errorf("%w: %s", ErrRunFinished, id)
}

// WaitRun waits for a run to end and returns its final record.
func (s *Service) WaitRun(ctx context.Context, ws, id string) (*Run, error) {
	if err := ValidateRunID(id); err != nil {
		return nil, err
	}
	if l := s.ag.live(ws, id); l != nil {
		select {
		case <-l.done:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	return s.GetRun(ctx, ws, id)
}

// StopRuns cancels every run in progress and waits for them to be recorded
// (call it before Close on shutdown).
func (s *Service) StopRuns() {
	s.ag.mu.Lock()
	for _, l := range s.ag.runs {
		l.cancel(errCancelled)
	}
	s.ag.mu.Unlock()
	s.ag.wg.Wait()
}

// workspaceExec is agent.ToolExecutor over the workspace's live sandbox.
type workspaceExec struct {
	s  *Service
	ws string
}

var _ agent.ToolExecutor = workspaceExec{}

// Exec runs cmd in the sandbox with /workspace/<Dir> as working directory
// and no environment from the host.
func (e workspaceExec) Exec(ctx context.Context, cmd agent.Command) (agent.CommandResult, error) {
	dir := "/workspace"
	if cmd.Dir != "" {
		dir = path.Join("/workspace", path.Clean("/"+cmd.Dir))
	}
	max := cmd.MaxOutput
	if max <= 0 {
		max = 1 << 20
	}
	stdout, stderr := &capWriter{max: max}, &capWriter{max: max}
	var stdin *bytes.Reader
	sc := sandbox.Command{Args: cmd.Args, Dir: dir, Timeout: cmd.Timeout, Stdout: stdout, Stderr: stderr}
	if cmd.Stdin != nil {
		stdin = bytes.NewReader(cmd.Stdin)
		sc.Stdin = stdin
	}
	res, err := e.s.Exec(ctx, e.ws, sc)
	if err != nil {
		return agent.CommandResult{}, err
	}
	return agent.CommandResult{Stdout: stdout.buf.Bytes(), Stderr: stderr.buf.Bytes(), ExitCode: res.ExitCode,
		TimedOut: res.TimedOut, Truncated: stdout.cut || stderr.cut}, nil
}

// capWriter keeps the first max bytes written and notes that it cut.
type capWriter struct {
	mu  gosync.Mutex
	buf bytes.Buffer
	max int
	cut bool
}

func (w *capWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	room := w.max - w.buf.Len()
	if room < len(p) {
		w.cut = true
	}
	if room > 0 {
		w.buf.Write(p[:min(len(p), room)])
	}
	return len(p), nil
}
