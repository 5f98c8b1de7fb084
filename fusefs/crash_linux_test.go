package fusefs

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

// The crash tests run the writer, and for one of them the server, as
// separate processes (this test binary re-executed in a helper role) so
// they can be killed with SIGKILL.

const (
	helperEnv   = "FUSEFS_TEST_HELPER"
	chunkSize   = 64 << 10
	writerLimit = 32 << 20
)

func TestMain(m *testing.M) {
	switch os.Getenv(helperEnv) {
	case "serve":
		os.Exit(serveHelper())
	case "write":
		os.Exit(writeHelper())
	}
	os.Exit(m.Run())
}

// serveHelper mounts $FUSEFS_BACKING on $FUSEFS_MNT, says "ready" and serves
// until killed.
func serveHelper() int {
	srv, err := Mount(context.Background(), os.Getenv("FUSEFS_BACKING"), os.Getenv("FUSEFS_MNT"),
		Options{NoPassthrough: os.Getenv("FUSEFS_NOPT") == "1"})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	fmt.Println("ready")
	srv.Wait()
	return 0
}

// writeHelper writes 'w' chunks to $FUSEFS_FILE, saying "started" after the
// first, wrapping around at writerLimit, until killed or an error.
func writeHelper() int {
	f, err := os.Create(os.Getenv("FUSEFS_FILE"))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	chunk := bytes.Repeat([]byte("w"), chunkSize)
	for off := int64(0); ; off = (off + chunkSize) % writerLimit {
		if _, err := f.WriteAt(chunk, off); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 2
		}
		if off == 0 {
			fmt.Println("started")
		}
	}
}

// startHelper runs this test binary in a helper role and waits for its
// first line.
func startHelper(t *testing.T, role, want string, env ...string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), append(env, helperEnv+"="+role)...)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	line := make(chan string, 1)
	go func() {
		s := bufio.NewScanner(out)
		s.Scan()
		line <- s.Text()
		for s.Scan() {
		}
	}()
	select {
	case got := <-line:
		if got != want {
			t.Fatalf("%s helper said %q, want %q", role, got, want)
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("%s helper did not start", role)
	}
	return cmd
}

// checkWritten checks that the file a killed writer left behind has the
// same size through the mount and in the backing tree, and holds only
// whole 'w' bytes.
func checkWritten(t *testing.T, viaMount, backing string) {
	t.Helper()
	got, err := os.ReadFile(viaMount)
	if err != nil {
		t.Fatalf("read through mount: %v", err)
	}
	raw, err := os.ReadFile(backing)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(raw) || len(got) == 0 {
		t.Fatalf("size through mount %d, in backing tree %d", len(got), len(raw))
	}
	if i := bytes.IndexFunc(got, func(r rune) bool { return r != 'w' }); i >= 0 {
		t.Fatalf("byte %d of %d is %q, not 'w'", i, len(got), got[i])
	}
}

func TestCrashWriterKilled(t *testing.T) {
	for _, nopt := range []bool{false, true} {
		t.Run(fmt.Sprintf("nopassthrough=%v", nopt), func(t *testing.T) {
			backing, mnt, srv := mountView(t, Options{NoPassthrough: nopt})
			w := startHelper(t, "write", "started", "FUSEFS_FILE="+filepath.Join(mnt, "out"))
			time.Sleep(100 * time.Millisecond)
			w.Process.Kill()
			w.Wait()
			checkWritten(t, filepath.Join(mnt, "out"), filepath.Join(backing, "out"))

			// The server goes on serving, and a clean unmount frees the
			// mountpoint for the next generation.
			if err := os.WriteFile(filepath.Join(mnt, "after"), []byte("ok"), 0o644); err != nil {
				t.Fatalf("write after the writer died: %v", err)
			}
			if err := srv.Unmount(); err != nil {
				t.Fatalf("unmount: %v", err)
			}
			srv2, err := Mount(t.Context(), backing, mnt, Options{NoPassthrough: nopt})
			if err != nil {
				t.Fatalf("mount again: %v", err)
			}
			defer srv2.Unmount()
			if b, err := os.ReadFile(filepath.Join(mnt, "after")); err != nil || string(b) != "ok" {
				t.Fatalf("read after remount = %q, %v", b, err)
			}
		})
	}
}

