package s3

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"

	bsync "github.com/bulkhead-dev/bulkhead/sync"
)

// Config says where a store lives and how to reach it.
type Config struct {
	Bucket    string
	Prefix    string // without leading or trailing "/"; may be empty
	Endpoint  string // host[:port], e.g. "s3.amazonaws.com" or "127.0.0.1:9000"
	Region    string
	AccessKey string
	SecretKey string
	Insecure  bool // plain HTTP instead of TLS
	// MaxRetries bounds minio-go's retries of a failed request (its
	// default, 10, when 0).
	MaxRetries int
}

// ParseURL fills Bucket and Prefix from "s3://bucket/prefix".
func ParseURL(raw string) (Config, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return Config{}, fmt.Errorf("parse store url: %w", err)
	}
	if u.Scheme != "s3" || u.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return Config{}, fmt.Errorf("parse store url %q: want s3://bucket[/prefix]", raw)
	}
	return Config{Bucket: u.Host, Prefix: strings.Trim(u.Path, "/")}, nil
}

// Store is an S3 bucket prefix.
type Store struct {
	client *minio.Client
	bucket string
	prefix string // "" or ends with "/"
}

var _ bsync.Store = (*Store)(nil)

// Open connects to the bucket. It does not create the bucket; it checks that
// it exists.
func Open(ctx context.Context, cfg Config) (*Store, error) {
	if cfg.Bucket == "" || cfg.Endpoint == "" {
		return nil, fmt.Errorf("open s3 store: bucket and endpoint are required")
	}
	client, err := minio.New(cfg.Endpoint, &minio.Options{
		Creds:      credentials.NewStaticV4(cfg.AccessKey, cfg.SecretKey, ""),
		Secure:     !cfg.Insecure,
		Region:     cfg.Region,
		MaxRetries: cfg.MaxRetries,
	})
	if err != nil {
		return nil, fmt.Errorf("open s3 store %s: %w", cfg.Endpoint, err)
	}
	ok, err := client.BucketExists(ctx, cfg.Bucket)
	if err != nil {
		return nil, fmt.Errorf("open s3 store s3://%s: %w", cfg.Bucket, err)
	}
	if !ok {
		return nil, fmt.Errorf("open s3 store s3://%s: bucket %w", cfg.Bucket, bsync.ErrNotFound)
	}
	prefix := strings.Trim(cfg.Prefix, "/")
	if prefix != "" {
		prefix += "/"
	}
	return &Store{client: client, bucket: cfg.Bucket, prefix: prefix}, nil
}

// Client returns the underlying minio-go client (for benchmarks and tests).
func (s *Store) Client() *minio.Client { return s.client }

func (s *Store) key(name string) (string, error) {
	if err := bsync.ValidName(name); err != nil {
		return "", err
	}
	return s.prefix + name, nil
}

func mapErr(op, name string, err error) error {
	resp := minio.ToErrorResponse(err)
	switch {
	case resp.Code == minio.NoSuchKey || resp.StatusCode == http.StatusNotFound && resp.Code != minio.NoSuchBucket:
		return fmt.Errorf("%s %s: %w", op, name, bsync.ErrNotFound)
	case resp.Code == minio.PreconditionFailed || resp.StatusCode == http.StatusPreconditionFailed ||
		resp.StatusCode == http.StatusConflict && resp.Code == "ConditionalRequestConflict":
		return fmt.Errorf("%s %s: %w", op, name, bsync.ErrExists)
	}
	return fmt.Errorf("%s %s: %w", op, name, err)
}

// singlePutMax is the largest object sent in one PUT request.
const singlePutMax = 256 << 20

func (s *Store) put(ctx context.Context, name string, r io.Reader, size int64, ifAbsent bool) error {
	key, err := s.key(name)
	if err != nil {
		return err
	}
	// No payload hash in the signature: everything the repository stores
	// authenticates itself (AES-GCM, content-hash names), and hashing every
	// byte once more costs a core's worth of throughput over plain HTTP.
	opts := minio.PutObjectOptions{ContentType: "application/octet-stream", DisableContentSha256: true}
	if size >= 0 && size <= singlePutMax {
		// minio-go would split anything over 16 MiB into a multipart upload:
		// four requests instead of one for every pack.
		opts.DisableMultipart = true
	}
	if ifAbsent {
		opts.SetMatchETagExcept("*")
	}
	if _, err := s.client.PutObject(ctx, s.bucket, key, r, size, opts); err != nil {
		return mapErr("put", name, err)
	}
	return nil
}

