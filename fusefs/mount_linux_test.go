package fusefs

import (
	"context"
	"os"
	"path/filepath"
	"sort"
	"testing"

	"github.com/bulkhead-dev/bulkhead/internal/testutil"
	"github.com/hanwen/go-fuse/v2/posixtest"
)

// mountView mounts a fresh backing directory and unmounts it when the test
// ends. The backing directory and the mountpoint have different parents, so
// that a relative symlink means something else on each side.
func mountView(t *testing.T, opts Options) (backing, mnt string, srv *Server) {
	t.Helper()
	requireMountable(t)
	return mountViewAt(t, filepath.Join(t.TempDir(), "server", "files"), opts)
}

func requireMountable(t *testing.T) {
	t.Helper()
	testutil.RequireRoot(t)
	testutil.RequireFUSE(t)
}

// mountViewAt mounts backing on a mountpoint in a directory of its own.
func mountViewAt(t *testing.T, backing string, opts Options) (_, mnt string, srv *Server) {
	t.Helper()
	mnt = filepath.Join(t.TempDir(), "client", "mnt")
	for _, d := range []string{backing, mnt} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	srv, err := Mount(context.Background(), backing, mnt, opts)
	if err != nil {
		t.Fatalf("mount: %v", err)
	}
	t.Cleanup(func() {
		if err := srv.Unmount(); err != nil {
			t.Errorf("unmount: %v", err)
		}
	})
	return backing, mnt, srv
}

// posixSkip lists posixtest cases that test what the view deliberately does
// not offer.
var posixSkip = map[string]string{
	"XAttr":      "extended attributes are off (DisableXAttrs)",
	"XAttrLarge": "extended attributes are off (DisableXAttrs)",
}

func runPosix(t *testing.T, opts Options, wantPassthrough bool) {
	names := make([]string, 0, len(posixtest.All))
	for nm := range posixtest.All {
		names = append(names, nm)
	}
	sort.Strings(names)
	for _, nm := range names {
		t.Run(nm, func(t *testing.T) {
			if why, ok := posixSkip[nm]; ok {
				t.Skip(why)
			}
			_, mnt, srv := mountView(t, opts)
			if srv.Passthrough() != wantPassthrough {
				t.Fatalf("passthrough = %v, want %v", srv.Passthrough(), wantPassthrough)
			}
			posixtest.All[nm](t, mnt)
		})
	}
}

func TestPosixPassthrough(t *testing.T) {
	runPosix(t, Options{}, true)
}

func TestPosixNoPassthrough(t *testing.T) {
	runPosix(t, Options{NoPassthrough: true}, false)
}
