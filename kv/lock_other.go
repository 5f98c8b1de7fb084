//go:build !unix

package kv

import "errors"

// LockFileName is the name of the lock file inside a locked directory.
const LockFileName = "bulkhead.lock"

// DirLock is unsupported off Unix.
type DirLock struct{}

// LockDir is unsupported off Unix.
func LockDir(string) (*DirLock, error) { return nil, errors.ErrUnsupported }

// HolderPID is unsupported off Unix.
func HolderPID(string) int { return 0 }

// Unlock does nothing.
func (*DirLock) Unlock() error { return nil }
