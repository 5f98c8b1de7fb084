package fusefs

import "errors"

var (
	// ErrDenied reports a path matched by a deny rule: it is invisible and
	// cannot be created.
	ErrDenied = errors.New("path denied by policy")
	// ErrReadOnly reports a write to a path matched by a read-only rule.
	ErrReadOnly = errors.New("path is read-only by policy")
	// ErrModeNotAllowed reports a set-user-ID, set-group-ID or sticky bit.
	ErrModeNotAllowed = errors.New("set-id and sticky bits are not allowed")
	// ErrSpecialFile reports a device node, fifo or socket where the policy
	// does not allow them.
	ErrSpecialFile = errors.New("special files are not allowed")
	// ErrOutsideRoot reports a path that would leave the backing directory.
	ErrOutsideRoot = errors.New("path leaves the root")
	// ErrQuotaBytes reports a write that would exceed the byte quota.
	ErrQuotaBytes = errors.New("byte quota exceeded")
	// ErrQuotaInodes reports a create that would exceed the inode quota.
	ErrQuotaInodes = errors.New("inode quota exceeded")
	// ErrBadPattern reports a malformed policy glob.
	ErrBadPattern = errors.New("bad policy pattern")
	// ErrNotMounted reports an unmount of a directory that is not a mount.
	ErrNotMounted = errors.New("not a fuse mount")
)
