// Package storetest is the conformance suite every sync.Store implementation
// must pass: call Run from the implementation's tests with a constructor for
// an empty store. The same suite runs against the local directory store and
// against a real MinIO server.
package storetest
