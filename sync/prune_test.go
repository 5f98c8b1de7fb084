package sync_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	bsync "github.com/bulkhead-dev/bulkhead/sync"
)

func TestSelectKeep(t *testing.T) {
	t.Parallel()
	base := time.Date(2026, 3, 10, 12, 0, 0, 0, time.UTC) // a Tuesday
	var snaps []*bsync.Snapshot
	add := func(id string, d time.Duration) {
		snaps = append(snaps, &bsync.Snapshot{ID: id, Time: base.Add(-d)})
	}
	add("now", 0)
	add("now-10m", 10*time.Minute)
	add("h-1", 1*time.Hour)
	add("h-1b", 1*time.Hour+20*time.Minute)
	add("h-3", 3*time.Hour)
	add("d-1", 24*time.Hour)
	add("d-2", 48*time.Hour)
	add("d-9", 9*24*time.Hour)
	add("d-30", 30*24*time.Hour)
	cases := []struct {
		keep bsync.Retention
		want string
	}{
		{bsync.Retention{Last: 2}, "now now-10m"},
		{bsync.Retention{Hourly: 3}, "now now-10m h-1b"}, // 12:00, 11:50 (h-1 shares its hour), 10:40
		{bsync.Retention{Daily: 3}, "now d-1 d-2"},
		{bsync.Retention{Weekly: 2}, "now d-2"}, // Sunday d-2 closes the previous ISO week
		{bsync.Retention{Last: 1, Daily: 2, Weekly: 4}, "now d-1 d-2 d-9 d-30"},
		{bsync.Retention{Last: 100}, "now now-10m h-1 h-1b h-3 d-1 d-2 d-9 d-30"},
	}
	for _, c := range cases {
		got := bsync.SelectKeep(snaps, c.keep)
		var ids []string
		for _, s := range snaps {
			if got[s.ID] {
				ids = append(ids, s.ID)
			}
		}
		if strings.Join(ids, " ") != c.want {
			t.Errorf("%+v keeps %v, want %s", c.keep, ids, c.want)
		}
	}
}

func TestPruneGC(t *testing.T) {
	t.Parallel()
	repo, store := newRepo(t)
	src := t.TempDir()
	write(t, filepath.Join(src, "stays"), randBytes(3<<20, 1), 0o644)
	write(t, filepath.Join(src, "goes"), randBytes(6<<20, 2), 0o644)
	if _, err := repo.Backup(t.Context(), src, bsync.BackupOptions{}); err != nil {
		t.Fatal(err)
	}
	write(t, filepath.Join(src, "goes"), randBytes(6<<20, 3), 0o644)
	if _, err := repo.Backup(t.Context(), src, bsync.BackupOptions{}); err != nil {
		t.Fatal(err)
	}
	write(t, filepath.Join(src, "goes"), []byte("small now"), 0o644)
	last, err := repo.Backup(t.Context(), src, bsync.BackupOptions{})
	if err != nil {
		t.Fatal(err)
	}
	_, before := storeBytes(t, store, "data/")

	dry, err := repo.Prune(t.Context(), bsync.PruneOptions{Keep: bsync.Retention{Last: 1}, DryRun: true})
	if err != nil || len(dry.Forgotten) != 2 {
		t.Fatalf("dry run: %+v, %v", dry, err)
	}
	if _, after := storeBytes(t, store, "data/"); after != before {
		t.Fatal("dry run changed the store")
	}
	res, err := repo.Prune(t.Context(), bsync.PruneOptions{Keep: bsync.Retention{Last: 1}})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Kept) != 1 || res.Kept[0] != last.ID || len(res.Forgotten) != 2 {
		t.Fatalf("prune result %+v", res)
	}
	_, after := storeBytes(t, store, "data/")
	if after > before-10<<20 || after < 3<<20 {
		t.Fatalf("data went from %d to %d bytes; expected the two 6 MiB versions gone and 3 MiB kept", before, after)
	}
	rep, err := repo.Verify(t.Context(), bsync.VerifyOptions{ReadData: 1})
	if err != nil || !rep.OK() || rep.UnusedPacks != 0 {
		t.Fatalf("verify after prune: %+v %v\n%s", rep, err, problemsText(rep))
	}
	dst := t.TempDir()
	if err := repo.Restore(t.Context(), last, dst, bsync.RestoreOptions{}); err != nil {
		t.Fatal(err)
	}
	compareTrees(t, src, dst)
	if _, err := repo.Prune(t.Context(), bsync.PruneOptions{}); err == nil {
		t.Fatal("prune with an empty policy ran")
	}
}

