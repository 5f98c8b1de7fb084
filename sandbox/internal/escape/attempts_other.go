//go:build !linux || !amd64

package escape

import "os"

func attempts(Options) []attempt { return nil }

func sanity(r *report) { r.check("platform", os.ErrInvalid) }

func childInt80() int { return 2 }

func childX32() int { return 2 }

func childFDCheck(_ interface{ Write([]byte) (int, error) }) int { return 2 }

func childMkShm(string) int { return 2 }

func ia32Status() int { return 2 }

func childAlloc(string) int { return 2 }

func recordStartupLeaks() {}
