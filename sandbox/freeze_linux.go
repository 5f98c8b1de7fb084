package sandbox

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"
)

// thawTimeout bounds waiting for the kernel to report a group thawed.
const thawTimeout = 10 * time.Second

// Freeze stops every process of the sandbox with the cgroup freezer and
// returns once the kernel reports the group frozen, so nothing in it runs
// (or writes) until Thaw. If ctx ends first, or the group cannot be frozen,
// it is thawed again and an error returned. A frozen sandbox's Exec calls
// wait; Close still works.
func (s *Sandbox) Freeze(ctx context.Context) error {
	f, err := s.freezer()
	if err != nil {
		return fmt.Errorf("freeze sandbox %s: %w", s.cfg.ID, err)
	}
	if err := f.set(ctx, true); err != nil {
		tctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), thawTimeout)
		defer cancel()
		if terr := f.set(tctx, false); terr != nil {
			err = errors.Join(err, fmt.Errorf("thaw again: %w", terr))
		}
		return fmt.Errorf("freeze sandbox %s: %w", s.cfg.ID, err)
	}
	return nil
}

// Thaw lets a frozen sandbox run again. Thawing a running sandbox does
// nothing.
func (s *Sandbox) Thaw() error {
	f, err := s.freezer()
	if err == nil {
		ctx, cancel := context.WithTimeout(context.Background(), thawTimeout)
		defer cancel()
		err = f.set(ctx, false)
	}
	if err != nil {
		return fmt.Errorf("thaw sandbox %s: %w", s.cfg.ID, err)
	}
	return nil
}

// Frozen reports whether the sandbox's group is frozen now.
func (s *Sandbox) Frozen() (bool, error) {
	f, err := s.freezer()
	if err != nil {
		return false, err
	}
	return f.frozen()
}

// freezerFiles names a group's freezer control and state files: on v2
// cgroup.freeze ("1"/"0") and cgroup.events ("frozen 1"); on v1
// freezer.state for both ("FROZEN"/"THAWED"; "FREEZING" while in progress).
type freezerFiles struct {
	v2   bool
	ctl  string
	stat string
}

func (s *Sandbox) freezer() (*freezerFiles, error) {
	if s.cg == nil {
		return nil, errors.New("sandbox has no cgroup")
	}
	if f := s.cg.freezer(); f != nil {
		return f, nil
	}
	return nil, errors.New("no v1 freezer group for the sandbox")
}

func (f *freezerFiles) frozen() (bool, error) {
	if f.v2 {
		if _, err := os.Stat(f.stat); err != nil {
			return false, err
		}
		return readKey(f.stat, "frozen") == 1, nil
	}
	b, err := os.ReadFile(f.stat)
	if err != nil {
		return false, err
	}
	return strings.TrimSpace(string(b)) == "FROZEN", nil
}

// set requests a state and polls until the kernel reports it.
func (f *freezerFiles) set(ctx context.Context, freeze bool) error {
	val := "THAWED"
	switch {
	case f.v2 && freeze:
		val = "1"
	case f.v2:
		val = "0"
	case freeze:
		val = "FROZEN"
	}
	delay := 100 * time.Microsecond
	for {
		// v1 needs the request repeated: a write starts one freezing
		// attempt, which may end back in FREEZING.
		if err := os.WriteFile(f.ctl, []byte(val), 0); err != nil {
			return err
		}
		got, err := f.frozen()
		if err != nil {
			return err
		}
		if got == freeze {
			return nil
		}
		select {
		case <-ctx.Done():
			return context.Cause(ctx)
		case <-time.After(delay):
		}
		delay = min(2*delay, 10*time.Millisecond)
	}
}
