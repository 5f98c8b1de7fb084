// Package client is a Go client for bulkhead's HTTP API, over TCP with a
// bearer token or over the state dir's unix socket (the local admin channel).
//
// Errors from the server come back as *Error, which matches the workspace
// package's sentinels with errors.Is (workspace.ErrNotFound, ErrExists,
// ErrInvalidConfig, ...), so callers handle a remote failure exactly like a
// local one. A Client is safe for concurrent use.
package client
