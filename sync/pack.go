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
// A sealed blob is seal(flag byte || payload, aad "blob:"+id) where flag 0
// means the payload is the plaintext and 1 means it is zstd-compressed. The
// header plaintext is a uint32 LE count followed by count records of
// id (32 bytes) | sealed length (uint32 LE) | plaintext length (uint32 LE);
// blob offsets follow from the lengths. The object is named
// data/<first two hex digits>/<hex SHA-256 of the whole object>.
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
	zenc, _ = zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedFastest), zstd.WithEncoderConcurrency(1))
	zdec, _ = zstd.NewReader(nil, zstd.WithDecoderConcurrency(0), zstd.WithDecoderMaxMemory(1<<30))
	bufPool = gosync.Pool{New: func() any { return new([]byte) }}
)

// compressSample is how much of a blob is test-compressed to decide whether
// compressing the whole blob is worth it.
const compressSample = 32 << 10

// sealBlob compresses (when that saves space) and encrypts one blob.
// Incompressible data (media, archives, random) is recognised from a sample
// and stored as is, which saves most of the compression cost.
func (k *keys) sealBlob(id ID, plain []byte) []byte {
	bp := bufPool.Get().(*[]byte)
	z := (*bp)[:0]
	worth := true
	if len(plain) > 2*compressSample {
		sample := zenc.EncodeAll(plain[:compressSample], z)
		worth = len(sample) < compressSample*97/100
	}
	if worth {
		z = zenc.EncodeAll(plain, append(z[:0], 1))
	}
	if !worth || len(z) >= len(plain)+1 {
		z = append(z[:0], 0)
		z = append(z, plain...)
	}
	out := k.seal(make([]byte, 0, len(z)+sealOverhead), z, "blob:"+id.String())
	*bp = z
	bufPool.Put(bp)
	return out
}

// openBlob decrypts and decompresses one blob and checks that its content
// matches its id.
func (k *keys) openBlob(id ID, sealed []byte, raw uint32) ([]byte, error) {
	pt, err := k.open(sealed, "blob:"+id.String())
	if err != nil {
		return nil, err
	}
	if len(pt) == 0 {
		return nil, fmt.Errorf("%w: blob %s: empty payload", ErrCorrupt, id)
	}
	var plain []byte
	switch pt[0] {
	case 0:
		plain = pt[1:]
	case 1:
		plain, err = zdec.DecodeAll(pt[1:], make([]byte, 0, raw))
		if err != nil {
			return nil, fmt.Errorf("%w: blob %s: decompress: %v", ErrCorrupt, id, err)
		}
	default:
		return nil, fmt.Errorf("%w: blob %s: unknown encoding %d", ErrCorrupt, id, pt[0])
	}
	if uint32(len(plain)) != raw {
		return nil, fmt.Errorf("%w: blob %s: %d bytes, index says %d", ErrCorrupt, id, len(plain), raw)
	}
	if k.blobID(plain) != id {
		return nil, fmt.Errorf("%w: blob %s: content does not match its id", ErrCorrupt, id)
	}
	return plain, nil
}

// packBuilder accumulates sealed blobs into one pack. Its buffer comes from
// a pool sized for a full pack, so building a pack does not regrow it.
type packBuilder struct {
	buf     []byte
	entries []packEntry
	pooled  *[]byte
}

var packBufPool = gosync.Pool{New: func() any {
	b := make([]byte, 0, TargetPackSize+MaxChunkSize+1<<20)
	return &b
}}

func newPackBuilder() *packBuilder {
	bp := packBufPool.Get().(*[]byte)
	return &packBuilder{buf: (*bp)[:0], pooled: bp}
}

// release returns the buffer to the pool; the builder is unusable after.
func (p *packBuilder) release() {
	if p.pooled != nil && cap(p.buf) <= cap(*p.pooled)*2 {
		*p.pooled = p.buf[:0]
		packBufPool.Put(p.pooled)
	}
	p.buf, p.pooled = nil, nil
}

func (p *packBuilder) add(id ID, sealed []byte, raw int) {
	p.entries = append(p.entries, packEntry{ID: id, Offset: uint32(len(p.buf)), Length: uint32(len(sealed)), Raw: uint32(raw)})
	p.buf = append(p.buf, sealed...)
}

func (p *packBuilder) size() int { return len(p.buf) }

// finish appends the sealed header and trailer and returns the pack's bytes
// and id.
func (p *packBuilder) finish(k *keys) ([]byte, ID) {
	hdr := make([]byte, 4, 4+headerRecord*len(p.entries))
	binary.LittleEndian.PutUint32(hdr, uint32(len(p.entries)))
	for _, e := range p.entries {
		hdr = append(hdr, e.ID[:]...)
		hdr = binary.LittleEndian.AppendUint32(hdr, e.Length)
		hdr = binary.LittleEndian.AppendUint32(hdr, e.Raw)
	}
	sealed := k.seal(nil, hdr, "pack header")
	p.buf = append(p.buf, sealed...)
	p.buf = binary.LittleEndian.AppendUint32(p.buf, uint32(len(sealed)))
	p.buf = append(p.buf, packMagic...)
	return p.buf, sha256.Sum256(p.buf)
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
