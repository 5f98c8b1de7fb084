package sync_test

import (
	"archive/tar"
	"context"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"

	"github.com/bulkhead-dev/bulkhead/internal/miniotest"
	bsync "github.com/bulkhead-dev/bulkhead/sync"
	"github.com/bulkhead-dev/bulkhead/sync/local"
)

// benchTree writes a mixed tree of about mb MiB: 10,000 small text files,
// then half incompressible 16 MiB files and half compressible 4 MiB ones,
// with every tenth large file a duplicate of another.
func benchTree(b *testing.B, dir string, mb int) int64 {
	var total int64
	for i := range 10_000 {
		data := textBytes(1024+i%3072, uint64(i))
		write(b, filepath.Join(dir, "small", fmt.Sprintf("%03d", i%100), fmt.Sprintf("f%05d.txt", i)), data, 0o644)
		total += int64(len(data))
	}
	budget := int64(mb)<<20 - total
	for i := 0; budget > 0; i++ {
		var data []byte
		switch {
		case i%10 == 9:
			data = randBytes(16<<20, uint64(i-1)) // a copy of file i-1
		case i%2 == 0:
			data = randBytes(16<<20, uint64(i))
		default:
			data = textBytes(4<<20, uint64(1000+i))
		}
		write(b, filepath.Join(dir, "large", fmt.Sprintf("l%04d.bin", i)), data, 0o644)
		total += int64(len(data))
		budget -= int64(len(data))
	}
	return total
}

func tarTree(b *testing.B, dir, out string) int64 {
	f, err := os.Create(out)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	tw := tar.NewWriter(f)
	err = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		hdr, err := tar.FileInfoHeader(fi, "")
		if err != nil {
			return err
		}
		hdr.Name = filepath.ToSlash(rel)
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
		if fi.Mode().IsRegular() {
			src, err := os.Open(p)
			if err != nil {
				return err
			}
			defer src.Close()
			_, err = io.Copy(tw, src)
			return err
		}
		return nil
	})
	if err == nil {
		err = tw.Close()
	}
	if err != nil {
		b.Fatal(err)
	}
	fi, _ := f.Stat()
	return fi.Size()
}

func copyTree(b *testing.B, src, dst string) {
	err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		target := filepath.Join(dst, rel)
		if d.IsDir() {
			return os.MkdirAll(target, 0o755)
		}
		in, err := os.Open(p)
		if err != nil {
			return err
		}
		defer in.Close()
		out, err := os.Create(target)
		if err != nil {
			return err
		}
		if _, err := io.Copy(out, in); err != nil {
			return err
		}
		return out.Close()
	})
	if err != nil {
		b.Fatal(err)
	}
	syscall.Sync() // the repository fsyncs what it writes; so must the peer
}

// change1pct rewrites 1 MiB in the middle of every 100th-by-bytes large file
// and 100 small files: about 1% of the tree's bytes.
func change1pct(b *testing.B, dir string, total int64) int64 {
	var changed int64
	for i := 0; changed < total/100; i++ {
		p := filepath.Join(dir, "large", fmt.Sprintf("l%04d.bin", i*3))
		f, err := os.OpenFile(p, os.O_WRONLY, 0)
		if err != nil {
			break
		}
		f.WriteAt(randBytes(1<<20, uint64(77_000+i)), 1<<20)
		f.Close()
		changed += 1 << 20
	}
	for i := range 100 {
		p := filepath.Join(dir, "small", fmt.Sprintf("%03d", i), fmt.Sprintf("f%05d.txt", i))
		data := textBytes(2048, uint64(99_000+i))
		os.WriteFile(p, data, 0o644)
		changed += int64(len(data))
	}
	return changed
}

func mbps(n int64, d time.Duration) float64 { return float64(n) / (1 << 20) / d.Seconds() }

// cpuNow returns this process's CPU time plus MinIO's: the work a phase
// costs, which load from other processes distorts far less than wall time.
func cpuNow(b *testing.B, srv *miniotest.Server) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	self := time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	m, err := srv.CPUTime()
	if err != nil {
		b.Fatal(err)
	}
	return self + m
}

