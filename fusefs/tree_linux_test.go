package fusefs

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"testing/fstest"
	"time"

	"github.com/bulkhead-dev/bulkhead/internal/testutil"
	"golang.org/x/sys/unix"
)

func openTree(t *testing.T, opts TreeOptions) (backing string, tree *Tree) {
	t.Helper()
	testutil.RequireLinux(t)
	backing = filepath.Join(t.TempDir(), "files")
	if err := os.MkdirAll(backing, 0o755); err != nil {
		t.Fatal(err)
	}
	tree, err := OpenTree(backing, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tree.Close() })
	return backing, tree
}

func TestTreeSymlinks(t *testing.T) {
	pol := mustPolicy(t, PolicyConfig{Deny: []string{"secrets"}})
	backing, tree := openTree(t, TreeOptions{Policy: pol})
	writeFile(t, filepath.Join(filepath.Dir(backing), "host.txt"), "host")
	writeFile(t, filepath.Join(backing, "secrets", "token"), "s3cret")
	writeFile(t, filepath.Join(backing, "docs", "a.md"), "a")
	for name, target := range map[string]string{
		"up":      "../host.txt",
		"deep":    "docs/../../host.txt",
		"abs":     filepath.Join(filepath.Dir(backing), "host.txt"),
		"tosec":   "secrets/token",
		"viasec":  "secrets",
		"ok":      "docs/a.md",
		"okdir":   "docs",
		"loop":    "loop",
		"chain":   "ok",
		"docs/up": "../ok",
	} {
		if err := os.Symlink(target, filepath.Join(backing, name)); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range []struct {
		rel  string
		want error
	}{
		{"up", ErrOutsideRoot},
		{"deep", ErrOutsideRoot},
		{"abs", ErrOutsideRoot},
		{"../host.txt", ErrOutsideRoot},
		{"/etc/passwd", ErrOutsideRoot},
		{"docs/../../host.txt", ErrOutsideRoot},
		{"tosec", ErrDenied},
		{"viasec/token", ErrDenied},
		{"secrets/token", ErrDenied},
		{"loop", syscall.ELOOP},
		{"ok", nil},
		{"chain", nil},
		{"okdir/a.md", nil},
		{"docs/up", nil},
	} {
		b, err := tree.ReadFile(tc.rel)
		if tc.want == nil {
			if err != nil || string(b) != "a" {
				t.Errorf("ReadFile(%q) = %q, %v", tc.rel, b, err)
			}
			continue
		}
		if !errors.Is(err, tc.want) {
			t.Errorf("ReadFile(%q) = %v, want %v", tc.rel, err, tc.want)
		}
	}
	if _, err := tree.ReadFile("secrets/token"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("denied file should read as not existing, got %v", err)
	}
	// Writing through a symlink checks the path it resolves to.
	if err := os.Symlink(".bulkhead/SOUL.md", filepath.Join(backing, "soul")); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(backing, ".bulkhead", "SOUL.md"), "kind")
	if err := tree.WriteFile("soul", []byte("evil"), 0o644); !errors.Is(err, ErrReadOnly) {
		t.Errorf("write through symlink to read-only: %v", err)
	}
	if err := tree.WriteFile("up", []byte("evil"), 0o644); !errors.Is(err, ErrOutsideRoot) {
		t.Errorf("write through symlink out: %v", err)
	}
	if b, _ := os.ReadFile(filepath.Join(filepath.Dir(backing), "host.txt")); string(b) != "host" {
		t.Errorf("host file changed: %q", b)
	}
	// Removing a symlink removes the link, not the target.
	if err := tree.Remove("ok"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(backing, "docs", "a.md")); err != nil {
		t.Errorf("target gone: %v", err)
	}
}

