package workspace

import "errors"

// IDRule is the pattern every workspace id (and persona name) must match.
const IDRule = "^[a-z0-9][a-z0-9_-]{0,63}$"

var (
	// ErrInvalidID is wrapped by errors about malformed ids.
	ErrInvalidID = errors.New("invalid workspace id")
	// ErrNotFound means no workspace has the id.
	ErrNotFound = errors.New("workspace not found")
	// ErrExists means a workspace with the id already exists.
	ErrExists = errors.New("workspace already exists")
	// ErrInvalidConfig is wrapped by *ConfigError.
	ErrInvalidConfig = errors.New("invalid config")
	// ErrInUse means the workspace is busy (its database is referenced).
	ErrInUse = errors.New("workspace in use")
	// ErrCredentialNotFound means the workspace has no credential by that name.
	ErrCredentialNotFound = errors.New("credential not found")
	// ErrInvalidCredential is wrapped by errors about bad names or values.
	ErrInvalidCredential = errors.New("invalid credential")
)
