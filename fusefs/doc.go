// Package fusefs serves a directory through FUSE with a path policy applied at
// every file operation, and offers the same policy to host-side code through
// Tree, so the sandbox's view of a directory and the host tools that edit it
// obey one rule set.
//
// Terms:
//
//   - backing directory: the real directory on the host that is served;
//   - relative path: a slash-separated path below the backing directory, with
//     no leading slash, no "." or ".." elements ("" is the directory itself);
//   - Policy: deny globs (paths that are invisible and cannot be created),
//     read-only globs, and whether special files (device nodes, fifos,
//     sockets) may be created. Set-user-ID, set-group-ID and sticky bits are
//     never allowed. A rule that matches a directory covers everything below
//     it, and a directory cannot be renamed if that would change which rules
//     apply below it. The default policy makes .bulkhead/** read-only;
//   - Quota: byte and inode limits for the whole tree, counted by apparent
//     file size and by inode, shared by a mount and a Tree of one directory.
//
// Mount serves a backing directory (Server); Tree is the host-side route;
// CleanupStale detaches mounts a crashed process left behind, and Unmount
// unmounts a view served by another process.
//
// Paths are resolved beneath the backing directory with openat2
// RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_XDEV: the server never
// follows a symlink itself (the kernel resolves symlinks inside the mount,
// one policy-checked lookup at a time), so a directory swapped for a symlink
// mid-operation makes the operation fail instead of escaping. Tree follows
// symlinks only while they stay below the root, checking each step.
//
// Trust: the server runs as root and the mount has no default_permissions,
// so file modes inside the tree do not limit the sandbox (the tree is the
// tenant's own); the policy does. New entries are owned by the calling uid.
// Options.Callers keeps other host users out of an allow_other mount (the
// kernel may still answer their stat of a name it has cached).
// Ioctls and extended attributes are refused.
//
// Speed: with kernel passthrough (Linux 6.9+, root), reads and writes of
// open files bypass the server. An exact byte quota needs every write to pass
// the server, so it turns passthrough off unless Options.LooseByteQuota
// accepts counting at close. Metadata work costs a round trip to the
// server per uncached name, so the kernel caches names (also names that do
// not exist, except those the policy hides), attributes and directory
// listings for Options.CacheTimeout (DefaultCacheTimeout, 10 s). Changes
// made through the view keep those caches right. Server.SetPolicy drops
// them all, so a new deny or read-only rule holds from the next operation;
// Server.Invalidate (wired to Tree through TreeOptions.OnChange) drops what
// one host-side change touched; Server.InvalidateAll is for any other
// change to the backing directory, such as git run in it on the host.
// Without one of those, such a change shows in the view after at most
// CacheTimeout. Caching never skips a policy check that matters: policy is
// per path, opening, creating, renaming and every other change still ask
// the server, and a cached name is always one the policy in force allowed.
//
// Errors: node methods return syscall.Errno as go-fuse requires (ENOENT for a
// denied path, EACCES for creating one or for a caller not in Callers, EROFS
// for writing a read-only path, EPERM for set-ID bits and special files,
// EDQUOT for an exceeded quota). Tree methods return *fs.PathError wrapping
// the sentinels in errors.go or the syscall error.
//
// Concurrency: a Server, Policy, Quota and Tree are safe for concurrent use.
// The process that serves a mount must never use that mount itself in a way
// that can block it, and in particular must not start a child process whose
// working directory is inside the mount: the child touches the mount between
// fork and exec, while the parent's thread is held by vfork and the garbage
// collector cannot stop the world, and everything deadlocks. Open file
// handles keep working after a policy change; new lookups do not.
package fusefs
