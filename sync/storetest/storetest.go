package storetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	gosync "sync"
	"testing"
	"time"

	bsync "github.com/bulkhead-dev/bulkhead/sync"
)

// Run runs the suite. newStore must return an empty store each call.
func Run(t *testing.T, newStore func(t *testing.T) bsync.Store) {
	tests := []struct {
		name string
		fn   func(t *testing.T, s bsync.Store)
	}{
		{"PutGet", testPutGet},
		{"Overwrite", testOverwrite},
		{"Missing", testMissing},
		{"GetRange", testGetRange},
		{"List", testList},
		{"ListStop", testListStop},
		{"Delete", testDelete},
		{"PutIfAbsent", testPutIfAbsent},
		{"PutIfAbsentRace", testPutIfAbsentRace},
		{"InvalidNames", testInvalidNames},
		{"Cancelled", testCancelled},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { tc.fn(t, newStore(t)) })
	}
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return c
}

func put(t *testing.T, s bsync.Store, name string, data []byte) {
	t.Helper()
	if err := s.Put(ctx(t), name, bytes.NewReader(data), int64(len(data))); err != nil {
		t.Fatalf("put %s: %v", name, err)
	}
}

func get(t *testing.T, s bsync.Store, name string) []byte {
	t.Helper()
	rc, err := s.Get(ctx(t), name)
	if err != nil {
		t.Fatalf("get %s: %v", name, err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatalf("read %s: %v", name, err)
	}
	return b
}

func pattern(n int, seed byte) []byte {
	b := make([]byte, n)
	x := uint32(seed) + 1
	for i := range b {
		x = x*1664525 + 1013904223
		b[i] = byte(x >> 24)
	}
	return b
}

func testPutGet(t *testing.T, s bsync.Store) {
	for _, n := range []int{0, 1, 4096, 5<<20 + 3} {
		name := fmt.Sprintf("data/ab/obj-%d", n)
		want := pattern(n, byte(n))
		put(t, s, name, want)
		if got := get(t, s, name); !bytes.Equal(got, want) {
			t.Fatalf("%s: got %d bytes, want %d (content differs)", name, len(got), len(want))
		}
		fi, err := s.Stat(ctx(t), name)
		if err != nil {
			t.Fatalf("stat %s: %v", name, err)
		}
		if fi.Size != int64(n) || fi.Name != name {
			t.Fatalf("stat %s = %+v, want size %d", name, fi, n)
		}
		if d := time.Since(fi.ModTime); d < -time.Minute || d > time.Hour {
			t.Fatalf("stat %s: modtime %v is not recent", name, fi.ModTime)
		}
	}
}

func testOverwrite(t *testing.T, s bsync.Store) {
	put(t, s, "config", []byte("first version, longer"))
	put(t, s, "config", []byte("second"))
	if got := string(get(t, s, "config")); got != "second" {
		t.Fatalf("after overwrite got %q", got)
	}
}

func testMissing(t *testing.T, s bsync.Store) {
	if _, err := s.Get(ctx(t), "nope/missing"); !errors.Is(err, bsync.ErrNotFound) {
		t.Fatalf("get missing: %v, want ErrNotFound", err)
	}
	if _, err := s.GetRange(ctx(t), "nope/missing", 10, 5); !errors.Is(err, bsync.ErrNotFound) {
		t.Fatalf("get range missing: %v, want ErrNotFound", err)
	}
	if _, err := s.Stat(ctx(t), "nope/missing"); !errors.Is(err, bsync.ErrNotFound) {
		t.Fatalf("stat missing: %v, want ErrNotFound", err)
	}
	// A "directory" made by a deeper name is not an object.
	put(t, s, "dir/child", []byte("x"))
	if _, err := s.Stat(ctx(t), "dir"); !errors.Is(err, bsync.ErrNotFound) {
		t.Fatalf("stat of a name prefix: %v, want ErrNotFound", err)
	}
}

func testGetRange(t *testing.T, s bsync.Store) {
	data := pattern(100_000, 7)
	put(t, s, "r", data)
	cases := []struct{ off, n int64 }{{0, 1}, {0, 100_000}, {99_999, 1}, {1234, 5678}, {50_000, -1}, {0, -1}, {17, 0}}
	for _, c := range cases {
		rc, err := s.GetRange(ctx(t), "r", c.off, c.n)
		if err != nil {
			t.Fatalf("range %d+%d: %v", c.off, c.n, err)
		}
		got, err := io.ReadAll(rc)
		rc.Close()
		if err != nil {
			t.Fatalf("read range %d+%d: %v", c.off, c.n, err)
		}
		end := int64(len(data))
		if c.n >= 0 {
			end = c.off + c.n
		}
		if !bytes.Equal(got, data[c.off:end]) {
			t.Fatalf("range %d+%d: got %d bytes, want %d", c.off, c.n, len(got), end-c.off)
		}
	}
}

func names(t *testing.T, s bsync.Store, prefix string) []string {
	t.Helper()
	var out []string
	err := s.List(ctx(t), prefix, func(fi bsync.ObjectInfo) error {
		out = append(out, fi.Name)
		if fi.Size != int64(len(fi.Name)) {
			return fmt.Errorf("%s: size %d, want %d", fi.Name, fi.Size, len(fi.Name))
		}
		return nil
	})
	if err != nil {
		t.Fatalf("list %q: %v", prefix, err)
	}
	slices.Sort(out)
	return out
}

func testList(t *testing.T, s bsync.Store) {
	all := []string{"config", "data/00/aa", "data/00/ab", "data/ff/cc", "index/1", "index/2", "snapshots/x"}
	for _, n := range all {
		put(t, s, n, []byte(n))
	}
	check := func(prefix string, want []string) {
		t.Helper()
		if got := names(t, s, prefix); !slices.Equal(got, want) {
			t.Fatalf("list %q = %v, want %v", prefix, got, want)
		}
	}
	check("", all)
	check("data/", []string{"data/00/aa", "data/00/ab", "data/ff/cc"})
	check("data/00/a", []string{"data/00/aa", "data/00/ab"})
	check("index", []string{"index/1", "index/2"})
	check("locks/", nil)
	check("zzz", nil)
}

func testListStop(t *testing.T, s bsync.Store) {
	for i := range 5 {
		put(t, s, fmt.Sprintf("k/%d", i), []byte("v"))
	}
	stop := errors.New("stop here")
	calls := 0
	err := s.List(ctx(t), "k/", func(bsync.ObjectInfo) error { calls++; return stop })
	if !errors.Is(err, stop) || calls != 1 {
		t.Fatalf("list with failing callback: err %v after %d calls, want the callback's error after 1", err, calls)
	}
}

func testDelete(t *testing.T, s bsync.Store) {
	put(t, s, "d/x", []byte("1"))
	if err := s.Delete(ctx(t), "d/x"); err != nil {
		t.Fatalf("delete: %v", err)
	}
	if _, err := s.Stat(ctx(t), "d/x"); !errors.Is(err, bsync.ErrNotFound) {
		t.Fatalf("stat after delete: %v", err)
	}
	if err := s.Delete(ctx(t), "d/x"); err != nil {
		t.Fatalf("delete missing: %v, want nil", err)
	}
	if got := names(t, s, "d/"); len(got) != 0 {
		t.Fatalf("list after delete: %v", got)
	}
}

func testPutIfAbsent(t *testing.T, s bsync.Store) {
	if err := s.PutIfAbsent(ctx(t), "locks/a", bytes.NewReader([]byte("one")), 3); err != nil {
		t.Fatalf("first create: %v", err)
	}
	err := s.PutIfAbsent(ctx(t), "locks/a", bytes.NewReader([]byte("two")), 3)
	if !errors.Is(err, bsync.ErrExists) {
		t.Fatalf("second create: %v, want ErrExists", err)
	}
	if got := string(get(t, s, "locks/a")); got != "one" {
		t.Fatalf("content after refused create = %q, want %q", got, "one")
	}
}

func testPutIfAbsentRace(t *testing.T, s bsync.Store) {
	const n = 8
	var wg gosync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() {
			b := []byte{byte('0' + i)}
			errs[i] = s.PutIfAbsent(ctx(t), "locks/race", bytes.NewReader(b), 1)
		})
	}
	wg.Wait()
	won := -1
	for i, err := range errs {
		switch {
		case err == nil && won >= 0:
			t.Fatalf("both %d and %d created the object", won, i)
		case err == nil:
			won = i
		case !errors.Is(err, bsync.ErrExists):
			t.Fatalf("racer %d: %v", i, err)
		}
	}
	if won < 0 {
		t.Fatal("no racer created the object")
	}
	if got := get(t, s, "locks/race"); len(got) != 1 || got[0] != byte('0'+won) {
		t.Fatalf("object holds %q, winner wrote %q", got, string(rune('0'+won)))
	}
}

func testInvalidNames(t *testing.T, s bsync.Store) {
	for _, name := range []string{"", "/abs", "a/../b", "..", "a//b", "a/", "sp ace", "new\nline"} {
		err := s.Put(ctx(t), name, bytes.NewReader(nil), 0)
		if !errors.Is(err, bsync.ErrInvalidName) {
			t.Errorf("put %q: %v, want ErrInvalidName", name, err)
		}
	}
}

func testCancelled(t *testing.T, s bsync.Store) {
	c, cancel := context.WithCancel(context.Background())
	cancel()
	data := pattern(1<<20, 3)
	if err := s.Put(c, "cancelled", bytes.NewReader(data), int64(len(data))); err == nil {
		t.Fatal("put with a cancelled context succeeded")
	}
	if _, err := s.Stat(ctx(t), "cancelled"); !errors.Is(err, bsync.ErrNotFound) {
		t.Fatalf("a cancelled put left an object: %v", err)
	}
}
