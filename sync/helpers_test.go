package sync_test

import (
	"bytes"
	"context"
	crand "crypto/rand"
	"crypto/sha256"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	gosync "sync"
	"syscall"
	"testing"
	"time"

	bsync "github.com/bulkhead-dev/bulkhead/sync"
	"github.com/bulkhead-dev/bulkhead/sync/local"
)

func newKey(t testing.TB) []byte {
	k := make([]byte, bsync.KeySize)
	if _, err := crand.Read(k); err != nil {
		t.Fatal(err)
	}
	return k
}

func newLocalStore(t testing.TB) *local.Store {
	s, err := local.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func initRepo(t testing.TB, store bsync.Store, key []byte) *bsync.Repository {
	t.Helper()
	r, err := bsync.Init(t.Context(), store, key, bsync.Options{})
	if err != nil {
		t.Fatalf("init: %v", err)
	}
	testKeysMu.Lock()
	testKeys[r] = key
	testKeysMu.Unlock()
	return r
}

var testKeysMu gosync.Mutex

func newRepo(t testing.TB) (*bsync.Repository, *local.Store) {
	s := newLocalStore(t)
	return initRepo(t, s, newKey(t)), s
}

// randBytes returns n pseudo-random bytes from seed (incompressible).
func randBytes(n int, seed uint64) []byte {
	r := rand.NewChaCha8([32]byte{byte(seed), byte(seed >> 8), byte(seed >> 16)})
	b := make([]byte, n)
	r.Read(b)
	return b
}

// textBytes returns n compressible bytes.
func textBytes(n int, seed uint64) []byte {
	rng := mrand(seed)
	words := []string{"snapshot", "workspace", "chunk", "pack", "index", "tenant", "bulkhead", "\n", "func", "{", "}"}
	var b bytes.Buffer
	for b.Len() < n {
		b.WriteString(words[rng.IntN(len(words))])
		b.WriteByte(' ')
	}
	return b.Bytes()[:n]
}

func mrand(seed uint64) *rand.Rand { return rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)) }

func write(t testing.TB, path string, data []byte, mode fs.FileMode) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, data, mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, mode); err != nil { // umask-proof
		t.Fatal(err)
	}
}

// makeTree builds a tree with every kind of entry Backup stores.
func makeTree(t testing.TB, dir string, smallFiles int) {
	t.Helper()
	write(t, filepath.Join(dir, "empty"), nil, 0o644)
	write(t, filepath.Join(dir, "random.bin"), randBytes(5<<20+12345, 1), 0o600)
	write(t, filepath.Join(dir, "text.txt"), textBytes(3<<20, 2), 0o644)
	write(t, filepath.Join(dir, "bin/tool"), []byte("#!/bin/sh\necho hi\n"), 0o755)
	write(t, filepath.Join(dir, "bin/setuid"), []byte("x"), fs.ModeSetuid|fs.ModeSetgid|0o750)
	write(t, filepath.Join(dir, "ünïcødé/日本語 file.md"), []byte("# héllo\n"), 0o640)
	write(t, filepath.Join(dir, "dup-a"), randBytes(1<<20, 3), 0o644)
	write(t, filepath.Join(dir, "dup-b"), randBytes(1<<20, 3), 0o644)
	// Sparse: 40 MiB with 4 KiB of data in the middle.
	f, err := os.Create(filepath.Join(dir, "sparse.img"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt(randBytes(4096, 4), 20<<20); err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(40 << 20); err != nil {
		t.Fatal(err)
	}
	f.Close()
	for _, l := range []struct{ name, target string }{
		{"link-rel", "text.txt"}, {"link-abs", "/etc/hostname"}, {"link-dangling", "no/such/file"}, {"bin/link-up", "../empty"},
	} {
		if err := os.Symlink(l.target, filepath.Join(dir, l.name)); err != nil {
			t.Fatal(err)
		}
	}
	for i := range smallFiles {
		write(t, filepath.Join(dir, "many", fmt.Sprintf("d%02d", i%16), fmt.Sprintf("f%05d", i)), []byte(fmt.Sprintf("small file %d\n", i)), 0o644)
	}
	if err := os.MkdirAll(filepath.Join(dir, "empty-dir"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(dir, "private"), 0o700); err != nil {
		t.Fatal(err)
	}
	write(t, filepath.Join(dir, "readonly/inside"), []byte("ro"), 0o444)
	if err := os.Chmod(filepath.Join(dir, "readonly"), 0o555); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(filepath.Join(dir, "many"), fs.ModeSetgid|fs.ModeSticky|0o775); err != nil {
		t.Fatal(err)
	}
	// Distinct mtimes, set last (children change directory mtimes).
	base := time.Date(2024, 3, 1, 12, 0, 0, 123456789, time.UTC)
	i := 0
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		i++
		ts := base.Add(time.Duration(i) * time.Minute)
		if d.Type()&fs.ModeSymlink != 0 {
			return nil
		}
		return os.Chtimes(p, ts, ts)
	})
}

type entry struct {
	mode   fs.FileMode
	size   int64
	mtime  int64
	target string
	sum    string
}

func snapshotDir(t testing.TB, dir string, withDirMtime bool) map[string]entry {
	t.Helper()
	out := map[string]entry{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		fi, err := os.Lstat(p)
		if err != nil {
			return err
		}
		e := entry{mode: fi.Mode(), mtime: fi.ModTime().UnixNano()}
		switch {
		case fi.Mode().IsRegular():
			e.size = fi.Size()
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			e.sum = fmt.Sprintf("%x", sha256.Sum256(b))
		case fi.Mode()&fs.ModeSymlink != 0:
			e.target, _ = os.Readlink(p)
			e.mtime = 0 // compared separately
		case fi.IsDir():
			if !withDirMtime || rel == "." {
				e.mtime = 0
			}
		}
		out[rel] = e
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func compareTrees(t testing.TB, want, got string) {
	t.Helper()
	a, b := snapshotDir(t, want, true), snapshotDir(t, got, true)
	var keys []string
	for k := range a {
		keys = append(keys, k)
	}
	for k := range b {
		if _, ok := a[k]; !ok {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	bad := 0
	for _, k := range keys {
		if a[k] != b[k] {
			t.Errorf("%s: want %+v, got %+v", k, a[k], b[k])
			if bad++; bad > 10 {
				t.Fatal("too many differences")
			}
		}
	}
}

// allocated returns the bytes the file occupies on disk.
func allocated(t testing.TB, path string) int64 {
	var st syscall.Stat_t
	if err := syscall.Stat(path, &st); err != nil {
		t.Fatal(err)
	}
	return st.Blocks * 512
}

func storeBytes(t testing.TB, s bsync.Store, prefix string) (n int, size int64) {
	t.Helper()
	if err := s.List(context.Background(), prefix, func(oi bsync.ObjectInfo) error {
		n++
		size += oi.Size
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return n, size
}

func listNames(t testing.TB, s bsync.Store, prefix string) []string {
	var out []string
	if err := s.List(context.Background(), prefix, func(oi bsync.ObjectInfo) error {
		out = append(out, oi.Name)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	slices.Sort(out)
	return out
}

func readObject(t testing.TB, s bsync.Store, name string) []byte {
	rc, err := s.Get(context.Background(), name)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func putObject(t testing.TB, s bsync.Store, name string, b []byte) {
	if err := s.Put(context.Background(), name, bytes.NewReader(b), int64(len(b))); err != nil {
		t.Fatal(err)
	}
}
