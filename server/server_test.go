package server

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/bulkhead-dev/bulkhead/credentials"
	"github.com/bulkhead-dev/bulkhead/workspace"
)

type fixture struct {
	svc   *workspace.Service
	srv   *Server
	ts    *httptest.Server
	admin string
	alice string // token scoped to alice
	bob   string
}

func newFixture(t testing.TB) *fixture {
	t.Helper()
	dir := t.TempDir()
	svc, err := workspace.Open(context.Background(), workspace.Options{
		StateDir:   dir,
		Passphrase: func() ([]byte, error) { return []byte("pw"), nil },
		KDF:        credentials.KDFParams{Time: 1, MemoryKiB: 8 << 10, Threads: 1},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { svc.Close() })
	srv, err := New(Options{Service: svc, MaxBody: 64 << 10})
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{svc: svc, srv: srv, ts: httptest.NewServer(srv.Handler())}
	t.Cleanup(f.ts.Close)
	if f.admin, err = srv.Tokens().EnsureAdmin(dir); err != nil || f.admin == "" {
		t.Fatalf("admin token: %q %v", f.admin, err)
	}
	for _, id := range []string{"alice", "bob"} {
		if _, err := svc.Create(context.Background(), id, nil); err != nil {
			t.Fatal(err)
		}
		svc.SetCredential(context.Background(), id, "github", []byte("secret-of-"+id))
	}
	f.alice = f.token(t, "alice")
	f.bob = f.token(t, "bob")
	return f
}

func (f *fixture) token(t testing.TB, ws string) string {
	var resp CreateTokenResponse
	code := f.do(t, f.admin, "POST", "/v1/tokens", fmt.Sprintf(`{"name":"t","workspace":%q}`, ws), &resp)
	if code != 201 {
		t.Fatalf("create token for %s: %d", ws, code)
	}
	return resp.Secret
}

func (f *fixture) do(t testing.TB, token, method, path, body string, out any) int {
	t.Helper()
	code, b := f.raw(t, token, method, path, body)
	if out != nil && code < 300 {
		if err := json.Unmarshal(b, out); err != nil {
			t.Fatalf("%s %s: decode %q: %v", method, path, b, err)
		}
	}
	return code
}

func (f *fixture) raw(t testing.TB, token, method, path, body string) (int, []byte) {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, _ := http.NewRequest(method, f.ts.URL+path, rd)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

// A token for alice gets 403 or 404 for every route naming bob, and nothing
// of bob changes.
func TestCrossTenant(t *testing.T) {
	f := newFixture(t)
	before, _ := f.svc.Get(context.Background(), "bob")
	for _, rt := range f.srv.routes {
		if rt.scope == scopePublic {
			continue
		}
		path := strings.NewReplacer("{ws}", "bob", "{name}", "github", "{id}", "x").Replace(rt.pattern)
		body := ""
		if rt.req != nil {
			b, _ := json.Marshal(rt.req)
			body = string(b)
		}
		for _, p := range []string{path, path + "?workspace=bob"} {
			code, b := f.raw(t, f.alice, rt.method, p, body)
			if rt.method == "GET" && rt.pattern == "/v1/workspaces" && p == path {
				var list []workspace.Workspace
				json.Unmarshal(b, &list)
				if len(list) != 1 || list[0].ID != "alice" {
					t.Errorf("alice's token lists %v", list)
				}
				continue
			}
			if code != 403 && code != 404 {
				t.Errorf("alice's token: %s %s = %d %s", rt.method, p, code, b)
			}
		}
	}
	// Creating a token for bob from alice's token: admin only.
	if code, _ := f.raw(t, f.alice, "POST", "/v1/tokens", `{"name":"x","workspace":"bob"}`); code != 403 {
		t.Errorf("alice minted a token: %d", code)
	}
	after, _ := f.svc.Get(context.Background(), "bob")
	if fmt.Sprint(before) != fmt.Sprint(after) {
		t.Fatal("bob changed")
	}
	v, err := f.svc.Credential(context.Background(), "bob", "github")
	if err != nil || string(v.Reveal()) != "secret-of-bob" {
		t.Fatalf("bob's credential: %v", err)
	}
	// Alice's own routes work.
	if code := f.do(t, f.alice, "GET", "/v1/workspaces/alice/credentials", "", nil); code != 200 {
		t.Fatalf("alice on alice: %d", code)
	}
	// Workspace tokens cannot change limits.
	if code, _ := f.raw(t, f.alice, "PATCH", "/v1/workspaces/alice/config", `{"set":{"limits.memory":"64GiB"}}`); code != 403 {
		t.Fatalf("alice raised her own limits: %d", code)
	}
}

func TestTokenDiesWithWorkspace(t *testing.T) {
	f := newFixture(t)
	if code := f.do(t, f.admin, "DELETE", "/v1/workspaces/alice", "", nil); code != 204 {
		t.Fatalf("delete: %d", code)
	}
	var created workspace.Workspace
	if code := f.do(t, f.admin, "POST", "/v1/workspaces", `{"id":"alice","config":{"limits":{"memory":"1GiB"}}}`, &created); code != 201 {
		t.Fatalf("recreate: %d", code)
	}
	if created.Config.Limits.Memory != 1<<30 || created.Config.Limits.Pids != workspace.DefaultConfig().Limits.Pids {
		t.Fatalf("partial config not merged over defaults: %+v", created.Config.Limits)
	}
	if code, b := f.raw(t, f.alice, "GET", "/v1/workspaces/alice", ""); code != 401 {
		t.Fatalf("old token opened the new alice: %d %s", code, b)
	}
}

func TestBadRequests(t *testing.T) {
	f := newFixture(t)
	cases := []struct {
		token, method, path, body string
		code                      int
		want                      string
	}{
		{"", "GET", "/v1/workspaces", "", 401, "missing bearer token"},
		{"bh_forged", "GET", "/v1/workspaces", "", 401, "invalid or revoked"},
		{"not-even-a-token", "GET", "/v1/workspaces", "", 401, "invalid or revoked"},
		{f.admin, "POST", "/v1/workspaces", `{"id":"carol"`, 400, "truncated"},
		{f.admin, "POST", "/v1/workspaces", `{"id":"carol","extra":1}`, 400, "unknown field"},
		{f.admin, "POST", "/v1/workspaces", `{"id":7}`, 400, "want string, got a JSON number"},
		{f.admin, "POST", "/v1/workspaces", `{"id":"carol"} {}`, 400, "trailing data"},
		{f.admin, "POST", "/v1/workspaces", ``, 400, "empty body"},
		{f.admin, "POST", "/v1/workspaces", `{"id":"Carol"}`, 400, "must match"},
		{f.admin, "POST", "/v1/workspaces", `{"id":"carol","config":{"limits":{"memory":"1KiB"}}}`, 400, "limits.memory"},
		{f.admin, "POST", "/v1/workspaces", `{"id":"` + strings.Repeat("a", 70<<10) + `"}`, 413, "larger than"},
		{f.admin, "POST", "/v1/workspaces", `{"id":"alice"}`, 409, "already exists"},
		{f.admin, "PATCH", "/v1/workspaces/alice/config", `{"set":{"limits.nope":1}}`, 400, "unknown config key"},
		{f.admin, "PATCH", "/v1/workspaces/alice/config", `{"set":{"limits.pids":"many"}}`, 400, "limits.pids"},
		{f.admin, "PUT", "/v1/workspaces/alice/credentials/a%2Fb", `{"value":"x"}`, 400, "must match"},
		{f.admin, "PUT", "/v1/workspaces/alice/credentials/k", `{"value":""}`, 400, "empty value"},
		{f.admin, "DELETE", "/v1/workspaces/alice/credentials/none", "", 404, "credential not found"},
		{f.admin, "GET", "/v1/workspaces/zed", "", 404, "not found"},
		{f.admin, "DELETE", "/v1/tokens/nope", "", 404, "token not found"},
		{f.admin, "GET", "/v1/nothing", "", 404, "no route"},
		{f.admin, "POST", "/v1/admin/rotate-passphrase", `{"new_passphrase":"x"}`, 403, "local socket"},
	}
	for _, c := range cases {
		code, b := f.raw(t, c.token, c.method, c.path, c.body)
		if code != c.code || !bytes.Contains(b, []byte(c.want)) {
			t.Errorf("%s %s %.40s: %d %s; want %d containing %q", c.method, c.path, c.body, code, b, c.code, c.want)
		}
		var e struct {
			Error APIError `json:"error"`
		}
		if json.Unmarshal(b, &e); e.Error.RequestID == "" || e.Error.Code == "" {
			t.Errorf("%s %s: error body without code or request id: %s", c.method, c.path, b)
		}
	}
	all, _ := f.svc.List(context.Background())
	if len(all) != 2 {
		t.Fatalf("bad requests created workspaces: %d", len(all))
	}
	// The server is unaffected.
	if code := f.do(t, f.admin, "GET", "/healthz", "", nil); code != 200 {
		t.Fatal("unhealthy after bad requests")
	}
}

// Every operation in /openapi.json is served by a handler (no "no route"
// 404 or 405), and every handler is in the document.
func TestOpenAPIMatchesHandlers(t *testing.T) {
	f := newFixture(t)
	var doc struct {
		Paths map[string]map[string]json.RawMessage `json:"paths"`
	}
	if code := f.do(t, "", "GET", "/openapi.json", "", &doc); code != 200 {
		t.Fatal(code)
	}
	n := 0
	for path, ops := range doc.Paths {
		for method := range ops {
			n++
			p := strings.NewReplacer("{ws}", "alice", "{name}", "zz", "{id}", "zz").Replace(path)
			code, b := f.raw(t, f.admin, strings.ToUpper(method), p, "")
			if code == 405 || bytes.Contains(b, []byte("no route")) {
				t.Errorf("documented %s %s is not served: %d %s", method, path, code, b)
			}
		}
	}
	if n != len(f.srv.routes) {
		t.Fatalf("document has %d operations, handler has %d routes", n, len(f.srv.routes))
	}
	// And an undocumented path is not served.
	if code, _ := f.raw(t, f.admin, "GET", "/v1/secret-debug", ""); code != 404 {
		t.Fatal("undocumented route served")
	}
}

func TestMetricsAndHealth(t *testing.T) {
	f := newFixture(t)
	f.do(t, f.admin, "GET", "/v1/workspaces", "", nil)
	code, b := f.raw(t, f.admin, "GET", "/metrics", "")
	if code != 200 || !bytes.Contains(b, []byte(`bulkhead_http_requests_total{route="GET /v1/workspaces",code="200"} 1`)) {
		t.Fatalf("metrics: %d %s", code, b)
	}
	if code, _ := f.raw(t, f.alice, "GET", "/metrics", ""); code != 403 {
		t.Fatalf("workspace token read metrics: %d", code)
	}
	if code, _ := f.raw(t, "", "GET", "/readyz", ""); code != 200 {
		t.Fatal(code)
	}
}

// Serve: the unix socket acts as admin without a token, a slowloris client
// that never finishes its headers is cut off without hurting others, and
// shutdown is graceful.
func TestServeSocketAndSlowClient(t *testing.T) {
	f := newFixture(t)
	ctx, cancel := context.WithCancel(context.Background())
	addrc := make(chan net.Addr, 1)
	done := make(chan error, 1)
	go func() { done <- f.srv.Serve(ctx, "127.0.0.1:0", func(a net.Addr) { addrc <- a }) }()
	addr := <-addrc

	sock := filepath.Join(f.svc.StateDir(), SocketName)
	uc := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", sock)
	}}}
	resp, err := uc.Get("http://bulkhead/v1/workspaces")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("socket request: %d", resp.StatusCode)
	}

	// Slowloris: open many connections that trickle a header forever.
	var slow []net.Conn
	for range 50 {
		c, err := net.Dial("tcp", addr.String())
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(c, "GET /healthz HTTP/1.1\r\nHost: x\r\n")
		slow = append(slow, c)
	}
	// Normal clients are still served.
	for range 5 {
		resp, err := http.Get("http://" + addr.String() + "/healthz")
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("healthz under slowloris: %v", err)
		}
		resp.Body.Close()
	}
	// The slow connections are closed by the header timeout.
	slow[0].SetReadDeadline(time.Now().Add(15 * time.Second))
	if _, err := slow[0].Read(make([]byte, 1)); err == nil {
		// a 408 response is also fine: read it out and expect EOF after
		io.ReadAll(slow[0])
	}
	for _, c := range slow {
		c.Close()
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("shutdown: %v", err)
	}
}
