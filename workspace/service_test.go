package workspace

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	gosync "sync"
	"testing"

	"github.com/dgraph-io/badger/v4"

	"github.com/bulkhead-dev/bulkhead/credentials"
	"github.com/bulkhead-dev/bulkhead/kv"
)

// cheapKDF keeps Argon2id fast in tests; production uses the defaults.
var cheapKDF = credentials.KDFParams{Time: 1, MemoryKiB: 8 * 1024, Threads: 1}

func openService(t testing.TB, dir, pass string) *Service {
	t.Helper()
	s, err := Open(context.Background(), Options{
		StateDir:   dir,
		Passphrase: func() ([]byte, error) { return []byte(pass), nil },
		KDF:        cheapKDF,
	})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestCreateListGetDelete(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := openService(t, t.TempDir(), "pw")
	defer s.Close()
	for _, id := range []string{"bob", "alice", "a_1-x"} {
		if _, err := s.Create(ctx, id, nil); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.Create(ctx, "alice", nil); !errors.Is(err, ErrExists) {
		t.Fatalf("duplicate create: %v", err)
	}
	all, _ := s.List(ctx)
	var ids []string
	for _, w := range all {
		ids = append(ids, w.ID)
	}
	if strings.Join(ids, ",") != "a_1-x,alice,bob" {
		t.Fatalf("list = %v", ids)
	}
	a, _ := s.Get(ctx, "alice")
	b, _ := s.Get(ctx, "bob")
	if a.HostUID == b.HostUID || a.HostUID < HostIDBase {
		t.Fatalf("host uids not distinct and unprivileged: %d %d", a.HostUID, b.HostUID)
	}
	if err := s.Delete(ctx, "alice"); err != nil {
		t.Fatal(err)
	}
	if ok, _ := s.Exists(ctx, "alice"); ok {
		t.Fatal("deleted workspace still exists")
	}
	if _, err := os.Stat(s.Dir("alice")); !os.IsNotExist(err) {
		t.Fatalf("directory left behind: %v", err)
	}
	if err := s.Delete(ctx, "alice"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("second delete: %v", err)
	}
	// A recreated workspace never reuses the old host uid.
	a2, err := s.Create(ctx, "alice", nil)
	if err != nil {
		t.Fatal(err)
	}
	if a2.HostUID == a.HostUID {
		t.Fatal("host uid reused after delete")
	}
}

func TestBadInputChangesNothing(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dir := t.TempDir()
	s := openService(t, dir, "pw")
	defer s.Close()
	if _, err := s.Create(ctx, "alice", nil); err != nil {
		t.Fatal(err)
	}
	before, _ := s.Get(ctx, "alice")
	bad := DefaultConfig()
	bad.Limits.Memory = 1
	cases := []struct {
		name string
		err  error
		do   func() error
	}{
		{"uppercase id", ErrInvalidID, func() error { _, err := s.Create(ctx, "Alice", nil); return err }},
		{"dotdot id", ErrInvalidID, func() error { _, err := s.Create(ctx, "..", nil); return err }},
		{"long id", ErrInvalidID, func() error { _, err := s.Create(ctx, strings.Repeat("a", 65), nil); return err }},
		{"slash id", ErrInvalidID, func() error { _, err := s.Get(ctx, "a/b"); return err }},
		{"bad config", ErrInvalidConfig, func() error { _, err := s.Create(ctx, "carol", &bad); return err }},
		{"unknown key", ErrInvalidConfig, func() error {
			_, err := s.UpdateConfig(ctx, "alice", func(c *Config) error { return c.Set("limits.nope", "1") })
			return err
		}},
		{"wrong type", ErrInvalidConfig, func() error {
			_, err := s.UpdateConfig(ctx, "alice", func(c *Config) error { return c.Set("limits.pids", `"many"`) })
			return err
		}},
		{"below minimum", ErrInvalidConfig, func() error {
			_, err := s.UpdateConfig(ctx, "alice", func(c *Config) error { c.Limits.Pids = 1; return nil })
			return err
		}},
		{"deleted workspace", ErrNotFound, func() error { return s.SetCredential(ctx, "zed", "k", []byte("v")) }},
		{"bad credential name", ErrInvalidCredential, func() error { return s.SetCredential(ctx, "alice", "../x", []byte("v")) }},
		{"empty credential", ErrInvalidCredential, func() error { return s.SetCredential(ctx, "alice", "k", nil) }},
	}
	for _, c := range cases {
		err := c.do()
		if !errors.Is(err, c.err) {
			t.Errorf("%s: got %v, want %v", c.name, err, c.err)
			continue
		}
		if strings.Contains(err.Error(), "\n") {
			t.Errorf("%s: error is not one line: %q", c.name, err)
		}
	}
	after, _ := s.Get(ctx, "alice")
	if fmt.Sprint(after) != fmt.Sprint(before) {
		t.Fatalf("config changed by rejected updates:\n%v\n%v", before, after)
	}
	all, _ := s.List(ctx)
	if len(all) != 1 {
		t.Fatalf("rejected creates left %d workspaces", len(all))
	}
	entries, _ := os.ReadDir(filepath.Join(dir, "workspaces"))
	if len(entries) != 1 {
		t.Fatalf("rejected creates left directories: %v", entries)
	}
	if list, _ := s.ListCredentials(ctx, "alice"); len(list) != 0 {
		t.Fatalf("rejected credentials stored: %v", list)
	}
}

func TestConfigErrorNamesEveryField(t *testing.T) {
	t.Parallel()
	_, err := ParseConfig([]byte(`{"limits": {"memory": "1KiB", "pids": 0}, "provider": "acme"}`))
	var ce *ConfigError
	if !errors.As(err, &ce) {
		t.Fatalf("got %v", err)
	}
	msg := err.Error()
	for _, f := range []string{"limits.memory", "limits.pids", "provider"} {
		if !strings.Contains(msg, f) {
			t.Errorf("error does not name %s: %s", f, msg)
		}
	}
	for _, doc := range []string{`{"limits": {"memory": "lots"}}`, `{"limits": {"exec_timeout": 5}}`, `{"nope": 1}`, `{`, `{} {}`} {
		if _, err := ParseConfig([]byte(doc)); !errors.Is(err, ErrInvalidConfig) {
			t.Errorf("%s: got %v", doc, err)
		}
	}
	c, err := ParseConfig([]byte(`{"limits": {"memory": "1GiB", "exec_timeout": "90s"}, "files": {"deny": ["secrets/**", "*.pem"]}}`))
	if err != nil {
		t.Fatal(err)
	}
	if c.Limits.Memory != 1<<30 || c.Limits.Pids != DefaultConfig().Limits.Pids {
		t.Fatalf("parsed %+v", c.Limits)
	}
	// Memory settings live in the same config, by dotted path too; a leaf
	// that JSON omits when zero can still be set.
	if err := c.Set("memory.min_score", "0.2"); err != nil || c.Memory.MinScore != 0.2 {
		t.Fatalf("set memory.min_score: %v", err)
	}
	if err := c.Set("memory.mmr_lambda", "2"); !errors.Is(err, ErrInvalidConfig) || !strings.Contains(err.Error(), "memory") {
		t.Fatalf("bad memory setting: %v", err)
	}
	if err := c.Set("memory.nope", "1"); err == nil || !strings.Contains(err.Error(), "memory.nope: unknown config key") {
		t.Fatalf("unknown memory key: %v", err)
	}
}

// A secret set through the service appears in plaintext nowhere under the
// state dir, and a sealed value moved from alice's database to bob's does not
// open there.
func TestCredentialsSealedAndBound(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dir := t.TempDir()
	s := openService(t, dir, "pw")
	for _, id := range []string{"alice", "bob"} {
		if _, err := s.Create(ctx, id, nil); err != nil {
			t.Fatal(err)
		}
	}
	secret := []byte("ghp_PLAINTEXT_MARKER_0123456789")
	if err := s.SetCredential(ctx, "alice", "github", secret); err != nil {
		t.Fatal(err)
	}
	got, err := s.Credential(ctx, "alice", "github")
	if err != nil || !bytes.Equal(got.Reveal(), secret) {
		t.Fatalf("read back %q, %v", got.Reveal(), err)
	}
	// Move alice's sealed record into bob's database under the same name.
	var sealed []byte
	db, rel, _ := s.DB(ctx, "alice")
	db.View(func(txn *badger.Txn) error {
		item, err := txn.Get([]byte(prefixCred + "github"))
		if err != nil {
			return err
		}
		sealed, err = item.ValueCopy(nil)
		return err
	})
	rel()
	db, rel, _ = s.DB(ctx, "bob")
	if err := db.Update(func(txn *badger.Txn) error { return txn.Set([]byte(prefixCred+"github"), sealed) }); err != nil {
		t.Fatal(err)
	}
	rel()
	if _, err := s.Credential(ctx, "bob", "github"); !errors.Is(err, credentials.ErrOpen) {
		t.Fatalf("alice's sealed value opened in bob: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	err = filepath.Walk(dir, func(path string, info os.FileInfo, err error) error {
		if err != nil || info.IsDir() {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		if bytes.Contains(b, secret) || bytes.Contains(b, []byte("pw\n")) {
			t.Errorf("plaintext secret in %s", path)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestWrongAndMissingPassphrase(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dir := t.TempDir()
	s := openService(t, dir, "right")
	if _, err := s.Create(ctx, "alice", nil); err != nil {
		t.Fatal(err)
	}
	s.SetCredential(ctx, "alice", "k", []byte("v"))
	s.Close()

	s = openService(t, dir, "wrong")
	if _, err := s.Credential(ctx, "alice", "k"); !errors.Is(err, credentials.ErrWrongPassphrase) {
		t.Fatalf("wrong passphrase: %v", err)
	}
	if _, err := s.Create(ctx, "bob", nil); !errors.Is(err, credentials.ErrWrongPassphrase) {
		t.Fatalf("create with wrong passphrase: %v", err)
	}
	// Listing needs no key.
	if all, err := s.List(ctx); err != nil || len(all) != 1 {
		t.Fatalf("list: %v %v", all, err)
	}
	s.Close()

	s, err := Open(ctx, Options{StateDir: dir, Passphrase: func() ([]byte, error) { return nil, credentials.ErrNoPassphrase }})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	_, err = s.Credential(ctx, "alice", "k")
	if !errors.Is(err, credentials.ErrNoPassphrase) || !strings.Contains(err.Error(), credentials.PassphraseEnv) {
		t.Fatalf("missing passphrase: %v", err)
	}
}

func TestRotatePassphrase(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dir := t.TempDir()
	s := openService(t, dir, "old")
	for _, id := range []string{"alice", "bob"} {
		s.Create(ctx, id, nil)
		if err := s.SetCredential(ctx, id, "k", []byte("value-"+id)); err != nil {
			t.Fatal(err)
		}
	}
	if n, err := s.RotatePassphrase(ctx, []byte("new")); err != nil || n != 2 {
		t.Fatalf("rotate: %d %v", n, err)
	}
	s.Close()
	s = openService(t, dir, "old")
	if _, err := s.Credential(ctx, "alice", "k"); !errors.Is(err, credentials.ErrWrongPassphrase) {
		t.Fatalf("old passphrase still works: %v", err)
	}
	s.Close()
	s = openService(t, dir, "new")
	defer s.Close()
	for _, id := range []string{"alice", "bob"} {
		v, err := s.Credential(ctx, id, "k")
		if err != nil || string(v.Reveal()) != "value-"+id {
			t.Fatalf("%s after rotation: %q %v", id, v.Reveal(), err)
		}
	}
}

// Delete destroys the wrapped key before anything else: a crash right after
// that step leaves nothing readable, and the next Open finishes the job.
func TestDeleteCrashRepair(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dir := t.TempDir()
	s := openService(t, dir, "pw")
	s.Create(ctx, "alice", nil)
	s.Create(ctx, "bob", nil)
	s.SetCredential(ctx, "alice", "k", []byte("v"))
	// Simulate a crash after the first step of purge: key gone, state deleting.
	s.pool.Close(s.stateDBDir("alice"))
	err := kv.UpdateSync(s.control, func(txn *badger.Txn) error {
		w, _ := getRecord(txn, "alice")
		w.State = StateDeleting
		putRecord(txn, w)
		return txn.Delete([]byte(prefixKey + "alice"))
	})
	if err != nil {
		t.Fatal(err)
	}
	if all, _ := s.List(ctx); len(all) != 1 || all[0].ID != "bob" {
		t.Fatalf("half-deleted workspace listed: %v", all)
	}
	// Simulate a crash in the middle of a create, too.
	kv.UpdateSync(s.control, func(txn *badger.Txn) error {
		return putRecord(txn, &Workspace{ID: "carol", State: StateCreating, Config: DefaultConfig()})
	})
	os.MkdirAll(s.FilesDir("carol"), 0o700)
	s.Close()
	s = openService(t, dir, "pw")
	defer s.Close()
	for _, id := range []string{"alice", "carol"} {
		if _, err := os.Stat(s.Dir(id)); !os.IsNotExist(err) {
			t.Errorf("%s: directory not removed by repair: %v", id, err)
		}
		s.control.View(func(txn *badger.Txn) error {
			if _, err := txn.Get([]byte(prefixWS + id)); err == nil {
				t.Errorf("%s: record not removed by repair", id)
			}
			return nil
		})
	}
	if _, err := s.Create(ctx, "alice", nil); err != nil {
		t.Fatalf("recreate after repair: %v", err)
	}
	if _, err := s.Credential(ctx, "alice", "k"); !errors.Is(err, ErrCredentialNotFound) {
		t.Fatalf("old data visible in recreated workspace: %v", err)
	}
}

func TestDeleteInUseRefused(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := openService(t, t.TempDir(), "pw")
	defer s.Close()
	s.Create(ctx, "alice", nil)
	_, rel, err := s.DB(ctx, "alice")
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Delete(ctx, "alice"); !errors.Is(err, ErrInUse) {
		t.Fatalf("delete while in use: %v", err)
	}
	if ok, _ := s.Exists(ctx, "alice"); !ok {
		t.Fatal("refused delete removed the workspace")
	}
	rel()
	if err := s.Delete(ctx, "alice"); err != nil {
		t.Fatal(err)
	}
}

func TestSecondServiceGetsPID(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	s := openService(t, dir, "pw")
	defer s.Close()
	_, err := Open(context.Background(), Options{StateDir: dir})
	if !errors.Is(err, kv.ErrLocked) || !strings.Contains(err.Error(), fmt.Sprintf("pid %d", os.Getpid())) {
		t.Fatalf("second open: %v", err)
	}
}

func TestConcurrentCreates(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := openService(t, t.TempDir(), "pw")
	defer s.Close()
	var wg gosync.WaitGroup
	errs := make([]error, 16)
	for i := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[i] = s.Create(ctx, fmt.Sprintf("w%d", i%8), nil)
		}()
	}
	wg.Wait()
	ok := 0
	for _, err := range errs {
		if err == nil {
			ok++
		} else if !errors.Is(err, ErrExists) && !errors.Is(err, ErrInUse) {
			t.Fatal(err)
		}
	}
	all, _ := s.List(ctx)
	if ok != 8 || len(all) != 8 {
		t.Fatalf("%d creates succeeded, %d listed; want 8", ok, len(all))
	}
	seen := map[uint32]bool{}
	for _, w := range all {
		if seen[w.HostUID] {
			t.Fatalf("host uid %d given twice", w.HostUID)
		}
		seen[w.HostUID] = true
	}
}
