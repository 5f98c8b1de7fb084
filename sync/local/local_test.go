package local_test

import (
	"os"
	"path/filepath"
	"testing"

	bsync "github.com/bulkhead-dev/bulkhead/sync"
	"github.com/bulkhead-dev/bulkhead/sync/local"
	"github.com/bulkhead-dev/bulkhead/sync/storetest"
)

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) bsync.Store {
		s, err := local.Open(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		return s
	})
}

// A crashed writer's temporary file is neither listed nor kept by Open.
func TestOpenClearsTemp(t *testing.T) {
	dir := t.TempDir()
	if _, err := local.Open(dir); err != nil {
		t.Fatal(err)
	}
	stale := filepath.Join(dir, ".tmp", "half-written")
	if err := os.WriteFile(stale, []byte("partial"), 0o600); err != nil {
		t.Fatal(err)
	}
	s, err := local.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(stale); !os.IsNotExist(err) {
		t.Fatalf("stale temp file survived Open: %v", err)
	}
	n := 0
	if err := s.List(t.Context(), "", func(bsync.ObjectInfo) error { n++; return nil }); err != nil || n != 0 {
		t.Fatalf("list of empty store: %d objects, err %v", n, err)
	}
}
