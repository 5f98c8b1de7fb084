package workspace

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	gosync "sync"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/bulkhead-dev/bulkhead/credentials"
	"github.com/bulkhead-dev/bulkhead/kv"
)

var idRE = gosync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(IDRule) })

// ValidateID returns an error quoting IDRule unless id matches it.
func ValidateID(id string) error {
	if !idRE().MatchString(id) {
		return fmt.Errorf("%w %q: ids must match %s (lowercase letters, digits, '_' and '-', starting with a letter or digit, at most 64 characters)", ErrInvalidID, id, IDRule)
	}
	return nil
}

// HostIDBase is the first host uid/gid handed to a workspace's sandbox root.
// Each workspace gets the next one; ids are never reused, so a new tenant
// never inherits files or processes of a deleted one.
const HostIDBase = 2_000_000_000

// State of a workspace record.
type State string

const (
	StateCreating State = "creating"
	StateReady    State = "ready"
	StateDeleting State = "deleting"
)

// Workspace is one tenant as the registry knows it.
type Workspace struct {
	ID        string    `json:"id"`
	State     State     `json:"state"`
	Config    Config    `json:"config"`
	HostUID   uint32    `json:"host_uid"`
	HostGID   uint32    `json:"host_gid"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
}

// Options configure a Service.
type Options struct {
	// StateDir is the node's state directory.
	StateDir string
	// Passphrase returns the operator passphrase. It is called at most once,
	// and only when a key is needed. Default: BULKHEAD_CREDENTIAL_KEY.
	Passphrase func() ([]byte, error)
	// MaxOpenDBs bounds idle open workspace databases (kv.Options.MaxOpen).
	MaxOpenDBs int
	Logger     *slog.Logger
	// KDF overrides the Argon2id cost used when the state dir is first
	// initialised (tests use a cheap one). Zero means the defaults.
	KDF credentials.KDFParams
	// DevKeyFile lets a state dir that was never given a passphrase use a
	// generated one kept in <state>/node.passphrase (0600), so a first
	// `bulkhead workspace create` works out of the box. Anyone who can read
	// the state dir can then read its keys; operators set
	// BULKHEAD_CREDENTIAL_KEY and rotate. A state dir initialised with a
	// passphrase never falls back to the file.
	DevKeyFile bool
}

// DevKeyFileName is the generated passphrase file of DevKeyFile mode.
const DevKeyFileName = "node.passphrase"

// Service is the tenant service over one state dir.
type Service struct {
	dir     string
	log     *slog.Logger
	lock    *kv.DirLock
	control *badger.DB
	pool    *kv.Pool
	opts    Options

	keyMu   gosync.Mutex
	nodeKey *credentials.NodeKey
	keyErr  error
	dataKey map[string]*credentials.DataKey

	busyMu gosync.Mutex
	busy   map[string]bool // ids being created or deleted

	rt runtimeState // live sandboxes and FUSE views
	ag agentState   // runs, sessions and skills (agent*.go, runs.go, sessions.go, skills.go)
}

// control DB keys
const (
	prefixWS   = "ws/"
	prefixKey  = "wskey/"
	keyKDF     = "node/kdf"
	keyNextUID = "node/next-host-id"
	keySource  = "node/passphrase-source" // "file" in DevKeyFile mode
)

// PassphraseFromEnv reads BULKHEAD_CREDENTIAL_KEY.
func PassphraseFromEnv() ([]byte, error) {
	v, set := os.LookupEnv(credentials.PassphraseEnv)
	switch {
	case !set:
		return nil, credentials.ErrNoPassphrase
	case v == "":
		return nil, ErrEmptyPassphrase
	}
	return []byte(v), nil
}

// ErrEmptyPassphrase means BULKHEAD_CREDENTIAL_KEY is set to "".
var ErrEmptyPassphrase = errors.New(credentials.PassphraseEnv + " is set but empty: give it the node's passphrase, or unset it")

// Open locks the state dir, opens the control database and repairs any
// workspace left half-created or half-deleted by a crash.
func Open(ctx context.Context, opts Options) (*Service, error) {
	if opts.StateDir == "" {
		return nil, errors.New("open state: no state dir given")
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Passphrase == nil {
		opts.Passphrase = PassphraseFromEnv
	}
	lock, err := kv.LockDir(opts.StateDir)
	if err != nil {
		return nil, err
	}
	s := &Service{
		dir:     opts.StateDir,
		log:     opts.Logger.With("subsystem", "workspace"),
		lock:    lock,
		opts:    opts,
		dataKey: make(map[string]*credentials.DataKey),
		busy:    make(map[string]bool),
	}
	if err := os.MkdirAll(filepath.Join(s.dir, "workspaces"), 0o700); err != nil {
		lock.Unlock()
		return nil, fmt.Errorf("create state dir: %w", err)
	}
	s.control, err = badger.Open(kv.ControlOptions(filepath.Join(s.dir, "control"), opts.Logger))
	if err != nil {
		lock.Unlock()
		return nil, fmt.Errorf("open control database: %w", err)
	}
	s.pool = kv.NewPool(kv.Options{MaxOpen: opts.MaxOpenDBs, Logger: opts.Logger})
	s.cleanupStaleMounts()
	if err := s.repair(ctx); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

// Close closes every database and releases the state dir.
func (s *Service) Close() error {
	s.StopRuns() // agent runs are cancelled and recorded first (agent_run.go)
	errs := []error{s.stopAll()}
	if s.pool != nil {
		errs = append(errs, s.pool.Shutdown())
	}
	if s.control != nil {
		errs = append(errs, s.control.Close())
	}
	errs = append(errs, s.lock.Unlock())
	return errors.Join(errs...)
}

// StateDir returns the node's state directory.
func (s *Service) StateDir() string { return s.dir }

// Dir returns the directory of workspace id.
func (s *Service) Dir(id string) string { return filepath.Join(s.dir, "workspaces", id) }

// FilesDir returns the host directory holding workspace id's files.
func (s *Service) FilesDir(id string) string { return filepath.Join(s.Dir(id), "files") }

// IndexDir returns the directory for workspace id's derived indexes.
func (s *Service) IndexDir(id string) string { return filepath.Join(s.Dir(id), "index") }

func (s *Service) stateDBDir(id string) string { return filepath.Join(s.Dir(id), "state") }

// repair finishes deletions and rolls back creations interrupted by a crash.
func (s *Service) repair(ctx context.Context) error {
	all, err := s.records()
	if err != nil {
		return err
	}
	for _, w := range all {
		if w.State == StateReady {
			continue
		}
		s.log.Warn("repairing workspace interrupted by a crash", "workspace", w.ID, "state", w.State)
		if err := s.purge(ctx, w.ID); err != nil {
			return fmt.Errorf("repair workspace %s: %w", w.ID, err)
		}
	}
	return nil
}

// purge destroys the key, the directory and the record, in that order.
func (s *Service) purge(_ context.Context, id string) error {
	err := kv.UpdateSync(s.control, func(txn *badger.Txn) error {
		w, err := getRecord(txn, id)
		if err != nil {
			return err
		}
		w.State = StateDeleting
		if err := putRecord(txn, w); err != nil {
			return err
		}
		return txn.Delete([]byte(prefixKey + id))
	})
	if err != nil && !errors.Is(err, ErrNotFound) {
		return fmt.Errorf("destroy key: %w", err)
	}
	s.keyMu.Lock()
	delete(s.dataKey, id)
	s.keyMu.Unlock()
	if err := s.pool.Close(s.stateDBDir(id)); err != nil {
		return err
	}
	if err := os.RemoveAll(s.Dir(id)); err != nil {
		return fmt.Errorf("remove directory: %w", err)
	}
	return kv.UpdateSync(s.control, func(txn *badger.Txn) error {
		return txn.Delete([]byte(prefixWS + id))
	})
}

func getRecord(txn *badger.Txn, id string) (*Workspace, error) {
	item, err := txn.Get([]byte(prefixWS + id))
	if errors.Is(err, badger.ErrKeyNotFound) {
		return nil, fmt.Errorf("%w: %q", ErrNotFound, id)
	}
	if err != nil {
		return nil, err
	}
	var w Workspace
	err = item.Value(func(v []byte) error { return json.Unmarshal(v, &w) })
	if err != nil {
		return nil, fmt.Errorf("decode workspace %s: %w", id, err)
	}
	return &w, nil
}

func putRecord(txn *badger.Txn, w *Workspace) error {
	b, err := json.Marshal(w)
	if err != nil {
		return err
	}
	return txn.Set([]byte(prefixWS+w.ID), b)
}

func (s *Service) records() ([]*Workspace, error) {
	var out []*Workspace
	err := s.control.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte(prefixWS), PrefetchValues: true})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			var w Workspace
			if err := it.Item().Value(func(v []byte) error { return json.Unmarshal(v, &w) }); err != nil {
				return fmt.Errorf("decode %s: %w", it.Item().Key(), err)
			}
			out = append(out, &w)
		}
		return nil
	})
	return out, err
}

// claim marks id busy for a create or delete; it fails if already busy.
func (s *Service) claim(id string) (func(), error) {
	s.busyMu.Lock()
	defer s.busyMu.Unlock()
	if s.busy[id] {
		return nil, fmt.Errorf("%w: %q is being created or deleted", ErrInUse, id)
	}
	s.busy[id] = true
	return func() {
		s.busyMu.Lock()
		delete(s.busy, id)
		s.busyMu.Unlock()
	}, nil
}

// Create makes workspace id with cfg (nil means DefaultConfig).
func (s *Service) Create(ctx context.Context, id string, cfg *Config) (*Workspace, error) {
	if err := ValidateID(id); err != nil {
		return nil, err
	}
	c := DefaultConfig()
	if cfg != nil {
		c = *cfg
	}
	if err := c.Validate(); err != nil {
		return nil, err
	}
	nk, err := s.node()
	if err != nil {
		return nil, err
	}
	done, err := s.claim(id)
	if err != nil {
		return nil, err
	}
	defer done()
	dk, err := credentials.NewDataKey()
	if err != nil {
		return nil, err
	}
	now := time.Now().UTC()
	w := &Workspace{ID: id, State: StateCreating, Config: c, CreatedAt: now, UpdatedAt: now}
	err = updateRetry(s.control, func(txn *badger.Txn) error {
		if _, err := txn.Get([]byte(prefixWS + id)); err == nil {
			return fmt.Errorf("%w: %q", ErrExists, id)
		} else if !errors.Is(err, badger.ErrKeyNotFound) {
			return err
		}
		hid, err := nextHostID(txn)
		if err != nil {
			return err
		}
		w.HostUID, w.HostGID = hid, hid
		if err := putRecord(txn, w); err != nil {
			return err
		}
		return txn.Set([]byte(prefixKey+id), nk.Wrap(dk, id))
	})
	if err != nil {
		return nil, fmt.Errorf("create workspace %s: %w", id, err)
	}
	if err := s.build(ctx, w, dk); err != nil {
		if perr := s.purge(ctx, id); perr != nil {
			s.log.Error("roll back failed create", "workspace", id, "err", perr)
		}
		return nil, fmt.Errorf("create workspace %s: %w", id, err)
	}
	w.State = StateReady
	if err := kv.UpdateSync(s.control, func(txn *badger.Txn) error { return putRecord(txn, w) }); err != nil {
		return nil, fmt.Errorf("create workspace %s: %w", id, err)
	}
	s.keyMu.Lock()
	s.dataKey[id] = dk
	s.keyMu.Unlock()
	s.log.Info("workspace created", "workspace", id, "host_uid", w.HostUID)
	return w, nil
}

func nextHostID(txn *badger.Txn) (uint32, error) {
	next := uint32(HostIDBase)
	item, err := txn.Get([]byte(keyNextUID))
	switch {
	case err == nil:
		if err := item.Value(func(v []byte) error {
			if len(v) != 4 {
				return errors.New("corrupt host id counter")
			}
			next = binary.BigEndian.Uint32(v)
			return nil
		}); err != nil {
			return 0, err
		}
	case !errors.Is(err, badger.ErrKeyNotFound):
		return 0, err
	}
	if next == 1<<32-2 {
		return 0, errors.New("host uid range exhausted")
	}
	return next, txn.Set([]byte(keyNextUID), binary.BigEndian.AppendUint32(nil, next+1))
}

// build makes the directories and the encrypted database.
func (s *Service) build(ctx context.Context, w *Workspace, dk *credentials.DataKey) error {
	for _, d := range []string{s.FilesDir(w.ID), s.IndexDir(w.ID)} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return fmt.Errorf("create %s: %w", d, err)
		}
	}
	// The sandbox's root maps to the workspace's host uid, which must be
	// able to write its files when bind-mounted. Only root can chown.
	if os.Geteuid() == 0 {
		if err := os.Chown(s.FilesDir(w.ID), int(w.HostUID), int(w.HostGID)); err != nil {
			return fmt.Errorf("chown files: %w", err)
		}
	}
	db, release, err := s.pool.Acquire(ctx, s.stateDBDir(w.ID), dk.Subkey("badger"))
	if err != nil {
		return err
	}
	defer release()
	return kv.UpdateSync(db, func(txn *badger.Txn) error {
		return txn.Set([]byte("meta/workspace"), []byte(w.ID))
	})
}

// Get returns a ready workspace.
func (s *Service) Get(_ context.Context, id string) (*Workspace, error) {
	if err := ValidateID(id); err != nil {
		return nil, err
	}
	var w *Workspace
	err := s.control.View(func(txn *badger.Txn) error {
		var err error
		w, err = getRecord(txn, id)
		return err
	})
	if err != nil {
		return nil, err
	}
	if w.State != StateReady {
		return nil, fmt.Errorf("%w: %q", ErrNotFound, id)
	}
	return w, nil
}

// Exists reports whether a ready workspace has id.
func (s *Service) Exists(ctx context.Context, id string) (bool, error) {
	_, err := s.Get(ctx, id)
	if errors.Is(err, ErrNotFound) {
		return false, nil
	}
	return err == nil, err
}

// List returns every ready workspace, sorted by id.
func (s *Service) List(context.Context) ([]*Workspace, error) {
	all, err := s.records()
	if err != nil {
		return nil, err
	}
	out := all[:0]
	for _, w := range all {
		if w.State == StateReady {
			out = append(out, w)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, nil
}

// UpdateConfig applies fn to a copy of workspace id's config, validates the
// result and stores it. On any error nothing changes.
func (s *Service) UpdateConfig(_ context.Context, id string, fn func(*Config) error) (*Workspace, error) {
	if err := ValidateID(id); err != nil {
		return nil, err
	}
	var w *Workspace
	err := updateRetry(s.control, func(txn *badger.Txn) error {
		var err error
		w, err = getRecord(txn, id)
		if err != nil {
			return err
		}
		if w.State != StateReady {
			return fmt.Errorf("%w: %q", ErrNotFound, id)
		}
		c := w.Config
		c.Fallbacks = append([]ModelRef(nil), c.Fallbacks...)
		if err := fn(&c); err != nil {
			return err
		}
		if err := c.Validate(); err != nil {
			return err
		}
		w.Config, w.UpdatedAt = c, time.Now().UTC()
		return putRecord(txn, w)
	})
	if err != nil {
		return nil, err
	}
	s.applyConfig(w)
	return w, nil
}

// Delete removes workspace id: its key is destroyed first (so its data and
// snapshots become unreadable), then its directory, then its record. It fails
// with ErrInUse while the workspace's database is in use.
func (s *Service) Delete(ctx context.Context, id string) error {
	if _, err := s.Get(ctx, id); err != nil {
		return err
	}
	done, err := s.claim(id)
	if err != nil {
		return err
	}
	defer done()
	if err := s.StopSandbox(id); err != nil {
		return fmt.Errorf("delete workspace %s: stop sandbox: %w", id, err)
	}
	if err := s.pool.Close(s.stateDBDir(id)); err != nil {
		return fmt.Errorf("%w: %v", ErrInUse, err)
	}
	s.forget(id)
	if err := s.purge(ctx, id); err != nil {
		return fmt.Errorf("delete workspace %s: %w", id, err)
	}
	s.log.Info("workspace deleted", "workspace", id)
	return nil
}

// DB returns workspace id's Badger database. Call release when done.
func (s *Service) DB(ctx context.Context, id string) (*badger.DB, func(), error) {
	if _, err := s.Get(ctx, id); err != nil {
		return nil, nil, err
	}
	s.busyMu.Lock()
	busy := s.busy[id]
	s.busyMu.Unlock()
	if busy {
		return nil, nil, fmt.Errorf("%w: %q is being created or deleted", ErrInUse, id)
	}
	dk, err := s.DataKey(ctx, id)
	if err != nil {
		return nil, nil, err
	}
	return s.pool.Acquire(ctx, s.stateDBDir(id), dk.Subkey("badger"))
}

// DataKey returns workspace id's unwrapped data key (host side only: for
// sealing credentials and deriving snapshot keys).
func (s *Service) DataKey(_ context.Context, id string) (*credentials.DataKey, error) {
	s.keyMu.Lock()
	dk := s.dataKey[id]
	s.keyMu.Unlock()
	if dk != nil {
		return dk, nil
	}
	nk, err := s.node()
	if err != nil {
		return nil, err
	}
	var wrapped []byte
	err = s.control.View(func(txn *badger.Txn) error {
		item, err := txn.Get([]byte(prefixKey + id))
		if errors.Is(err, badger.ErrKeyNotFound) {
			return fmt.Errorf("%w: %q has no key", ErrNotFound, id)
		}
		if err != nil {
			return err
		}
		wrapped, err = item.ValueCopy(nil)
		return err
	})
	if err != nil {
		return nil, err
	}
	dk, err = nk.Unwrap(wrapped, id)
	if err != nil {
		return nil, fmt.Errorf("unwrap data key of %s: %w", id, err)
	}
	s.keyMu.Lock()
	s.dataKey[id] = dk
	s.keyMu.Unlock()
	return dk, nil
}

// node derives (once) the node key, initialising the KDF parameters on the
// first ever use of the state dir.
func (s *Service) node() (*credentials.NodeKey, error) {
	s.keyMu.Lock()
	defer s.keyMu.Unlock()
	if s.nodeKey != nil || s.keyErr != nil {
		return s.nodeKey, s.keyErr
	}
	s.nodeKey, s.keyErr = s.deriveNode()
	return s.nodeKey, s.keyErr
}

func (s *Service) deriveNode() (*credentials.NodeKey, error) {
	params, found, err := s.kdfParams()
	if err != nil {
		return nil, err
	}
	pass, err := s.opts.Passphrase()
	if errors.Is(err, credentials.ErrNoPassphrase) && s.opts.DevKeyFile {
		pass, err = s.devPassphrase(found)
	}
	if err != nil {
		return nil, err
	}
	defer credentials.Secret(pass).Wipe()
	if !found {
		if params, err = s.newParams(); err != nil {
			return nil, err
		}
	}
	nk, err := credentials.DeriveNodeKey(pass, &params)
	if err != nil {
		return nil, err
	}
	if !found {
		b, _ := json.Marshal(params)
		if err := kv.UpdateSync(s.control, func(txn *badger.Txn) error { return txn.Set([]byte(keyKDF), b) }); err != nil {
			return nil, fmt.Errorf("store key parameters: %w", err)
		}
	}
	return nk, nil
}

// devPassphrase reads (or, on a fresh state dir, generates) the DevKeyFile
// passphrase. A state dir initialised from the environment is refused.
func (s *Service) devPassphrase(initialised bool) ([]byte, error) {
	path := filepath.Join(s.dir, DevKeyFileName)
	fromFile := false
	err := s.control.View(func(txn *badger.Txn) error {
		item, err := txn.Get([]byte(keySource))
		if err == nil {
			return item.Value(func(v []byte) error { fromFile = string(v) == "file"; return nil })
		}
		if errors.Is(err, badger.ErrKeyNotFound) {
			return nil
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	if initialised && !fromFile {
		return nil, credentials.ErrNoPassphrase
	}
	if initialised {
		b, err := os.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("%w (and %s is unreadable: %v)", credentials.ErrNoPassphrase, path, err)
		}
		return []byte(strings.TrimSpace(string(b))), nil
	}
	raw := make([]byte, 32)
	if _, err := rand.Read(raw); err != nil {
		return nil, err
	}
	pass := []byte(hex.EncodeToString(raw))
	if err := os.WriteFile(path, append(pass, '\n'), 0o600); err != nil {
		return nil, fmt.Errorf("write %s: %w", path, err)
	}
	if err := kv.UpdateSync(s.control, func(txn *badger.Txn) error { return txn.Set([]byte(keySource), []byte("file")) }); err != nil {
		return nil, err
	}
	s.log.Warn("no "+credentials.PassphraseEnv+": generated a node passphrase next to the data; set "+credentials.PassphraseEnv+" and run `bulkhead creds rotate-passphrase` for production", "file", path)
	return pass, nil
}

func (s *Service) newParams() (credentials.KDFParams, error) {
	p, err := credentials.NewKDFParams()
	if err != nil {
		return p, err
	}
	if s.opts.KDF.Time != 0 {
		p.Time, p.MemoryKiB, p.Threads = s.opts.KDF.Time, s.opts.KDF.MemoryKiB, s.opts.KDF.Threads
	}
	return p, nil
}

func (s *Service) kdfParams() (credentials.KDFParams, bool, error) {
	var p credentials.KDFParams
	err := s.control.View(func(txn *badger.Txn) error {
		item, err := txn.Get([]byte(keyKDF))
		if err != nil {
			return err
		}
		return item.Value(func(v []byte) error { return json.Unmarshal(v, &p) })
	})
	if errors.Is(err, badger.ErrKeyNotFound) {
		return p, false, nil
	}
	if err != nil {
		return p, false, fmt.Errorf("read key parameters: %w", err)
	}
	return p, true, nil
}

// RotatePassphrase rewraps every data key under a node key derived from
// newPass with fresh salt, in one transaction. Data is not re-encrypted.
func (s *Service) RotatePassphrase(_ context.Context, newPass []byte) (int, error) {
	if len(newPass) == 0 {
		return 0, fmt.Errorf("new passphrase: %w", credentials.ErrNoPassphrase)
	}
	old, err := s.node()
	if err != nil {
		return 0, err
	}
	params, err := s.newParams()
	if err != nil {
		return 0, err
	}
	nk, err := credentials.DeriveNodeKey(newPass, &params)
	if err != nil {
		return 0, err
	}
	pb, _ := json.Marshal(params)
	n := 0
	err = kv.UpdateSync(s.control, func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte(prefixKey), PrefetchValues: true})
		type kw struct{ key, val []byte }
		var rewrapped []kw
		for it.Rewind(); it.Valid(); it.Next() {
			item := it.Item()
			id := string(bytes.TrimPrefix(item.Key(), []byte(prefixKey)))
			w, err := item.ValueCopy(nil)
			if err != nil {
				it.Close()
				return err
			}
			dk, err := old.Unwrap(w, id)
			if err != nil {
				it.Close()
				return fmt.Errorf("unwrap key of %s: %w", id, err)
			}
			rewrapped = append(rewrapped, kw{item.KeyCopy(nil), nk.Wrap(dk, id)})
		}
		it.Close()
		for _, r := range rewrapped {
			if err := txn.Set(r.key, r.val); err != nil {
				return err
			}
		}
		n = len(rewrapped)
		if err := txn.Delete([]byte(keySource)); err != nil {
			return err
		}
		return txn.Set([]byte(keyKDF), pb)
	})
	if err != nil {
		return 0, fmt.Errorf("rotate passphrase: %w", err)
	}
	s.keyMu.Lock()
	s.nodeKey, s.keyErr = nk, nil
	s.keyMu.Unlock()
	if err := os.Remove(filepath.Join(s.dir, DevKeyFileName)); err == nil {
		s.log.Info("removed the generated passphrase file; the state dir now uses " + credentials.PassphraseEnv)
	}
	s.log.Info("passphrase rotated", "keys", n)
	return n, nil
}

// updateRetry is kv.UpdateSync retried on Badger's optimistic-concurrency
// conflicts (two creates racing for the host-id counter).
func updateRetry(db *badger.DB, fn func(*badger.Txn) error) error {
	for attempt := 0; ; attempt++ {
		err := kv.UpdateSync(db, fn)
		if !errors.Is(err, badger.ErrConflict) || attempt == 20 {
			return err
		}
	}
}

// ControlDB returns the node's control database, for subsystems that keep
// node-wide records next to the registry (API tokens, the board). They must
// use their own key prefixes; ws/, wskey/ and node/ belong to this package.
func (s *Service) ControlDB() *badger.DB { return s.control }

// Configure replaces workspace id's config with replacement (if not nil) and
// then applies sets ("dotted.key=value", see Config.Set), validating the
// result. On any error nothing changes.
func (s *Service) Configure(ctx context.Context, id string, replacement *Config, sets []string) (*Workspace, error) {
	return s.UpdateConfig(ctx, id, func(c *Config) error {
		if replacement != nil {
			*c = *replacement
		}
		return ApplySets(c, sets)
	})
}

// Unlock derives the node key now, so a missing or wrong passphrase is
// reported at start rather than at first use.
func (s *Service) Unlock() error {
	_, err := s.node()
	return err
}
