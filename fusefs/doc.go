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
//     it. The default policy makes .bulkhead/** read-only;
//   - Quota: byte and inode limits for the whole tree, counted by apparent
//     file size and by inode.
//
// Every path is resolved beneath the backing directory with openat2
// RESOLVE_BENEATH and RESOLVE_NO_SYMLINKS on the parent: the server never
// follows a symlink itself (the kernel resolves symlinks inside the mount,
// one policy-checked lookup at a time), so a directory swapped for a symlink
// mid-operation makes the operation fail instead of escaping.
//
// Errors: node methods return syscall.Errno as go-fuse requires (ENOENT for a
// denied path, EACCES for creating one, EROFS for writing a read-only path,
// EPERM for set-ID bits and special files, EDQUOT for an exceeded quota).
// Tree methods return *fs.PathError wrapping the sentinels in errors.go or
// the syscall error.
//
// Concurrency: a Server, Policy, Quota and Tree are safe for concurrent use.
// The process that serves a mount must never access that mount itself; open
// file handles keep working after a policy change, new lookups do not.
package fusefs
