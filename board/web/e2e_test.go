package web_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/bulkhead-dev/bulkhead/agent"
	"github.com/bulkhead-dev/bulkhead/agent/llmtest"
	"github.com/bulkhead-dev/bulkhead/board"
	"github.com/bulkhead-dev/bulkhead/credentials"
	"github.com/bulkhead-dev/bulkhead/internal/testutil"
	"github.com/bulkhead-dev/bulkhead/sandbox"
	"github.com/bulkhead-dev/bulkhead/server"
	"github.com/bulkhead-dev/bulkhead/workspace"
)

// TestMain lets the test binary serve as the sandbox init: a project's git
// runs in its sandbox.
func TestMain(m *testing.M) {
	sandbox.RunInitIfRequested()
	os.Exit(m.Run())
}

// webDriver is a minimal W3C WebDriver client over chromedriver's HTTP API.
type webDriver struct {
	t       *testing.T
	base    string // http://127.0.0.1:port/session/<id>
	shots   string
	shotNum int
}

const elementKey = "element-6066-11e4-a52e-4f735466cecf"

func wdCall(method, url string, body any) (json.RawMessage, error) {
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = strings.NewReader(string(b))
	}
	req, _ := http.NewRequest(method, url, rd)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var out struct {
		Value json.RawMessage `json:"value"`
	}
	b, _ := io.ReadAll(resp.Body)
	if err := json.Unmarshal(b, &out); err != nil {
		return nil, fmt.Errorf("%s %s: %d %s", method, url, resp.StatusCode, b)
	}
	if resp.StatusCode != 200 {
		return nil, fmt.Errorf("%s %s: %d %s", method, url, resp.StatusCode, out.Value)
	}
	return out.Value, nil
}

func (d *webDriver) call(method, path string, body any) json.RawMessage {
	d.t.Helper()
	v, err := wdCall(method, d.base+path, body)
	if err != nil {
		d.shot("failure")
		d.t.Fatal(err)
	}
	return v
}

func (d *webDriver) js(script string, args ...any) json.RawMessage {
	d.t.Helper()
	if args == nil {
		args = []any{}
	}
	return d.call("POST", "/execute/sync", map[string]any{"script": script, "args": args})
}

