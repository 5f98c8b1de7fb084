package sandbox

import "time"

// Test hooks.

// SetStaleAge sets how old an empty group must be for the stale sweep.
func SetStaleAge(d time.Duration) { staleAge = d }

// SweepStale runs the stale-group sweep now.
func SweepStale() { sweepStale() }

// LauncherPID is the running launcher's pid (0 if none was started).
func LauncherPID() int {
	theLauncher.mu.Lock()
	defer theLauncher.mu.Unlock()
	if theLauncher.l == nil {
		return 0
	}
	return theLauncher.l.pid
}