func TestCrashServerKilled(t *testing.T) {
	for _, nopt := range []bool{false, true} {
		t.Run(fmt.Sprintf("nopassthrough=%v", nopt), func(t *testing.T) {
			requireMountable(t)
			base := t.TempDir()
			backing := filepath.Join(base, "files")
			mounts := filepath.Join(base, "mounts")
			mnt := filepath.Join(mounts, "gen1")
			for _, d := range []string{backing, mnt} {
				if err := os.MkdirAll(d, 0o755); err != nil {
					t.Fatal(err)
				}
			}
			noptEnv := "FUSEFS_NOPT=0"
			if nopt {
				noptEnv = "FUSEFS_NOPT=1"
			}
			server := startHelper(t, "serve", "ready", "FUSEFS_BACKING="+backing, "FUSEFS_MNT="+mnt, noptEnv)
			if err := os.WriteFile(filepath.Join(mnt, "before"), []byte("complete"), 0o644); err != nil {
				t.Fatal(err)
			}
			if err := os.MkdirAll(filepath.Join(mnt, "dir", "sub"), 0o755); err != nil {
				t.Fatal(err)
			}
			writer := startHelper(t, "write", "started", "FUSEFS_FILE="+filepath.Join(mnt, "partial"))
			time.Sleep(100 * time.Millisecond)

			// Kill the server while the writer is mid-stream.
			server.Process.Kill()
			server.Wait()
			if nopt {
				// Without passthrough every write needs the server: the
				// writer must fail now rather than hang.
				done := make(chan error, 1)
				go func() { done <- writer.Wait() }()
				select {
				case err := <-done:
					if err == nil {
						t.Fatal("writer carried on without a server")
					}
				case <-time.After(10 * time.Second):
					t.Fatal("writer hung after the server died")
				}
			} else {
				writer.Process.Kill()
				writer.Wait()
			}
			_, err := os.Stat(filepath.Join(mnt, "before"))
			if !errors.Is(err, syscall.ENOTCONN) {
				t.Fatalf("stat on the dead mount: %v, want ENOTCONN", err)
			}

			// Startup cleanup finds and detaches the stale mount.
			stale, err := CleanupStale(mounts)
			if err != nil {
				t.Fatalf("cleanup: %v", err)
			}
			if !slices.Equal(stale, []string{mnt}) {
				t.Fatalf("cleanup detached %v, want [%s]", stale, mnt)
			}
			if again, err := CleanupStale(mounts); err != nil || len(again) != 0 {
				t.Fatalf("second cleanup: %v %v", again, err)
			}

			// The same mountpoint serves again and the tree is whole.
			srv, err := Mount(t.Context(), backing, mnt, Options{NoPassthrough: nopt})
			if err != nil {
				t.Fatalf("mount on the cleaned mountpoint: %v", err)
			}
			defer srv.Unmount()
			if b, err := os.ReadFile(filepath.Join(mnt, "before")); err != nil || string(b) != "complete" {
				t.Fatalf("before = %q, %v", b, err)
			}
			checkWritten(t, filepath.Join(mnt, "partial"), filepath.Join(backing, "partial"))
			ents, err := os.ReadDir(backing)
			if err != nil {
				t.Fatal(err)
			}
			var names []string
			for _, e := range ents {
				names = append(names, e.Name())
			}
			if strings.Join(names, ",") != "before,dir,partial" {
				t.Fatalf("backing tree holds %v", names)
			}
		})
	}
}

func TestUnmountCommand(t *testing.T) {
	_, mnt, srv := mountView(t, Options{})
	if err := Unmount(filepath.Dir(mnt)); !errors.Is(err, ErrNotMounted) {
		t.Fatalf("unmount of a plain directory: %v, want ErrNotMounted", err)
	}
	done := make(chan struct{})
	go func() { srv.Wait(); close(done) }()
	if err := Unmount(mnt); err != nil {
		t.Fatalf("unmount: %v", err)
	}
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("server did not stop after unmount")
	}
}
