package sync

import (
	"bytes"
	"crypto/sha256"
	"io"
	"math/rand/v2"
	"testing"
)

func chunkAll(t *testing.T, data []byte, gear *[256]uint64) [][]byte {
	t.Helper()
	c := newChunker(bytes.NewReader(data), gear, nil)
	var out [][]byte
	for {
		ch, err := c.next()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, bytes.Clone(ch))
	}
}

func testGear(t *testing.T, seed byte) *[256]uint64 {
	k, err := deriveKeys(bytes.Repeat([]byte{seed}, KeySize))
	if err != nil {
		t.Fatal(err)
	}
	return &k.gear
}

func TestChunkerBounds(t *testing.T) {
	data := make([]byte, 24<<20)
	rand.NewChaCha8([32]byte{1}).Read(data)
	chunks := chunkAll(t, data, testGear(t, 1))
	var total int
	for i, c := range chunks {
		total += len(c)
		if len(c) > MaxChunkSize || len(c) < MinChunkSize && i != len(chunks)-1 {
			t.Fatalf("chunk %d has %d bytes, outside [%d, %d]", i, len(c), MinChunkSize, MaxChunkSize)
		}
	}
	if !bytes.Equal(bytes.Join(chunks, nil), data) {
		t.Fatal("chunks do not reassemble the input")
	}
	avg := total / len(chunks)
	if avg < AvgChunkSize/2 || avg > 2*AvgChunkSize {
		t.Fatalf("average chunk %d bytes over %d chunks, want about %d", avg, len(chunks), AvgChunkSize)
	}
	t.Logf("%d chunks, average %d KiB", len(chunks), avg>>10)

	// An insertion near the start changes only the chunks around it.
	edited := append(append(bytes.Clone(data[:3<<20]), "an insertion"...), data[3<<20:]...)
	after := chunkAll(t, edited, testGear(t, 1))
	seen := map[string]bool{}
	for _, c := range chunks {
		seen[string(c)] = true
	}
	changed := 0
	for _, c := range after {
		if !seen[string(c)] {
			changed++
		}
	}
	if changed > 2 {
		t.Fatalf("an insertion changed %d of %d chunks", changed, len(after))
	}

	// Another key cuts elsewhere, so chunk sizes do not fingerprint content
	// across repositories.
	other := chunkAll(t, data, testGear(t, 2))
	same := 0
	for _, c := range other {
		if seen[string(c)] {
			same++
		}
	}
	if same > len(other)/4 {
		t.Fatalf("%d of %d chunks identical under another key", same, len(other))
	}
}

func TestChunkerSmallAndEmpty(t *testing.T) {
	if got := chunkAll(t, nil, testGear(t, 1)); len(got) != 0 {
		t.Fatalf("empty input gave %d chunks", len(got))
	}
	got := chunkAll(t, []byte("tiny"), testGear(t, 1))
	if len(got) != 1 || string(got[0]) != "tiny" {
		t.Fatalf("tiny input gave %q", got)
	}
	// A small file leaves the buffer small; a large one grows it to the
	// limit, and the grown buffer serves the next file.
	small := newChunker(bytes.NewReader(make([]byte, 3000)), testGear(t, 1), nil)
	for _, err := small.next(); err == nil; _, err = small.next() {
	}
	if len(small.buf) != chunkerMinBuf {
		t.Fatalf("a 3000-byte file grew the buffer to %d bytes", len(small.buf))
	}
	large := newChunker(bytes.NewReader(make([]byte, 3*MaxChunkSize)), testGear(t, 1), small.buf)
	for _, err := large.next(); err == nil; _, err = large.next() {
	}
	if len(large.buf) != chunkerBufSize {
		t.Fatalf("a large file left the buffer at %d bytes, want %d", len(large.buf), chunkerBufSize)
	}
	if again := newChunker(nil, testGear(t, 1), large.buf); len(again.buf) != chunkerBufSize {
		t.Fatal("a grown buffer was not reused")
	}
}

