package s3_test

import (
	"testing"

	"github.com/bulkhead-dev/bulkhead/internal/miniotest"
	bsync "github.com/bulkhead-dev/bulkhead/sync"
	"github.com/bulkhead-dev/bulkhead/sync/s3"
	"github.com/bulkhead-dev/bulkhead/sync/storetest"
)

func TestParseURL(t *testing.T) {
	cases := []struct {
		in             string
		bucket, prefix string
		bad            bool
	}{
		{in: "s3://b", bucket: "b"},
		{in: "s3://b/", bucket: "b"},
		{in: "s3://b/p/q/", bucket: "b", prefix: "p/q"},
		{in: "http://b/p", bad: true},
		{in: "s3:///p", bad: true},
		{in: "s3://user:pw@b/p", bad: true},
	}
	for _, c := range cases {
		cfg, err := s3.ParseURL(c.in)
		if c.bad {
			if err == nil {
				t.Errorf("ParseURL(%q) accepted", c.in)
			}
			continue
		}
		if err != nil || cfg.Bucket != c.bucket || cfg.Prefix != c.prefix {
			t.Errorf("ParseURL(%q) = %+v, %v", c.in, cfg, err)
		}
	}
}

func TestConformance(t *testing.T) {
	srv := miniotest.Start(t)
	bucket := srv.NewBucket(t)
	n := 0
	storetest.Run(t, func(t *testing.T) bsync.Store {
		n++
		// Each subtest gets its own prefix in one bucket, which also checks
		// that prefixes isolate stores.
		s, err := s3.Open(t.Context(), s3.Config{
			Bucket: bucket, Prefix: "suite/" + string(rune('a'+n)), Endpoint: srv.Endpoint,
			AccessKey: srv.AccessKey, SecretKey: srv.SecretKey, Insecure: true,
		})
		if err != nil {
			t.Fatal(err)
		}
		return s
	})
}
