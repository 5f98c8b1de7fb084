package sync_test

import (
	"bytes"
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/bulkhead-dev/bulkhead/internal/miniotest"
	bsync "github.com/bulkhead-dev/bulkhead/sync"
	"github.com/bulkhead-dev/bulkhead/sync/s3"
)

func openS3(t testing.TB, srv *miniotest.Server, bucket string) *s3.Store {
	t.Helper()
	s, err := s3.Open(context.Background(), s3.Config{
		Bucket: bucket, Prefix: "ws/alice", Endpoint: srv.Endpoint,
		AccessKey: srv.AccessKey, SecretKey: srv.SecretKey, Insecure: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// The whole life cycle against a real MinIO server.
func TestS3Repository(t *testing.T) {
	t.Parallel()
	srv := miniotest.Start(t)
	store := openS3(t, srv, srv.NewBucket(t))
	key := newKey(t)
	repo := initRepo(t, store, key)
	src := t.TempDir()
	makeTree(t, src, 200)
	state := textBytes(1<<20, 5)
	first, err := repo.Backup(t.Context(), src, bsync.BackupOptions{State: bytes.NewReader(state)})
	if err != nil {
		t.Fatal(err)
	}
	second, err := repo.Backup(t.Context(), src, bsync.BackupOptions{State: bytes.NewReader(state)})
	if err != nil {
		t.Fatal(err)
	}
	if second.Stats.BytesUploaded != 0 || second.Stats.BytesRead != int64(len(state)) {
		t.Fatalf("unchanged backup to S3 uploaded %d, read %d", second.Stats.BytesUploaded, second.Stats.BytesRead)
	}
	if _, err := bsync.Open(t.Context(), store, newKey(t), bsync.Options{}); !errors.Is(err, bsync.ErrWrongKey) {
		t.Fatalf("wrong key on S3: %v", err)
	}
	other, err := bsync.Open(t.Context(), store, key, bsync.Options{})
	if err != nil {
		t.Fatal(err)
	}
	dst := t.TempDir()
	var st bytes.Buffer
	if err := other.Restore(t.Context(), first, dst, bsync.RestoreOptions{State: &st}); err != nil {
		t.Fatal(err)
	}
	compareTrees(t, src, dst)
	if !bytes.Equal(st.Bytes(), state) {
		t.Fatal("state differs after S3 round trip")
	}
	res, err := other.Prune(t.Context(), bsync.PruneOptions{Keep: bsync.Retention{Last: 1}})
	if err != nil || len(res.Forgotten) != 1 {
		t.Fatalf("prune on S3: %+v %v", res, err)
	}
	rep, err := other.Verify(t.Context(), bsync.VerifyOptions{ReadData: 1})
	if err != nil || !rep.OK() || rep.PacksRead == 0 {
		t.Fatalf("verify on S3: %+v %v\n%s", rep, err, problemsText(rep))
	}
}

// MinIO going away mid-backup gives an error that says so, and no snapshot.
func TestS3StoppedMidBackup(t *testing.T) {
	t.Parallel()
	srv := miniotest.Start(t)
	bucket := srv.NewBucket(t)
	store := openS3(t, srv, bucket)
	key := newKey(t)
	repo := initRepo(t, store, key)
	src := t.TempDir()
	write(t, filepath.Join(src, "f"), randBytes(6<<20, 1), 0o644)
	g := newGate([]byte("state"))
	done := make(chan error, 1)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	go func() {
		_, err := repo.Backup(ctx, src, bsync.BackupOptions{State: g})
		done <- err
	}()
	<-g.reached
	srv.Stop()
	close(g.release)
	start := time.Now()
	err := <-done
	if err == nil {
		t.Fatal("backup succeeded with the server stopped")
	}
	msg := err.Error()
	if !strings.Contains(msg, "upload pack") || !strings.Contains(msg, "connection refused") {
		t.Fatalf("unclear error: %v", err)
	}
	t.Logf("error after %v: %v", time.Since(start).Round(time.Millisecond), err)

	srv.Restart(t)
	store = openS3(t, srv, bucket)
	repo, err = bsync.Open(t.Context(), store, key, bsync.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if snaps, err := repo.Snapshots(t.Context()); err != nil || len(snaps) != 0 {
		t.Fatalf("%d snapshots after a failed backup (%v)", len(snaps), err)
	}
	if _, err := repo.Backup(t.Context(), src, bsync.BackupOptions{}); err != nil {
		t.Fatalf("backup after restart: %v", err)
	}
	rep, err := repo.Verify(t.Context(), bsync.VerifyOptions{ReadData: 1})
	if err != nil || !rep.OK() {
		t.Fatalf("verify: %v\n%s", err, problemsText(rep))
	}
}
