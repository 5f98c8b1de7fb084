package sync

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	gosync "sync"

	"github.com/klauspost/compress/zstd"
)

// Pack layout:
//
//	sealed blob 0 | sealed blob 1 | … | sealed header | uint32 LE header length | "BHPACK01"
//
// A sealed blob is enc || seal(payload, aad "blob:<id>:<enc>") where enc 0
// means the payload is the plaintext and 1 means it is zstd-compressed (the
// encoding byte is in the clear but authenticated through the AAD). The
// header plaintext is a uint32 LE count followed by count records of
// id (32 bytes) | sealed length (uint32 LE) | plaintext length (uint32 LE);
// blob offsets follow from the lengths.
//
// The object is named data/<first two hex digits>/<hex pack id>, the id
// being the SHA-256 of the pack's tail: sealed header, header length and
// magic. The header's random nonce makes the id unique; the header is
// authenticated and lists every blob by id and length, and every blob is
// authenticated under its id, so the tail commits to the whole pack under
// the key without a second pass over every byte. Packs written before this
// rule are named by the SHA-256 of the whole object; verify accepts both.
const (
	packMagic       = "BHPACK01"
	packTrailerSize = 4 + len(packMagic)
	headerRecord    = 32 + 4 + 4
	// TargetPackSize is the size at which a pack is closed and uploaded.
	TargetPackSize = 16 << 20
)

// blobLoc says where a blob lives.
type blobLoc struct {
	Pack   ID
	Offset uint32
	Length uint32 // sealed length
	Raw    uint32 // plaintext length
}

// packEntry is one blob in a pack header.
type packEntry struct {
	ID     ID     `json:"id"`
	Offset uint32 `json:"off"`
	Length uint32 `json:"len"`
	Raw    uint32 `json:"raw"`
}

func packName(id ID) string {
	h := id.String()
	return "data/" + h[:2] + "/" + h
}

func parsePackName(name string) (ID, bool) {
	var id ID
	if len(name) != len("data/xx/")+64 || name[:5] != "data/" || name[7] != '/' || name[5:7] != name[8:10] {
		return id, false
	}
	if _, err := hex.Decode(id[:], []byte(name[8:])); err != nil {
		return id, false
	}
	return id, true
}

var (
	// One encoder state per concurrent reader: EncodeAll waits for a free
	// one. No frame checksum: AES-GCM and the blob id already authenticate
	// every byte. A window of an average chunk instead of the default 8 MiB
	// compresses a blob of up to that size exactly as well and a quarter to
	// a third faster here (less history memory to fill and fault in).
	zenc, _ = zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedFastest),
		zstd.WithEncoderConcurrency(fileReaders), zstd.WithEncoderCRC(false),
		zstd.WithWindowSize(AvgChunkSize))
	zdec, _ = zstd.NewReader(nil, zstd.WithDecoderConcurrency(0), zstd.WithDecoderMaxMemory(1<<30))
)

// compressSample is how much of a blob is test-compressed to decide whether
// compressing the whole blob is worth it.
const compressSample = 32 << 10

// Blob encodings, stored in the clear as the sealed blob's first byte and
// bound to it through the AAD.
const (
	encRaw  = 0
	encZstd = 1
)

// encodeBlob returns the payload to seal and its encoding: plain itself
// (no copy) when compression would not pay, else zstd output written into
// *scratch, which keeps the largest buffer used so the next call does not
// allocate. Incompressible data (media, archives, random) is recognised from
// a sample, which saves most of the compression cost.
func encodeBlob(plain []byte, scratch *[]byte) ([]byte, byte) {
	if cap(*scratch) < len(plain)+len(plain)/64+64 {
		// zstd's worst case is a little over the input; sized once, the
		// buffer is only touched as far as output is written.
		*scratch = make([]byte, 0, max(len(plain), MaxChunkSize)+MaxChunkSize/64+64)
	}
	if len(plain) > 2*compressSample {
		sample := zenc.EncodeAll(plain[:compressSample], (*scratch)[:0])
		if len(sample) >= compressSample*97/100 {
			return plain, encRaw
		}
	}
	z := zenc.EncodeAll(plain, (*scratch)[:0])
	if cap(z) > cap(*scratch) {
		*scratch = z[:0]
	}
	if len(z) >= len(plain) {
		return plain, encRaw
	}
	return z, encZstd
}