// gate is a state stream that blocks its first Read until released, so a
// test can act while a backup is in the middle of its work.
type gate struct {
	reached chan struct{}
	release chan struct{}
	data    io.Reader
	once    atomic.Bool
}

func newGate(data []byte) *gate {
	return &gate{reached: make(chan struct{}), release: make(chan struct{}), data: bytes.NewReader(data)}
}

func (g *gate) Read(p []byte) (int, error) {
	if g.once.CompareAndSwap(false, true) {
		close(g.reached)
		<-g.release
	}
	return g.data.Read(p)
}

func TestPruneWaitsForBackup(t *testing.T) {
	t.Parallel()
	repo, store := newRepo(t)
	src := t.TempDir()
	write(t, filepath.Join(src, "f"), randBytes(2<<20, 1), 0o644)
	if _, err := repo.Backup(t.Context(), src, bsync.BackupOptions{}); err != nil {
		t.Fatal(err)
	}
	g := newGate([]byte("state"))
	done := make(chan error, 1)
	go func() {
		_, err := repo.Backup(context.Background(), src, bsync.BackupOptions{State: g})
		done <- err
	}()
	<-g.reached
	// Another process (another handle) tries to prune meanwhile.
	other, err := bsync.Open(t.Context(), store, keyOf(t, repo), bsync.Options{})
	if err != nil {
		t.Fatal(err)
	}
	_, err = other.Prune(t.Context(), bsync.PruneOptions{Keep: bsync.Retention{Last: 1}})
	var le *bsync.LockError
	if !errors.Is(err, bsync.ErrLocked) || !errors.As(err, &le) || le.Purpose != "backup" {
		t.Fatalf("prune during a backup: %v, want a LockError held by the backup", err)
	}
	close(g.release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if _, err := other.Prune(t.Context(), bsync.PruneOptions{Keep: bsync.Retention{Last: 1}}); err != nil {
		t.Fatalf("prune after the backup: %v", err)
	}
	if n, _ := storeBytes(t, store, "locks/"); n != 0 {
		t.Fatalf("%d locks left behind", n)
	}
}

// Even if the backup's lock is lost (here: deleted, as if it went stale) and
// a prune deletes packs the backup deduplicated against, the backup does not
// commit a snapshot referencing them.
func TestBackupRefusesAfterBrokenLock(t *testing.T) {
	t.Parallel()
	repo, store := newRepo(t)
	src := t.TempDir()
	write(t, filepath.Join(src, "f"), randBytes(2<<20, 1), 0o644)
	old, err := repo.Backup(t.Context(), src, bsync.BackupOptions{})
	if err != nil {
		t.Fatal(err)
	}
	g := newGate(nil)
	done := make(chan error, 1)
	go func() {
		_, err := repo.Backup(context.Background(), src, bsync.BackupOptions{State: g, Parent: "none"})
		done <- err
	}()
	<-g.reached
	for _, l := range listNames(t, store, "locks/") {
		store.Delete(t.Context(), l)
	}
	other, err := bsync.Open(t.Context(), store, keyOf(t, repo), bsync.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := other.Backup(t.Context(), t.TempDir(), bsync.BackupOptions{}); err != nil {
		t.Fatal(err)
	}
	res, err := other.Prune(t.Context(), bsync.PruneOptions{Keep: bsync.Retention{Last: 1}})
	if err != nil || res.PacksDeleted == 0 || res.Forgotten[0] != old.ID {
		t.Fatalf("prune: %+v, %v", res, err)
	}
	close(g.release)
	err = <-done
	if err == nil || !strings.Contains(err.Error(), "vanished") {
		t.Fatalf("backup after its packs were pruned: %v, want a refusal", err)
	}
	snaps, err := other.Snapshots(t.Context())
	if err != nil || len(snaps) != 1 {
		t.Fatalf("snapshots: %d, %v", len(snaps), err)
	}
	rep, err := other.Verify(t.Context(), bsync.VerifyOptions{ReadData: 1})
	if err != nil || !rep.OK() {
		t.Fatalf("verify: %v\n%s", err, problemsText(rep))
	}
}

// failingStore lets the first n pack uploads through and fails the rest,
// each failure only once those n have landed.
type failingStore struct {
	bsync.Store
	n       int32
	started atomic.Int32
	done    atomic.Int32
}

func (f *failingStore) Put(ctx context.Context, name string, r io.Reader, size int64) error {
	if !strings.HasPrefix(name, "data/") {
		return f.Store.Put(ctx, name, r, size)
	}
	if f.started.Add(1) > f.n {
		for f.done.Load() < f.n && ctx.Err() == nil {
			time.Sleep(time.Millisecond)
		}
		return errors.New("injected upload failure")
	}
	err := f.Store.Put(ctx, name, r, size)
	if err == nil {
		f.done.Add(1)
	}
	return err
}

func TestInterruptedBackup(t *testing.T) {
	t.Parallel()
	store := newLocalStore(t)
	key := newKey(t)
	initRepo(t, store, key)
	src := t.TempDir()
	for i := range 4 {
		write(t, filepath.Join(src, "f"+string(rune('0'+i))), randBytes(12<<20, uint64(i)), 0o644)
	}
	fs := &failingStore{Store: store, n: 1}
	broken, err := bsync.Open(t.Context(), fs, key, bsync.Options{})
	if err != nil {
		t.Fatal(err)
	}
	_, err = broken.Backup(t.Context(), src, bsync.BackupOptions{})
	if err == nil || !strings.Contains(err.Error(), "injected upload failure") {
		t.Fatalf("backup with failing uploads: %v", err)
	}
	repo, err := bsync.Open(t.Context(), store, key, bsync.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if snaps, err := repo.Snapshots(t.Context()); err != nil || len(snaps) != 0 {
		t.Fatalf("interrupted backup left %d snapshots (%v)", len(snaps), err)
	}
	rep, err := repo.Verify(t.Context(), bsync.VerifyOptions{ReadData: 1})
	if err != nil || !rep.OK() || rep.UnusedPacks == 0 {
		t.Fatalf("verify after an interrupted backup: %+v %v", rep, err)
	}
	if n, _ := storeBytes(t, store, "locks/"); n != 0 {
		t.Fatal("interrupted backup left its lock")
	}
	// Its packs are unindexed: a prune within the grace period keeps them,
	// one past it removes them.
	if _, err := repo.Backup(t.Context(), t.TempDir(), bsync.BackupOptions{}); err != nil {
		t.Fatal(err)
	}
	res, err := repo.Prune(t.Context(), bsync.PruneOptions{Keep: bsync.Retention{Last: 1}})
	if err != nil || res.PacksDeleted != 0 {
		t.Fatalf("prune inside the grace period: %+v %v", res, err)
	}
	res, err = repo.Prune(t.Context(), bsync.PruneOptions{Keep: bsync.Retention{Last: 1}, Grace: time.Nanosecond})
	if err != nil || res.PacksDeleted != rep.UnusedPacks {
		t.Fatalf("prune past the grace period: %+v %v (want %d packs deleted)", res, err, rep.UnusedPacks)
	}
	// The next backup completes and restores.
	snap, err := repo.Backup(t.Context(), src, bsync.BackupOptions{})
	if err != nil {
		t.Fatal(err)
	}
	dst := t.TempDir()
	if err := repo.Restore(t.Context(), snap, dst, bsync.RestoreOptions{}); err != nil {
		t.Fatal(err)
	}
	compareTrees(t, src, dst)
}
