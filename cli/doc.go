// Package cli is bulkhead's command line, built with kong. Each command is a
// struct with a Run method; Globals carries the flags every command shares and
// opens the state dir lazily, so commands that need no state (version, help)
// never touch it and bad arguments are rejected before anything on disk
// changes.
//
// Errors are returned to Main, which prints them on one line prefixed with
// "bulkhead:" and picks the exit code (2 for usage errors, 1 otherwise,
// or the sandboxed command's own code for exec).
package cli
