// Package local is a sync.Store kept in a directory on the local filesystem:
// the embedded default, under the node's state dir.
//
// Each object is one file named after the object. Writes go to a temporary
// file under the store's .tmp directory, are fsynced, and are renamed (Put) or
// hard-linked (PutIfAbsent, which fails with sync.ErrExists if the name is
// taken) into place, then the parent directory is fsynced, so a crash never
// leaves a partial object under its final name. Leftover temporary files are
// removed by Open. All methods are safe for concurrent use.
package local
