package board

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/bulkhead-dev/bulkhead/sandbox"
)

const crashEnv = "BULKHEAD_BOARD_CRASH_HELPER"

func TestMain(m *testing.M) {
	sandbox.RunInitIfRequested() // ticket git runs in project sandboxes
	if dir := os.Getenv(crashEnv); dir != "" {
		crashHelper(dir)
		return
	}
	os.Exit(m.Run())
}

// crashHelper runs ticket 1 of project p with a runner that posts one
// comment, signals the parent, and hangs until it is killed.
func crashHelper(dir string) {
	svc, err := openServiceDir(dir)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(5)
	}
	b := New(svc, Options{LeaseTTL: 4 * time.Second})
	b.SetRunner(RunnerFunc(func(ctx context.Context, req *RunRequest) (*RunResult, error) {
		if _, err := callTool(ctx, req, "comment_post", `{"body":"step one done"}`); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(3)
		}
		os.WriteFile(filepath.Join(dir, "marker"), nil, 0o644)
		select {}
	}))
	err = b.Dispatch(context.Background(), "p", 1, "victim")
	fmt.Fprintln(os.Stderr, "dispatch returned:", err)
	os.Exit(4)
}

// kill -9 during a ticket run: the lease expires, the ticket is picked up
// again, and the thread shows what happened with no comment lost or
// duplicated.
func TestKillDuringRun(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	svc := openService(t, dir)
	b := New(svc, Options{})
	ctx := context.Background()
	if _, err := b.CreateProject(ctx, "p", makeRepo(t), ""); err != nil {
		t.Fatal(err)
	}
	if _, err := b.CreateTicket(ctx, "p", NewTicket{Title: "survive a crash", Description: "d"}); err != nil {
		t.Fatal(err)
	}
	svc.Close()

	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), crashEnv+"="+dir)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		if _, err := os.Stat(filepath.Join(dir, "marker")); err == nil {
			break
		}
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			cmd.Wait()
			t.Fatalf("helper never reached the run: %s", stderr.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	cmd.Wait()

	svc = openService(t, dir)
	defer svc.Close()
	r := &countingRunner{}
	b = New(svc, Options{Runner: r, LeaseTTL: 4 * time.Second})
	// The dead run's lease is still live for a moment: nothing is claimed.
	if rep, err := b.Beat(ctx, "hb"); err != nil || rep.Claimed != 0 {
		t.Fatalf("claimed under a live lease: %+v %v", rep, err)
	}
	ls, err := b.Leases()
	if err != nil || len(ls) != 1 || ls[0].Released || ls[0].Holder != "victim" {
		t.Fatalf("lease after the kill: %+v %v", ls, err)
	}
	time.Sleep(time.Until(ls[0].Expires) + 50*time.Millisecond)
	rep, err := b.Beat(ctx, "hb")
	if err != nil || rep.Succeeded != 1 {
		t.Fatalf("after expiry: %+v %v", rep, err)
	}
	cs, _ := b.Comments(ctx, "p", 1)
	var kinds []string
	count := map[string]int{}
	for _, c := range cs {
		kinds = append(kinds, c.Kind+": "+c.Body)
		for _, k := range []string{"step one done", "stopped without finishing", "did the work", "Run 1 started", "Run 2 started"} {
			if strings.Contains(c.Body, k) {
				count[k]++
			}
		}
	}
	for _, k := range []string{"step one done", "stopped without finishing", "did the work", "Run 1 started", "Run 2 started"} {
		if count[k] != 1 {
			t.Errorf("%q appears %d times in:\n%s", k, count[k], strings.Join(kinds, "\n"))
		}
	}
	for i, c := range cs {
		if c.Seq != int64(i+1) {
			t.Fatalf("comment %d has seq %d", i, c.Seq)
		}
	}
	tk, _ := b.Ticket(ctx, "p", 1)
	if tk.State != Verification {
		t.Fatalf("state %s", tk.State)
	}
}
