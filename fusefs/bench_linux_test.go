package fusefs

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"text/tabwriter"
	"time"

	"github.com/bulkhead-dev/bulkhead/internal/testutil"
)

// BenchmarkFUSE runs each workload on a plain directory (native), on the
// view with kernel passthrough and on the view without it, all on the same
// file system in one run, and prints how fast each view is against native
// (1.00x = native speed). Run it with `make bench-fuse`.
func BenchmarkFUSE(b *testing.B) {
	testutil.RequireRoot(b)
	testutil.RequireFUSE(b)
	base := b.TempDir()

	type target struct{ name, dir string }
	targets := []target{{"native", filepath.Join(base, "native")}}
	for _, m := range []struct {
		name string
		opts Options
	}{
		{"passthrough", Options{}},
		{"fuse", Options{NoPassthrough: true}},
	} {
		backing := filepath.Join(base, m.name+"-files")
		mnt := filepath.Join(base, m.name+"-mnt")
		for _, d := range []string{backing, mnt} {
			if err := os.MkdirAll(d, 0o755); err != nil {
				b.Fatal(err)
			}
		}
		srv, err := Mount(context.Background(), backing, mnt, m.opts)
		if err != nil {
			b.Fatal(err)
		}
		if want := m.name == "passthrough"; srv.Passthrough() != want {
			b.Fatalf("%s mount: passthrough = %v", m.name, srv.Passthrough())
		}
		b.Cleanup(func() { srv.Unmount() })
		targets = append(targets, target{m.name, mnt})
	}
	if err := os.MkdirAll(targets[0].dir, 0o755); err != nil {
		b.Fatal(err)
	}

	goTar := filepath.Join(base, "gosrc.tar")
	if out, err := exec.Command("tar", "-C", runtime.GOROOT(), "-cf", goTar, "src").CombinedOutput(); err != nil {
		b.Fatalf("tar the Go source tree: %v: %s", err, out)
	}

	results := map[string]map[string]float64{} // workload → target → ns/op
	var order []string
	for _, w := range fuseWorkloads(goTar) {
		order = append(order, w.name)
		results[w.name] = map[string]float64{}
		for _, tg := range targets {
			b.Run(w.name+"/"+tg.name, func(b *testing.B) {
				dir := filepath.Join(tg.dir, w.name)
				if err := os.MkdirAll(dir, 0o755); err != nil {
					b.Fatal(err)
				}
				defer os.RemoveAll(dir)
				w.run(b, dir)
				results[w.name][tg.name] = float64(b.Elapsed().Nanoseconds()) / float64(b.N)
			})
		}
	}

	tw := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "workload\tnative\tpassthrough\tvs native\tfuse\tvs native\t")
	for _, name := range order {
		r := results[name]
		if r["native"] == 0 || r["passthrough"] == 0 || r["fuse"] == 0 {
			continue
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%.2fx\t%s\t%.2fx\t\n", name,
			time.Duration(r["native"]).Round(time.Microsecond),
			time.Duration(r["passthrough"]).Round(time.Microsecond), r["native"]/r["passthrough"],
			time.Duration(r["fuse"]).Round(time.Microsecond), r["native"]/r["fuse"])
	}
	fmt.Fprintln(tw, "(vs native = native time / view time: 1.00x is native speed, 0.50x twice as slow)\t\t\t\t\t\t")
	tw.Flush()
}

type fuseWorkload struct {
	name string
	run  func(b *testing.B, dir string)
}

const (
	seqSize    = 256 << 20
	seqBlock   = 1 << 20
	randSize   = 64 << 20
	randOps    = 8192
	smallFiles = 10_000
)

