package workspace

import (
	"context"
	"fmt"
	"time"
)

// freezeTimeout bounds how long a backup waits for a sandbox to freeze.
var freezeTimeout = 30 * time.Second

// freezeForSnapshot freezes workspace id's live sandbox, if one runs, so no
// file changes while a backup reads the tree, and keeps a sandbox from
// starting meanwhile. The returned func thaws it and lets sandboxes start
// again. Host-side writers (the agent's file tools) are not stopped.
func (s *Service) freezeForSnapshot(ctx context.Context, id string) (func(), error) {
	l := s.liveFor(id)
	l.mu.Lock()
	sb := l.sb
	if sb != nil {
		select {
		case <-sb.Done():
			sb = nil
		default:
		}
	}
	if sb == nil {
		return l.mu.Unlock, nil
	}
	fctx, cancel := context.WithTimeout(ctx, freezeTimeout)
	defer cancel()
	if err := sb.Freeze(fctx); err != nil {
		l.mu.Unlock()
		return nil, fmt.Errorf("freeze sandbox: %w", err)
	}
	return func() {
		if err := sb.Thaw(); err != nil {
			s.log.Error("thaw sandbox after backup", "workspace", id, "err", err)
		}
		l.mu.Unlock()
	}, nil
}

// stopForRestore stops workspace id's sandbox and keeps a new one from
// starting until the returned func is called: an in-place restore replaces
// the files under it. The cached quota usage is dropped, to be measured
// again from the restored tree.
func (s *Service) stopForRestore(id string) (func(), error) {
	l := s.liveFor(id)
	for {
		l.mu.Lock()
		if l.sb == nil {
			break
		}
		l.mu.Unlock()
		if err := s.StopSandbox(id); err != nil {
			return nil, fmt.Errorf("stop sandbox: %w", err)
		}
	}
	return func() {
		l.quota = nil
		l.mu.Unlock()
	}, nil
}