// A reader that returns a few bytes per call must chunk the same way.
func TestChunkerShortReads(t *testing.T) {
	data := make([]byte, 9<<20)
	rand.NewChaCha8([32]byte{3}).Read(data)
	want := chunkAll(t, data, testGear(t, 1))
	c := newChunker(io.LimitReader(&trickle{data: data}, int64(len(data))), testGear(t, 1), nil)
	for i := 0; ; i++ {
		ch, err := c.next()
		if err == io.EOF {
			if i != len(want) {
				t.Fatalf("%d chunks, want %d", i, len(want))
			}
			return
		}
		if err != nil || !bytes.Equal(ch, want[i]) {
			t.Fatalf("chunk %d differs (err %v)", i, err)
		}
	}
}

type trickle struct{ data []byte }

func (r *trickle) Read(p []byte) (int, error) {
	if len(r.data) == 0 {
		return 0, io.EOF
	}
	n := copy(p[:min(len(p), 70001)], r.data)
	r.data = r.data[n:]
	return n, nil
}

// The blob id depends on the key: a tenant holding another key cannot probe
// whether a repository holds known content.
func TestBlobIDDependsOnKey(t *testing.T) {
	a, _ := deriveKeys(bytes.Repeat([]byte{1}, KeySize))
	b, _ := deriveKeys(bytes.Repeat([]byte{2}, KeySize))
	content := []byte("known content an attacker wants to find")
	if a.blobID(content) == b.blobID(content) {
		t.Fatal("two keys give the same blob id")
	}
	if a.blobID(content) != a.blobID(bytes.Clone(content)) {
		t.Fatal("blob id is not deterministic")
	}
	// A blob sealed under one key does not open under another, even given
	// the right id.
	id := a.blobID(content)
	sealed := a.sealBlob(id, content)
	if _, err := b.openBlob(id, sealed, uint32(len(content))); err == nil {
		t.Fatal("blob opened under another key")
	}
	if got, err := a.openBlob(id, sealed, uint32(len(content))); err != nil || !bytes.Equal(got, content) {
		t.Fatalf("blob round trip: %q, %v", got, err)
	}
	// Moving a sealed blob to another id is detected (AAD binds the id).
	if _, err := a.openBlob(a.blobID([]byte("other")), sealed, uint32(len(content))); err == nil {
		t.Fatal("blob opened under another id")
	}
}

func TestPackHeaderStandsAlone(t *testing.T) {
	k, _ := deriveKeys(bytes.Repeat([]byte{7}, KeySize))
	p := newPackBuilder(nil)
	var ids []ID
	for i := range 5 {
		plain := bytes.Repeat([]byte{byte(i)}, 1000*(i+1))
		id := k.blobID(plain)
		ids = append(ids, id)
		p.add(id, k.sealBlob(id, plain), len(plain))
	}
	data, packID := p.finish(k)
	entries, err := k.parsePackHeader(data, int64(len(data)))
	if err != nil {
		t.Fatal(err)
	}
	for i, e := range entries {
		if e.ID != ids[i] {
			t.Fatalf("entry %d id mismatch", i)
		}
		plain, err := k.openBlob(e.ID, data[e.Offset:e.Offset+e.Length], e.Raw)
		if err != nil || len(plain) != 1000*(i+1) {
			t.Fatalf("entry %d: %d bytes, %v", i, len(plain), err)
		}
	}
	if name := packName(packID); len(name) != len("data/xx/")+64 {
		t.Fatalf("pack name %q", name)
	}
	if id, ok := parsePackName(packName(packID)); !ok || id != packID {
		t.Fatal("pack name does not parse back")
	}
	// Truncation and a wrong key are errors, not panics.
	for _, cut := range []int{1, 5, len(data) / 2, len(data) - 3} {
		if _, err := k.parsePackHeader(data[:cut], int64(cut)); err == nil {
			t.Fatalf("truncated pack (%d bytes) parsed", cut)
		}
	}
	other, _ := deriveKeys(bytes.Repeat([]byte{8}, KeySize))
	if _, err := other.parsePackHeader(data, int64(len(data))); err == nil {
		t.Fatal("pack header opened under another key")
	}
}

// cutPointRef is the gear-hash cut search one byte at a time, as FastCDC
// describes it; cutPoint must find exactly the same cuts, so repositories
// written before it keep deduplicating.
func cutPointRef(data []byte, gear *[256]uint64) int {
	n := len(data)
	if n <= MinChunkSize {
		return n
	}
	n = min(n, MaxChunkSize)
	normal := min(AvgChunkSize, n)
	var fp uint64
	i := MinChunkSize
	for ; i < normal; i++ {
		fp = fp<<1 + gear[data[i]]
		if fp&maskStrict == 0 {
			return i + 1
		}
	}
	for ; i < n; i++ {
		fp = fp<<1 + gear[data[i]]
		if fp&maskLoose == 0 {
			return i + 1
		}
	}
	return n
}

