package netguard

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
)

func serverPort(t testing.TB, srv *httptest.Server) string {
	t.Helper()
	u, err := url.Parse(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	return u.Port()
}

func mustGuard(t *testing.T, cfg Config) *Guard {
	t.Helper()
	g, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return g
}

// DNS rebinding: the resolver answers a public address, then loopback. The
// guard must connect to the address it checked (never re-resolve), and refuse
// the next connection when the answer turns private.
func TestDNSRebinding(t *testing.T) {
	t.Parallel()
	var hits atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		io.WriteString(w, "public content")
	}))
	defer srv.Close()
	port := serverPort(t, srv)

	var mu sync.Mutex
	var lookups int
	resolver := fakeResolver{lookup: func(_ context.Context, _, host string) ([]netip.Addr, error) {
		mu.Lock()
		defer mu.Unlock()
		lookups++
		if lookups == 1 {
			return addrs("93.184.216.34"), nil // public: passes the check
		}
		return addrs("127.0.0.1"), nil // rebound to loopback
	}}
	g := mustGuard(t, Config{Resolver: resolver})
	var dialed []string
	// Stand-in for the internet: the "public" address is served by the loopback test server.
	g.dial = func(ctx context.Context, network, address string) (net.Conn, error) {
		mu.Lock()
		dialed = append(dialed, address)
		mu.Unlock()
		if address != "93.184.216.34:"+port {
			return nil, fmt.Errorf("dial of unexpected address %s", address)
		}
		var d net.Dialer
		return d.DialContext(ctx, network, srv.Listener.Addr().String())
	}
	client := g.Client()
	client.Transport.(*http.Transport).DisableKeepAlives = true

	target := "http://rebind.example:" + port + "/"
	resp, err := client.Get(target)
	if err != nil {
		t.Fatalf("first request: %v", err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(body) != "public content" {
		t.Fatalf("first request body %q", body)
	}
	mu.Lock()
	if lookups != 1 || len(dialed) != 1 || dialed[0] != "93.184.216.34:"+port {
		t.Fatalf("after first request: %d lookups, dialed %v; want 1 lookup and the checked IP", lookups, dialed)
	}
	mu.Unlock()

	_, err = client.Get(target)
	var be *BlockedError
	if !errors.Is(err, ErrBlocked) || !errors.As(err, &be) || be.Addr != netip.MustParseAddr("127.0.0.1") {
		t.Fatalf("rebound request: got %v, want ErrBlocked for 127.0.0.1", err)
	}
	if hits.Load() != 1 {
		t.Errorf("server saw %d requests, want 1", hits.Load())
	}
	mu.Lock()
	defer mu.Unlock()
	if len(dialed) != 1 {
		t.Errorf("rebound answer reached the dialer: %v", dialed)
	}
}

// An allowlisted endpoint that answers with a redirect to the metadata
// service, in any spelling, must not be followed there.
func TestRedirectToMetadataRefused(t *testing.T) {
	t.Parallel()
	locations := []string{
		"http://169.254.169.254/latest/meta-data/iam/security-credentials/",
		"http://[::ffff:169.254.169.254]/latest/meta-data/",
		"http://[fd00:ec2::254]/latest/meta-data/",
		"http://0xa9fea9fe/latest/meta-data/",
		"http://2852039166/latest/meta-data/",
		"http://metadata.google.internal/computeMetadata/v1/",
		"http://metadata-alias.example/latest/meta-data/",
		"http://127.0.0.1:1/", // loopback on a port not allowlisted
		"file:///etc/passwd",
	}
	var metaDials atomic.Int32
	resolver := dnsTable(map[string][]netip.Addr{"metadata-alias.example": addrs("169.254.169.254")})
	for _, loc := range locations {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, loc, http.StatusFound)
		}))
		g := mustGuard(t, Config{Resolver: resolver, Allow: []string{"127.0.0.1:" + serverPort(t, srv)}})
		realDial := g.dial
		g.dial = func(ctx context.Context, network, address string) (net.Conn, error) {
			if !strings.HasPrefix(address, "127.0.0.1:") {
				metaDials.Add(1)
			}
			return realDial(ctx, network, address)
		}
		resp, err := g.Client().Get(srv.URL + "/embeddings")
		if err == nil {
			resp.Body.Close()
			t.Errorf("redirect to %s followed: status %d", loc, resp.StatusCode)
		} else if !errors.Is(err, ErrBlocked) {
			t.Errorf("redirect to %s: got %v, want ErrBlocked", loc, err)
		}
		srv.Close()
	}
	if n := metaDials.Load(); n != 0 {
		t.Errorf("%d dials went past loopback", n)
	}
}

func TestRedirectLimit(t *testing.T) {
	t.Parallel()
	var hits atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := hits.Add(1)
		http.Redirect(w, r, fmt.Sprintf("/hop/%d", n), http.StatusFound)
	}))
	defer srv.Close()
	g := mustGuard(t, Config{Allow: []string{"127.0.0.1:" + serverPort(t, srv)}})
	_, err := g.Client().Get(srv.URL)
	if !errors.Is(err, ErrTooManyRedirects) {
		t.Fatalf("got %v, want ErrTooManyRedirects", err)
	}
	if n := hits.Load(); n != 4 {
		t.Errorf("server saw %d requests, want 4 (the request and 3 redirects)", n)
	}

	hits.Store(0)
	g = mustGuard(t, Config{Allow: []string{"127.0.0.1:" + serverPort(t, srv)}, MaxRedirects: -1})
	if _, err := g.Client().Get(srv.URL); !errors.Is(err, ErrTooManyRedirects) || hits.Load() != 1 {
		t.Errorf("redirects disabled: got %v after %d requests", err, hits.Load())
	}
}