// BenchmarkSync runs the snapshot scenario once against MinIO and against a
// local directory, printing ratios to the peer measured in the same run.
// BULKHEAD_BENCH_SYNC_MB sets the tree size (default 1024).
func BenchmarkSync(b *testing.B) {
	mb := 1024
	if v, err := strconv.Atoi(os.Getenv("BULKHEAD_BENCH_SYNC_MB")); err == nil && v > 0 {
		mb = v
	}
	srv := miniotest.Start(b)
	src := b.TempDir()
	total := benchTree(b, src, mb)
	tarPath := filepath.Join(b.TempDir(), "tree.tar")
	tarSize := tarTree(b, src, tarPath)
	ctx := context.Background()

	for b.Loop() {
		// Raw: one minio-go PutObject of a tar of the tree.
		bucket := srv.NewBucket(b)
		f, err := os.Open(tarPath)
		if err != nil {
			b.Fatal(err)
		}
		// Same signing mode as the S3 store (see sync/s3).
		opts := minio.PutObjectOptions{DisableContentSha256: true}
		cpu0 := cpuNow(b, srv)
		start := time.Now()
		if _, err := srv.Client(b).PutObject(ctx, bucket, "tree.tar", f, tarSize, opts); err != nil {
			b.Fatal(err)
		}
		raw := time.Since(start)
		rawCPU := cpuNow(b, srv) - cpu0
		f.Close()

		store := openS3(b, srv, srv.NewBucket(b))
		repo := initRepo(b, store, newKey(b))
		cpu0 = cpuNow(b, srv)
		full, err := repo.Backup(ctx, src, bsync.BackupOptions{})
		if err != nil {
			b.Fatal(err)
		}
		fullCPU := cpuNow(b, srv) - cpu0
		fullD := full.Stats.Duration
		b.Logf("tree: %d MiB in %d files", total>>20, full.Stats.Files)
		b.Logf("raw PutObject of tar:  %6.1f MiB/s (%v), CPU client+MinIO %v", mbps(tarSize, raw), raw.Round(time.Millisecond), rawCPU.Round(time.Millisecond))
		b.Logf("full backup to MinIO:  %6.1f MiB/s (%v), CPU client+MinIO %v, uploaded %d MiB; ratio to raw: wall %.2fx, CPU %.2fx",
			mbps(total, fullD), fullD.Round(time.Millisecond), fullCPU.Round(time.Millisecond), full.Stats.BytesUploaded>>20,
			raw.Seconds()/fullD.Seconds(), rawCPU.Seconds()/fullCPU.Seconds())

		start = time.Now()
		again, err := repo.Backup(ctx, src, bsync.BackupOptions{})
		if err != nil {
			b.Fatal(err)
		}
		unchanged := time.Since(start)
		b.Logf("unchanged backup:      %v for %d files, uploaded %d bytes", unchanged.Round(time.Millisecond), again.Stats.Files, again.Stats.BytesUploaded)

		changed := change1pct(b, src, total)
		start = time.Now()
		delta, err := repo.Backup(ctx, src, bsync.BackupOptions{})
		if err != nil {
			b.Fatal(err)
		}
		b.Logf("1%% changed backup:     %v, changed %d KiB, read %d MiB, uploaded %d KiB, dedup ratio %.0fx",
			time.Since(start).Round(time.Millisecond), changed>>10, delta.Stats.BytesRead>>20, delta.Stats.BytesUploaded>>10,
			float64(delta.Stats.Bytes)/float64(max(1, delta.Stats.BytesUploaded)))

		dst := filepath.Join(b.TempDir(), "restore")
		start = time.Now()
		if err := repo.Restore(ctx, delta, dst, bsync.RestoreOptions{}); err != nil {
			b.Fatal(err)
		}
		restoreD := time.Since(start)
		b.Logf("restore from MinIO:    %6.1f MiB/s (%v)", mbps(total, restoreD), restoreD.Round(time.Millisecond))

		// Local directory store vs a plain copy of the tree.
		cp := filepath.Join(b.TempDir(), "copy")
		start = time.Now()
		copyTree(b, src, cp)
		copyD := time.Since(start)
		ls, err := local.Open(filepath.Join(b.TempDir(), "repo"))
		if err != nil {
			b.Fatal(err)
		}
		lrepo := initRepo(b, ls, newKey(b))
		lfull, err := lrepo.Backup(ctx, src, bsync.BackupOptions{})
		if err != nil {
			b.Fatal(err)
		}
		b.Logf("plain copy + sync:      %6.1f MiB/s (%v)", mbps(total, copyD), copyD.Round(time.Millisecond))
		b.Logf("full backup to dir:    %6.1f MiB/s (%v), ratio to copy %.2fx",
			mbps(total, lfull.Stats.Duration), lfull.Stats.Duration.Round(time.Millisecond), copyD.Seconds()/lfull.Stats.Duration.Seconds())

		b.ReportMetric(raw.Seconds()/fullD.Seconds(), "backup/raw-ratio")
		b.ReportMetric(rawCPU.Seconds()/fullCPU.Seconds(), "backup/raw-cpu-ratio")
		b.ReportMetric(unchanged.Seconds(), "unchanged-s")
		b.ReportMetric(float64(delta.Stats.BytesUploaded), "1pct-uploaded-B")
		b.ReportMetric(mbps(total, restoreD), "restore-MiB/s")
		b.ReportMetric(copyD.Seconds()/lfull.Stats.Duration.Seconds(), "local/copy-ratio")
	}
}
