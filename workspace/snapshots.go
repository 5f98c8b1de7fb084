package workspace

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/bulkhead-dev/bulkhead/credentials"
	"github.com/bulkhead-dev/bulkhead/kv"
	bsync "github.com/bulkhead-dev/bulkhead/sync"
	"github.com/bulkhead-dev/bulkhead/sync/local"
)

// SnapshotKeyPurpose names the data-key subkey snapshot repositories use.
// Deleting a workspace destroys its data key, and with it every way to read
// its snapshots.
const SnapshotKeyPurpose = "snapshots"

// SnapshotStores opens the object store holding workspace id's snapshot
// repository. Each workspace has its own repository.
type SnapshotStores func(ctx context.Context, id string) (bsync.Store, error)

// LocalSnapshotStores keeps each workspace's repository in dir/<id>.
func LocalSnapshotStores(dir string) SnapshotStores {
	return func(_ context.Context, id string) (bsync.Store, error) {
		if err := ValidateID(id); err != nil {
			return nil, err
		}
		return local.Open(filepath.Join(dir, id))
	}
}

// DefaultSnapshotDir is where local snapshot repositories live by default.
func (s *Service) DefaultSnapshotDir() string { return filepath.Join(s.dir, "snapshots") }

// SnapshotRepo opens workspace id's snapshot repository in stores, creating
// it when create is set. Without create, a workspace never backed up gives an
// error wrapping bsync.ErrNoRepository.
func (s *Service) SnapshotRepo(ctx context.Context, stores SnapshotStores, id string, create bool) (*bsync.Repository, error) {
	if _, err := s.Get(ctx, id); err != nil {
		return nil, err
	}
	dk, err := s.DataKey(ctx, id)
	if err != nil {
		return nil, err
	}
	return OpenSnapshotRepo(ctx, stores, id, dk.Subkey(SnapshotKeyPurpose), create, bsync.Options{Logger: s.log.With("workspace", id)})
}

// OpenSnapshotRepo opens the repository of workspace id with an explicit
// snapshot key (a subkey of the workspace's data key, or one exported before
// the workspace was deleted).
func OpenSnapshotRepo(ctx context.Context, stores SnapshotStores, id string, key []byte, create bool, opts bsync.Options) (*bsync.Repository, error) {
	if err := ValidateID(id); err != nil {
		return nil, err
	}
	store, err := stores(ctx, id)
	if err != nil {
		return nil, err
	}
	repo, err := bsync.Open(ctx, store, key, opts)
	if errors.Is(err, bsync.ErrNoRepository) && create {
		return bsync.Init(ctx, store, key, opts)
	}
	if errors.Is(err, bsync.ErrNoRepository) {
		return nil, fmt.Errorf("workspace %s has no snapshots yet: %w", id, err)
	}
	return repo, err
}

// BackupOptions tune Service.Backup.
type BackupOptions struct {
	Host     string // default: os.Hostname
	Tags     []string
	Progress bsync.ProgressFunc
}

// Backup snapshots workspace id's files, state database and config into
// repo. The workspace's live sandbox, if any, is frozen while its files are
// captured, so no file is read half-written by it.
func (s *Service) Backup(ctx context.Context, repo *bsync.Repository, id string, opts BackupOptions) (*bsync.Snapshot, error) {
	w, err := s.Get(ctx, id)
	if err != nil {
		return nil, err
	}
	cfg, err := json.Marshal(w.Config)
	if err != nil {
		return nil, err
	}
	db, release, err := s.DB(ctx, id)
	if err != nil {
		return nil, err
	}
	defer release()
	if opts.Host == "" {
		opts.Host, _ = os.Hostname()
	}
	thaw, err := s.freezeForSnapshot(ctx, id)
	if err != nil {
		return nil, fmt.Errorf("backup %s: %w", id, err)
	}
	defer thaw()
	// The state database streams its backup while the files are captured.
	pr, pw := io.Pipe()
	go func() {
		_, err := db.Backup(pw, 0)
		pw.CloseWithError(err)
	}()
	snap, err := repo.Backup(ctx, s.FilesDir(id), bsync.BackupOptions{
		State: pr, Config: cfg, Host: opts.Host, Tags: opts.Tags, Progress: opts.Progress,
	})
	pr.CloseWithError(errors.New("backup ended"))
	if err != nil {
		return nil, fmt.Errorf("backup %s: %w", id, err)
	}
	return snap, nil
}

