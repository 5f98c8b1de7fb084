package fusefs

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// These tests act as a process inside the sandbox would: only through the
// mount. Where a test needs something in the backing tree that an attacker
// could not make through the mount, it writes the backing tree directly and
// says so.

func wantErrno(t *testing.T, what string, err error, want syscall.Errno) {
	t.Helper()
	if !errors.Is(err, want) {
		t.Errorf("%s: got %v, want %v", what, err, want)
	}
}

func writeFile(t *testing.T, p, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// outsideDir makes a directory next to the backing tree that the server
// must never touch, and checks at the end of the test that it is still
// empty.
func outsideDir(t *testing.T, backing string) string {
	t.Helper()
	out := filepath.Join(filepath.Dir(backing), "outside")
	if err := os.MkdirAll(out, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ents, err := os.ReadDir(out)
		if err != nil {
			t.Fatal(err)
		}
		if len(ents) > 0 {
			var names []string
			for _, e := range ents {
				names = append(names, e.Name())
			}
			t.Errorf("server wrote outside the backing tree: %v", names)
		}
	})
	return out
}

func TestAttackSymlinkOutOfTree(t *testing.T) {
	backing, mnt, _ := mountView(t, Options{})
	out := outsideDir(t, backing)
	secret := filepath.Join(filepath.Dir(backing), "secret.txt")
	writeFile(t, secret, "host secret")

	// Relative and absolute symlinks made through the mount are stored as
	// written; the kernel resolves them in the caller's namespace, never
	// the server in the host's. mnt/../secret.txt does not exist, so the
	// relative one must not reach the host file.
	if err := os.Symlink("../secret.txt", filepath.Join(mnt, "up")); err != nil {
		t.Fatal(err)
	}
	_, err := os.ReadFile(filepath.Join(mnt, "up"))
	wantErrno(t, "read ../ symlink", err, syscall.ENOENT)
	if err := os.Symlink("../../outside", filepath.Join(mnt, "updir")); err != nil {
		t.Fatal(err)
	}
	err = os.WriteFile(filepath.Join(mnt, "updir", "planted"), []byte("x"), 0o644)
	wantErrno(t, "write through ../ dir symlink", err, syscall.ENOENT)

	// A directory the caller holds open is replaced by an absolute symlink
	// in the backing tree (the end state of a lost race): creating through
	// the held directory must fail, not land in the symlink's target.
	if err := os.Mkdir(filepath.Join(mnt, "d"), 0o755); err != nil {
		t.Fatal(err)
	}
	dfd, err := unix.Open(filepath.Join(mnt, "d"), unix.O_DIRECTORY|unix.O_RDONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(dfd)
	if err := os.Rename(filepath.Join(backing, "d"), filepath.Join(backing, "d.moved")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(out, filepath.Join(backing, "d")); err != nil {
		t.Fatal(err)
	}
	fd, err := unix.Openat(dfd, "victim", unix.O_CREAT|unix.O_WRONLY, 0o644)
	if err == nil {
		unix.Close(fd)
	}
	wantErrno(t, "create through swapped dir", err, syscall.ELOOP)
	err = unix.Mkdirat(dfd, "victimdir", 0o755)
	wantErrno(t, "mkdir through swapped dir", err, syscall.ELOOP)
	err = unix.Symlinkat("x", dfd, "victimlink")
	wantErrno(t, "symlink through swapped dir", err, syscall.ELOOP)
}

// TestAttackSwapRace loops a directory being swapped for a symlink to a
// host directory while another goroutine creates files through a handle on
// that directory. Whatever interleaving happens, nothing may appear outside.
// The swap runs once through the mount (what a sandboxed attacker can do)
// and once in the backing tree, where the window is wide open because the
// server's idea of the tree never learns of the swap.
func TestAttackSwapRace(t *testing.T) {
	for _, via := range []string{"mount", "backing"} {
		t.Run(via, func(t *testing.T) {
			backing, mnt, _ := mountView(t, Options{})
			out := outsideDir(t, backing)
			if err := os.Mkdir(filepath.Join(mnt, "d"), 0o755); err != nil {
				t.Fatal(err)
			}
			dfd, err := unix.Open(filepath.Join(mnt, "d"), unix.O_DIRECTORY|unix.O_RDONLY, 0)
			if err != nil {
				t.Fatal(err)
			}
			defer unix.Close(dfd)
			d := filepath.Join(mnt, "d")
			if via == "backing" {
				d = filepath.Join(backing, "d")
			}
			swaps, creates := swapRace(t, d, out, dfd)
			if swaps == 0 || creates == 0 {
				t.Fatalf("race did not run: %d swaps, %d creates", swaps, creates)
			}
			t.Logf("%d swaps, %d successful creates", swaps, creates)
		})
	}
}

func swapRace(t *testing.T, d, out string, dfd int) (swaps, creates int64) {
	var stop atomic.Bool
	var wg sync.WaitGroup
	var nswaps, ncreates atomic.Int64
	wg.Add(2)
	go func() {
		defer wg.Done()
		for !stop.Load() {
			if os.Rename(d, d+".tmp") != nil {
				continue
			}
			os.Symlink(out, d)
			for range 3 {
				runtime.Gosched()
			}
			os.Remove(d)
			os.Symlink("../outside", d)
			for range 3 {
				runtime.Gosched()
			}
			os.Remove(d)
			os.Rename(d+".tmp", d)
			nswaps.Add(1)
		}
	}()
	go func() {
		defer wg.Done()
		for i := 0; !stop.Load(); i++ {
			name := fmt.Sprintf("f%d", i%8)
			if fd, err := unix.Openat(dfd, name, unix.O_CREAT|unix.O_WRONLY, 0o644); err == nil {
				unix.Close(fd)
				ncreates.Add(1)
			}
			unix.Unlinkat(dfd, name, 0)
			unix.Mkdirat(dfd, name+"d", 0o755)
			unix.Unlinkat(dfd, name+"d", unix.AT_REMOVEDIR)
			unix.Symlinkat("x", dfd, name+"l")
			unix.Unlinkat(dfd, name+"l", 0)
		}
	}()
	time.Sleep(time.Second)
	stop.Store(true)
	wg.Wait()
	return nswaps.Load(), ncreates.Load()
}

func TestAttackHardlinks(t *testing.T) {
	backing, mnt, _ := mountView(t, Options{})
	hostFile := filepath.Join(filepath.Dir(backing), "host.txt")
	writeFile(t, hostFile, "host")
	err := os.Link(hostFile, filepath.Join(mnt, "stolen"))
	wantErrno(t, "link host file into mount", err, syscall.EXDEV)
	err = os.Link(filepath.Join(mnt, "nothing"), filepath.Join(filepath.Dir(mnt), "out"))
	wantErrno(t, "link from mount to host", err, syscall.ENOENT)

	// A second name for a read-only file would make it writable.
	writeFile(t, filepath.Join(backing, ".bulkhead", "config.toml"), "model = 'x'")
	err = os.Link(filepath.Join(mnt, ".bulkhead", "config.toml"), filepath.Join(mnt, "config.toml"))
	wantErrno(t, "link read-only file", err, syscall.EROFS)
	// A link into a read-only directory.
	writeFile(t, filepath.Join(mnt, "mine.txt"), "mine")
	err = os.Link(filepath.Join(mnt, "mine.txt"), filepath.Join(mnt, ".bulkhead", "SOUL.md"))
	wantErrno(t, "link into read-only dir", err, syscall.EROFS)
}

func TestAttackDeny(t *testing.T) {
	pol := mustPolicy(t, PolicyConfig{Deny: []string{"secrets", "keys/*.key", "**/*.pem"}})
	backing, mnt, _ := mountView(t, Options{Policy: pol})
	writeFile(t, filepath.Join(backing, "secrets", "token"), "s3cret")
	writeFile(t, filepath.Join(backing, "keys", "id.key"), "key")
	writeFile(t, filepath.Join(backing, "keys", "id.pub"), "pub")
	writeFile(t, filepath.Join(backing, "a", "b", "c.pem"), "pem")
	writeFile(t, filepath.Join(backing, "ok.txt"), "ok")

	// Absent from readdir and from lookups.
	for dir, want := range map[string][]string{
		"":     {".bulkhead", "a", "keys", "ok.txt"},
		"keys": {"id.pub"},
		"a/b":  {},
	} {
		os.MkdirAll(filepath.Join(backing, ".bulkhead"), 0o755)
		ents, err := os.ReadDir(filepath.Join(mnt, dir))
		if err != nil {
			t.Fatal(err)
		}
		got := []string{}
		for _, e := range ents {
			got = append(got, e.Name())
		}
		if !slices.Equal(got, want) {
			t.Errorf("readdir %q = %v, want %v", dir, got, want)
		}
	}
	for _, p := range []string{"secrets", "secrets/token", "keys/id.key", "a/b/c.pem"} {
		_, err := os.Lstat(filepath.Join(mnt, p))
		wantErrno(t, "stat "+p, err, syscall.ENOENT)
	}

	// Creating a denied path that does not exist yet.
	err := os.WriteFile(filepath.Join(mnt, "new.pem"), nil, 0o644)
	wantErrno(t, "create new.pem", err, syscall.EACCES)
	err = os.WriteFile(filepath.Join(mnt, "keys", "new.key"), nil, 0o644)
	wantErrno(t, "create keys/new.key", err, syscall.EACCES)
	err = os.Mkdir(filepath.Join(mnt, "secrets"), 0o755)
	wantErrno(t, "mkdir over hidden secrets", err, syscall.EACCES)
	err = os.Symlink("ok.txt", filepath.Join(mnt, "x.pem"))
	wantErrno(t, "symlink x.pem", err, syscall.EACCES)
	err = os.Rename(filepath.Join(mnt, "ok.txt"), filepath.Join(mnt, "ok.pem"))
	wantErrno(t, "rename to ok.pem", err, syscall.EACCES)
	err = unix.Mknod(filepath.Join(mnt, "n.pem"), unix.S_IFREG|0o644, 0)
	wantErrno(t, "mknod n.pem", err, syscall.EACCES)

	// Renaming the parent so the rule no longer matches: refused, and the
	// file stays hidden under its old name.
	err = os.Rename(filepath.Join(mnt, "keys"), filepath.Join(mnt, "public"))
	wantErrno(t, "rename keys/ away", err, syscall.EACCES)
	if err := os.Mkdir(filepath.Join(mnt, "stage"), 0o755); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(mnt, "stage", "my.key"), "k")
	err = os.Rename(filepath.Join(mnt, "stage"), filepath.Join(mnt, "keys2"))
	if err != nil {
		t.Errorf("renaming a dir where no rule reaches: %v", err)
	}
	err = os.Rename(filepath.Join(mnt, "keys2"), filepath.Join(mnt, "keys", "sub"))
	if err != nil {
		t.Errorf("renaming into keys/sub (keys/*.key does not reach sub/): %v", err)
	}
	if _, err := os.Stat(filepath.Join(backing, "keys", "id.key")); err != nil {
		t.Errorf("backing key moved: %v", err)
	}
}

func TestAttackReadOnly(t *testing.T) {
	backing, mnt, _ := mountView(t, Options{})
	writeFile(t, filepath.Join(backing, ".bulkhead", "SOUL.md"), "be kind")
	ro := filepath.Join(mnt, ".bulkhead", "SOUL.md")
	if b, err := os.ReadFile(ro); err != nil || string(b) != "be kind" {
		t.Fatalf("read .bulkhead/SOUL.md = %q, %v", b, err)
	}
	_, err := os.OpenFile(ro, os.O_WRONLY, 0)
	wantErrno(t, "open for write", err, syscall.EROFS)
	_, err = os.OpenFile(ro, os.O_RDONLY|os.O_TRUNC, 0)
	wantErrno(t, "open O_TRUNC", err, syscall.EROFS)
	wantErrno(t, "truncate", os.Truncate(ro, 0), syscall.EROFS)
	wantErrno(t, "chmod", os.Chmod(ro, 0o666), syscall.EROFS)
	wantErrno(t, "utimes", os.Chtimes(ro, time.Now(), time.Now()), syscall.EROFS)
	wantErrno(t, "remove", os.Remove(ro), syscall.EROFS)
	wantErrno(t, "create", os.WriteFile(filepath.Join(mnt, ".bulkhead", "x"), nil, 0o644), syscall.EROFS)
	wantErrno(t, "rename out", os.Rename(ro, filepath.Join(mnt, "SOUL.md")), syscall.EROFS)
	wantErrno(t, "rename dir", os.Rename(filepath.Join(mnt, ".bulkhead"), filepath.Join(mnt, "b")), syscall.EROFS)
	wantErrno(t, "rmdir", os.RemoveAll(filepath.Join(mnt, ".bulkhead")), syscall.EROFS)
	if err := os.Mkdir(filepath.Join(mnt, "fake"), 0o755); err != nil {
		t.Fatal(err)
	}
	// os.Rename refuses a directory target itself; ask the kernel.
	wantErrno(t, "rename over", unix.Rename(filepath.Join(mnt, "fake"), filepath.Join(mnt, ".bulkhead")), syscall.EROFS)
	wantErrno(t, "exchange", unix.Renameat2(unix.AT_FDCWD, filepath.Join(mnt, "fake"), unix.AT_FDCWD, filepath.Join(mnt, ".bulkhead"), unix.RENAME_EXCHANGE), syscall.EROFS)
	wantErrno(t, "access W_OK", unix.Access(ro, unix.W_OK), syscall.EROFS)
	if b, _ := os.ReadFile(filepath.Join(backing, ".bulkhead", "SOUL.md")); string(b) != "be kind" {
		t.Errorf("backing file changed to %q", b)
	}
}

func TestAttackModes(t *testing.T) {
	_, mnt, _ := mountView(t, Options{})
	f := filepath.Join(mnt, "tool")
	writeFile(t, f, "#!/bin/sh\n")
	wantErrno(t, "chmod u+s", unix.Chmod(f, 0o4755), syscall.EPERM)
	wantErrno(t, "chmod g+s", unix.Chmod(f, 0o2755), syscall.EPERM)
	fh, err := os.OpenFile(f, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	wantErrno(t, "fchmod u+s", unix.Fchmod(int(fh.Fd()), 0o4755), syscall.EPERM)
	fh.Close()
	wantErrno(t, "chown to another user", os.Chown(f, 1234, 1234), syscall.EPERM)
	if err := unix.Chmod(f, 0o755); err != nil {
		t.Errorf("plain chmod: %v", err)
	}
	old := unix.Umask(0)
	defer unix.Umask(old)
	fd, err := unix.Open(filepath.Join(mnt, "suid"), unix.O_CREAT|unix.O_WRONLY, 0o4755)
	if err == nil {
		unix.Close(fd)
	}
	wantErrno(t, "create setuid", err, syscall.EPERM)
	wantErrno(t, "mkdir sticky", unix.Mkdir(filepath.Join(mnt, "tmp"), 0o1777), syscall.EPERM)
	// mkdir(2) drops S_ISGID from the mode before the server sees it; what
	// matters is that the directory does not end up with it.
	if err := unix.Mkdir(filepath.Join(mnt, "grp"), 0o2775); err == nil {
		if st, err := os.Stat(filepath.Join(mnt, "grp")); err != nil || st.Mode()&os.ModeSetgid != 0 {
			t.Errorf("mkdir 02775 made %v, %v", st.Mode(), err)
		}
	}
	wantErrno(t, "chmod dir g+s", unix.Chmod(filepath.Join(mnt, "grp"), 0o2775), syscall.EPERM)
	wantErrno(t, "mknod char device", unix.Mknod(filepath.Join(mnt, "null"), unix.S_IFCHR|0o666, int(unix.Mkdev(1, 3))), syscall.EPERM)
	wantErrno(t, "mknod block device", unix.Mknod(filepath.Join(mnt, "sda"), unix.S_IFBLK|0o666, int(unix.Mkdev(8, 0))), syscall.EPERM)
	wantErrno(t, "mkfifo", unix.Mkfifo(filepath.Join(mnt, "fifo"), 0o644), syscall.EPERM)
	wantErrno(t, "rename with whiteout", unix.Renameat2(unix.AT_FDCWD, f, unix.AT_FDCWD, filepath.Join(mnt, "moved"), unix.RENAME_WHITEOUT), syscall.EPERM)
	wantErrno(t, "ioctl", func() error {
		fh, err := os.Open(f)
		if err != nil {
			return err
		}
		defer fh.Close()
		_, err = unix.IoctlGetInt(int(fh.Fd()), unix.FS_IOC_GETFLAGS)
		return err
	}(), syscall.ENOTTY)
}

func TestSpecialFilesAllowed(t *testing.T) {
	pol := mustPolicy(t, PolicyConfig{AllowSpecialFiles: true})
	backing, mnt, _ := mountView(t, Options{Policy: pol})
	if err := unix.Mkfifo(filepath.Join(mnt, "fifo"), 0o644); err != nil {
		t.Fatalf("mkfifo with special files allowed: %v", err)
	}
	st, err := os.Lstat(filepath.Join(backing, "fifo"))
	if err != nil || st.Mode()&os.ModeNamedPipe == 0 {
		t.Fatalf("backing fifo: %v %v", st, err)
	}
	wantErrno(t, "chmod u+s still refused", unix.Chmod(filepath.Join(mnt, "fifo"), 0o4644), syscall.EPERM)
}

func TestAttackQuota(t *testing.T) {
	requireMountable(t)
	base := t.TempDir()
	backing := filepath.Join(base, "files")
	writeFile(t, filepath.Join(backing, "existing"), strings.Repeat("x", 1000))
	q, err := NewQuota(t.Context(), backing, Limits{Bytes: 64 << 10, Inodes: 4})
	if err != nil {
		t.Fatal(err)
	}
	if b, i := q.Usage(); b != 1000 || i != 1 {
		t.Fatalf("usage = %d bytes %d inodes, want 1000 and 1", b, i)
	}
	_, mnt, srv := mountViewAt(t, backing, Options{Quota: q})
	if srv.Passthrough() {
		t.Fatal("passthrough with a byte quota: writes would not be counted")
	}

	// Bytes: fill to the byte, then one more.
	f, err := os.Create(filepath.Join(mnt, "fill"))
	if err != nil {
		t.Fatal(err)
	}
	room := 64<<10 - 1000
	if _, err := f.Write(make([]byte, room)); err != nil {
		t.Fatalf("write up to the quota: %v", err)
	}
	_, err = f.Write([]byte{1})
	wantErrno(t, "write one byte over", err, syscall.EDQUOT)
	wantErrno(t, "truncate one byte over", f.Truncate(int64(room+1)), syscall.EDQUOT)
	wantErrno(t, "fallocate one byte over", unix.Fallocate(int(f.Fd()), 0, 0, int64(room+1)), syscall.EDQUOT)
	// Overwriting within the file does not grow it.
	if _, err := f.WriteAt([]byte("abc"), 10); err != nil {
		t.Errorf("overwrite inside the file: %v", err)
	}
	f.Close()
	if b, _ := q.Usage(); b != 64<<10 {
		t.Errorf("usage after fill = %d, want %d", b, 64<<10)
	}
	// Freeing space makes room again.
	if err := os.Truncate(filepath.Join(mnt, "fill"), 0); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(mnt, "fill"), make([]byte, room), 0o644); err != nil {
		t.Errorf("rewrite after truncate: %v", err)
	}
	if err := os.Remove(filepath.Join(mnt, "fill")); err != nil {
		t.Fatal(err)
	}
	if b, i := q.Usage(); b != 1000 || i != 1 {
		t.Errorf("usage after remove = %d bytes %d inodes, want 1000 and 1", b, i)
	}

	// Inodes: three more fit (4 in all), the fifth of any kind does not.
	if err := os.Mkdir(filepath.Join(mnt, "d"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(mnt, "d", "f"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("f", filepath.Join(mnt, "d", "l")); err != nil {
		t.Fatal(err)
	}
	wantErrno(t, "create fifth inode", os.WriteFile(filepath.Join(mnt, "g"), nil, 0o644), syscall.EDQUOT)
	wantErrno(t, "mkdir fifth inode", os.Mkdir(filepath.Join(mnt, "e"), 0o755), syscall.EDQUOT)
	wantErrno(t, "symlink fifth inode", os.Symlink("x", filepath.Join(mnt, "m")), syscall.EDQUOT)
	// A hard link is not a new inode.
	if err := os.Link(filepath.Join(mnt, "d", "f"), filepath.Join(mnt, "f2")); err != nil {
		t.Errorf("hard link at the inode limit: %v", err)
	}
	if _, i := q.Usage(); i != 4 {
		t.Errorf("inodes = %d, want 4", i)
	}
	var st unix.Statfs_t
	if err := unix.Statfs(mnt, &st); err != nil {
		t.Fatal(err)
	}
	if st.Files != 4 || st.Ffree != 0 {
		t.Errorf("statfs files=%d ffree=%d, want 4 and 0", st.Files, st.Ffree)
	}
}

func TestSetPolicyTakesEffectAtOnce(t *testing.T) {
	backing, mnt, srv := mountView(t, Options{CacheTimeout: time.Hour})
	writeFile(t, filepath.Join(backing, "plans", "q3.md"), "plans")
	if _, err := os.ReadFile(filepath.Join(mnt, "plans", "q3.md")); err != nil {
		t.Fatal(err)
	}
	srv.SetPolicy(mustPolicy(t, PolicyConfig{Deny: []string{"plans"}}))
	_, err := os.ReadFile(filepath.Join(mnt, "plans", "q3.md"))
	wantErrno(t, "read after deny", err, syscall.ENOENT)
	srv.SetPolicy(DefaultPolicy())
	if _, err := os.ReadFile(filepath.Join(mnt, "plans", "q3.md")); err != nil {
		t.Errorf("read after allow again: %v", err)
	}
}

// listNames returns the names in directory p, sorted.
func listNames(t *testing.T, p string) []string {
	t.Helper()
	ents, err := os.ReadDir(p)
	if err != nil {
		t.Fatalf("readdir %s: %v", p, err)
	}
	names := []string{}
	for _, e := range ents {
		names = append(names, e.Name())
	}
	return names
}

// TestAttackCachedViewAfterPolicyChange warms every kernel cache (names,
// attributes, listings, a missing name, an open directory) the way a
// process in the sandbox would, then tightens the policy and checks that
// nothing cached lets the process reach what the new policy denies.
func TestAttackCachedViewAfterPolicyChange(t *testing.T) {
	backing, mnt, srv := mountView(t, Options{CacheTimeout: time.Hour})
	writeFile(t, filepath.Join(backing, "plans", "q3.md"), "plans")
	writeFile(t, filepath.Join(backing, "notes.md"), "notes")
	writeFile(t, filepath.Join(backing, "docs", "a.md"), "a")

	if got := listNames(t, mnt); !slices.Equal(got, []string{"docs", "notes.md", "plans"}) {
		t.Fatalf("root = %v", got)
	}
	if got := listNames(t, filepath.Join(mnt, "plans")); !slices.Equal(got, []string{"q3.md"}) {
		t.Fatalf("plans = %v", got)
	}
	if _, err := os.ReadFile(filepath.Join(mnt, "plans", "q3.md")); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(filepath.Join(mnt, "plans", "q4.md")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("stat missing: %v", err)
	}
	dir, err := os.Open(filepath.Join(mnt, "plans"))
	if err != nil {
		t.Fatal(err)
	}
	defer dir.Close()

	srv.SetPolicy(mustPolicy(t, PolicyConfig{Deny: []string{"plans"}, ReadOnly: []string{"notes.md"}}))

	if got := listNames(t, mnt); !slices.Equal(got, []string{"docs", "notes.md"}) {
		t.Errorf("root after deny = %v (cached listing)", got)
	}
	for _, p := range []string{"plans", "plans/q3.md"} {
		_, err := os.Lstat(filepath.Join(mnt, p))
		wantErrno(t, "stat "+p+" after deny", err, syscall.ENOENT)
	}
	_, err = os.ReadFile(filepath.Join(mnt, "plans", "q3.md"))
	wantErrno(t, "read after deny", err, syscall.ENOENT)
	// A directory opened before the change does not lead past it.
	_, err = unix.Openat(int(dir.Fd()), "q3.md", unix.O_RDONLY, 0)
	wantErrno(t, "openat from a directory opened before the deny", err, syscall.ENOENT)
	var st unix.Stat_t
	err = unix.Fstatat(int(dir.Fd()), "q3.md", &st, unix.AT_SYMLINK_NOFOLLOW)
	wantErrno(t, "fstatat from a directory opened before the deny", err, syscall.ENOENT)
	err = unix.Mkdirat(int(dir.Fd()), "new", 0o755)
	wantErrno(t, "mkdirat in the denied directory", err, syscall.EACCES)
	err = os.Rename(filepath.Join(mnt, "docs", "a.md"), filepath.Join(mnt, "plans", "a.md"))
	if err == nil {
		t.Error("rename into the denied directory succeeded")
	}
	err = os.WriteFile(filepath.Join(mnt, "notes.md"), []byte("x"), 0o644)
	wantErrno(t, "write notes.md after read-only", err, syscall.EROFS)
	err = os.Truncate(filepath.Join(mnt, "notes.md"), 0)
	wantErrno(t, "truncate notes.md after read-only", err, syscall.EROFS)
	if b, err := os.ReadFile(filepath.Join(backing, "notes.md")); err != nil || string(b) != "notes" {
		t.Errorf("notes.md = %q, %v", b, err)
	}
	if _, err := os.Stat(filepath.Join(backing, "docs", "a.md")); err != nil {
		t.Errorf("docs/a.md moved: %v", err)
	}

	// Allowed again: seen at once, though it was looked up while denied.
	srv.SetPolicy(DefaultPolicy())
	if got := listNames(t, mnt); !slices.Equal(got, []string{"docs", "notes.md", "plans"}) {
		t.Errorf("root after allow = %v", got)
	}
	if _, err := os.ReadFile(filepath.Join(mnt, "plans", "q3.md")); err != nil {
		t.Errorf("read after allow: %v", err)
	}
}

func TestReadOnlyMount(t *testing.T) {
	backing, mnt, _ := mountView(t, Options{ReadOnly: true})
	writeFile(t, filepath.Join(backing, "a.txt"), "a")
	if b, err := os.ReadFile(filepath.Join(mnt, "a.txt")); err != nil || string(b) != "a" {
		t.Fatalf("read = %q, %v", b, err)
	}
	wantErrno(t, "write", os.WriteFile(filepath.Join(mnt, "a.txt"), []byte("b"), 0o644), syscall.EROFS)
	wantErrno(t, "create", os.WriteFile(filepath.Join(mnt, "b.txt"), nil, 0o644), syscall.EROFS)
	wantErrno(t, "remove", os.Remove(filepath.Join(mnt, "a.txt")), syscall.EROFS)
}

// TestAttackOtherHostUser checks that with Callers set, a host user other
// than the sandbox's uid cannot use the view even though it is mounted
// allow_other.
func TestAttackOtherHostUser(t *testing.T) {
	const sandboxUID, otherUID = 43210, 43211
	backing, mnt, _ := mountView(t, Options{Callers: []uint32{sandboxUID}})
	writeFile(t, filepath.Join(backing, "data.txt"), "tenant data")
	// Let everyone walk to the mountpoint, so only the view can refuse.
	for d := filepath.Dir(mnt); d != os.TempDir() && d != "/"; d = filepath.Dir(d) {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	run := func(uid uint32, args ...string) error {
		cmd := exec.Command(args[0], args[1:]...)
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uid, Gid: uid}}
		out, err := cmd.CombinedOutput()
		if err != nil {
			return fmt.Errorf("%w: %s", err, out)
		}
		return nil
	}
	if err := run(sandboxUID, "cat", filepath.Join(mnt, "data.txt")); err != nil {
		t.Errorf("sandbox uid cannot read: %v", err)
	}
	if err := run(sandboxUID, "touch", filepath.Join(mnt, "new.txt")); err != nil {
		t.Errorf("sandbox uid cannot create: %v", err)
	}
	for _, args := range [][]string{
		{"cat", filepath.Join(mnt, "data.txt")},
		{"ls", mnt},
		{"touch", filepath.Join(mnt, "other.txt")},
	} {
		err := run(otherUID, args...)
		if err == nil || !strings.Contains(err.Error(), "ermission denied") {
			t.Errorf("other uid %v: %v, want permission denied", args, err)
		}
	}
	if st, err := os.Stat(filepath.Join(backing, "new.txt")); err != nil {
		t.Errorf("file made by the sandbox uid: %v", err)
	} else if uid := st.Sys().(*syscall.Stat_t).Uid; uid != sandboxUID {
		t.Errorf("new file owned by %d, want the caller %d", uid, sandboxUID)
	}
}

// TestTreeChangesSeenByMount checks that a host-side write through a Tree
// wired to the mount is visible in the mount at once, even with a long
// cache timeout.
func TestTreeChangesSeenByMount(t *testing.T) {
	backing, mnt, srv := mountView(t, Options{CacheTimeout: time.Hour})
	tree, err := OpenTree(backing, TreeOptions{OnChange: srv.Invalidate})
	if err != nil {
		t.Fatal(err)
	}
	defer tree.Close()
	if err := tree.WriteFile("notes.md", []byte("v1"), 0o644); err != nil {
		t.Fatal(err)
	}
	if st, err := os.Stat(filepath.Join(mnt, "notes.md")); err != nil || st.Size() != 2 {
		t.Fatalf("first stat = %v, %v", st, err)
	}
	if err := tree.WriteFile("notes.md", []byte("version two"), 0o644); err != nil {
		t.Fatal(err)
	}
	if st, err := os.Stat(filepath.Join(mnt, "notes.md")); err != nil || st.Size() != int64(len("version two")) {
		t.Errorf("stat after host write: %v, %v", st, err)
	}
	if b, err := os.ReadFile(filepath.Join(mnt, "notes.md")); err != nil || string(b) != "version two" {
		t.Errorf("read after host write = %q, %v", b, err)
	}
	if err := tree.Rename("notes.md", "old.md"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(mnt, "notes.md")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("stat after host rename: %v", err)
	}
	if err := tree.Remove("old.md"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(mnt, "old.md")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("stat after host remove: %v", err)
	}

	// A name the kernel remembers as missing, and a cached listing.
	if _, err := os.Stat(filepath.Join(mnt, "sub", "later.md")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("stat before host create: %v", err)
	}
	if got := listNames(t, mnt); len(got) != 0 {
		t.Fatalf("root = %v", got)
	}
	if err := tree.MkdirAll("sub", 0o755); err != nil {
		t.Fatal(err)
	}
	if err := tree.WriteFile("sub/later.md", []byte("later"), 0o644); err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(filepath.Join(mnt, "sub", "later.md")); err != nil || string(b) != "later" {
		t.Errorf("read after host create = %q, %v", b, err)
	}
	if got := listNames(t, mnt); !slices.Equal(got, []string{"sub"}) {
		t.Errorf("root after host mkdir = %v", got)
	}
	if got := listNames(t, filepath.Join(mnt, "sub")); !slices.Equal(got, []string{"later.md"}) {
		t.Errorf("sub = %v", got)
	}
	// A name never looked up: only the cached listing is stale.
	if err := tree.WriteFile("sub/second.md", nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if got := listNames(t, filepath.Join(mnt, "sub")); !slices.Equal(got, []string{"later.md", "second.md"}) {
		t.Errorf("sub after host create = %v", got)
	}
}

// TestInvalidateAll checks that changes made to the backing directory
// behind the view's back (as git run on the host does) are seen once
// InvalidateAll is called, even with a long cache timeout.
func TestInvalidateAll(t *testing.T) {
	backing, mnt, srv := mountView(t, Options{CacheTimeout: time.Hour})
	writeFile(t, filepath.Join(backing, "src", "main.go"), "package main")
	writeFile(t, filepath.Join(backing, "gone.txt"), "gone")
	if got := listNames(t, filepath.Join(mnt, "src")); !slices.Equal(got, []string{"main.go"}) {
		t.Fatalf("src = %v", got)
	}
	if _, err := os.ReadFile(filepath.Join(mnt, "src", "main.go")); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(mnt, "gone.txt")); err != nil {
		t.Fatal(err)
	}
	// Missing names are cached too, in the root as below it.
	for _, p := range []string{"src/util.go", "README.md"} {
		if _, err := os.Stat(filepath.Join(mnt, p)); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("stat %s: %v", p, err)
		}
	}

	writeFile(t, filepath.Join(backing, "src", "util.go"), "package main // util")
	writeFile(t, filepath.Join(backing, "README.md"), "readme")
	writeFile(t, filepath.Join(backing, "src", "main.go"), "package main // longer now")
	if err := os.Remove(filepath.Join(backing, "gone.txt")); err != nil {
		t.Fatal(err)
	}
	srv.InvalidateAll()

	// The missing names first: a listing would replace them on its own.
	if b, err := os.ReadFile(filepath.Join(mnt, "README.md")); err != nil || string(b) != "readme" {
		t.Errorf("README.md = %q, %v", b, err)
	}
	if b, err := os.ReadFile(filepath.Join(mnt, "src", "util.go")); err != nil || string(b) != "package main // util" {
		t.Errorf("util.go = %q, %v", b, err)
	}
	if got := listNames(t, filepath.Join(mnt, "src")); !slices.Equal(got, []string{"main.go", "util.go"}) {
		t.Errorf("src after invalidate = %v", got)
	}
	if st, err := os.Stat(filepath.Join(mnt, "src", "main.go")); err != nil || st.Size() != int64(len("package main // longer now")) {
		t.Errorf("main.go stat = %v, %v", st, err)
	}
	if _, err := os.Stat(filepath.Join(mnt, "gone.txt")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("stat removed file: %v", err)
	}
}

func TestLooseByteQuota(t *testing.T) {
	requireMountable(t)
	backing := filepath.Join(t.TempDir(), "files")
	if err := os.MkdirAll(backing, 0o755); err != nil {
		t.Fatal(err)
	}
	q, err := NewQuota(t.Context(), backing, Limits{Bytes: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	_, mnt, srv := mountViewAt(t, backing, Options{Quota: q, LooseByteQuota: true})
	if !srv.Passthrough() {
		t.Fatal("loose byte quota should keep passthrough")
	}
	// The kernel sends RELEASE after close(2) returns, so wait for the
	// count to settle.
	used := func(want int64) int64 {
		var b int64
		for deadline := time.Now().Add(2 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
			if b, _ = q.Usage(); b == want {
				break
			}
		}
		return b
	}

	if err := os.WriteFile(filepath.Join(mnt, "a"), make([]byte, 300<<10), 0o644); err != nil {
		t.Fatal(err)
	}
	if got := used(300 << 10); got != 300<<10 {
		t.Errorf("after closing a: %d bytes counted, want %d", got, 300<<10)
	}
	// One open file may overshoot; it is counted when it closes.
	if err := os.WriteFile(filepath.Join(mnt, "b"), make([]byte, 900<<10), 0o644); err != nil {
		t.Fatal(err)
	}
	if got := used(1200 << 10); got != 1200<<10 {
		t.Errorf("after closing b: %d bytes counted, want %d", got, 1200<<10)
	}
	// Over the limit: nothing more can be opened for writing or created.
	_, err = os.OpenFile(filepath.Join(mnt, "a"), os.O_WRONLY, 0)
	wantErrno(t, "open for write over quota", err, syscall.EDQUOT)
	wantErrno(t, "create over quota", os.WriteFile(filepath.Join(mnt, "c"), []byte("c"), 0o644), syscall.EDQUOT)
	if b, err := os.ReadFile(filepath.Join(mnt, "a")); err != nil || len(b) != 300<<10 {
		t.Errorf("reading over quota: %d bytes, %v", len(b), err)
	}
	// Freeing space lets writes in again.
	if err := os.Truncate(filepath.Join(mnt, "b"), 100<<10); err != nil {
		t.Fatalf("shrink over quota: %v", err)
	}
	if got := used(400 << 10); got != 400<<10 {
		t.Errorf("after truncate: %d, want %d", got, 400<<10)
	}
	if err := os.Remove(filepath.Join(mnt, "a")); err != nil {
		t.Fatal(err)
	}
	if got := used(100 << 10); got != 100<<10 {
		t.Errorf("after remove: %d, want %d", got, 100<<10)
	}
	if err := os.WriteFile(filepath.Join(mnt, "c"), []byte("c"), 0o644); err != nil {
		t.Errorf("create after freeing space: %v", err)
	}
	// Removing a file while it is being written counts right once it closes.
	f, err := os.Create(filepath.Join(mnt, "d"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write(make([]byte, 50<<10)); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(mnt, "d")); err != nil {
		t.Fatal(err)
	}
	f.Close()
	if got := used(100<<10 + 1); got != 100<<10+1 {
		t.Errorf("after writing and removing d: %d, want %d", got, 100<<10+1)
	}
}
