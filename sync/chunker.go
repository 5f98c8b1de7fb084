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

// chunker splits a stream into content-defined chunks.
type chunker struct {
	r          io.Reader
	gear       *[256]uint64
	buf        []byte
	start, end int // unconsumed bytes are buf[start:end]
	eof        bool
}

func newChunker(r io.Reader, gear *[256]uint64, buf []byte) *chunker {
	if cap(buf) < 2*MaxChunkSize {
		buf = make([]byte, 2*MaxChunkSize)
	}
	return &chunker{r: r, gear: gear, buf: buf[:cap(buf)]}
}

// next returns the next chunk, valid until the following call, or io.EOF.
func (c *chunker) next() ([]byte, error) {
	if c.end-c.start < MaxChunkSize && !c.eof {
		copy(c.buf, c.buf[c.start:c.end])
		c.end -= c.start
		c.start = 0
		for c.end < len(c.buf) && !c.eof {
			n, err := c.r.Read(c.buf[c.end:])
			c.end += n
			if errors.Is(err, io.EOF) {
				c.eof = true
			} else if err != nil {
				return nil, err
			}
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
	n := len(data)
	if n <= MinChunkSize {
		return n
	}
	if n > MaxChunkSize {
		n = MaxChunkSize
	}
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
