// Package s3 is a sync.Store in an S3-compatible bucket (AWS S3, MinIO, …)
// through github.com/minio/minio-go/v7.
//
// A store is addressed as s3://bucket/prefix plus an endpoint, region, keys and
// a TLS switch (Config). Object names are joined to the prefix with "/".
// PutIfAbsent uses the conditional write header If-None-Match: *, which S3
// and MinIO answer with 412 Precondition Failed when the key exists; that
// becomes sync.ErrExists. All methods are safe for concurrent use.
package s3
