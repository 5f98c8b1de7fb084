// Package miniotest starts a real MinIO server for tests: one process per
// call to Start, listening on a loopback port, with its data in a temp dir,
// stopped when the test ends.
//
// The minio binary is looked up on PATH and in $(go env GOPATH)/bin. When it
// is missing the test is skipped, or fails under BULKHEAD_TEST_NO_SKIP=1 (see
// internal/testutil). Install it with
//
//	go install github.com/minio/minio@v0.0.0-20260212201848-7aac2a2c5b7c
//
// Only _test.go files and benchmarks use this package.
package miniotest
