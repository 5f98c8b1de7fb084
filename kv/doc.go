// Package kv opens and manages bulkhead's embedded Badger databases.
//
// A node has one control database and one database per workspace. kv knows
// nothing of workspaces: a Pool hands out databases by directory, opened
// lazily with options tuned for many small databases (about 1 MB memtables
// and caches), optionally encrypted with a caller-supplied key, and closed by
// an LRU when more than Options.MaxOpen are open and unreferenced. A janitor
// runs Badger's value-log GC on databases that have gone idle.
//
// Badger allows one process per database. DirLock takes an exclusive flock
// on a state directory and records the holder's pid, so a second process gets
// ErrLocked naming that pid instead of a Badger lock trace.
//
// Concurrency: a Pool is safe for concurrent use. A *badger.DB obtained from
// Acquire stays open until its release function is called; release exactly
// once. Writes that must survive power loss go through UpdateSync.
package kv
