package server

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bulkhead-dev/bulkhead/board"
)

func boardRepo(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "README.md"), []byte("hi\n"), 0o644)
	for _, args := range [][]string{{"init", "-q", "-b", "main"}, {"add", "."}, {"-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "init"}} {
		if out, err := exec.Command("git", append([]string{"-C", dir}, args...)...).CombinedOutput(); err != nil {
			t.Fatalf("git %v: %v %s", args, err, out)
		}
	}
	return dir
}

func TestBoardAPI(t *testing.T) {
	f := newFixture(t)
	repo := boardRepo(t)
	b := board.For(f.svc, board.Options{})
	b.SetRunner(board.RunnerFunc(func(ctx context.Context, req *board.RunRequest) (*board.RunResult, error) {
		req.Log("text", "working on it")
		for _, tl := range req.Tools {
			if tl.Name() == "ticket_update_state" {
				if _, err := tl.Call(ctx, []byte(`{"state":"verification","reason":"made the change"}`)); err != nil {
					return nil, err
				}
			}
		}
		return &board.RunResult{}, nil
	}))
	cases := []struct {
		token, method, path, body string
		code                      int
		want                      string
	}{
		{f.admin, "POST", "/v1/projects", fmt.Sprintf(`{"id":"web","repo":%q,"persona":"ghost"}`, repo), 404, "persona not found"},
		{f.admin, "POST", "/v1/projects", `{"id":"web","repo":"/nonexistent/repo"}`, 400, "cannot clone repository"},
		{f.admin, "POST", "/v1/projects", `{"id":"web","repo":"ext::sh -c id"}`, 400, "cannot clone repository"},
		{f.alice, "POST", "/v1/projects", fmt.Sprintf(`{"id":"web","repo":%q}`, repo), 403, "admin"},
		{f.admin, "POST", "/v1/projects", fmt.Sprintf(`{"id":"alice","repo":%q}`, repo), 400, "already has files"},
	}
	// alice's files are empty, so she can become a project; make them non-empty first.
	os.WriteFile(filepath.Join(f.svc.FilesDir("alice"), "x"), nil, 0o644)
	for _, c := range cases {
		code, body := f.raw(t, c.token, c.method, c.path, c.body)
		if code != c.code || !strings.Contains(string(body), c.want) {
			t.Fatalf("%s %s %s: %d %s", c.method, c.path, c.body, code, body)
		}
	}
	os.Remove(filepath.Join(f.svc.FilesDir("alice"), "x"))
	if code, body := f.raw(t, f.admin, "POST", "/v1/projects", fmt.Sprintf(`{"id":"alice","repo":%q}`, repo)); code != 201 {
		t.Fatalf("create: %d %s", code, body)
	}
	var tk board.Ticket
	if code := f.do(t, f.alice, "POST", "/v1/workspaces/alice/tickets", `{"title":"Add a footer","criteria":"footer shows"}`, &tk); code != 201 || tk.ID != 1 || tk.Author != "t" {
		t.Fatalf("ticket: %d %+v", code, tk)
	}
	more := []struct {
		method, path, body string
		code               int
		want               string
	}{
		{"POST", "/v1/workspaces/alice/tickets", `{"title":""}`, 400, "title is empty"},
		{"POST", "/v1/workspaces/alice/tickets/9/comments", `{"body":"hi"}`, 404, "ticket not found"},
		{"POST", "/v1/workspaces/alice/tickets/x/comments", `{"body":"hi"}`, 400, "positive number"},
		{"POST", "/v1/workspaces/alice/tickets/1/move", `{"state":"sideways"}`, 409, "unknown state"},
		{"POST", "/v1/workspaces/alice/tickets/1/move", `{"state":"done"}`, 409, "cannot move a ticket from backlog to done"},
		{"POST", "/v1/workspaces/alice/tickets/1/ship", ``, 409, "only a ticket in verification"},
		{"GET", "/v1/workspaces/bob/tickets", ``, 404, "not found"},
		{"PATCH", "/v1/workspaces/alice/project", `{"persona":"reviewer"}`, 403, "admin"},
	}
	for _, c := range more {
		code, body := f.raw(t, f.alice, c.method, c.path, c.body)
		if code != c.code || !strings.Contains(string(body), c.want) {
			t.Fatalf("%s %s: %d %s", c.method, c.path, code, body)
		}
	}
	if code, body := f.raw(t, f.admin, "PATCH", "/v1/workspaces/alice/project", `{"persona":"ghost"}`); code != 404 {
		t.Fatalf("unknown persona setting: %d %s", code, body)
	}

	// Follow the live log while the ticket is dispatched.
	req, _ := http.NewRequest("GET", f.ts.URL+"/v1/workspaces/alice/tickets/1/log", nil)
	req.Header.Set("Authorization", "Bearer "+f.alice)
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("log: %v %v", err, resp)
	}
	defer resp.Body.Close()
	if code, body := f.raw(t, f.alice, "POST", "/v1/workspaces/alice/tickets/1/dispatch", ""); code != 202 {
		t.Fatalf("dispatch: %d %s", code, body)
	}
	lines := make(chan string, 100)
	go func() {
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	deadline := time.After(10 * time.Second)
	var got []string
	for !strings.Contains(strings.Join(got, "\n"), "event: run_end") {
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatalf("stream ended: %q", got)
			}
			got = append(got, l)
		case <-deadline:
			t.Fatalf("no run_end in %q", got)
		}
	}
	if !strings.Contains(strings.Join(got, "\n"), "data: working on it") {
		t.Fatalf("log: %q", got)
	}
	var view TicketView
	for range 100 {
		f.do(t, f.alice, "GET", "/v1/workspaces/alice/tickets/1", "", &view)
		if !view.Running {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if view.Ticket.State != board.Verification || len(view.Comments) < 3 {
		t.Fatalf("after run: %+v", view)
	}
	if code, body := f.raw(t, f.alice, "POST", "/v1/workspaces/alice/tickets/1/move", `{"state":"in_progress"}`); code != 409 || !strings.Contains(string(body), "needs a comment") {
		t.Fatalf("return without comment: %d %s", code, body)
	}
	if code, body := f.raw(t, f.alice, "POST", "/v1/workspaces/alice/tickets/1/move", `{"state":"done"}`); code != 200 {
		t.Fatalf("accept: %d %s", code, body)
	}
	var hb HeartbeatStatus
	if code := f.do(t, f.admin, "GET", "/v1/heartbeat", "", &hb); code != 200 || len(hb.Leases) != 1 || !hb.Leases[0].Released || hb.Last != nil {
		t.Fatalf("heartbeat: %d %+v", code, hb)
	}
	var rep board.BeatReport
	if code := f.do(t, f.admin, "POST", "/v1/heartbeat", "", &rep); code != 200 || rep.Claimed != 0 {
		t.Fatalf("heartbeat now: %d %+v", code, rep)
	}
	if code := f.do(t, f.admin, "GET", "/v1/heartbeat", "", &hb); code != 200 || hb.Last == nil || hb.Last.Holder != "api heartbeat by admin" {
		t.Fatalf("heartbeat: %d %+v", code, hb)
	}
	// The UI is served without a token; the API behind it is not.
	if code, body := f.raw(t, "", "GET", "/ui/", ""); code != 200 || !strings.Contains(string(body), "app.js") {
		t.Fatalf("ui: %d", code)
	}
	if code, _ := f.raw(t, "", "GET", "/ui/../../etc/passwd", ""); code == 200 {
		t.Fatal("ui served a path outside its files")
	}
}

// Two heartbeats and API dispatches of every ticket, started together
// over 50 tickets in 10 projects, run each ticket exactly once.
func TestBoardRaceThroughAPI(t *testing.T) {
	f := newFixture(t)
	repo := boardRepo(t)
	var mu sync.Mutex
	runs := map[string]int{}
	b := board.For(f.svc, board.Options{Concurrency: 6})
	b.SetRunner(board.RunnerFunc(func(ctx context.Context, req *board.RunRequest) (*board.RunResult, error) {
		mu.Lock()
		runs[fmt.Sprintf("%s#%d", req.Project.ID, req.Ticket.ID)]++
		mu.Unlock()
		time.Sleep(5 * time.Millisecond)
		for _, tl := range req.Tools {
			if tl.Name() == "ticket_update_state" {
				if _, err := tl.Call(ctx, []byte(`{"state":"verification"}`)); err != nil {
					return nil, err
				}
			}
		}
		return &board.RunResult{Text: "done"}, nil
	}))
	for p := range 10 {
		id := fmt.Sprintf("r%d", p)
		if code, body := f.raw(t, f.admin, "POST", "/v1/projects", fmt.Sprintf(`{"id":%q,"repo":%q}`, id, repo)); code != 201 {
			t.Fatalf("project: %d %s", code, body)
		}
		for i := range 5 {
			if code := f.do(t, f.admin, "POST", "/v1/workspaces/"+id+"/tickets", fmt.Sprintf(`{"title":"t%d"}`, i), nil); code != 201 {
				t.Fatal("ticket", code)
			}
		}
	}
	start := make(chan struct{})
	var wg sync.WaitGroup
	for range 2 {
		wg.Go(func() {
			<-start
			var rep board.BeatReport
			if code := f.do(t, f.admin, "POST", "/v1/heartbeat", "", &rep); code != 200 {
				t.Error("heartbeat", code)
			}
		})
	}
	var accepted atomic.Int64
	wg.Go(func() {
		<-start
		for p := range 10 {
			for i := 1; i <= 5; i++ {
				code, body := f.raw(t, f.admin, "POST", fmt.Sprintf("/v1/workspaces/r%d/tickets/%d/dispatch", p, i), "")
				switch code {
				case 202:
					accepted.Add(1)
				case 409:
				default:
					t.Errorf("dispatch: %d %s", code, body)
				}
			}
		}
	})
	close(start)
	wg.Wait()
	// Dispatched runs finish in the background.
	for range 500 {
		if b.Running() == 0 {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	mu.Lock()
	defer mu.Unlock()
	for p := range 10 {
		for i := 1; i <= 5; i++ {
			if n := runs[fmt.Sprintf("r%d#%d", p, i)]; n != 1 {
				t.Errorf("r%d#%d ran %d times", p, i, n)
			}
		}
	}
	t.Logf("API dispatch started %d of 50 runs", accepted.Load())
}