// RestoreOptions tune Service.Restore.
type RestoreOptions struct {
	// To, when set, names a new workspace created from the snapshot (a
	// fork); otherwise the snapshot replaces the workspace's files and state.
	To string
	// SourceKey is the data key the snapshot's credentials were sealed with:
	// the source workspace's (the default, looked up by id), or an exported
	// one after the source was deleted. Needed only when the target differs
	// from the source or its key.
	SourceKey *credentials.DataKey
	// DropCredentials, for a fork without SourceKey (the source is gone
	// and only its snapshot key was kept), removes the snapshot's sealed
	// credentials, which nothing can open any more.
	DropCredentials bool
	Progress        bsync.ProgressFunc
}

// Restore writes snap, a snapshot of workspace id from repo, back into id or
// into a new workspace opts.To. It returns the workspace restored into. A
// fork gets the snapshot's config, its own data key and host ids, and every
// credential re-sealed for it. A failed fork is deleted again.
func (s *Service) Restore(ctx context.Context, repo *bsync.Repository, id string, snap *bsync.Snapshot, opts RestoreOptions) (target string, err error) {
	target = id
	if opts.To != "" {
		if err := ValidateID(opts.To); err != nil {
			return "", err
		}
		cfg := DefaultConfig()
		if len(snap.Config) > 0 {
			if err := json.Unmarshal(snap.Config, &cfg); err != nil {
				return "", fmt.Errorf("snapshot %s config: %w", snap.ID, err)
			}
		}
		if _, err := s.Create(ctx, opts.To, &cfg); err != nil {
			return "", err
		}
		target = opts.To
		defer func() {
			if err != nil {
				if derr := s.Delete(context.WithoutCancel(ctx), target); derr != nil {
					s.log.Warn("remove failed fork", "workspace", target, "err", derr)
				}
			}
		}()
	}
	src := opts.SourceKey
	if src == nil && target != id && !opts.DropCredentials {
		if src, err = s.DataKey(ctx, id); err != nil {
			return "", fmt.Errorf("key of %s: %w", id, err)
		}
	}
	w, err := s.Get(ctx, target)
	if err != nil {
		return "", err
	}
	if target == id {
		if s.agentBusy(id) {
			return "", fmt.Errorf("%w: workspace %s has runs in progress; cancel them before restoring in place", ErrInUse, id)
		}
		release, err := s.stopForRestore(id)
		if err != nil {
			return "", fmt.Errorf("restore %s: %w", id, err)
		}
		defer release()
	}
	ropts := bsync.RestoreOptions{Delete: true, Progress: opts.Progress}
	if os.Geteuid() == 0 {
		ropts.Owner = &bsync.Owner{UID: int(w.HostUID), GID: int(w.HostGID)}
	}
	db, release, err := s.DB(ctx, target)
	if err != nil {
		return "", err
	}
	defer release()
	var loaded chan error
	var pw *io.PipeWriter
	var kept []kvPair
	if snap.State != nil {
		if target == id {
			if kept, err = readPrefixes(db, policyPrefixes); err != nil {
				return "", fmt.Errorf("read policy state of %s: %w", target, err)
			}
		}
		if err := db.DropAll(); err != nil {
			return "", fmt.Errorf("clear state of %s: %w", target, err)
		}
		var pr *io.PipeReader
		pr, pw = io.Pipe()
		loaded = make(chan error, 1)
		go func() {
			err := db.Load(pr, 256)
			pr.CloseWithError(err)
			loaded <- err
		}()
		ropts.State = pw
	}
	err = repo.Restore(ctx, snap, s.FilesDir(target), ropts)
	if pw != nil {
		pw.CloseWithError(err)
		if lerr := <-loaded; err == nil && lerr != nil {
			err = fmt.Errorf("load state into %s: %w", target, lerr)
		}
	}
	if err != nil {
		return "", fmt.Errorf("restore %s into %s: %w", snap.ID, target, err)
	}
	if snap.State != nil && target == id {
		if err := replacePrefixes(db, policyPrefixes, kept); err != nil {
			return "", fmt.Errorf("restore %s into %s: keep policy state: %w", snap.ID, target, err)
		}
		// The derived indexes (memory) describe the state before the
		// restore; they are rebuilt from it on next use.
		if err := os.RemoveAll(s.IndexDir(target)); err != nil {
			return "", fmt.Errorf("restore %s into %s: drop derived indexes: %w", snap.ID, target, err)
		}
	}
	if snap.State != nil && target != id {
		// The loaded state names the source workspace, and its credentials
		// are sealed to the source's id and key; the target is its own.
		dst, err := s.DataKey(ctx, target)
		if err != nil {
			return "", err
		}
		if err := reseal(db, id, src, target, dst); err != nil {
			return "", fmt.Errorf("restore %s into %s: %w", snap.ID, target, err)
		}
	}
	return target, nil
}