func TestCutPointMatchesReference(t *testing.T) {
	random := make([]byte, 40<<20)
	rand.NewChaCha8([32]byte{5}).Read(random)
	// Low-entropy input cuts late or not at all: the loose mask and the
	// maximum size get exercised.
	text := bytes.Repeat([]byte("snapshot workspace chunk pack\n"), 1<<20)
	zeros := make([]byte, 9<<20)
	for _, seed := range []byte{1, 2, 3} {
		gear := testGear(t, seed)
		for name, data := range map[string][]byte{"random": random, "text": text, "zeros": zeros} {
			cuts := 0
			for off := 0; off < len(data); cuts++ {
				got, want := cutPoint(data[off:], gear), cutPointRef(data[off:], gear)
				if got != want {
					t.Fatalf("%s, key %d, offset %d: cut at %d, reference cuts at %d", name, seed, off, got, want)
				}
				off += want
			}
			// Every length around the size bounds, unaligned ends included.
			for _, n := range []int{MinChunkSize + 1, MinChunkSize + 3, AvgChunkSize - 1, AvgChunkSize + 2, MaxChunkSize - 1, MaxChunkSize + 5} {
				if n > len(data) {
					continue
				}
				if got, want := cutPoint(data[:n], gear), cutPointRef(data[:n], gear); got != want {
					t.Fatalf("%s, key %d, %d bytes: cut at %d, reference cuts at %d", name, seed, n, got, want)
				}
			}
		}
	}
}

// BenchmarkCutPoint compares the four-bytes-per-step search with the
// reference loop on incompressible data.
func BenchmarkCutPoint(b *testing.B) {
	data := make([]byte, 64<<20)
	rand.NewChaCha8([32]byte{7}).Read(data)
	k, _ := deriveKeys(bytes.Repeat([]byte{1}, KeySize))
	for _, bc := range []struct {
		name string
		cut  func([]byte, *[256]uint64) int
	}{{"reference", cutPointRef}, {"cutPoint", cutPoint}} {
		b.Run(bc.name, func(b *testing.B) {
			b.SetBytes(int64(len(data)))
			for b.Loop() {
				for d := data; len(d) > 0; {
					d = d[bc.cut(d, &k.gear):]
				}
			}
		})
	}
}

// A pack's id is the SHA-256 of its tail; packNameMatches also accepts the
// older whole-content hash and nothing else.
func TestPackNameMatches(t *testing.T) {
	k, _ := deriveKeys(bytes.Repeat([]byte{7}, KeySize))
	build := func(seed byte) ([]byte, ID) {
		p := newPackBuilder(nil)
		for i := range 3 {
			plain := bytes.Repeat([]byte{seed, byte(i)}, 5000)
			id := k.blobID(plain)
			p.add(id, k.sealBlob(id, plain), len(plain))
		}
		data, id := p.finish(k)
		return bytes.Clone(data), id
	}
	data, id := build(1)
	if !packNameMatches(data, id) {
		t.Fatal("a fresh pack does not match its id")
	}
	if !packNameMatches(data, sha256.Sum256(data)) {
		t.Fatal("the whole-content hash (older packs) is not accepted")
	}
	other, otherID := build(2)
	if packNameMatches(other, id) || packNameMatches(data, otherID) {
		t.Fatal("a pack matches another pack's id")
	}
	if again, againID := build(1); againID == id || packNameMatches(again, id) {
		t.Fatal("two packs of the same blobs share an id (the header nonce must make it unique)")
	}
	for _, off := range []int{len(data) - 1, len(data) - packTrailerSize - 1, len(data) - packTrailerSize - 20} {
		bad := bytes.Clone(data)
		bad[off] ^= 1
		if packNameMatches(bad, id) {
			t.Fatalf("flipped byte at %d of %d in the tail still matches", off, len(data))
		}
	}
	for _, cut := range []int{0, 3, len(data) - 1} {
		if packNameMatches(data[:cut], id) {
			t.Fatalf("pack cut to %d bytes matches", cut)
		}
	}
}
