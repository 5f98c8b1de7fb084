package sync

import "errors"

// Sentinel errors. Stores return ErrNotFound and ErrExists (wrapped); the
// repository returns the rest, wrapped with the step that failed.
var (
	// ErrNotFound means an object, snapshot or blob does not exist.
	ErrNotFound = errors.New("not found")
	// ErrExists means a conditional create found the object already present.
	ErrExists = errors.New("already exists")
	// ErrWrongKey means the repository's key check did not authenticate
	// with the key the caller passed.
	ErrWrongKey = errors.New("wrong key for repository")
	// ErrCorrupt means stored data failed authentication, decoding or a
	// structural check.
	ErrCorrupt = errors.New("corrupt repository data")
	// ErrLocked means another process holds a conflicting repository lock.
	ErrLocked = errors.New("repository is locked")
	// ErrNoRepository means the store holds no initialised repository.
	ErrNoRepository = errors.New("no repository in store")
	// ErrInvalidName means an object name breaks the store naming rules.
	ErrInvalidName = errors.New("invalid object name")
)