// A redirect to another origin must not carry the caller's credentials.
func TestRedirectStripsCredentialsAcrossOrigins(t *testing.T) {
	t.Parallel()
	type seen struct{ header http.Header }
	got := make(chan seen, 4)
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got <- seen{r.Header.Clone()}
	}))
	defer other.Close()
	origin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/cross":
			http.Redirect(w, r, other.URL+"/steal", http.StatusTemporaryRedirect)
		case "/same":
			http.Redirect(w, r, "/landing", http.StatusFound)
		default:
			got <- seen{r.Header.Clone()}
		}
	}))
	defer origin.Close()
	g := mustGuard(t, Config{Allow: []string{"127.0.0.1:" + serverPort(t, origin), "127.0.0.1:" + serverPort(t, other)}})
	secretHeaders := map[string]string{
		"Authorization":  "Bearer sk-live-secret",
		"X-Api-Key":      "voyage-secret",
		"X-Goog-Api-Key": "gemini-secret",
		"Api-Key":        "azure-secret",
		"Cookie":         "session=abc",
		"X-Auth-Token":   "tok",
	}
	do := func(path string) http.Header {
		req, _ := http.NewRequest(http.MethodGet, origin.URL+path, nil)
		for k, v := range secretHeaders {
			req.Header.Set(k, v)
		}
		req.Header.Set("X-Trace", "keep-me")
		resp, err := g.Client().Do(req)
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		resp.Body.Close()
		return (<-got).header
	}
	h := do("/cross")
	for k := range secretHeaders {
		if v := h.Get(k); v != "" {
			t.Errorf("cross-origin redirect carried %s: %q", k, v)
		}
	}
	if h.Get("X-Trace") != "keep-me" {
		t.Errorf("benign header dropped on redirect")
	}
	h = do("/same")
	if h.Get("Authorization") != secretHeaders["Authorization"] || h.Get("X-Api-Key") != secretHeaders["X-Api-Key"] {
		t.Errorf("same-origin redirect lost credentials: %v", h)
	}
}

func TestRedirectDowngradeRefused(t *testing.T) {
	t.Parallel()
	g := mustGuard(t, Config{})
	from, _ := http.NewRequest(http.MethodGet, "https://api.example.com/v1", nil)
	to, _ := http.NewRequest(http.MethodGet, "http://api.example.com/v1", nil)
	if err := g.CheckRedirect(to, []*http.Request{from}); !errors.Is(err, ErrBlocked) {
		t.Errorf("https→http redirect: got %v, want ErrBlocked", err)
	}
}

// Proxy variables must not route guarded traffic: a proxy would dial on our
// behalf and no check of ours would apply.
func TestProxyEnvironmentIgnored(t *testing.T) {
	var proxyHits, targetHits atomic.Int32
	proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		proxyHits.Add(1)
		io.WriteString(w, "via proxy")
	}))
	defer proxy.Close()
	target := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		targetHits.Add(1)
		io.WriteString(w, "direct")
	}))
	defer target.Close()
	for _, k := range []string{"HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"} {
		t.Setenv(k, proxy.URL)
	}
	t.Setenv("NO_PROXY", "")
	t.Setenv("no_proxy", "")
	// Both are allowlisted, so only the proxy setting decides where the request goes.
	g := mustGuard(t, Config{Allow: []string{"127.0.0.1:" + serverPort(t, target), "127.0.0.1:" + serverPort(t, proxy)}})
	resp, err := g.Client().Get(target.URL)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(body) != "direct" || proxyHits.Load() != 0 || targetHits.Load() != 1 {
		t.Errorf("body %q, proxy hits %d, target hits %d; want a direct request", body, proxyHits.Load(), targetHits.Load())
	}
	// And a blocked destination stays blocked even though a proxy could reach it.
	_, err = g.Client().Get("http://10.0.0.1/")
	if !errors.Is(err, ErrBlocked) || proxyHits.Load() != 0 {
		t.Errorf("blocked destination: %v, proxy hits %d", err, proxyHits.Load())
	}
}

// An allowlisted local embedder (the Ollama case) is reached through the real
// resolver and dialer, pinned like any other destination.
func TestAllowlistedLocalhostReachable(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "ollama")
	}))
	defer srv.Close()
	port := serverPort(t, srv)
	g := mustGuard(t, Config{Allow: []string{"localhost:" + port}})
	resp, err := g.Client().Get("http://localhost:" + port + "/api/tags")
	if err != nil {
		t.Fatalf("allowlisted localhost: %v", err)
	}
	resp.Body.Close()
	// Without the entry the same URL is refused by name.
	strict := mustGuard(t, Config{})
	if _, err := strict.Client().Get("http://localhost:" + port + "/"); !errors.Is(err, ErrBlocked) {
		t.Errorf("strict guard: got %v, want ErrBlocked", err)
	}
	if _, err := strict.Client().Get(srv.URL); !errors.Is(err, ErrBlocked) {
		t.Errorf("strict guard, IP literal: got %v, want ErrBlocked", err)
	}
}
