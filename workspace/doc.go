// Package workspace is the tenant service: the platform API that creates,
// configures, lists and deletes workspaces and wires each one to its state.
//
// A workspace has an id matching IDRule, a Config, a host uid/gid that its
// sandbox root maps to (allocated once, never reused), a random data key
// wrapped by the node key in the control database, its own encrypted Badger
// database (workspaces/<id>/state), its files (workspaces/<id>/files) and
// derived indexes (workspaces/<id>/index).
//
// Lifecycle and crash safety: Create writes the record in state "creating"
// together with the wrapped key, then builds the directories and database,
// then flips the record to "ready". Delete first flips the record to
// "deleting" and destroys the wrapped key in the same synced transaction
// (from that moment nothing of the workspace is readable: crypto-shredding),
// then removes the directory, then the record. Open finishes or rolls back any
// record left in "creating" or "deleting" by a crash, so List never shows a
// half-made or half-deleted workspace.
//
// Each live sandbox gets an egress proxy on its own loopback (127.0.0.1:3128,
// HTTP_PROXY set in its commands) that allows the names in the workspace's
// egress.allow through the node's guard; config changes apply to it at once.
//
// Concurrency: a Service is safe for concurrent use within one process. Only
// one process may open a state dir (kv.LockDir); a second gets an error naming
// the first one's pid.
package workspace
