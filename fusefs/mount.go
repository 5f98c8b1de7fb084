package fusefs

import (
	"log/slog"
	"time"
)

// FSType is the file system type of every mount made by this package, as
// /proc/self/mountinfo shows it. CleanupStale and Unmount act only on mounts
// of this type.
const FSType = "fuse.bulkhead"

// DefaultCacheTimeout is how long the kernel caches names, attributes and
// listings of a view unless Options.CacheTimeout says otherwise.
const DefaultCacheTimeout = 10 * time.Second

// Options configure a mount.
type Options struct {
	// Policy is applied at every operation; nil means DefaultPolicy. It can
	// be replaced on a live mount with Server.SetPolicy.
	Policy *Policy
	// Quota limits the tree; nil means no limits. With a byte limit,
	// passthrough is off so that every write is counted, unless
	// LooseByteQuota is set.
	Quota *Quota
	// LooseByteQuota keeps passthrough on under a byte limit. The limit is
	// then checked when a file is created, opened for writing, truncated
	// or extended through the server, and what a file grew by through
	// passthrough is counted when its last handle closes: one open file
	// can write past the limit until it is closed, and after that nothing
	// can be opened for writing until space is freed.
	LooseByteQuota bool
	// ReadOnly refuses every change (the mount is read-only as well).
	ReadOnly bool
	// NoPassthrough turns kernel passthrough off even where it works.
	NoPassthrough bool
	// NoAllowOther limits access to the user who mounted. By default other
	// users may enter the mount, as the sandbox's unprivileged uid must.
	NoAllowOther bool
	// Callers, if not empty, are the only uids (besides root) whose
	// processes may use the mount; everyone else gets EACCES. With
	// allow_other this keeps other host users out of a sandbox's view. The
	// kernel may still answer a stat from its attribute cache for up to
	// CacheTimeout without asking the server.
	Callers []uint32
	// CacheTimeout is how long the kernel may cache names (also names
	// that do not exist), attributes and directory listings. Zero means
	// DefaultCacheTimeout. Changes made through the view keep the caches
	// right; SetPolicy, Invalidate and InvalidateAll drop them at once. A
	// change made to the backing directory any other way is seen after at
	// most CacheTimeout.
	CacheTimeout time.Duration
	// Logger receives the mount's log lines; nil means slog.Default().
	Logger *slog.Logger
	// Debug logs every FUSE request.
	Debug bool
}
