package sync

import (
	"io"
	"os"
	"path/filepath"
	"testing"
)

// A backup reads the tenant's files as root: a directory swapped for a
// symlink after the walk, or a name climbing out, must not lead the read to
// a host file.
func TestOpenBeneathStaysInTheTree(t *testing.T) {
	root := t.TempDir()
	outside := t.TempDir()
	if err := os.WriteFile(filepath.Join(outside, "secret"), []byte("HOST SECRET"), 0o600); err != nil {
		t.Fatal(err)
	}
	os.MkdirAll(filepath.Join(root, "dir"), 0o755)
	os.WriteFile(filepath.Join(root, "dir", "ok.txt"), []byte("tenant data"), 0o644)
	os.Symlink(outside, filepath.Join(root, "swapped"))
	os.Symlink(filepath.Join(outside, "secret"), filepath.Join(root, "dir", "link"))

	f, err := openBeneath(root, "dir/ok.txt")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(f)
	f.Close()
	if string(b) != "tenant data" {
		t.Fatalf("read %q", b)
	}
	for _, rel := range []string{"swapped/secret", "dir/link", "../" + filepath.Base(outside) + "/secret", "dir/../../" + filepath.Base(outside) + "/secret"} {
		f, err := openBeneath(root, rel)
		if err == nil {
			b, _ := io.ReadAll(f)
			f.Close()
			t.Errorf("openBeneath(%q) opened it: %q", rel, b)
		}
	}
}