// reseal rewrites every credential of db, sealed under (fromID, from), under
// (toID, to), and records toID as the database's workspace. With from nil
// the credentials are removed instead.
func reseal(db *badger.DB, fromID string, from *credentials.DataKey, toID string, to *credentials.DataKey) error {
	return kv.UpdateSync(db, func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte(prefixCred), PrefetchValues: true})
		var out []kvPair
		for it.Rewind(); it.Valid(); it.Next() {
			if from == nil {
				out = append(out, kvPair{k: it.Item().KeyCopy(nil)})
				continue
			}
			var r credRecord
			if err := it.Item().Value(func(v []byte) error { return json.Unmarshal(v, &r) }); err != nil {
				it.Close()
				return fmt.Errorf("decode credential %s: %w", it.Item().Key(), err)
			}
			v, err := from.Open(fromID, r.Name, r.Sealed)
			if err != nil {
				it.Close()
				return fmt.Errorf("open credential %s of %s: %w", r.Name, fromID, err)
			}
			r.Sealed = to.Seal(toID, r.Name, v.Reveal())
			r.UpdatedAt = time.Now().UTC()
			b, err := json.Marshal(r)
			if err != nil {
				it.Close()
				return err
			}
			out = append(out, kvPair{it.Item().KeyCopy(nil), b})
		}
		it.Close()
		for _, p := range out {
			var err error
			if p.v == nil {
				err = txn.Delete(p.k)
			} else {
				err = txn.Set(p.k, p.v)
			}
			if err != nil {
				return err
			}
		}
		return txn.Set([]byte("meta/workspace"), []byte(toID))
	})
}

// policyPrefixes are workspace-database keys the operator governs rather
// than the tenant: token usage (quotas) and skill enablement. An in-place
// restore keeps their current values, so a tenant cannot roll back its
// quota usage or re-enable a skill by restoring an older snapshot.
var policyPrefixes = []string{prefixUsage, prefixSkill}

type kvPair struct{ k, v []byte }

func readPrefixes(db *badger.DB, prefixes []string) ([]kvPair, error) {
	var out []kvPair
	err := db.View(func(txn *badger.Txn) error {
		for _, p := range prefixes {
			it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte(p), PrefetchValues: true})
			for it.Rewind(); it.Valid(); it.Next() {
				v, err := it.Item().ValueCopy(nil)
				if err != nil {
					it.Close()
					return err
				}
				out = append(out, kvPair{it.Item().KeyCopy(nil), v})
			}
			it.Close()
		}
		return nil
	})
	return out, err
}

// replacePrefixes deletes every key under prefixes and writes kept instead.
func replacePrefixes(db *badger.DB, prefixes []string, kept []kvPair) error {
	old, err := readPrefixes(db, prefixes)
	if err != nil {
		return err
	}
	wb := db.NewWriteBatch()
	defer wb.Cancel()
	for _, p := range old {
		if err := wb.Delete(p.k); err != nil {
			return err
		}
	}
	if err := wb.Flush(); err != nil {
		return err
	}
	wb = db.NewWriteBatch()
	defer wb.Cancel()
	for _, p := range kept {
		if err := wb.Set(p.k, p.v); err != nil {
			return err
		}
	}
	if err := wb.Flush(); err != nil {
		return err
	}
	return db.Sync()
}

// agentBusy reports whether workspace id has runs in progress or an open
// memory store, either of which would write over an in-place restore.
func (s *Service) agentBusy(id string) bool {
	s.ag.mu.Lock()
	defer s.ag.mu.Unlock()
	for k := range s.ag.runs {
		if strings.HasPrefix(k, id+"/") {
			return true
		}
	}
	return s.ag.mems[id] != nil
}
