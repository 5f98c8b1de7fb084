package sync

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"math/rand/v2"
	gosync "sync"
	"sync/atomic"
	"testing"
	"time"
)

// fakeStore is a Store made of function fields; unset methods fail.
type fakeStore struct {
	put func(ctx context.Context, name string, r io.Reader, size int64) error
}

var errFake = errors.New("fake store: not implemented")

func (f *fakeStore) Put(ctx context.Context, name string, r io.Reader, size int64) error {
	return f.put(ctx, name, r, size)
}
func (f *fakeStore) PutIfAbsent(context.Context, string, io.Reader, int64) error { return errFake }
func (f *fakeStore) Get(context.Context, string) (io.ReadCloser, error)          { return nil, errFake }
func (f *fakeStore) GetRange(context.Context, string, int64, int64) (io.ReadCloser, error) {
	return nil, errFake
}
func (f *fakeStore) Stat(context.Context, string) (ObjectInfo, error) { return ObjectInfo{}, errFake }
func (f *fakeStore) List(context.Context, string, func(ObjectInfo) error) error {
	return errFake
}
func (f *fakeStore) Delete(context.Context, string) error { return errFake }

// gatedPuts holds every pack upload until release is closed (or fails it
// with failWith), recording how many run at once.
type gatedPuts struct {
	release  chan struct{}
	failWith error

	mu                gosync.Mutex
	inFlight, maxSeen int
	packs             map[string][]byte
}

func (g *gatedPuts) put(ctx context.Context, name string, r io.Reader, size int64) error {
	g.mu.Lock()
	g.inFlight++
	g.maxSeen = max(g.maxSeen, g.inFlight)
	g.mu.Unlock()
	defer func() {
		g.mu.Lock()
		g.inFlight--
		g.mu.Unlock()
	}()
	select {
	case <-g.release:
	case <-ctx.Done():
		return ctx.Err()
	}
	if g.failWith != nil {
		return g.failWith
	}
	b, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	if int64(len(b)) != size {
		return errors.New("short pack")
	}
	g.mu.Lock()
	g.packs[name] = b
	g.mu.Unlock()
	return nil
}

func (g *gatedPuts) running() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.inFlight
}

// testUploader returns an uploader over a store whose pack uploads wait on
// the gate.
func testUploader(t *testing.T, g *gatedPuts) *uploader {
	t.Helper()
	k, err := deriveKeys(bytes.Repeat([]byte{9}, KeySize))
	if err != nil {
		t.Fatal(err)
	}
	r := newRepository(&fakeStore{put: g.put}, k, "test", Options{})
	return r.newUploader(t.Context(), new(atomic.Int64))
}

// addBlobs adds n distinct incompressible 4 MiB blobs, counting those
// accepted, and returns the first error.
func addBlobs(u *uploader, n int, added *atomic.Int64) error {
	blob := make([]byte, MaxChunkSize)
	rand.NewChaCha8([32]byte{4}).Read(blob)
	var scratch []byte
	for i := range n {
		binary.LittleEndian.PutUint64(blob, uint64(i)) // a new id each time
		if _, err := u.add(blob, &scratch); err != nil {
			return err
		}
		added.Add(1)
	}
	return nil
}

// waitStalled waits until every upload slot is taken and then until added
// stops moving for a while (or reaches n).
func waitStalled(t *testing.T, g *gatedPuts, added *atomic.Int64, n int64) int64 {
	t.Helper()
	last, since := added.Load(), time.Now()
	for deadline := time.Now().Add(120 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		cur := added.Load()
		if cur == n {
			return cur
		}
		if cur != last || g.running() < uploadConcurrency {
			last, since = cur, time.Now()
		} else if time.Since(since) > 500*time.Millisecond {
			return cur
		}
	}
	t.Fatal("adds neither finished nor stalled in 120 s")
	return 0
}

// While uploads are slow, callers of add stop once every pack buffer is
// full: memory stays bounded however large the backup. Once uploads move,
// every blob ends up in exactly one uploaded pack that opens.
func TestUploaderBoundsPacksInFlight(t *testing.T) {
	t.Parallel()
	g := &gatedPuts{release: make(chan struct{}), packs: map[string][]byte{}}
	u := testUploader(t, g)
	const n = 48 // 192 MiB: far more than the buffers hold
	var added atomic.Int64
	errc := make(chan error, 1)
	go func() { errc <- addBlobs(u, n, &added) }()

	stalled := waitStalled(t, g, &added, n)
	// Each buffer holds a pack of TargetPackSize plus at most one blob.
	bound := int64(packBuffers * (TargetPackSize/MaxChunkSize + 1))
	if stalled == n || stalled > bound {
		t.Fatalf("%d of %d blobs accepted while no upload finished; want at most %d", stalled, n, bound)
	}
	if got := g.running(); got != uploadConcurrency {
		t.Fatalf("%d uploads running, want %d", got, uploadConcurrency)
	}

	close(g.release)
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	packs, err := u.finish()
	if err != nil {
		t.Fatal(err)
	}
	if g.maxSeen > uploadConcurrency {
		t.Fatalf("%d uploads ran at once, limit %d", g.maxSeen, uploadConcurrency)
	}
	seen := map[ID]bool{}
	for _, p := range packs {
		data := g.packs[packName(p.ID)]
		if data == nil {
			t.Fatalf("pack %s indexed but not uploaded", p.ID)
		}
		entries, err := u.r.keys.parsePackHeader(data, int64(len(data)))
		if err != nil || len(entries) != len(p.Blobs) {
			t.Fatalf("pack %s: %d header entries, %d indexed, %v", p.ID, len(entries), len(p.Blobs), err)
		}
		for _, e := range entries {
			if seen[e.ID] {
				t.Fatalf("blob %s stored twice", e.ID)
			}
			seen[e.ID] = true
			if _, err := u.r.keys.openBlob(e.ID, data[e.Offset:e.Offset+e.Length], e.Raw); err != nil {
				t.Fatal(err)
			}
		}
	}
	if len(seen) != n || len(g.packs) != len(packs) {
		t.Fatalf("%d blobs in %d indexed packs (%d uploaded), want %d blobs", len(seen), len(packs), len(g.packs), n)
	}
}

// A failed upload stops the callers waiting for a buffer and fails finish:
// nothing is reported as written.
func TestUploaderFailedUploadReleasesCallers(t *testing.T) {
	t.Parallel()
	injected := errors.New("injected upload failure")
	g := &gatedPuts{release: make(chan struct{}), failWith: injected, packs: map[string][]byte{}}
	u := testUploader(t, g)
	var added atomic.Int64
	errc := make(chan error, 1)
	go func() { errc <- addBlobs(u, 48, &added) }()
	waitStalled(t, g, &added, 48)

	close(g.release) // every upload now fails
	select {
	case err := <-errc:
		if !errors.Is(err, injected) {
			t.Fatalf("add after a failed upload: %v, want the upload's error", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("add still blocked after the uploads failed")
	}
	packs, err := u.finish()
	if !errors.Is(err, injected) || packs != nil {
		t.Fatalf("finish: %d packs, %v; want none and the upload's error", len(packs), err)
	}
}
