package sync

import (
	"bytes"
	"os"
	"testing"
)

// The advice covers only whole huge pages inside the buffer, whatever its
// alignment and size, and leaves its content alone.
func TestAdviseHugePages(t *testing.T) {
	if _, err := os.Stat("/sys/kernel/mm/transparent_hugepage/enabled"); err != nil {
		t.Skip("kernel without transparent huge pages")
	}
	for _, size := range []int{0, 4096, 2*hugePageSize - 1, 2 * hugePageSize, 5*hugePageSize + 12345} {
		for _, off := range []int{0, 1, 4095} {
			backing := make([]byte, size+off)
			for i := range backing {
				backing[i] = byte(i)
			}
			b := backing[off:]
			want := bytes.Clone(b)
			if err := adviseHugePages(b[:0]); err != nil {
				t.Fatalf("size %d offset %d: %v", size, off, err)
			}
			if !bytes.Equal(b, want) {
				t.Fatalf("size %d offset %d: content changed", size, off)
			}
		}
	}
}
