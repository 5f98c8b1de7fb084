package sync_test

import (
	"archive/tar"
	"context"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"runtime/trace"
	"slices"
	"strconv"
	"strings"
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

// cpuNow returns this process's CPU time and page faults, and MinIO's CPU
// time: the work a phase costs, which load from other processes distorts far
// less than wall time.
func cpuNow(b *testing.B, srv *miniotest.Server) (self time.Duration, faults int64, minio time.Duration) {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	m, err := srv.CPUTime()
	if err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()), ru.Minflt + ru.Majflt, m
}

// phase is one measured run of the raw upload or the full backup.
type phase struct {
	wall, self, minio time.Duration
	peakRSS           int64  // bytes; 0 when not measured
	alloc             uint64 // bytes allocated by this process
	gcs               uint32
	faults            int64 // page faults of this process
}

func (p phase) cpu() time.Duration { return p.self + p.minio }

// measure runs fn and returns its wall time and the CPU time it cost this
// process and MinIO, plus this process's peak RSS while it ran.
func measure(b *testing.B, srv *miniotest.Server, fn func()) phase {
	debug.FreeOSMemory() // so that earlier phases' garbage is not counted
	resetPeakRSS()
	var ms0, ms1 runtime.MemStats
	runtime.ReadMemStats(&ms0)
	self0, faults0, minio0 := cpuNow(b, srv)
	start := time.Now()
	fn()
	wall := time.Since(start)
	self1, faults1, minio1 := cpuNow(b, srv)
	runtime.ReadMemStats(&ms1)
	return phase{wall: wall, self: self1 - self0, minio: minio1 - minio0, peakRSS: peakRSS(),
		alloc: ms1.TotalAlloc - ms0.TotalAlloc, gcs: ms1.NumGC - ms0.NumGC, faults: faults1 - faults0}
}

// resetPeakRSS sets this process's peak RSS (VmHWM) to its current RSS.
func resetPeakRSS() { os.WriteFile("/proc/self/clear_refs", []byte("5"), 0) }

// peakRSS reads VmHWM from /proc/self/status (0 if unavailable).
func peakRSS() int64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
			return kb << 10
		}
	}
	return 0
}

func ratioList(xs []float64) string {
	parts := make([]string, len(xs))
	for i, x := range xs {
		parts[i] = fmt.Sprintf("%.2f", x)
	}
	return strings.Join(parts, " ")
}