func blobAAD(id ID, enc byte) string { return fmt.Sprintf("blob:%s:%d", id, enc) }

// sealedBlobSize is the stored size of a payload.
func sealedBlobSize(payload int) int { return 1 + sealOverhead + payload }

// sealBlobInto writes enc || seal(payload) into dst, which must have exactly
// sealedBlobSize(len(payload)) bytes of length.
func (k *keys) sealBlobInto(dst []byte, id ID, payload []byte, enc byte) {
	dst[0] = enc
	out := k.seal(dst[1:1:len(dst)], payload, blobAAD(id, enc))
	if len(out) != len(dst)-1 || &out[0] != &dst[1] {
		panic("sync: sealed blob does not fit its slot")
	}
}

// sealBlob compresses (when that saves space) and encrypts one blob into a
// new slice.
func (k *keys) sealBlob(id ID, plain []byte) []byte {
	var scratch []byte
	payload, enc := encodeBlob(plain, &scratch)
	out := make([]byte, sealedBlobSize(len(payload)))
	k.sealBlobInto(out, id, payload, enc)
	return out
}

// openBlob decrypts and decompresses one blob and checks that its content
// matches its id.
func (k *keys) openBlob(id ID, sealed []byte, raw uint32) ([]byte, error) {
	if len(sealed) < 1 {
		return nil, fmt.Errorf("%w: blob %s: empty", ErrCorrupt, id)
	}
	enc := sealed[0]
	pt, err := k.open(sealed[1:], blobAAD(id, enc))
	if err != nil {
		return nil, err
	}
	var plain []byte
	switch enc {
	case encRaw:
		plain = pt
	case encZstd:
		plain, err = zdec.DecodeAll(pt, make([]byte, 0, raw))
		if err != nil {
			return nil, fmt.Errorf("%w: blob %s: decompress: %v", ErrCorrupt, id, err)
		}
	default:
		return nil, fmt.Errorf("%w: blob %s: unknown encoding %d", ErrCorrupt, id, enc)
	}
	if uint32(len(plain)) != raw {
		return nil, fmt.Errorf("%w: blob %s: %d bytes, index says %d", ErrCorrupt, id, len(plain), raw)
	}
	if k.blobID(plain) != id {
		return nil, fmt.Errorf("%w: blob %s: content does not match its id", ErrCorrupt, id)
	}
	return plain, nil
}

// packBuilder accumulates sealed blobs into one pack. Its buffer is sized
// for a full pack plus one blob and never grows while blobs go in, so
// callers can seal into reserved slots of it concurrently; finish waits for
// them.
type packBuilder struct {
	buf     []byte
	entries []packEntry
	writers gosync.WaitGroup
}

// packBufCap: a pack closes once it reaches TargetPackSize, so it never holds
// more than that plus one blob (raw, at worst), plus its header and trailer.
const packBufCap = TargetPackSize + MaxChunkSize + 1 + sealOverhead + 64<<10

// newPackBuilder starts a pack in buf (reused from an earlier pack), or in
// a new buffer when buf is nil.
func newPackBuilder(buf []byte) *packBuilder {
	if cap(buf) < packBufCap {
		buf = make([]byte, 0, packBufCap)
		adviseHugePages(buf) // advice: failure only costs speed
	}
	return &packBuilder{buf: buf[:0]}
}

// release returns the pack's buffer for reuse; the builder keeps its
// entries but not its data.
func (p *packBuilder) release() []byte {
	buf := p.buf[:0]
	p.buf = nil
	return buf
}

// reserve appends an entry for a blob of n sealed bytes and returns its
// slot. The caller fills the slot and calls p.writers.Done. Callers
// serialise reserve; filling slots may overlap.
func (p *packBuilder) reserve(id ID, n, raw int) []byte {
	off := len(p.buf)
	if off+n > cap(p.buf) {
		panic("sync: pack buffer overflow")
	}
	p.entries = append(p.entries, packEntry{ID: id, Offset: uint32(off), Length: uint32(n), Raw: uint32(raw)})
	p.buf = p.buf[:off+n]
	p.writers.Add(1)
	return p.buf[off : off+n : off+n]
}