// waitJS polls a boolean expression until it is true.
func (d *webDriver) waitJS(what, expr string) {
	d.t.Helper()
	deadline := time.Now().Add(45 * time.Second)
	for {
		v, err := wdCall("POST", d.base+"/execute/sync", map[string]any{"script": "return !!(" + expr + ");", "args": []any{}})
		if err == nil && string(v) == "true" {
			return
		}
		if time.Now().After(deadline) {
			d.shot("timeout")
			body, _ := wdCall("POST", d.base+"/execute/sync", map[string]any{"script": "return document.body.innerText;", "args": []any{}})
			d.t.Fatalf("waiting for %s (%s): %v\npage: %s", what, expr, err, body)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func (d *webDriver) find(css string) string {
	d.t.Helper()
	d.waitJS(css, fmt.Sprintf("document.querySelector(%q)", css))
	v := d.call("POST", "/element", map[string]string{"using": "css selector", "value": css})
	var el map[string]string
	json.Unmarshal(v, &el)
	return el[elementKey]
}

func (d *webDriver) typeInto(css, text string) {
	d.t.Helper()
	id := d.find(css)
	d.call("POST", "/element/"+id+"/clear", map[string]any{})
	d.call("POST", "/element/"+id+"/value", map[string]string{"text": text})
}

// click clicks css, finding it again if the page re-rendered it between
// the lookup and the click.
func (d *webDriver) click(css string) {
	d.t.Helper()
	for attempt := 0; ; attempt++ {
		_, err := wdCall("POST", d.base+"/element/"+d.find(css)+"/click", map[string]any{})
		if err == nil {
			return
		}
		if !strings.Contains(err.Error(), "stale element") || attempt == 5 {
			d.shot("failure")
			d.t.Fatal(err)
		}
	}
}

func (d *webDriver) text(css string) string {
	d.t.Helper()
	var s string
	json.Unmarshal(d.call("GET", "/element/"+d.find(css)+"/text", nil), &s)
	return s
}

func (d *webDriver) shot(name string) {
	v, err := wdCall("GET", d.base+"/screenshot", nil)
	if err != nil {
		d.t.Logf("screenshot %s: %v", name, err)
		return
	}
	var b64 string
	json.Unmarshal(v, &b64)
	png, _ := base64.StdEncoding.DecodeString(b64)
	d.shotNum++
	p := filepath.Join(d.shots, fmt.Sprintf("%02d-%s.png", d.shotNum, name))
	if err := os.WriteFile(p, png, 0o644); err != nil {
		d.t.Logf("screenshot %s: %v", name, err)
	}
}

func freePort(t *testing.T) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func startBrowser(t *testing.T, shots string) *webDriver {
	chromium := testutil.RequireBinary(t, "chromium")
	driver := testutil.RequireBinary(t, "chromedriver")
	port := freePort(t)
	cmd := exec.Command(driver, fmt.Sprintf("--port=%d", port))
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	root := fmt.Sprintf("http://127.0.0.1:%d", port)
	for i := 0; ; i++ {
		if _, err := wdCall("GET", root+"/status", nil); err == nil {
			break
		}
		if i > 100 {
			t.Fatal("chromedriver did not start")
		}
		time.Sleep(100 * time.Millisecond)
	}
	v, err := wdCall("POST", root+"/session", map[string]any{"capabilities": map[string]any{"alwaysMatch": map[string]any{
		"browserName": "chrome",
		"goog:chromeOptions": map[string]any{
			"binary": chromium,
			"args":   []string{"--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1400,1000", "--user-data-dir=" + t.TempDir()},
		},
	}}})
	if err != nil {
		t.Fatal(err)
	}
	var sess struct {
		SessionID string `json:"sessionId"`
	}
	json.Unmarshal(v, &sess)
	d := &webDriver{t: t, base: root + "/session/" + sess.SessionID, shots: shots}
	t.Cleanup(func() { wdCall("DELETE", d.base, nil) })
	return d
}

func gitRepo(t *testing.T) string {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "index.html"), []byte("<footer>grey</footer>\n"), 0o644)
	for _, args := range [][]string{{"init", "-q", "-b", "main"}, {"add", "."}, {"-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "init"}} {
		if out, err := exec.Command("git", append([]string{"-C", dir}, args...)...).CombinedOutput(); err != nil {
			t.Fatalf("git %v: %v %s", args, err, out)
		}
	}
	return dir
}

// screenshotDir is where the screenshots go: $BULKHEAD_SCREENSHOTS, or
// .cache/screenshots/board-e2e at the top of the repository (git-ignored).
func screenshotDir(t *testing.T) string {
	dir := os.Getenv("BULKHEAD_SCREENSHOTS")
	if dir == "" {
		dir = filepath.Join("..", "..", ".cache", "screenshots", "board-e2e")
	}
	os.RemoveAll(dir)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	abs, _ := filepath.Abs(dir)
	t.Logf("screenshots in %s", abs)
	return dir
}

// End to end in headless Chromium: sign in, create a project from a local
// git repo, open a ticket, run a heartbeat against the loopback model, see
// the agent's comment and the ticket in verification, return it with a
// comment, see it worked again, accept it; and bad input shows errors.
func TestBoardInChromium(t *testing.T) {
	testutil.RequireRoot(t) // the project's git runs in its sandbox
	testutil.RequireFUSE(t)
	testutil.RequireUserNS(t)
	shots := screenshotDir(t)
	d := startBrowser(t, shots)

	state := t.TempDir()
	svc, err := workspace.Open(context.Background(), workspace.Options{
		StateDir:   state,
		Passphrase: func() ([]byte, error) { return []byte("pw"), nil },
		KDF:        credentials.KDFParams{Time: 1, MemoryKiB: 8 << 10, Threads: 1},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer svc.Close()
	srv, err := server.New(server.Options{Service: svc})
	if err != nil {
		t.Fatal(err)
	}
	admin, err := srv.Tokens().EnsureAdmin(state)
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(srv.Handler())
	defer func() {
		ts.CloseClientConnections() // the browser's log stream
		ts.Close()
	}()

	model := llmtest.Start(t)
	model.Push(
		llmtest.ToolCall("a1", "ticket_read", `{}`),
		llmtest.ToolCall("a2", "comment_post", `{"body":"Added a footer to index.html.","anchor":"index.html:1"}`),
		llmtest.ToolCall("a3", "ticket_update_state", `{"state":"verification"}`),
		llmtest.Text("Footer added."),
		llmtest.ToolCall("b1", "comment_post", `{"body":"Made the footer blue as asked."}`),
		llmtest.ToolCall("b2", "ticket_update_state", `{"state":"verification"}`),
		llmtest.Text("Footer is blue."),
	)
	chain, err := agent.NewChain(agent.ChainConfig{
		Candidates: []agent.Candidate{{Provider: agent.NewAnthropic(agent.AnthropicConfig{BaseURL: model.URL, HTTPClient: model.Client()}), Model: "claude-test", ContextWindow: 200_000}},
		Keys:       map[string]*agent.KeyPool{"anthropic": agent.NewKeyPool("anthropic", agent.NewSecret(llmtest.Key))},
	})
	if err != nil {
		t.Fatal(err)
	}
	board.For(svc, board.Options{}).SetRunner(&board.ModelRunner{Model: chain})
	repo := gitRepo(t)

	// Sign in.
	d.call("POST", "/url", map[string]string{"url": ts.URL + "/ui/"})
	d.typeInto("#token", "bh_wrong")
	d.click("#signin")
	d.waitJS("sign-in error", `document.querySelector("#error").textContent.includes("Sign-in failed")`)
	d.shot("signin-error")
	d.typeInto("#token", admin)
	d.shot("signin")
	d.click("#signin")
	d.find("#new-project")
	d.shot("signed-in")

	// Bad input: an uncloneable repo and an unknown persona.
	d.typeInto("#project-id", "demo")
	d.typeInto("#project-repo", filepath.Join(repo, "missing"))
	d.click("#create-project")
	d.waitJS("clone error", `document.querySelector("#error").textContent.includes("cannot clone repository")`)
	d.shot("bad-repo")
	d.typeInto("#project-repo", repo)
	d.js(`const s = document.querySelector("#project-persona"); const o = document.createElement("option"); o.value = o.textContent = "ghost"; s.append(o); s.value = "ghost";`)
	d.click("#create-project")
	d.waitJS("persona error", `document.querySelector("#error").textContent.includes("persona not found")`)
	d.shot("bad-persona")

	// Create the project from the local repo.
	d.js(`document.querySelector("#project-persona").value = "developer";`)
	d.click("#create-project")
	d.find("#columns")
	d.waitJS("board", `location.hash === "#/p/demo"`)
	d.shot("project-board")

	// Open a ticket.
	d.typeInto("#ticket-title", "Add a footer")
	d.typeInto("#ticket-description", "The page needs a footer with the year.")
	d.typeInto("#ticket-criteria", "- index.html has a <footer>")
	d.click("#create-ticket")
	d.waitJS("ticket page", `document.querySelector("#ticket-state") && document.querySelector("#ticket-state").dataset.state === "backlog"`)
	if got := d.text("#ticket-title"); got != "#1 Add a footer" {
		t.Fatalf("ticket title %q", got)
	}
	d.shot("ticket-opened")

	// A comment on a ticket that does not exist.
	d.call("POST", "/url", map[string]string{"url": ts.URL + "/ui/#/p/demo/t/99"})
	d.waitJS("missing ticket error", `document.querySelector("#error").textContent.includes("ticket not found")`)
	d.shot("missing-ticket")

	// Run a heartbeat from the home page.
	d.call("POST", "/url", map[string]string{"url": ts.URL + "/ui/#/"})
	d.click("#run-heartbeat")
	d.waitJS("heartbeat result", `document.querySelector("#heartbeat-result").textContent.includes("1 claimed, 1 succeeded")`)
	d.shot("heartbeat-ran")

	// The agent's comment and the ticket in verification.
	d.call("POST", "/url", map[string]string{"url": ts.URL + "/ui/#/p/demo/t/1"})
	d.waitJS("verification", `document.querySelector("#ticket-state").dataset.state === "verification"`)
	d.waitJS("agent comment", `[...document.querySelectorAll(".comment.agent")].some(c => c.textContent.includes("Added a footer to index.html."))`)
	d.waitJS("run log", `[...document.querySelectorAll(".log-line")].some(l => l.textContent.includes("comment_post"))`)
	d.shot("agent-commented")

	// Return without a comment is refused; with one it goes back.
	d.click("#return")
	d.waitJS("return needs comment", `document.querySelector("#error").textContent.includes("saying why")`)
	d.typeInto("#comment-body", "Please make the footer blue.")
	d.click("#return")
	d.waitJS("returned", `document.querySelector("#ticket-state").dataset.state === "in_progress"`)
	d.waitJS("reason in thread", `[...document.querySelectorAll(".comment.human")].some(c => c.textContent.includes("Please make the footer blue."))`)
	d.shot("returned")

	// Work it again (the Run now button dispatches through the API).
	d.click("#dispatch")
	d.waitJS("worked again", `document.querySelector("#ticket-state").dataset.state === "verification" && [...document.querySelectorAll(".comment.agent")].some(c => c.textContent.includes("Made the footer blue as asked."))`)
	d.shot("worked-again")

	// Accept.
	d.click("#accept")
	d.waitJS("done", `document.querySelector("#ticket-state").dataset.state === "done"`)
	d.shot("accepted")

	// The board shows it done.
	d.call("POST", "/url", map[string]string{"url": ts.URL + "/ui/#/p/demo"})
	d.waitJS("done column", `document.querySelector("#col-done .ticket[data-ticket='1']")`)
	d.shot("board-done")

	// Settings: change the persona.
	d.click("#settings-link")
	d.find("#settings-persona")
	d.js(`document.querySelector("#settings-persona").value = "reviewer";`)
	d.click("#save-settings")
	d.waitJS("saved", `document.querySelector("#notice").textContent.includes("Saved")`)
	d.shot("settings")
	p, err := board.For(svc, board.Options{}).Project(context.Background(), "demo")
	if err != nil || p.Persona != "reviewer" {
		t.Fatalf("persona after settings: %v %v", p, err)
	}
	// Text from the API is shown as text: a ticket title and comment made
	// of markup do not run.
	evil := `<img src=x onerror="window.pwned=1"><script>window.pwned=2</script>`
	tk, err := board.For(svc, board.Options{}).CreateTicket(context.Background(), "demo", board.NewTicket{Title: "x " + strings.ReplaceAll(evil, "\n", ""), Description: evil})
	if err != nil {
		t.Fatal(err)
	}
	board.For(svc, board.Options{}).Comment(context.Background(), "demo", tk.ID, "mallory", evil, evil[:20])
	d.call("POST", "/url", map[string]string{"url": fmt.Sprintf("%s/ui/#/p/demo/t/%d", ts.URL, tk.ID)})
	d.waitJS("markup ticket", `document.querySelector(".comment.human")`)
	d.shot("markup-as-text")
	var res []any
	json.Unmarshal(d.js(`return [window.pwned === undefined, document.querySelectorAll("#main img, #main script").length, document.querySelector("#ticket-title").textContent];`), &res)
	if len(res) != 3 || res[0] != true || res[1] != float64(0) || !strings.Contains(fmt.Sprint(res[2]), "<img src=x") {
		t.Fatalf("markup ran or rendered: %v", res)
	}
	if n := model.Pending(); n != 0 {
		t.Fatalf("%d scripted model replies unused", n)
	}
}
