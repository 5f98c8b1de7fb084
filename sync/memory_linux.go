package sync

import (
	"unsafe"

	"golang.org/x/sys/unix"
)

// hugePageSize is the size of a transparent huge page on the platforms Go
// supports (x86-64, arm64 with 4 KiB base pages).
const hugePageSize = 2 << 20

// adviseHugePages asks the kernel to back the huge-page-aligned part of b's
// capacity with transparent huge pages when it is first touched. Backups
// fill tens of MiB of fresh buffers; one fault per 2 MiB instead of one per
// 4 KiB saves most of the time the kernel spends handing them out. It is
// advice: pages already touched stay as they are, and an error changes
// nothing but speed.
func adviseHugePages(b []byte) error {
	if cap(b) < 2*hugePageSize {
		return nil
	}
	p := uintptr(unsafe.Pointer(unsafe.SliceData(b[:1])))
	start := (p + hugePageSize - 1) &^ (hugePageSize - 1)
	end := (p + uintptr(cap(b))) &^ (hugePageSize - 1)
	if end <= start {
		return nil
	}
	region := b[start-p : end-p : end-p]
	return unix.Madvise(region, unix.MADV_HUGEPAGE)
}
