package sync

import (
	"errors"
	"io"
)

// Chunk size bounds. Content-defined cut points make an insertion shift only
// the chunks around it, so the rest still dedup.
const (
	MinChunkSize = 256 << 10
	AvgChunkSize = 1 << 20
	MaxChunkSize = 4 << 20
)

// FastCDC (Xia et al., 2016) with normalized chunking: a gear hash rolls over
// the bytes; a cut is made where its top bits are zero. Between the minimum
// and the average size a stricter mask (2 more bits) applies, past the average
// a looser one (2 fewer), which pulls chunk sizes towards the average.
const (
	maskStrict = ((1 << 22) - 1) << (64 - 22)
	maskLoose  = ((1 << 18) - 1) << (64 - 18)
)

// Chunker buffer sizes. A chunker reads ahead up to a maximal chunk beyond
// the one it cuts, so a refill moves at most MaxChunkSize bytes. Its buffer
// starts small and grows to full size only when a file needs more: touching
// fresh memory costs a page fault per 4 KiB (fewer with huge pages, which
// only the full-size buffer gets), more than reading a small file does.
const (
	chunkerBufSize = 2 * MaxChunkSize
	chunkerMinBuf  = 64 << 10
)

// chunker splits a stream into content-defined chunks.
type chunker struct {
	r          io.Reader
	gear       *[256]uint64
	buf        []byte
	start, end int // unconsumed bytes are buf[start:end]
	eof        bool
}

// newChunker returns a chunker reading r into buf (grown when needed; the
// chunker's buf field holds the buffer it ends up with).
func newChunker(r io.Reader, gear *[256]uint64, buf []byte) *chunker {
	if cap(buf) < chunkerMinBuf {
		buf = make([]byte, chunkerMinBuf)
	}
	return &chunker{r: r, gear: gear, buf: buf[:cap(buf)]}
}

// fill moves the unconsumed bytes to the front of the buffer and reads
// until the buffer is full, at its largest, or the stream ends.
func (c *chunker) fill() error {
	copy(c.buf, c.buf[c.start:c.end])
	c.end -= c.start
	c.start = 0
	for !c.eof {
		if c.end == len(c.buf) {
			if len(c.buf) >= chunkerBufSize {
				return nil
			}
			grown := make([]byte, chunkerBufSize)
			adviseHugePages(grown) // advice: failure only costs speed
			copy(grown, c.buf[:c.end])
			c.buf = grown
		}
		n, err := c.r.Read(c.buf[c.end:])
		c.end += n
		if errors.Is(err, io.EOF) {
			c.eof = true
		} else if err != nil {
			return err
		}
	}
	return nil
}

// next returns the next chunk, valid until the following call, or io.EOF.
func (c *chunker) next() ([]byte, error) {
	if c.end-c.start < MaxChunkSize && !c.eof {
		if err := c.fill(); err != nil {
			return nil, err
		}
	}
	if c.start == c.end {
		return nil, io.EOF
	}
	n := cutPoint(c.buf[c.start:c.end], c.gear)
	chunk := c.buf[c.start : c.start+n]
	c.start += n
	return chunk, nil
}

// cutPoint returns the length of the first chunk of data.
func cutPoint(data []byte, gear *[256]uint64) int {
	if len(data) <= MinChunkSize {
		return len(data)
	}
	data = data[:min(len(data), MaxChunkSize)]
	normal := min(AvgChunkSize, len(data))
	fp, n := rollGear(data[:normal], MinChunkSize, 0, gear, maskStrict)
	if n < 0 {
		_, n = rollGear(data, normal, fp, gear, maskLoose)
	}
	if n < 0 {
		return len(data)
	}
	return n
}

// rollGear rolls the gear hash fp over data[from:] and returns it and the
// length of the prefix of data ending at the first byte where fp&mask is
// zero, or -1 if there is none.
//
// It is the loop "fp = fp<<1 + gear[b]; if fp&mask == 0 { cut }" with four
// bytes per step: every fingerprint is still checked, but each one is
// computed from the fingerprint four bytes back, not one, which shortens
// the chain of dependent instructions the CPU waits on about twofold.
func rollGear(data []byte, from int, fp uint64, gear *[256]uint64, mask uint64) (uint64, int) {
	i := from
	for ; i+4 <= len(data); i += 4 {
		b := data[i : i+4 : i+4]
		g0, g1, g2, g3 := gear[b[0]], gear[b[1]], gear[b[2]], gear[b[3]]
		f0 := fp<<1 + g0
		f1 := fp<<2 + (g0<<1 + g1)
		f2 := f0<<2 + (g1<<1 + g2)
		fp = f1<<2 + (g2<<1 + g3)
		switch {
		case f0&mask == 0:
			return f0, i + 1
		case f1&mask == 0:
			return f1, i + 2
		case f2&mask == 0:
			return f2, i + 3
		case fp&mask == 0:
			return fp, i + 4
		}
	}
	for ; i < len(data); i++ {
		fp = fp<<1 + gear[data[i]]
		if fp&mask == 0 {
			return fp, i + 1
		}
	}
	return fp, -1
}
