package board

import (
	"fmt"
	"sync"
	"time"
)

// LogLine is one line of a ticket run's live log.
type LogLine struct {
	Seq   int64     `json:"seq"`
	Time  time.Time `json:"time"`
	Token int64     `json:"token"` // the run's fencing token
	Kind  string    `json:"kind"`  // run_start, text, tool_call, tool_result, notice, run_end, error
	Text  string    `json:"text"`
}

// maxLogLines is how many lines of a ticket's log are kept in memory.
const maxLogLines = 2000

type ticketLog struct {
	lines []LogLine
	next  int64
	subs  map[chan LogLine]struct{}
}

// runLogs keeps the recent run log of each ticket and fans lines out to
// live subscribers (the web UI's SSE stream). Slow subscribers miss lines
// rather than block a run.
type runLogs struct {
	mu   sync.Mutex
	logs map[string]*ticketLog
}

func newRunLogs() *runLogs { return &runLogs{logs: map[string]*ticketLog{}} }

func logKey(project string, id int64) string { return fmt.Sprintf("%s/%d", project, id) }

func (r *runLogs) get(k string) *ticketLog {
	l := r.logs[k]
	if l == nil {
		l = &ticketLog{subs: map[chan LogLine]struct{}{}}
		r.logs[k] = l
	}
	return l
}

func (r *runLogs) add(project string, id int64, line LogLine) {
	r.mu.Lock()
	defer r.mu.Unlock()
	l := r.get(logKey(project, id))
	l.next++
	line.Seq = l.next
	if line.Time.IsZero() {
		line.Time = time.Now().UTC()
	}
	l.lines = append(l.lines, line)
	if len(l.lines) > maxLogLines {
		l.lines = append([]LogLine(nil), l.lines[len(l.lines)-maxLogLines:]...)
	}
	for ch := range l.subs {
		select {
		case ch <- line:
		default:
		}
	}
}

// RunLog returns the kept lines of a ticket's log after seq, and a channel
// of the lines that follow; call cancel when done.
func (b *Board) RunLog(project string, id int64, after int64) ([]LogLine, <-chan LogLine, func()) {
	r := b.logs
	r.mu.Lock()
	defer r.mu.Unlock()
	k := logKey(project, id)
	l := r.get(k)
	var past []LogLine
	for _, ln := range l.lines {
		if ln.Seq > after {
			past = append(past, ln)
		}
	}
	ch := make(chan LogLine, 256)
	l.subs[ch] = struct{}{}
	return past, ch, func() {
		r.mu.Lock()
		delete(l.subs, ch)
		r.mu.Unlock()
	}
}
