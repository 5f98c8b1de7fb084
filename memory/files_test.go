package memory

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"
)

func TestChunkMarkdown(t *testing.T) {
	t.Parallel()
	var b strings.Builder
	b.WriteString("# Title\n")
	for i := 0; i < 200; i++ {
		b.WriteString("line number ")
		b.WriteString(strings.Repeat("x", i%30))
		b.WriteString("\n")
	}
	b.WriteString("## Second\nshort section\n")
	b.WriteString(strings.Repeat("é", 700) + "\n") // one line longer than a chunk
	chunks := chunkMarkdown(b.String(), 400, 80)
	if len(chunks) < 5 {
		t.Fatalf("%d chunks", len(chunks))
	}
	joined := strings.Join(chunks, "\n")
	for _, want := range []string{"short section", "line number " + strings.Repeat("x", 29)} {
		if !strings.Contains(joined, want) {
			t.Errorf("lost %q", want)
		}
	}
	for i, c := range chunks {
		if len(c) > 400 {
			t.Errorf("chunk %d is %d bytes", i, len(c))
		}
		if !strings.HasPrefix(c, "#") && !strings.HasPrefix(c, "é") {
			t.Errorf("chunk %d lacks its heading: %.40q", i, c)
		}
	}
}

func testStore(t *testing.T, cfg Config) *Store {
	t.Helper()
	db, err := badger.Open(badger.DefaultOptions(t.TempDir()).WithLogger(nil))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	s, err := Open(context.Background(), Options{DB: db, IndexDir: t.TempDir(), Config: cfg})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func found(t *testing.T, s *Store, q string) []string {
	t.Helper()
	r, err := s.Search(context.Background(), SearchOptions{Query: q})
	if err != nil {
		t.Fatal(err)
	}
	var paths []string
	for _, h := range r.Hits {
		paths = append(paths, h.Chunk.Path)
	}
	return paths
}

func write(t *testing.T, path, text string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
}

// The files tree belongs to the tenant: links in it must not pull host files
// into memory, where search would hand them back.
func TestIndexFilesIgnoresLinksOut(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := testStore(t, Config{})
	files, outside := t.TempDir(), t.TempDir()
	write(t, filepath.Join(outside, "shadow.md"), "root:hostsecret:19000")
	write(t, filepath.Join(files, "MEMORY.md"), "# Memory\nThe user's cat is called Miso.")
	write(t, filepath.Join(files, "memory", "2026", "june.md"), "Shipped the zebra release.")
	write(t, filepath.Join(files, "notes.md"), "not a memory file: walrus")
	if err := os.Symlink(filepath.Join(outside, "shadow.md"), filepath.Join(files, "memory", "link.md")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(outside, filepath.Join(files, "memory", "dirlink")); err != nil {
		t.Fatal(err)
	}
	if err := s.IndexFiles(ctx, files); err != nil {
		t.Fatal(err)
	}
	if p := found(t, s, "Miso cat"); len(p) != 1 || p[0] != "MEMORY.md" {
		t.Errorf("MEMORY.md: %v", p)
	}
	if p := found(t, s, "zebra release"); len(p) != 1 || p[0] != "memory/2026/june.md" {
		t.Errorf("nested file: %v", p)
	}
	for _, q := range []string{"hostsecret", "walrus"} {
		if p := found(t, s, q); len(p) != 0 {
			t.Errorf("%s indexed from %v", q, p)
		}
	}
	// Asking for the link directly is refused too.
	root, err := os.OpenRoot(files)
	if err != nil {
		t.Fatal(err)
	}
	defer root.Close()
	if err := s.IndexFile(ctx, root, "memory/dirlink/shadow.md"); err == nil {
		t.Error("IndexFile followed a directory link out of the root")
	}
	if p := found(t, s, "hostsecret"); len(p) != 0 {
		t.Errorf("hostsecret indexed from %v", p)
	}
	// Edits replace, removals delete.
	write(t, filepath.Join(files, "memory", "2026", "june.md"), "Shipped the yak release.")
	if err := os.Remove(filepath.Join(files, "MEMORY.md")); err != nil {
		t.Fatal(err)
	}
	if err := s.IndexFiles(ctx, files); err != nil {
		t.Fatal(err)
	}
	if p := found(t, s, "zebra Miso"); len(p) != 0 {
		t.Errorf("stale chunks: %v", p)
	}
	if p := found(t, s, "yak"); len(p) != 1 {
		t.Errorf("edited file: %v", p)
	}
}

func TestWatch(t *testing.T) {
	t.Parallel()
	s := testStore(t, Config{WatchInterval: Duration(20 * time.Millisecond), WatchDebounce: Duration(50 * time.Millisecond)})
	files := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Watch(ctx, files) }()
	defer func() { cancel(); <-done }()
	write(t, filepath.Join(files, "memory", "today.md"), "Met the otter team.")
	waitFor := func(q string, want int) {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for len(found(t, s, q)) != want {
			if time.Now().After(deadline) {
				t.Fatalf("%q: want %d hits, have %v", q, want, found(t, s, q))
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	waitFor("otter", 1)
	if err := os.Remove(filepath.Join(files, "memory", "today.md")); err != nil {
		t.Fatal(err)
	}
	waitFor("otter", 0)
}
