package sync

import (
	"sync/atomic"
	"time"
)

// Progress is a snapshot of a long operation's advance, passed to a
// ProgressFunc. Totals are known up front (the tree is scanned first).
type Progress struct {
	Op         string // "backup", "restore", "verify", "prune"
	Files      int64  // entries done
	TotalFiles int64
	Bytes      int64 // logical bytes done
	TotalBytes int64
	Uploaded   int64 // bytes written to the store (backup) or read from it (restore, verify)
	Elapsed    time.Duration
	Rate       float64       // logical bytes per second
	ETA        time.Duration // 0 when unknown
	Done       bool          // the final call
}

// ProgressFunc receives progress at most every ProgressInterval, and once
// with Done set at the end. Calls never overlap, but may come from any of
// the operation's goroutines; a slow callback slows the operation.
type ProgressFunc func(Progress)

// ProgressInterval is the minimum time between two progress calls.
const ProgressInterval = 200 * time.Millisecond

type progressMeter struct {
	fn                   ProgressFunc
	op                   string
	start, last          time.Time
	files, bytes, tfiles int64
	tbytes               int64
	transferred          atomic.Int64
}

func newProgressMeter(fn ProgressFunc, op string) *progressMeter {
	now := time.Now()
	return &progressMeter{fn: fn, op: op, start: now, last: now}
}

func (m *progressMeter) report(done bool) {
	if m.fn == nil {
		return
	}
	now := time.Now()
	if !done && now.Sub(m.last) < ProgressInterval {
		return
	}
	m.last = now
	p := Progress{
		Op: m.op, Files: m.files, TotalFiles: m.tfiles, Bytes: m.bytes, TotalBytes: m.tbytes,
		Uploaded: m.transferred.Load(), Elapsed: now.Sub(m.start), Done: done,
	}
	if secs := p.Elapsed.Seconds(); secs > 0 {
		p.Rate = float64(p.Bytes) / secs
	}
	if p.Rate > 0 && p.TotalBytes > p.Bytes {
		p.ETA = time.Duration(float64(p.TotalBytes-p.Bytes) / p.Rate * float64(time.Second))
	}
	m.fn(p)
}