func TestTreePolicy(t *testing.T) {
	pol := mustPolicy(t, PolicyConfig{Deny: []string{"secrets", "**/*.pem"}, ReadOnly: []string{"vendor/**"}})
	backing, tree := openTree(t, TreeOptions{Policy: pol})
	writeFile(t, filepath.Join(backing, "secrets", "token"), "s")
	writeFile(t, filepath.Join(backing, "a", "k.pem"), "k")
	writeFile(t, filepath.Join(backing, "a", "main.go"), "package a")
	writeFile(t, filepath.Join(backing, "vendor", "lib.go"), "package lib")

	var walked []string
	if err := tree.WalkDir("", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		walked = append(walked, p)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	want := []string{".", "a", "a/main.go", "vendor", "vendor/lib.go"}
	if !slices.Equal(walked, want) {
		t.Errorf("walk = %v, want %v", walked, want)
	}
	for _, tc := range []struct {
		name string
		err  error
		want error
	}{
		{"write denied", tree.WriteFile("new.pem", nil, 0o644), ErrDenied},
		{"write read-only", tree.WriteFile("vendor/lib.go", nil, 0o644), ErrReadOnly},
		{"create in read-only", tree.WriteFile("vendor/new.go", nil, 0o644), ErrReadOnly},
		{"setuid", tree.WriteFile("x", nil, 0o755|fs.ModeSetuid), ErrModeNotAllowed},
		{"mkdir denied", tree.MkdirAll("secrets/x", 0o755), ErrDenied},
		{"remove read-only", tree.Remove("vendor/lib.go"), ErrReadOnly},
		{"remove hidden", tree.Remove("secrets/token"), ErrDenied},
		{"rename to denied", tree.Rename("a/main.go", "a/main.pem"), ErrDenied},
		{"rename read-only dir", tree.Rename("vendor", "v"), ErrReadOnly},
		{"remove the root", tree.Remove(""), syscall.EBUSY},
	} {
		if !errors.Is(tc.err, tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, tc.err, tc.want)
		}
	}
	if err := tree.MkdirAll("b/c", 0o755); err != nil {
		t.Fatal(err)
	}
	if err := tree.WriteFile("b/c/d.txt", []byte("d"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := tree.Rename("b", "e"); err != nil {
		t.Fatal(err)
	}
	if b, err := tree.ReadFile("e/c/d.txt"); err != nil || string(b) != "d" {
		t.Errorf("read after rename = %q, %v", b, err)
	}
}

func TestTreeSpecialFiles(t *testing.T) {
	backing, tree := openTree(t, TreeOptions{})
	if err := unix.Mkfifo(filepath.Join(backing, "fifo"), 0o644); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { _, err := tree.ReadFile("fifo"); done <- err }()
	select {
	case err := <-done:
		if !errors.Is(err, ErrSpecialFile) {
			t.Errorf("read fifo: %v, want ErrSpecialFile", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("reading a fifo blocked: the host opened it")
	}
	if err := tree.WriteFile("fifo", []byte("x"), 0o644); !errors.Is(err, ErrSpecialFile) {
		t.Errorf("write fifo: %v, want ErrSpecialFile", err)
	}
}

func TestTreeQuota(t *testing.T) {
	testutil.RequireLinux(t)
	backing := filepath.Join(t.TempDir(), "files")
	writeFile(t, filepath.Join(backing, "a"), "0123456789")
	q, err := NewQuota(t.Context(), backing, Limits{Bytes: 100, Inodes: 3})
	if err != nil {
		t.Fatal(err)
	}
	tree, err := OpenTree(backing, TreeOptions{Quota: q})
	if err != nil {
		t.Fatal(err)
	}
	defer tree.Close()
	if err := tree.WriteFile("b", make([]byte, 90), 0o644); err != nil {
		t.Fatalf("write to the limit: %v", err)
	}
	if err := tree.WriteFile("c", make([]byte, 1), 0o644); !errors.Is(err, ErrQuotaBytes) {
		t.Errorf("one byte over: %v", err)
	}
	if _, err := os.Lstat(filepath.Join(backing, "c")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("refused write left a file behind: %v", err)
	}
	if err := tree.WriteFile("b", make([]byte, 10), 0o644); err != nil {
		t.Fatalf("shrink: %v", err)
	}
	if err := tree.MkdirAll("d", 0o755); err != nil {
		t.Fatal(err)
	}
	if err := tree.WriteFile("e", nil, 0o644); !errors.Is(err, ErrQuotaInodes) {
		t.Errorf("fourth inode: %v", err)
	}
	if b, i := q.Usage(); b != 20 || i != 3 {
		t.Errorf("usage = %d bytes %d inodes, want 20 and 3", b, i)
	}
	if err := tree.Remove("b"); err != nil {
		t.Fatal(err)
	}
	if b, i := q.Usage(); b != 10 || i != 2 {
		t.Errorf("usage after remove = %d bytes %d inodes, want 10 and 2", b, i)
	}
}

func TestTreeChown(t *testing.T) {
	testutil.RequireRoot(t)
	backing, tree := openTree(t, TreeOptions{UID: 4321, GID: 4322, Chown: true})
	if err := tree.MkdirAll("x/y", 0o755); err != nil {
		t.Fatal(err)
	}
	if err := tree.WriteFile("x/y/f", []byte("f"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"x", "x/y", "x/y/f"} {
		st, err := os.Lstat(filepath.Join(backing, p))
		if err != nil {
			t.Fatal(err)
		}
		sys := st.Sys().(*syscall.Stat_t)
		if sys.Uid != 4321 || sys.Gid != 4322 {
			t.Errorf("%s owned by %d:%d", p, sys.Uid, sys.Gid)
		}
	}
}

func TestTreeFS(t *testing.T) {
	pol := mustPolicy(t, PolicyConfig{Deny: []string{"hidden"}})
	backing, tree := openTree(t, TreeOptions{Policy: pol})
	writeFile(t, filepath.Join(backing, "a", "b.txt"), "b")
	writeFile(t, filepath.Join(backing, "c.txt"), "c")
	writeFile(t, filepath.Join(backing, "hidden", "h.txt"), "h")
	if err := fstest.TestFS(tree.FS(), "a/b.txt", "c.txt"); err != nil {
		t.Fatal(err)
	}
	if _, err := fs.Stat(tree.FS(), "hidden/h.txt"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("hidden file through FS: %v", err)
	}
}

// TestTreeSwapRace swaps a directory for symlinks out of the tree while
// the tree writes below it; nothing may land outside.
func TestTreeSwapRace(t *testing.T) {
	backing, tree := openTree(t, TreeOptions{})
	out := outsideDir(t, backing)
	d := filepath.Join(backing, "d")
	if err := os.Mkdir(d, 0o755); err != nil {
		t.Fatal(err)
	}
	var stop atomic.Bool
	var wg sync.WaitGroup
	var swaps, writes atomic.Int64
	wg.Add(3)
	go func() {
		defer wg.Done()
		for i := 0; !stop.Load(); i++ {
			// Swap with renames only, so d is always either the
			// directory or a symlink, never missing.
			target := out
			if i%2 == 1 {
				target = "../outside"
			}
			os.Remove(d + ".link")
			if os.Symlink(target, d+".link") != nil {
				continue
			}
			unix.Renameat2(unix.AT_FDCWD, d+".link", unix.AT_FDCWD, d, unix.RENAME_EXCHANGE)
			runtime.Gosched()
			unix.Renameat2(unix.AT_FDCWD, d+".link", unix.AT_FDCWD, d, unix.RENAME_EXCHANGE)
			runtime.Gosched()
			swaps.Add(1)
		}
	}()
	for w := range 2 {
		go func() {
			defer wg.Done()
			for i := 0; !stop.Load(); i++ {
				if tree.WriteFile(fmt.Sprintf("d/f%d-%d", w, i%4), []byte("x"), 0o644) == nil {
					writes.Add(1)
				}
				tree.MkdirAll(fmt.Sprintf("d/m%d-%d", w, i%4), 0o755)
				tree.Remove(fmt.Sprintf("d/m%d-%d", w, i%4))
			}
		}()
	}
	time.Sleep(time.Second)
	stop.Store(true)
	wg.Wait()
	if swaps.Load() == 0 || writes.Load() == 0 {
		t.Fatalf("race did not run: %d swaps, %d writes", swaps.Load(), writes.Load())
	}
}

// FuzzTreeResolve checks that whatever path it is given, the resolver
// either refuses it or returns a clean relative path below the root that
// the policy lets through.
func FuzzTreeResolve(f *testing.F) {
	for _, s := range []string{"a/b", "up/x", "../x", "/etc", "a/../../b", "c/./d", "loop", "sec/k", "hop/k", "abs", "a//b/", "a/b/../../c"} {
		f.Add(s)
	}
	backing := filepath.Join(f.TempDir(), "files")
	for _, d := range []string{"a", "c/d", "sec"} {
		if err := os.MkdirAll(filepath.Join(backing, d), 0o755); err != nil {
			f.Fatal(err)
		}
	}
	for name, target := range map[string]string{"up": "..", "abs": "/etc", "loop": "loop", "a/b": "../c", "hop": "sec", "c/d/e": "../../a"} {
		if err := os.Symlink(target, filepath.Join(backing, name)); err != nil {
			f.Fatal(err)
		}
	}
	pol, err := NewPolicy(PolicyConfig{Deny: []string{"sec"}})
	if err != nil {
		f.Fatal(err)
	}
	tree, err := OpenTree(backing, TreeOptions{Policy: pol})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { tree.Close() })
	f.Fuzz(func(t *testing.T, rel string) {
		if strings.ContainsRune(rel, 0) {
			return
		}
		r, err := tree.resolve(rel, true)
		if err != nil {
			return
		}
		if r != "" {
			for _, seg := range strings.Split(r, "/") {
				if seg == "" || seg == "." || seg == ".." {
					t.Fatalf("resolve(%q) = %q: not a clean relative path", rel, r)
				}
			}
		}
		if err := pol.CheckRead(r); err != nil {
			t.Fatalf("resolve(%q) = %q, which the policy denies", rel, r)
		}
	})
}
