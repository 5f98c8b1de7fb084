// Package sync keeps point-in-time snapshots of a directory tree (plus an
// opaque state stream and config blob) in an encrypted, deduplicating
// repository on an object store.
//
// Terms:
//   - Store: a flat object store (store.go); implementations live in
//     sync/local (a directory) and sync/s3 (an S3 bucket prefix).
//   - Blob: one content-defined chunk of a file or of the state stream. Its
//     id is HMAC-SHA256(mac key, plaintext), so equal content dedups within
//     one repository key and another key cannot probe for it.
//   - Pack: an object data/<xx>/<id> holding many blobs, each
//     zstd-compressed (when that pays) then sealed with AES-256-GCM,
//     followed by an encrypted header listing them, so a pack is readable on
//     its own. Its id is the SHA-256 of that header and the trailer (see
//     pack.go).
//   - Index: objects index/<id> mapping blob ids to pack locations; a cache
//     of what the pack headers say.
//   - Snapshot: an encrypted JSON manifest snapshots/<id> with the tree
//     (paths, types, sizes, modes, mtimes, symlink targets, chunk lists), the
//     state stream's chunk list and the config blob.
//   - Lock: a plain object locks/<id>. Backups hold shared locks, prune holds
//     an exclusive one.
//
// Keys: the caller passes a 32-byte data key; the MAC key, the encryption key
// and the chunker's gear table are derived from it with HKDF, so different
// keys never share dedup space or chunk boundaries.
//
// Crash safety: a snapshot manifest is written only after every pack and
// index it needs is stored, so an interrupted backup leaves unreferenced
// packs (removed by a later prune) and never a snapshot with missing data.
//
// Operations: Init/Open, Backup, Snapshots/LoadSnapshot/FindSnapshot,
// Restore/RestoreState, Diff, Verify, Prune (retention + garbage collection),
// RebuildIndex (from pack headers) and FS (a read-only io/fs view of a
// snapshot that fetches blobs on demand, for mounting).
//
// Errors are wrapped with the step that failed; ErrWrongKey, ErrCorrupt,
// ErrLocked (with a *LockError naming the holder) and ErrNotFound are the
// ones callers act on. Verify reports damage as Problems naming the object,
// snapshot and file, rather than failing.
//
// The package knows nothing of workspaces: it takes a store, a key and a
// directory. Repository methods take ctx first and are safe for concurrent
// use by one process; cross-process safety comes from the locks.
package sync