// add copies an already sealed blob in.
func (p *packBuilder) add(id ID, sealed []byte, raw int) {
	copy(p.reserve(id, len(sealed), raw), sealed)
	p.writers.Done()
}

func (p *packBuilder) size() int { return len(p.buf) }

// finish appends the sealed header and trailer and returns the pack's bytes
// and id.
func (p *packBuilder) finish(k *keys) ([]byte, ID) {
	p.writers.Wait()
	hdr := make([]byte, 4, 4+headerRecord*len(p.entries))
	binary.LittleEndian.PutUint32(hdr, uint32(len(p.entries)))
	for _, e := range p.entries {
		hdr = append(hdr, e.ID[:]...)
		hdr = binary.LittleEndian.AppendUint32(hdr, e.Length)
		hdr = binary.LittleEndian.AppendUint32(hdr, e.Raw)
	}
	sealed := k.seal(nil, hdr, "pack header")
	tail := len(p.buf)
	p.buf = append(p.buf, sealed...)
	p.buf = binary.LittleEndian.AppendUint32(p.buf, uint32(len(sealed)))
	p.buf = append(p.buf, packMagic...)
	return p.buf, sha256.Sum256(p.buf[tail:])
}

// packNameMatches reports whether a whole pack's content matches its id:
// the SHA-256 of its tail, or for packs from before that rule, of all of it.
func packNameMatches(data []byte, id ID) bool {
	if len(data) >= packTrailerSize && string(data[len(data)-len(packMagic):]) == packMagic {
		hlen := int(binary.LittleEndian.Uint32(data[len(data)-packTrailerSize:]))
		if hlen <= len(data)-packTrailerSize && sha256.Sum256(data[len(data)-packTrailerSize-hlen:]) == id {
			return true
		}
	}
	return sha256.Sum256(data) == id
}

// parsePackHeader reads the blob list from a whole pack (or from its tail:
// tail must end where the pack ends and packSize is the full size).
func (k *keys) parsePackHeader(tail []byte, packSize int64) ([]packEntry, error) {
	if len(tail) < packTrailerSize || string(tail[len(tail)-len(packMagic):]) != packMagic {
		return nil, fmt.Errorf("%w: pack trailer missing", ErrCorrupt)
	}
	hlen := int64(binary.LittleEndian.Uint32(tail[len(tail)-packTrailerSize:]))
	if hlen > int64(len(tail)-packTrailerSize) || hlen > packSize-int64(packTrailerSize) {
		return nil, fmt.Errorf("%w: pack header length %d out of range", ErrCorrupt, hlen)
	}
	hstart := len(tail) - packTrailerSize - int(hlen)
	hdr, err := k.open(tail[hstart:len(tail)-packTrailerSize], "pack header")
	if err != nil {
		return nil, err
	}
	if len(hdr) < 4 {
		return nil, fmt.Errorf("%w: pack header too short", ErrCorrupt)
	}
	n := int(binary.LittleEndian.Uint32(hdr))
	if len(hdr) != 4+n*headerRecord {
		return nil, fmt.Errorf("%w: pack header holds %d bytes for %d blobs", ErrCorrupt, len(hdr), n)
	}
	dataEnd := packSize - int64(packTrailerSize) - hlen
	entries := make([]packEntry, n)
	var off int64
	for i := range entries {
		rec := hdr[4+i*headerRecord:]
		e := &entries[i]
		copy(e.ID[:], rec[:32])
		e.Offset = uint32(off)
		e.Length = binary.LittleEndian.Uint32(rec[32:])
		e.Raw = binary.LittleEndian.Uint32(rec[36:])
		off += int64(e.Length)
		if off > dataEnd || e.Raw > MaxChunkSize {
			return nil, fmt.Errorf("%w: pack header entry %d out of range", ErrCorrupt, i)
		}
	}
	if off != dataEnd {
		return nil, fmt.Errorf("%w: pack header covers %d of %d data bytes", ErrCorrupt, off, dataEnd)
	}
	return entries, nil
}
