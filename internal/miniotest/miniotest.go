package miniotest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"

	"github.com/bulkhead-dev/bulkhead/internal/testutil"
)

// Server is a running MinIO process.
type Server struct {
	Endpoint  string // host:port, plain HTTP
	AccessKey string
	SecretKey string
	Dir       string

	bin    string
	logf   *os.File
	mu     sync.Mutex
	cmd    *exec.Cmd
	exited chan struct{}
}

// Binary returns the path of the minio binary, looking on PATH and in
// $(go env GOPATH)/bin.
func Binary() (string, error) {
	if p, err := exec.LookPath("minio"); err == nil {
		return p, nil
	}
	gopath := os.Getenv("GOPATH")
	if gopath == "" {
		if out, err := exec.Command("go", "env", "GOPATH").Output(); err == nil {
			gopath = strings.TrimSpace(string(out))
		}
	}
	for _, dir := range filepath.SplitList(gopath) {
		p := filepath.Join(dir, "bin", "minio")
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", errors.New("minio not on PATH nor in $(go env GOPATH)/bin")
}

// Start launches MinIO and registers its shutdown with tb.Cleanup. It skips
// (or fails under BULKHEAD_TEST_NO_SKIP=1) when the binary is missing.
func Start(tb testing.TB) *Server {
	tb.Helper()
	bin, err := Binary()
	if err != nil {
		testutil.SkipOrFail(tb, "needs the minio server: %v", err)
		return nil
	}
	s := &Server{
		AccessKey: "bulkhead-test",
		SecretKey: randomHex(16),
		Dir:       tb.TempDir(),
		bin:       bin,
	}
	logf, err := os.Create(filepath.Join(s.Dir, "minio.log"))
	if err != nil {
		tb.Fatalf("minio log: %v", err)
	}
	s.logf = logf
	tb.Cleanup(func() {
		s.Stop()
		logf.Close()
		if tb.Failed() {
			if b, err := os.ReadFile(logf.Name()); err == nil {
				tb.Logf("minio log:\n%s", tail(b, 4000))
			}
		}
	})
	if err := s.start(); err != nil {
		tb.Fatalf("start minio: %v", err)
	}
	return s
}

func (s *Server) start() error {
	var lastErr error
	for attempt := 0; attempt < 3; attempt++ {
		if s.Endpoint == "" || attempt > 0 {
			port, err := freePort()
			if err != nil {
				return err
			}
			s.Endpoint = fmt.Sprintf("127.0.0.1:%d", port)
		}
		if lastErr = s.launch(); lastErr == nil {
			return nil
		}
	}
	return lastErr
}

func (s *Server) launch() error {
	cmd := exec.Command(s.bin, "server", "--quiet", "--address", s.Endpoint, filepath.Join(s.Dir, "data"))
	cmd.Env = append(os.Environ(),
		"MINIO_ROOT_USER="+s.AccessKey,
		"MINIO_ROOT_PASSWORD="+s.SecretKey,
		"MINIO_BROWSER=off",
		"MINIO_UPDATE=off",
		"MINIO_CI_CD=1",
	)
	cmd.Stdout, cmd.Stderr = s.logf, s.logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return err
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	s.mu.Lock()
	s.cmd, s.exited = cmd, exited
	s.mu.Unlock()

	deadline := time.Now().Add(60 * time.Second)
	url := "http://" + s.Endpoint + "/minio/health/ready"
	for time.Now().Before(deadline) {
		select {
		case <-exited:
			return fmt.Errorf("minio exited early (see %s)", s.logf.Name())
		case <-time.After(100 * time.Millisecond):
		}
		resp, err := http.Get(url)
		if err != nil {
			continue
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			continue
		}
		// "ready" can come before the object layer serves requests.
		if s.serving() {
			return nil
		}
	}
	s.Stop()
	return fmt.Errorf("minio not ready on %s after 60s", s.Endpoint)
}

func (s *Server) serving() bool {
	c, err := minio.New(s.Endpoint, &minio.Options{Creds: credentials.NewStaticV4(s.AccessKey, s.SecretKey, "")})
	if err != nil {
		return false
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, err = c.ListBuckets(ctx)
	return err == nil
}

// Stop terminates the server (SIGTERM, then SIGKILL after 10 s). Its data
// stays, so Restart brings the same buckets back.
func (s *Server) Stop() {
	s.mu.Lock()
	cmd, exited := s.cmd, s.exited
	s.cmd = nil
	s.mu.Unlock()
	if cmd == nil {
		return
	}
	cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-exited:
	case <-time.After(10 * time.Second):
		cmd.Process.Kill()
		<-exited
	}
}

// Restart starts a stopped server again on the same address and data.
func (s *Server) Restart(tb testing.TB) {
	tb.Helper()
	s.Stop()
	if err := s.launch(); err != nil {
		tb.Fatalf("restart minio: %v", err)
	}
}

// CPUTime returns the user+system CPU time the running server has used, from
// /proc (Linux only). Benchmarks use it to compare work done, which a busy
// shared machine distorts far less than wall time.
func (s *Server) CPUTime() (time.Duration, error) {
	s.mu.Lock()
	cmd := s.cmd
	s.mu.Unlock()
	if cmd == nil {
		return 0, errors.New("minio is not running")
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", cmd.Process.Pid))
	if err != nil {
		return 0, err
	}
	// Fields after the parenthesised command name; utime and stime are the
	// 14th and 15th fields overall, in clock ticks (100 per second on Linux).
	rest := string(b[strings.LastIndexByte(string(b), ')')+2:])
	f := strings.Fields(rest)
	if len(f) < 13 {
		return 0, fmt.Errorf("short /proc stat: %q", rest)
	}
	var ut, st int64
	fmt.Sscan(f[11], &ut)
	fmt.Sscan(f[12], &st)
	return time.Duration(ut+st) * 10 * time.Millisecond, nil
}

// Client returns a minio-go client for the server.
func (s *Server) Client(tb testing.TB) *minio.Client {
	tb.Helper()
	c, err := minio.New(s.Endpoint, &minio.Options{Creds: credentials.NewStaticV4(s.AccessKey, s.SecretKey, "")})
	if err != nil {
		tb.Fatalf("minio client: %v", err)
	}
	return c
}

// NewBucket creates a bucket with a fresh random name and returns the name.
func (s *Server) NewBucket(tb testing.TB) string {
	tb.Helper()
	name := "test-" + randomHex(8)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := s.Client(tb).MakeBucket(ctx, name, minio.MakeBucketOptions{}); err != nil {
		tb.Fatalf("make bucket %s: %v", name, err)
	}
	return name
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

func tail(b []byte, n int) []byte {
	if len(b) > n {
		return b[len(b)-n:]
	}
	return b
}