func fuseWorkloads(goTar string) []fuseWorkload {
	return []fuseWorkload{
		{"seq-write-1M", func(b *testing.B, dir string) {
			block := bytes.Repeat([]byte("s"), seqBlock)
			b.SetBytes(seqSize)
			for b.Loop() {
				f, err := os.Create(filepath.Join(dir, "seq"))
				if err != nil {
					b.Fatal(err)
				}
				for off := 0; off < seqSize; off += seqBlock {
					if _, err := f.Write(block); err != nil {
						b.Fatal(err)
					}
				}
				if err := f.Close(); err != nil {
					b.Fatal(err)
				}
			}
		}},
		{"seq-read-1M", func(b *testing.B, dir string) {
			p := filepath.Join(dir, "seq")
			if err := os.WriteFile(p, bytes.Repeat([]byte("s"), seqSize), 0o644); err != nil {
				b.Fatal(err)
			}
			buf := make([]byte, seqBlock)
			b.SetBytes(seqSize)
			for b.Loop() {
				f, err := os.Open(p)
				if err != nil {
					b.Fatal(err)
				}
				for {
					n, err := f.Read(buf)
					if n == 0 || err != nil {
						break
					}
				}
				f.Close()
			}
		}},
		{"rand-read-4k", func(b *testing.B, dir string) {
			f := randFile(b, dir)
			buf := make([]byte, 4096)
			rng := rand.New(rand.NewPCG(1, 2))
			for b.Loop() {
				for range randOps {
					if _, err := f.ReadAt(buf, int64(rng.IntN(randSize/4096))*4096); err != nil {
						b.Fatal(err)
					}
				}
			}
			b.ReportMetric(float64(randOps*b.N)/b.Elapsed().Seconds(), "IOPS")
		}},
		{"rand-write-4k", func(b *testing.B, dir string) {
			f := randFile(b, dir)
			buf := bytes.Repeat([]byte("r"), 4096)
			rng := rand.New(rand.NewPCG(3, 4))
			for b.Loop() {
				for range randOps {
					if _, err := f.WriteAt(buf, int64(rng.IntN(randSize/4096))*4096); err != nil {
						b.Fatal(err)
					}
				}
			}
			b.ReportMetric(float64(randOps*b.N)/b.Elapsed().Seconds(), "IOPS")
		}},
		{"create-10k", func(b *testing.B, dir string) {
			data := bytes.Repeat([]byte("c"), 1024)
			gen := 0
			for b.Loop() {
				d := filepath.Join(dir, fmt.Sprint(gen))
				gen++
				if err := os.Mkdir(d, 0o755); err != nil {
					b.Fatal(err)
				}
				for i := range smallFiles {
					f, err := os.Create(filepath.Join(d, fmt.Sprintf("f%05d", i)))
					if err != nil {
						b.Fatal(err)
					}
					if _, err := f.Write(data); err != nil {
						b.Fatal(err)
					}
					if err := f.Close(); err != nil {
						b.Fatal(err)
					}
				}
			}
		}},
		{"stat-10k", func(b *testing.B, dir string) {
			names := smallTree(b, dir)
			for b.Loop() {
				for _, n := range names {
					if _, err := os.Lstat(n); err != nil {
						b.Fatal(err)
					}
				}
			}
		}},
		{"untar-go-src", func(b *testing.B, dir string) {
			gen := 0
			for b.Loop() {
				d := filepath.Join(dir, fmt.Sprint(gen))
				gen++
				if err := os.Mkdir(d, 0o755); err != nil {
					b.Fatal(err)
				}
				if out, err := exec.Command("tar", "--no-same-owner", "-C", d, "-xf", goTar).CombinedOutput(); err != nil {
					b.Fatalf("untar: %v: %s", err, out)
				}
			}
		}},
		{"git-status-10k", func(b *testing.B, dir string) {
			smallTree(b, dir)
			// git -C, not cmd.Dir: a child that enters the mount
			// between fork and exec can deadlock the serving process
			// (the vforked child holds its thread while the garbage
			// collector waits to stop the world).
			git := func(args ...string) {
				cmd := exec.Command("git", append([]string{"-C", dir}, args...)...)
				cmd.Env = append(os.Environ(), "GIT_AUTHOR_NAME=b", "GIT_AUTHOR_EMAIL=b@b", "GIT_COMMITTER_NAME=b", "GIT_COMMITTER_EMAIL=b@b")
				if out, err := cmd.CombinedOutput(); err != nil {
					b.Fatalf("git %s: %v: %s", strings.Join(args, " "), err, out)
				}
			}
			git("init", "-q")
			git("add", "-A")
			git("commit", "-q", "-m", "tree")
			git("status", "--porcelain") // warm the index
			for b.Loop() {
				git("status", "--porcelain")
			}
		}},
	}
}

// randFile makes a randSize file in dir and opens it for reading and
// writing.
func randFile(b *testing.B, dir string) *os.File {
	b.Helper()
	p := filepath.Join(dir, "rand")
	if err := os.WriteFile(p, bytes.Repeat([]byte("x"), randSize), 0o644); err != nil {
		b.Fatal(err)
	}
	f, err := os.OpenFile(p, os.O_RDWR, 0)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { f.Close() })
	return f
}

// smallTree makes smallFiles files of 100 bytes in 100 directories and
// returns their paths.
func smallTree(b *testing.B, dir string) []string {
	b.Helper()
	var names []string
	for i := range smallFiles {
		d := filepath.Join(dir, fmt.Sprintf("d%02d", i%100))
		if i < 100 {
			if err := os.Mkdir(d, 0o755); err != nil {
				b.Fatal(err)
			}
		}
		p := filepath.Join(d, fmt.Sprintf("f%05d.txt", i))
		if err := os.WriteFile(p, bytes.Repeat([]byte("t"), 100), 0o644); err != nil {
			b.Fatal(err)
		}
		names = append(names, p)
	}
	slices.Sort(names)
	return names
}
