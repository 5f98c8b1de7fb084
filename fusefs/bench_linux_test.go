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
// (1.00x = native speed). Each b.Loop iteration is one round that runs the
// workload once on every target, in an order that rotates from round to
// round, and the table uses each target's median round, so load from other
// processes lands on all three alike. Run it with `make bench-fuse`.
func BenchmarkFUSE(b *testing.B) {
	testutil.RequireRoot(b)
	testutil.RequireFUSE(b)
	base := b.TempDir()

	targets := []string{"native", "passthrough", "fuse"}
	dirs := map[string]string{"native": filepath.Join(base, "native")}
	if err := os.MkdirAll(dirs["native"], 0o755); err != nil {
		b.Fatal(err)
	}
	for _, name := range targets[1:] {
		backing := filepath.Join(base, name+"-files")
		mnt := filepath.Join(base, name+"-mnt")
		for _, d := range []string{backing, mnt} {
			if err := os.MkdirAll(d, 0o755); err != nil {
				b.Fatal(err)
			}
		}
		srv, err := Mount(context.Background(), backing, mnt, Options{NoPassthrough: name == "fuse"})
		if err != nil {
			b.Fatal(err)
		}
		if want := name == "passthrough"; srv.Passthrough() != want {
			b.Fatalf("%s mount: passthrough = %v", name, srv.Passthrough())
		}
		b.Cleanup(func() { srv.Unmount() })
		dirs[name] = mnt
	}

	goTar := filepath.Join(base, "gosrc.tar")
	if out, err := exec.Command("tar", "-C", runtime.GOROOT(), "-cf", goTar, "src").CombinedOutput(); err != nil {
		b.Fatalf("tar the Go source tree: %v: %s", err, out)
	}

	medians := map[string]map[string]time.Duration{} // workload → target → median round
	var order []string
	for _, w := range fuseWorkloads(goTar) {
		order = append(order, w.name)
		b.Run(w.name, func(b *testing.B) {
			ops := map[string]func(){}
			for _, tg := range targets {
				dir := filepath.Join(dirs[tg], w.name)
				if err := os.MkdirAll(dir, 0o755); err != nil {
					b.Fatal(err)
				}
				b.Cleanup(func() { os.RemoveAll(dir) })
				ops[tg] = w.setup(b, dir)
			}
			times := map[string][]time.Duration{}
			round := 0
			for b.Loop() {
				for i := range targets {
					tg := targets[(i+round)%len(targets)]
					start := time.Now()
					ops[tg]()
					times[tg] = append(times[tg], time.Since(start))
				}
				round++
			}
			medians[w.name] = map[string]time.Duration{}
			for _, tg := range targets {
				slices.Sort(times[tg])
				medians[w.name][tg] = times[tg][len(times[tg])/2]
			}
			m := medians[w.name]
			b.ReportMetric(float64(m["native"])/float64(m["passthrough"]), "passthrough/native")
			b.ReportMetric(float64(m["native"])/float64(m["fuse"]), "fuse/native")
		})
	}

	tw := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "workload (median round)\tnative\tpassthrough\tvs native\tfuse\tvs native\t")
	for _, name := range order {
		m := medians[name]
		if m == nil {
			continue
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%.2fx\t%s\t%.2fx\t\n", name,
			m["native"].Round(time.Microsecond),
			m["passthrough"].Round(time.Microsecond), float64(m["native"])/float64(m["passthrough"]),
			m["fuse"].Round(time.Microsecond), float64(m["native"])/float64(m["fuse"]))
	}
	fmt.Fprintln(tw, "(vs native = native time / view time: 1.00x is native speed, 0.50x twice as slow)\t\t\t\t\t\t")
	tw.Flush()
}

// fuseWorkload prepares dir and returns the operation to time; the
// operation may run many times.
type fuseWorkload struct {
	name  string
	setup func(b *testing.B, dir string) (op func())
}

const (
	seqSize    = 1 << 30   // read: large enough that open and close do not dominate
	seqWrite   = 256 << 20 // write: small enough to stay under the dirty-page limit
	seqBlock   = 1 << 20
	randSize   = 64 << 20
	randOps    = 32768 // 128 MiB of random I/O per round, so one scheduling hiccup weighs little
	smallFiles = 10_000
)

func fuseWorkloads(goTar string) []fuseWorkload {
	return []fuseWorkload{
		{"seq-write-1M", func(b *testing.B, dir string) func() {
			block := bytes.Repeat([]byte("s"), seqBlock)
			return func() {
				f, err := os.Create(filepath.Join(dir, "seq"))
				if err != nil {
					b.Fatal(err)
				}
				for off := 0; off < seqWrite; off += seqBlock {
					if _, err := f.Write(block); err != nil {
						b.Fatal(err)
					}
				}
				if err := f.Close(); err != nil {
					b.Fatal(err)
				}
			}
		}},
		{"seq-read-1M", func(b *testing.B, dir string) func() {
			p := filepath.Join(dir, "seq")
			if err := os.WriteFile(p, bytes.Repeat([]byte("s"), seqSize), 0o644); err != nil {
				b.Fatal(err)
			}
			buf := make([]byte, seqBlock)
			return func() {
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
		{"rand-read-4k", func(b *testing.B, dir string) func() {
			f := randFile(b, dir)
			buf := make([]byte, 4096)
			rng := rand.New(rand.NewPCG(1, 2))
			return func() {
				for range randOps {
					if _, err := f.ReadAt(buf, int64(rng.IntN(randSize/4096))*4096); err != nil {
						b.Fatal(err)
					}
				}
			}
		}},
		{"rand-write-4k", func(b *testing.B, dir string) func() {
			f := randFile(b, dir)
			buf := bytes.Repeat([]byte("r"), 4096)
			rng := rand.New(rand.NewPCG(3, 4))
			return func() {
				for range randOps {
					if _, err := f.WriteAt(buf, int64(rng.IntN(randSize/4096))*4096); err != nil {
						b.Fatal(err)
					}
				}
			}
		}},
		{"create-10k", func(b *testing.B, dir string) func() {
			data := bytes.Repeat([]byte("c"), 1024)
			gen := 0
			return func() {
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
		{"stat-10k", func(b *testing.B, dir string) func() {
			names := smallTree(b, dir)
			return func() {
				for _, n := range names {
					if _, err := os.Lstat(n); err != nil {
						b.Fatal(err)
					}
				}
			}
		}},
		{"untar-go-src", func(b *testing.B, dir string) func() {
			gen := 0
			return func() {
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
		{"git-status-10k", func(b *testing.B, dir string) func() {
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
			return func() { git("status", "--porcelain") }
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
