package sandbox

import "time"

// Test hooks.

// SetStaleAge sets how old an empty group must be for the stale sweep.
func SetStaleAge(d time.Duration) { staleAge = d }

// SweepStale runs the stale-group sweep now.
func SweepStale() { sweepStale() }
