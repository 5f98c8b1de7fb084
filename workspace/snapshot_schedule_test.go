package workspace

import (
	"context"
	"testing"
	"time"

	bsync "github.com/bulkhead-dev/bulkhead/sync"
)

// Scheduled rounds snapshot every workspace, prune each to the retention,
// and a workspace whose repository cannot be written does not stop others.
func TestScheduleSnapshots(t *testing.T) {
	ctx := context.Background()
	s := openService(t, t.TempDir(), "pw")
	defer s.Close()
	for _, id := range []string{"alice", "bob"} {
		if _, err := s.Create(ctx, id, nil); err != nil {
			t.Fatal(err)
		}
	}
	dir := t.TempDir()
	good := LocalSnapshotStores(dir)
	stores := func(ctx context.Context, id string) (bsync.Store, error) {
		if id == "alice" {
			return nil, context.DeadlineExceeded // alice's store is down
		}
		return good(ctx, id)
	}
	rounds, err := s.SnapshotAll(ctx, stores, bsync.Retention{Last: 2}, nil)
	if err != nil || len(rounds) != 2 {
		t.Fatalf("rounds %+v, %v", rounds, err)
	}
	if rounds[0].Workspace != "alice" || rounds[0].Err == nil || rounds[1].Workspace != "bob" || rounds[1].Err != nil || rounds[1].Snapshot == "" {
		t.Fatalf("rounds: %+v", rounds)
	}

	sctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { s.ScheduleSnapshots(sctx, good, 50*time.Millisecond, bsync.Retention{Last: 2}); close(done) }()
	repo, err := s.SnapshotRepo(ctx, good, "alice", true)
	if err != nil {
		t.Fatal(err)
	}
	// Wait until at least four rounds have snapshotted alice, then stop the
	// schedule and count what the retention left.
	seen := map[string]bool{}
	deadline := time.Now().Add(30 * time.Second)
	for len(seen) < 4 {
		snaps, _ := repo.Snapshots(ctx)
		for _, sn := range snaps {
			if len(sn.Tags) != 1 || sn.Tags[0] != "scheduled" {
				t.Fatalf("scheduled snapshot tagged %v", sn.Tags)
			}
			seen[sn.ID] = true
		}
		if time.Now().After(deadline) {
			t.Fatalf("schedule did not run: %d alice snapshots seen", len(seen))
		}
		time.Sleep(20 * time.Millisecond)
	}
	cancel()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("schedule did not stop with its context")
	}
	for _, id := range []string{"alice", "bob"} {
		r, err := s.SnapshotRepo(ctx, good, id, false)
		if err != nil {
			t.Fatal(err)
		}
		// The last round may have been cancelled between backup and prune.
		if snaps, _ := r.Snapshots(ctx); len(snaps) < 2 || len(snaps) > 3 {
			t.Fatalf("%s keeps %d snapshots, want 2 (3 if the last prune was cut off)", id, len(snaps))
		}
	}
}
