package sandbox

import (
	"context"
	"errors"
	"sync"
)

// Pool keeps at most one live sandbox per Config.ID and starts one on
// demand: the shape a long-running process (bulkhead serve) needs, where a
// workspace's sandbox lives while it is used and is reaped after its idle
// timeout. Safe for concurrent use; concurrent first uses of one ID start a
// single sandbox.
type Pool struct {
	mu       sync.Mutex
	live     map[string]*Sandbox
	starting map[string]*startCall
	closed   bool
}

type startCall struct {
	done chan struct{}
	sb   *Sandbox
	err  error
}

// NewPool returns an empty pool.
func NewPool() *Pool {
	return &Pool{live: map[string]*Sandbox{}, starting: map[string]*startCall{}}
}

func isDone(sb *Sandbox) bool {
	select {
	case <-sb.Done():
		return true
	default:
		return false
	}
}

// Get returns the live sandbox for cfg.ID, starting it with cfg if there is
// none (or the last one was closed, reaped or died). A live sandbox keeps the
// Config it was started with; Drop it to apply a new one.
func (p *Pool) Get(ctx context.Context, cfg Config) (*Sandbox, error) {
	for {
		p.mu.Lock()
		if p.closed {
			p.mu.Unlock()
			return nil, ErrClosed
		}
		if sb := p.live[cfg.ID]; sb != nil && !isDone(sb) {
			p.mu.Unlock()
			return sb, nil
		}
		if c := p.starting[cfg.ID]; c != nil {
			p.mu.Unlock()
			select {
			case <-c.done:
			case <-ctx.Done():
				return nil, ctx.Err()
			}
			if c.err != nil {
				return nil, c.err
			}
			continue
		}
		c := &startCall{done: make(chan struct{})}
		p.starting[cfg.ID] = c
		p.mu.Unlock()

		c.sb, c.err = Start(ctx, cfg)
		p.mu.Lock()
		delete(p.starting, cfg.ID)
		if c.err == nil {
			if p.closed {
				c.sb.Close()
				c.err = ErrClosed
			} else {
				p.live[cfg.ID] = c.sb
			}
		}
		p.mu.Unlock()
		close(c.done)
		return c.sb, c.err
	}
}

// Exec runs cmd in the sandbox for cfg.ID (see Get). If that sandbox was
// reaped between lookup and use, it starts a fresh one and tries once more.
func (p *Pool) Exec(ctx context.Context, cfg Config, cmd Command) (Result, error) {
	for attempt := 0; ; attempt++ {
		sb, err := p.Get(ctx, cfg)
		if err != nil {
			return Result{}, err
		}
		res, err := sb.Exec(ctx, cmd)
		if errors.Is(err, ErrClosed) && attempt == 0 && ctx.Err() == nil && isDone(sb) && !res.TimedOut {
			continue
		}
		return res, err
	}
}

// Drop closes the live sandbox for id, if any.
func (p *Pool) Drop(id string) error {
	p.mu.Lock()
	sb := p.live[id]
	delete(p.live, id)
	p.mu.Unlock()
	if sb == nil {
		return nil
	}
	return sb.Close()
}

// Len is the number of live sandboxes.
func (p *Pool) Len() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for _, sb := range p.live {
		if !isDone(sb) {
			n++
		}
	}
	return n
}

// Close closes every sandbox of the pool; later Gets fail with ErrClosed.
func (p *Pool) Close() error {
	p.mu.Lock()
	p.closed = true
	live := p.live
	p.live = map[string]*Sandbox{}
	p.mu.Unlock()
	var errs []error
	for _, sb := range live {
		errs = append(errs, sb.Close())
	}
	return errors.Join(errs...)
}