func median(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// BenchmarkSync runs the snapshot scenario against MinIO and against a local
// directory, printing ratios to the peer measured in the same run. The raw
// upload and the full backup alternate for several rounds (the order flips
// each round) and the medians are reported, because the machine is shared.
//
// Environment: BULKHEAD_BENCH_SYNC_MB sets the tree size (default 1024),
// BULKHEAD_BENCH_SYNC_ROUNDS the raw/full rounds (default 5),
// BULKHEAD_BENCH_SYNC_FULL_ONLY=1 stops after them, and
// BULKHEAD_BENCH_SYNC_CPUPROFILE / _TRACE profile the last full backup.
func BenchmarkSync(b *testing.B) {
	mb := 1024
	if v, err := strconv.Atoi(os.Getenv("BULKHEAD_BENCH_SYNC_MB")); err == nil && v > 0 {
		mb = v
	}
	rounds := 5
	if v, err := strconv.Atoi(os.Getenv("BULKHEAD_BENCH_SYNC_ROUNDS")); err == nil && v > 0 {
		rounds = v
	}
	srv := miniotest.Start(b)
	src := b.TempDir()
	total := benchTree(b, src, mb)
	tarPath := filepath.Join(b.TempDir(), "tree.tar")
	tarSize := tarTree(b, src, tarPath)
	ctx := context.Background()

	for b.Loop() {
		var (
			repo              *bsync.Repository
			full              *bsync.Snapshot
			ratios, cpuRatios []float64
			raws, fulls       []phase
		)
		rawUpload := func() phase {
			// One minio-go PutObject of a tar of the tree, in the same
			// signing mode as the S3 store (see sync/s3).
			bucket := srv.NewBucket(b)
			f, err := os.Open(tarPath)
			if err != nil {
				b.Fatal(err)
			}
			defer f.Close()
			opts := minio.PutObjectOptions{DisableContentSha256: true}
			return measure(b, srv, func() {
				if _, err := srv.Client(b).PutObject(ctx, bucket, "tree.tar", f, tarSize, opts); err != nil {
					b.Fatal(err)
				}
			})
		}
		fullBackup := func(last bool) phase {
			repo = initRepo(b, openS3(b, srv, srv.NewBucket(b)), newKey(b))
			stop := func() {}
			if last {
				stop = startProfile(b)
			}
			defer stop()
			return measure(b, srv, func() {
				var err error
				if full, err = repo.Backup(ctx, src, bsync.BackupOptions{}); err != nil {
					b.Fatal(err)
				}
			})
		}
		for i := range rounds {
			var raw, fb phase
			if i%2 == 0 {
				raw, fb = rawUpload(), fullBackup(i == rounds-1)
			} else {
				fb, raw = fullBackup(i == rounds-1), rawUpload()
			}
			raws, fulls = append(raws, raw), append(fulls, fb)
			ratios = append(ratios, raw.wall.Seconds()/fb.wall.Seconds())
			cpuRatios = append(cpuRatios, raw.cpu().Seconds()/fb.cpu().Seconds())
			// testing keeps only 10 lines of a benchmark's log: rounds go
			// to stderr, the summary below to the log.
			fmt.Fprintf(os.Stderr, "round %d: raw %6.1f MiB/s (%v, CPU client %v + MinIO %v) | full %6.1f MiB/s (%v, CPU client %v + MinIO %v, peak RSS %d MiB, %d MiB allocated, %d GCs, %d page faults) | ratio wall %.2fx, CPU %.2fx\n",
				i+1, mbps(tarSize, raw.wall), raw.wall.Round(time.Millisecond), raw.self.Round(time.Millisecond), raw.minio.Round(time.Millisecond),
				mbps(total, fb.wall), fb.wall.Round(time.Millisecond), fb.self.Round(time.Millisecond), fb.minio.Round(time.Millisecond), fb.peakRSS>>20, fb.alloc>>20, fb.gcs, fb.faults,
				ratios[i], cpuRatios[i])
		}
		rawMBps := make([]float64, rounds)
		fullMBps := make([]float64, rounds)
		rawSelf, rawMinio, fullSelf, fullMinio := make([]float64, rounds), make([]float64, rounds), make([]float64, rounds), make([]float64, rounds)
		var peak int64
		for i := range rounds {
			rawMBps[i], fullMBps[i] = mbps(tarSize, raws[i].wall), mbps(total, fulls[i].wall)
			rawSelf[i], rawMinio[i] = raws[i].self.Seconds(), raws[i].minio.Seconds()
			fullSelf[i], fullMinio[i] = fulls[i].self.Seconds(), fulls[i].minio.Seconds()
			peak = max(peak, fulls[i].peakRSS)
		}
		b.Logf("tree: %d MiB in %d files; full backup uploaded %d MiB in %d packs", total>>20, full.Stats.Files, full.Stats.BytesUploaded>>20, full.Stats.Packs)
		b.Logf("raw PutObject of tar:  median %6.1f MiB/s, CPU client %.2fs + MinIO %.2fs", median(rawMBps), median(rawSelf), median(rawMinio))
		b.Logf("full backup to MinIO:  median %6.1f MiB/s, CPU client %.2fs + MinIO %.2fs, peak RSS %d MiB",
			median(fullMBps), median(fullSelf), median(fullMinio), peak>>20)
		b.Logf("full backup vs raw:    median of %d rounds %.2fx wall, %.2fx CPU (per round: %s)", rounds, median(ratios), median(cpuRatios), ratioList(ratios))
		b.ReportMetric(median(ratios), "backup/raw-ratio")
		b.ReportMetric(median(cpuRatios), "backup/raw-cpu-ratio")
		b.ReportMetric(float64(peak>>20), "backup-peak-RSS-MiB")
		if os.Getenv("BULKHEAD_BENCH_SYNC_FULL_ONLY") == "1" {
			continue
		}

		start := time.Now()
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

		b.ReportMetric(unchanged.Seconds(), "unchanged-s")
		b.ReportMetric(float64(delta.Stats.BytesUploaded), "1pct-uploaded-B")
		b.ReportMetric(mbps(total, restoreD), "restore-MiB/s")
		b.ReportMetric(copyD.Seconds()/lfull.Stats.Duration.Seconds(), "local/copy-ratio")
	}
}

// startProfile writes a CPU profile of the client to the file named by
// BULKHEAD_BENCH_SYNC_CPUPROFILE and an execution trace to the one named by
// BULKHEAD_BENCH_SYNC_TRACE (each if set) until the returned func is called.
func startProfile(b *testing.B) func() {
	var stops []func()
	if path := os.Getenv("BULKHEAD_BENCH_SYNC_CPUPROFILE"); path != "" {
		f, err := os.Create(path)
		if err != nil {
			b.Fatal(err)
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			b.Fatal(err)
		}
		stops = append(stops, func() { pprof.StopCPUProfile(); f.Close() })
	}
	if path := os.Getenv("BULKHEAD_BENCH_SYNC_TRACE"); path != "" {
		f, err := os.Create(path)
		if err != nil {
			b.Fatal(err)
		}
		if err := trace.Start(f); err != nil {
			b.Fatal(err)
		}
		stops = append(stops, func() { trace.Stop(); f.Close() })
	}
	return func() {
		for _, stop := range stops {
			stop()
		}
	}
}
