package vectors

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"hash/crc32"
	"io"
	"math"
	"os"
	"path/filepath"
)

// FileName is the name SaveFile writes inside its directory.
const FileName = "vectors.idx"

const (
	fileMagic   = "BHVECIDX"
	fileVersion = 1
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// The file format, all integers little-endian:
//
//	magic "BHVECIDX", version u32
//	dim, metric, exactThreshold, M, efConstruction, efSearch u32
//	maxTombstoneRatio f64, seed u64
//	level generator state: length u32, bytes
//	slots u32, graph u8; in graph mode entry u32, maxLevel u32
//	per slot: [graph: dead u8] idLen u32, id, dim x f32,
//	          [graph: level u8, per level 0..level: count u32, count x u32]
//	CRC-32C u32 of every byte before it
//
// Dead slots (graph mode only) have an empty id and keep their vector and
// links, so a loaded graph is the one that was saved.

// Save writes the index to w. Searches continue while it runs; writers
// wait.
func (ix *Index) Save(w io.Writer) error {
	ix.wmu.Lock()
	defer ix.wmu.Unlock()
	ix.mu.RLock()
	defer ix.mu.RUnlock()
	crc := crc32.New(castagnoli)
	bw := bufio.NewWriterSize(io.MultiWriter(w, crc), 1<<16)
	c := ix.cfg
	b := make([]byte, 0, 256)
	b = append(b, fileMagic...)
	b = binary.LittleEndian.AppendUint32(b, fileVersion)
	for _, v := range []int{c.Dim, int(c.Metric), c.ExactThreshold, c.M, c.EfConstruction, c.EfSearch} {
		b = binary.LittleEndian.AppendUint32(b, uint32(v))
	}
	b = binary.LittleEndian.AppendUint64(b, math.Float64bits(c.MaxTombstoneRatio))
	b = binary.LittleEndian.AppendUint64(b, c.Seed)
	rs, err := ix.pcg.MarshalBinary()
	if err != nil {
		return fmt.Errorf("encode level generator: %w", err)
	}
	b = binary.LittleEndian.AppendUint32(b, uint32(len(rs)))
	b = append(b, rs...)
	b = binary.LittleEndian.AppendUint32(b, uint32(len(ix.ids)))
	g := ix.g
	if g == nil {
		b = append(b, 0)
	} else {
		b = append(b, 1)
		b = binary.LittleEndian.AppendUint32(b, g.entry)
		b = binary.LittleEndian.AppendUint32(b, uint32(g.maxLevel))
	}
	if _, err := bw.Write(b); err != nil {
		return fmt.Errorf("write header: %w", err)
	}
	for slot := range uint32(len(ix.ids)) {
		b = b[:0]
		if g != nil {
			if ix.dead[slot] {
				b = append(b, 1)
			} else {
				b = append(b, 0)
			}
		}
		b = binary.LittleEndian.AppendUint32(b, uint32(len(ix.ids[slot])))
		b = append(b, ix.ids[slot]...)
		for _, x := range ix.vec(slot) {
			b = binary.LittleEndian.AppendUint32(b, math.Float32bits(x))
		}
		if g != nil {
			b = append(b, g.levels[slot])
			for l := 0; l <= int(g.levels[slot]); l++ {
				links := g.neighbors(slot, l)
				b = binary.LittleEndian.AppendUint32(b, uint32(len(links)))
				for _, x := range links {
					b = binary.LittleEndian.AppendUint32(b, x)
				}
			}
		}
		if _, err := bw.Write(b); err != nil {
			return fmt.Errorf("write slot %d: %w", slot, err)
		}
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("write index: %w", err)
	}
	if _, err := w.Write(binary.LittleEndian.AppendUint32(nil, crc.Sum32())); err != nil {
		return fmt.Errorf("write checksum: %w", err)
	}
	return nil
}

// Load reads an index written by Save. Any truncation, alteration or
// trailing data gives an error wrapping ErrCorrupt.
func Load(r io.Reader) (*Index, error) {
	size := int64(-1)
	if l, ok := r.(interface{ Len() int }); ok { // bytes.Reader, bytes.Buffer, strings.Reader
		size = int64(l.Len())
	}
	return decode(r, true, size)
}

// SaveFile writes the index to dir/FileName crash-safely: into a temporary
// file in dir, fsynced, renamed over the old file, and the directory
// fsynced, so after a crash the file is either the old index or the new one.
func (ix *Index) SaveFile(ctx context.Context, dir string) (err error) {
	if err := ctx.Err(); err != nil {
		return err
	}
	f, err := os.CreateTemp(dir, "."+FileName+".tmp-*")
	if err != nil {
		return fmt.Errorf("create temp index: %w", err)
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	if err := ix.Save(f); err != nil {
		return fmt.Errorf("save index: %w", err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("sync temp index: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("close temp index: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := os.Rename(f.Name(), filepath.Join(dir, FileName)); err != nil {
		return fmt.Errorf("rename index: %w", err)
	}
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("open index dir: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync index dir: %w", err)
	}
	return nil
}

// LoadFile reads dir/FileName. A missing file gives an error wrapping
// fs.ErrNotExist: the caller rebuilds the index from its source of truth.
func LoadFile(ctx context.Context, dir string) (*Index, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	f, err := os.Open(filepath.Join(dir, FileName))
	if err != nil {
		return nil, fmt.Errorf("open index: %w", err)
	}
	defer f.Close()
	size := int64(-1)
	if st, err := f.Stat(); err == nil {
		size = st.Size()
	}
	ix, err := decode(bufio.NewReaderSize(f, 1<<16), true, size)
	if err != nil {
		return nil, fmt.Errorf("load %s: %w", f.Name(), err)
	}
	return ix, nil
}

// decoder reads little-endian fields, hashing everything it reads. The
// first error sticks; later reads return zeros.
type decoder struct {
	r   io.Reader
	crc hash.Hash32
	buf []byte
	err error
}

func (d *decoder) read(n int) []byte {
	if d.err != nil {
		return nil
	}
	if cap(d.buf) < n {
		d.buf = make([]byte, n)
	}
	b := d.buf[:n]
	if _, err := io.ReadFull(d.r, b); err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			err = errors.New("truncated")
		}
		d.err = err
		return nil
	}
	d.crc.Write(b)
	return b
}

func (d *decoder) u8() uint8 {
	if b := d.read(1); b != nil {
		return b[0]
	}
	return 0
}

func (d *decoder) u32() uint32 {
	if b := d.read(4); b != nil {
		return binary.LittleEndian.Uint32(b)
	}
	return 0
}

func (d *decoder) u64() uint64 {
	if b := d.read(8); b != nil {
		return binary.LittleEndian.Uint64(b)
	}
	return 0
}

func corrupt(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrCorrupt, fmt.Sprintf(format, args...))
}

// decode parses and validates an index. checkCRC is false only in the fuzz
// test, so that mutated inputs reach the structural checks: those alone must
// make any accepted index safe to search and modify. size, when not -1, is
// the number of bytes r holds: it bounds how much is allocated up front, so
// a forged slot count cannot make a small file allocate a large index.
func decode(r io.Reader, checkCRC bool, size int64) (*Index, error) {
	d := &decoder{r: r, crc: crc32.New(castagnoli)}
	if string(d.read(len(fileMagic))) != fileMagic {
		if d.err != nil {
			return nil, corrupt("header: %v", d.err)
		}
		return nil, corrupt("not a vector index (bad magic)")
	}
	if v := d.u32(); v != fileVersion && d.err == nil {
		return nil, corrupt("unsupported version %d", v)
	}
	var f [6]uint32
	for i := range f {
		f[i] = d.u32()
	}
	cfg := Config{
		Dim: int(f[0]), Metric: Metric(f[1]), ExactThreshold: int(f[2]),
		M: int(f[3]), EfConstruction: int(f[4]), EfSearch: int(f[5]),
		MaxTombstoneRatio: math.Float64frombits(d.u64()),
		Seed:              d.u64(),
	}
	rsLen := d.u32()
	if d.err != nil {
		return nil, corrupt("header: %v", d.err)
	}
	if f[1] > 255 || cfg.ExactThreshold == 0 || cfg.M == 0 || cfg.EfConstruction == 0 ||
		cfg.EfSearch == 0 || cfg.MaxTombstoneRatio == 0 || cfg.Seed == 0 {
		return nil, corrupt("header: zero config field")
	}
	if rsLen > 64 {
		return nil, corrupt("level generator state of %d bytes", rsLen)
	}
	ix, err := New(cfg)
	if err != nil {
		return nil, corrupt("header: %v", err)
	}
	if err := ix.pcg.UnmarshalBinary(d.read(int(rsLen))); err != nil && d.err == nil {
		return nil, corrupt("level generator state: %v", err)
	}
	nslots := d.u32()
	graphFlag := d.u8()
	var g *graph
	if graphFlag > 1 {
		return nil, corrupt("graph flag %d", graphFlag)
	}
	if graphFlag == 1 {
		g = newGraph(cfg, 0)
		g.entry = d.u32()
		g.maxLevel = int(d.u32())
		if d.err == nil && (nslots == 0 || g.entry >= nslots || g.maxLevel > maxLevel) {
			return nil, corrupt("graph entry %d level %d with %d slots", g.entry, g.maxLevel, nslots)
		}
	}
	if d.err != nil {
		return nil, corrupt("header: %v", d.err)
	}
	if nslots > maxSlots {
		return nil, corrupt("%d slots", nslots)
	}

	dim := cfg.Dim
	if size > 0 {
		n := int(min(int64(nslots), size/int64(4*dim+5)))
		ix.vecs = make([]float32, 0, n*dim)
		ix.ids = make([]string, 0, n)
		if g != nil {
			ix.dead = make([]bool, 0, n)
			g.levels = make([]uint8, 0, n)
			g.links0 = make([]uint32, 0, n*(g.m0+1))
			g.upper = make([][]uint32, 0, n)
		}
	}
	probe := make([]float32, dim)
	for slot := range nslots {
		dead := false
		if g != nil {
			switch d.u8() {
			case 0:
			case 1:
				dead = true
			default:
				return nil, corrupt("slot %d: bad tombstone flag", slot)
			}
		}
		idLen := d.u32()
		if idLen > MaxIDLen {
			return nil, corrupt("slot %d: id of %d bytes", slot, idLen)
		}
		id := string(d.read(int(idLen)))
		raw := d.read(4 * dim)
		if d.err != nil {
			return nil, corrupt("slot %d: %v", slot, d.err)
		}
		for i := range probe {
			probe[i] = math.Float32frombits(binary.LittleEndian.Uint32(raw[4*i:]))
		}
		if dead != (id == "") {
			return nil, corrupt("slot %d: tombstone flag and id disagree", slot)
		}
		if _, err := ix.check(probe); err != nil {
			return nil, corrupt("slot %d: %v", slot, err)
		}
		if cfg.Metric == Cosine {
			if n := norm(probe); math.Abs(n-1) > 1e-3 {
				return nil, corrupt("slot %d: cosine vector of norm %g", slot, n)
			}
		}
		if !dead {
			if _, dup := ix.slots[id]; dup {
				return nil, corrupt("slot %d: duplicate id %q", slot, id)
			}
			ix.slots[id] = slot
		}
		ix.ids = append(ix.ids, id)
		ix.vecs = append(ix.vecs, probe...)
		if g == nil {
			continue
		}
		ix.dead = append(ix.dead, dead)
		if dead {
			ix.nDead++
		}
		level := int(d.u8())
		if d.err == nil && level > g.maxLevel {
			return nil, corrupt("slot %d: level %d above the graph's %d", slot, level, g.maxLevel)
		}
		g.addSlot(level)
		for l := 0; l <= level && d.err == nil; l++ {
			n := d.u32()
			if d.err == nil && int(n) > g.mmax(l) {
				return nil, corrupt("slot %d level %d: %d links", slot, l, n)
			}
			rec := g.record(slot, l)
			if raw := d.read(4 * int(n)); raw != nil {
				rec[0] = n
				for i := range int(n) {
					rec[1+i] = binary.LittleEndian.Uint32(raw[4*i:])
				}
			}
		}
		if d.err != nil {
			return nil, corrupt("slot %d: %v", slot, d.err)
		}
	}
	if g != nil {
		// Links may point forward, so levels are known only now.
		for slot := range nslots {
			for l := 0; l <= int(g.levels[slot]); l++ {
				for _, x := range g.neighbors(slot, l) {
					if x >= nslots || x == slot || int(g.levels[x]) < l {
						return nil, corrupt("slot %d level %d: bad link to %d", slot, l, x)
					}
				}
			}
		}
		if int(g.levels[g.entry]) != g.maxLevel {
			return nil, corrupt("entry %d is not on the top level", g.entry)
		}
		ix.g = g
	}
	sum := d.crc.Sum32()
	got := d.u32()
	if d.err != nil {
		return nil, corrupt("checksum: %v", d.err)
	}
	if checkCRC && got != sum {
		return nil, corrupt("checksum mismatch (file %08x, computed %08x)", got, sum)
	}
	var one [1]byte
	if n, _ := io.ReadFull(r, one[:]); n != 0 {
		return nil, corrupt("trailing data after checksum")
	}
	return ix, nil
}
