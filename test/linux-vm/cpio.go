package linuxvm

import (
	"fmt"
	"io"
	"os"
	"path"
	"sort"
)

// cpioWriter writes the "newc" format the kernel unpacks as an initramfs.
type cpioWriter struct {
	w   io.Writer
	ino uint32
	n   int64
}

func (c *cpioWriter) write(b []byte) error {
	n, err := c.w.Write(b)
	c.n += int64(n)
	return err
}

func (c *cpioWriter) pad() error {
	if r := c.n % 4; r != 0 {
		return c.write(make([]byte, 4-r))
	}
	return nil
}

func (c *cpioWriter) entry(name string, mode uint32, data []byte) error {
	c.ino++
	hdr := fmt.Sprintf("070701%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X",
		c.ino, mode, 0, 0, 1, 0, len(data), 0, 0, 0, 0, len(name)+1, 0)
	if err := c.write([]byte(hdr + name + "\x00")); err != nil {
		return err
	}
	if err := c.pad(); err != nil {
		return err
	}
	if err := c.write(data); err != nil {
		return err
	}
	return c.pad()
}

const (
	sIFDIR = 0o040000
	sIFREG = 0o100000
	sIFLNK = 0o120000
)

// archive is the initramfs content: directories, files and symlinks.
type archive struct {
	dirs  map[string]bool
	files map[string]string // archive path -> host path
	links map[string]string // archive path -> target
}

func newArchive() *archive {
	return &archive{dirs: map[string]bool{}, files: map[string]string{}, links: map[string]string{}}
}

func (a *archive) mkdirs(p string) {
	for d := path.Dir(p); d != "." && d != "/" && d != ""; d = path.Dir(d) {
		a.dirs[d] = true
	}
}

func (a *archive) file(p, host string)   { a.mkdirs(p); a.files[p] = host }
func (a *archive) link(p, target string) { a.mkdirs(p); a.links[p] = target }
func (a *archive) dir(p string)          { a.mkdirs(p + "/x") }

func (a *archive) writeTo(w io.Writer) error {
	c := &cpioWriter{w: w}
	var dirs []string
	for d := range a.dirs {
		dirs = append(dirs, d)
	}
	sort.Strings(dirs)
	for _, d := range dirs {
		if err := c.entry(d, sIFDIR|0o755, nil); err != nil {
			return err
		}
	}
	for _, p := range sortedKeys(a.links) {
		if err := c.entry(p, sIFLNK|0o777, []byte(a.links[p])); err != nil {
			return err
		}
	}
	for _, p := range sortedKeys(a.files) {
		host := a.files[p]
		b, err := os.ReadFile(host)
		if err != nil {
			return err
		}
		if err := c.entry(p, sIFREG|0o755, b); err != nil {
			return err
		}
	}
	return c.entry("TRAILER!!!", 0, nil)
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
