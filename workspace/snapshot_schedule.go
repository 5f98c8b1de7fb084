package workspace

import (
	"context"
	"errors"
	"fmt"
	"time"

	bsync "github.com/bulkhead-dev/bulkhead/sync"
)

// DefaultSnapshotRetention is what scheduled snapshots keep when the
// operator gives no rule: the last 24 hours hourly, a week daily, a month
// weekly.
var DefaultSnapshotRetention = bsync.Retention{Hourly: 24, Daily: 7, Weekly: 4}

// SnapshotRound is what one scheduled round did for one workspace.
type SnapshotRound struct {
	Workspace string
	Snapshot  string // "" if the backup failed
	Forgotten int    // snapshots the prune removed
	Err       error
}

// SnapshotAll backs up every ready workspace into stores and then prunes its
// repository by keep (skipped when keep is zero). One workspace's failure
// does not stop the others; each gets a SnapshotRound. A prune that finds
// the repository locked (a backup through the API is running) is skipped
// until the next round.
func (s *Service) SnapshotAll(ctx context.Context, stores SnapshotStores, keep bsync.Retention, tags []string) ([]SnapshotRound, error) {
	all, err := s.List(ctx)
	if err != nil {
		return nil, err
	}
	var out []SnapshotRound
	for _, w := range all {
		if ctx.Err() != nil {
			return out, ctx.Err()
		}
		if w.State != StateReady {
			continue
		}
		out = append(out, s.snapshotOne(ctx, stores, w.ID, keep, tags))
	}
	return out, nil
}

func (s *Service) snapshotOne(ctx context.Context, stores SnapshotStores, id string, keep bsync.Retention, tags []string) SnapshotRound {
	round := SnapshotRound{Workspace: id}
	repo, err := s.SnapshotRepo(ctx, stores, id, true)
	if err != nil {
		round.Err = err
		return round
	}
	snap, err := s.Backup(ctx, repo, id, BackupOptions{Tags: tags})
	if err != nil {
		round.Err = err
		return round
	}
	round.Snapshot = snap.ID
	if keep == (bsync.Retention{}) {
		return round
	}
	res, err := repo.Prune(ctx, bsync.PruneOptions{Keep: keep})
	switch {
	case errors.Is(err, bsync.ErrLocked):
		s.log.Info("scheduled prune skipped: repository in use", "workspace", id, "err", err)
	case err != nil:
		round.Err = fmt.Errorf("prune %s: %w", id, err)
	default:
		round.Forgotten = len(res.Forgotten)
	}
	return round
}

// ScheduleSnapshots runs SnapshotAll every interval, tagged "scheduled",
// until ctx ends, logging each workspace's result. The first round starts
// one interval after the call.
func (s *Service) ScheduleSnapshots(ctx context.Context, stores SnapshotStores, every time.Duration, keep bsync.Retention) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		start := time.Now()
		rounds, err := s.SnapshotAll(ctx, stores, keep, []string{"scheduled"})
		if err != nil && ctx.Err() == nil {
			s.log.Error("scheduled snapshots", "err", err)
		}
		failed := 0
		for _, r := range rounds {
			if r.Err != nil {
				failed++
				s.log.Error("scheduled snapshot", "workspace", r.Workspace, "snapshot", r.Snapshot, "err", r.Err)
			} else {
				s.log.Debug("scheduled snapshot", "workspace", r.Workspace, "snapshot", r.Snapshot, "forgotten", r.Forgotten)
			}
		}
		s.log.Info("scheduled snapshots done", "workspaces", len(rounds), "failed", failed, "took", time.Since(start).Round(time.Millisecond))
	}
}