// Put stores r under name, replacing any existing object.
func (s *Store) Put(ctx context.Context, name string, r io.Reader, size int64) error {
	return s.put(ctx, name, r, size, false)
}

// PutIfAbsent stores r under name unless it exists (sync.ErrExists).
func (s *Store) PutIfAbsent(ctx context.Context, name string, r io.Reader, size int64) error {
	return s.put(ctx, name, r, size, true)
}

// Get opens the object for reading.
func (s *Store) Get(ctx context.Context, name string) (io.ReadCloser, error) {
	return s.GetRange(ctx, name, 0, -1)
}

// GetRange opens length bytes at offset; length < 0 reads to the end.
func (s *Store) GetRange(ctx context.Context, name string, offset, length int64) (io.ReadCloser, error) {
	key, err := s.key(name)
	if err != nil {
		return nil, err
	}
	if offset < 0 {
		return nil, fmt.Errorf("get %s: negative offset %d", name, offset)
	}
	if length == 0 {
		// A zero-length range cannot be expressed in HTTP; check existence.
		if _, err := s.Stat(ctx, name); err != nil {
			return nil, err
		}
		return io.NopCloser(strings.NewReader("")), nil
	}
	var opts minio.GetObjectOptions
	switch {
	case length > 0:
		err = opts.SetRange(offset, offset+length-1)
	case offset > 0:
		err = opts.SetRange(offset, 0)
	}
	if err != nil {
		return nil, fmt.Errorf("get %s: %w", name, err)
	}
	// The Core API issues the request now, so a missing object fails here
	// rather than on the first Read.
	core := minio.Core{Client: s.client}
	body, _, _, err := core.GetObject(ctx, s.bucket, key, opts)
	if err != nil {
		resp := minio.ToErrorResponse(err)
		if resp.StatusCode == http.StatusRequestedRangeNotSatisfiable {
			return io.NopCloser(strings.NewReader("")), nil
		}
		return nil, mapErr("get", name, err)
	}
	return body, nil
}

// Stat returns the object's size and modification time.
func (s *Store) Stat(ctx context.Context, name string) (bsync.ObjectInfo, error) {
	key, err := s.key(name)
	if err != nil {
		return bsync.ObjectInfo{}, err
	}
	oi, err := s.client.StatObject(ctx, s.bucket, key, minio.StatObjectOptions{})
	if err != nil {
		return bsync.ObjectInfo{}, mapErr("stat", name, err)
	}
	return bsync.ObjectInfo{Name: name, Size: oi.Size, ModTime: oi.LastModified}, nil
}

// List calls fn for every object whose name starts with prefix.
func (s *Store) List(ctx context.Context, prefix string, fn func(bsync.ObjectInfo) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel() // stops the listing goroutine if fn fails
	for oi := range s.client.ListObjects(ctx, s.bucket, minio.ListObjectsOptions{Prefix: s.prefix + prefix, Recursive: true}) {
		if oi.Err != nil {
			return fmt.Errorf("list %q: %w", prefix, oi.Err)
		}
		name := strings.TrimPrefix(oi.Key, s.prefix)
		if strings.HasSuffix(name, "/") {
			continue
		}
		if err := fn(bsync.ObjectInfo{Name: name, Size: oi.Size, ModTime: oi.LastModified}); err != nil {
			return fmt.Errorf("list %q: %w", prefix, err)
		}
	}
	return ctx.Err()
}

// Delete removes the object; a missing object is not an error.
func (s *Store) Delete(ctx context.Context, name string) error {
	key, err := s.key(name)
	if err != nil {
		return err
	}
	if err := s.client.RemoveObject(ctx, s.bucket, key, minio.RemoveObjectOptions{}); err != nil {
		if errors.Is(mapErr("delete", name, err), bsync.ErrNotFound) {
			return nil
		}
		return mapErr("delete", name, err)
	}
	return nil
}
