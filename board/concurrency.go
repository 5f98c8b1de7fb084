package board

import (
	"bufio"
	"os"
	"runtime"
	"strconv"
	"strings"
)

// RunMemory is the memory budgeted per concurrent ticket run when the
// default concurrency is worked out (a sandbox plus the agent loop).
const RunMemory = 1 << 30

// DefaultConcurrency is how many ticket runs this machine takes at once:
// one per core, and no more than one per RunMemory of physical memory, at
// least one.
func DefaultConcurrency() int {
	n := runtime.NumCPU()
	if mem := memTotal(); mem > 0 {
		n = min(n, int(mem/RunMemory))
	}
	return max(n, 1)
}

// memTotal reads MemTotal from /proc/meminfo; 0 when unknown.
func memTotal() int64 {
	f, err := os.Open("/proc/meminfo")
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "MemTotal:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
			if err != nil {
				return 0
			}
			return kb << 10
		}
	}
	return 0
}
