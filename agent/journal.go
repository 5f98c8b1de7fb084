package agent

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"time"
)

// Journal entry kinds.
const (
	EntryRunStart   = "run_start"   // Data: {"session_id","input"}
	EntryMessage    = "message"     // Message: the user input or an assistant turn
	EntryToolResult = "tool_result" // Part: one tool result
	EntryCompaction = "compaction"  // Data: {"replaced","summary"}; Message: the summary message
	EntryRunEnd     = "run_end"     // Data: {"stop","error","usage"}
)

// Entry is one journaled step of a run. Seq starts at 1 within a run.
type Entry struct {
	RunID   string          `json:"run_id"`
	Seq     uint64          `json:"seq"`
	Time    time.Time       `json:"time"`
	Kind    string          `json:"kind"`
	Message *Message        `json:"message,omitempty"`
	Part    *Part           `json:"part,omitempty"`
	Data    json.RawMessage `json:"data,omitempty"`
}

// Journal stores a run's steps append-only. The runner appends each step
// when it is finished — the user message, each assistant turn, each tool
// result — before starting the next, and fails the run if Append fails, so a
// crash loses no finished step. Read returns a run's entries with
// Seq > after, in order, which lets a client resume a stream.
// Implementations must be safe for concurrent use by different runs.
type Journal interface {
	Append(ctx context.Context, e Entry) error
	Read(ctx context.Context, runID string, after uint64) ([]Entry, error)
}

// MemJournal is an in-memory Journal (tests, and runs nobody needs to keep).
type MemJournal struct {
	mu   sync.Mutex
	runs map[string][]Entry
}

// NewMemJournal returns an empty journal.
func NewMemJournal() *MemJournal { return &MemJournal{runs: map[string][]Entry{}} }

// Append implements Journal. It refuses an entry whose Seq is not the next
// one for its run.
func (j *MemJournal) Append(_ context.Context, e Entry) error {
	j.mu.Lock()
	defer j.mu.Unlock()
	if want := uint64(len(j.runs[e.RunID])) + 1; e.Seq != want {
		return fmt.Errorf("journal append %s: seq %d, want %d", e.RunID, e.Seq, want)
	}
	j.runs[e.RunID] = append(j.runs[e.RunID], e)
	return nil
}

// Read implements Journal.
func (j *MemJournal) Read(_ context.Context, runID string, after uint64) ([]Entry, error) {
	j.mu.Lock()
	defer j.mu.Unlock()
	es := j.runs[runID]
	if after >= uint64(len(es)) {
		return nil, nil
	}
	return append([]Entry(nil), es[after:]...), nil
}

// Replay rebuilds the transcript after a run from the session's history
// before the run (repaired as the runner repairs it, see RepairTranscript) and the run's journal entries: the user message, assistant
// turns, and tool results grouped into one user message per turn. A
// compaction entry replaces the first Replaced messages of the transcript
// with its summary message. If the run stopped between a tool call and its result
// (a crash), the missing results are filled in as failed calls so that the
// transcript is valid to send to a model again.
func Replay(history []Message, entries []Entry) []Message {
	msgs := RepairTranscript(history)
	var pending []Part // tool uses of the last assistant turn not yet answered
	var results []Part
	flush := func() {
		if len(pending) == 0 && len(results) == 0 {
			return
		}
		answered := map[string]bool{}
		for _, r := range results {
			answered[r.ID] = true
		}
		for _, u := range pending {
			if !answered[u.ID] {
				results = append(results, Part{Type: PartToolResult, ID: u.ID, Text: "interrupted: the run stopped before this tool call finished", IsError: true})
			}
		}
		msgs = append(msgs, Message{Role: RoleUser, Parts: results})
		pending, results = nil, nil
	}
	for _, e := range entries {
		switch e.Kind {
		case EntryMessage:
			if e.Message == nil {
				continue
			}
			flush()
			msgs = append(msgs, *e.Message)
			if e.Message.Role == RoleAssistant {
				pending = e.Message.ToolUses()
			}
		case EntryToolResult:
			if e.Part != nil {
				results = append(results, *e.Part)
			}
		case EntryCompaction:
			flush()
			var d struct {
				Replaced int `json:"replaced"`
			}
			_ = json.Unmarshal(e.Data, &d)
			if e.Message != nil && d.Replaced <= len(msgs) {
				msgs = append([]Message{*e.Message}, msgs[d.Replaced:]...)
			}
		}
	}
	flush()
	return msgs
}

// RepairTranscript returns msgs made valid to send to a model: every tool
// call of an assistant message is answered in the message after it (missing
// answers are added as failed calls), and tool results that answer no call
// of the message before them are dropped. A transcript the runner wrote is
// already valid; this is for history that came from elsewhere (an older
// store, a crash between steps, a hand-edited session).
func RepairTranscript(msgs []Message) []Message {
	out := make([]Message, 0, len(msgs)+1)
	var pending []Part
	for _, m := range msgs {
		if m.Role == RoleUser {
			want := map[string]bool{}
			for _, u := range pending {
				want[u.ID] = true
			}
			parts := make([]Part, 0, len(m.Parts)+len(pending))
			seen := map[string]bool{}
			for _, p := range m.Parts {
				if p.Type == PartToolResult {
					if !want[p.ID] || seen[p.ID] {
						continue
					}
					seen[p.ID] = true
				}
				parts = append(parts, p)
			}
			for _, u := range pending {
				if !seen[u.ID] {
					parts = append(parts, Part{Type: PartToolResult, ID: u.ID, Text: "interrupted: no result was recorded for this tool call", IsError: true})
				}
			}
			pending = nil
			if len(parts) == 0 {
				continue
			}
			m.Parts = parts
			out = append(out, m)
			continue
		}
		if len(pending) > 0 {
			out = append(out, Message{Role: RoleUser, Parts: interrupted(pending)})
		}
		out = append(out, m)
		pending = m.ToolUses()
	}
	if len(pending) > 0 {
		out = append(out, Message{Role: RoleUser, Parts: interrupted(pending)})
	}
	return out
}

func interrupted(uses []Part) []Part {
	out := make([]Part, len(uses))
	for i, u := range uses {
		out[i] = Part{Type: PartToolResult, ID: u.ID, Text: "interrupted: no result was recorded for this tool call", IsError: true}
	}
	return out
}
