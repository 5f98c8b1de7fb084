package netguard

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"strings"
	"testing"
	"time"
)

func TestParseEgressRules(t *testing.T) {
	for _, bad := range []string{"*", "*.com", "10.0.0.1", "10.0.0.1:443", "[::1]:80", "api.example.com:0", "api.example.com:x", "a.*.example.com", "*.localhost", ""} {
		if _, err := ParseEgressRules([]string{bad}); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
	r, err := ParseEgressRules([]string{"api.example.com", "Git.Example.org:22", "*.pkg.example.net:443"})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		host string
		port uint16
		want bool
	}{
		{"api.example.com", 443, true},
		{"API.example.com.", 80, true},
		{"api.example.com", 8443, false},
		{"evil.api.example.com", 443, false}, // exact entries do not cover subdomains
		{"example.com", 443, false},
		{"git.example.org", 22, true},
		{"git.example.org", 443, false},
		{"a.pkg.example.net", 443, true},
		{"a.b.pkg.example.net", 443, true},
		{"pkg.example.net", 443, false}, // the wildcard is strictly under the suffix
		{"xpkg.example.net", 443, false},
		{"a.pkg.example.net", 80, false},
	} {
		if got := r.Allows(c.host, c.port); got != c.want {
			t.Errorf("Allows(%s, %d) = %v, want %v", c.host, c.port, got, c.want)
		}
	}
	if (EgressRules{}).Allows("api.example.com", 443) {
		t.Error("the zero rules allow something")
	}
}

// staticResolver answers every name with one address.
type staticResolver map[string]netip.Addr

func (s staticResolver) LookupNetIP(_ context.Context, _, host string) ([]netip.Addr, error) {
	if a, ok := s[host]; ok {
		return []netip.Addr{a}, nil
	}
	return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
}

type egressFixture struct {
	proxy    *EgressProxy
	proxyURL *url.URL
	upPort   string // the HTTP upstream's port
	echoPort string // a TCP echo server's port
}

// startEgress starts an HTTP upstream and a TCP echo server on loopback,
// reachable as allowed.test and echo.test (the guard lets those names
// resolve to loopback, as an operator would for an internal mirror), and
// secret.test resolving to loopback without the guard's consent.
func startEgress(t *testing.T, maxConns int) *egressFixture {
	t.Helper()
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "upstream saw %s %s proxy-auth=%q", r.Method, r.URL.Path, r.Header.Get("Proxy-Authorization"))
	}))
	t.Cleanup(up.Close)
	echo, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { echo.Close() })
	go func() {
		for {
			c, err := echo.Accept()
			if err != nil {
				return
			}
			go func() { io.Copy(c, c); c.Close() }()
		}
	}()
	_, upPort, _ := net.SplitHostPort(strings.TrimPrefix(up.URL, "http://"))
	_, echoPort, _ := net.SplitHostPort(echo.Addr().String())
	lo := netip.MustParseAddr("127.0.0.1")
	g, err := New(Config{
		Allow:    []string{"allowed.test:" + upPort, "echo.test:" + echoPort},
		Resolver: staticResolver{"allowed.test": lo, "echo.test": lo, "secret.test": lo},
	})
	if err != nil {
		t.Fatal(err)
	}
	p, err := NewEgressProxy(EgressOptions{Guard: g, MaxConns: maxConns, IdleTimeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go p.Serve(ln)
	t.Cleanup(func() { p.Close() })
	return &egressFixture{proxy: p, proxyURL: &url.URL{Scheme: "http", Host: ln.Addr().String()}, upPort: upPort, echoPort: echoPort}
}

func (f *egressFixture) get(t *testing.T, rawURL string) (int, string, string) {
	t.Helper()
	c := &http.Client{Transport: &http.Transport{Proxy: http.ProxyURL(f.proxyURL)}, Timeout: 10 * time.Second}
	req, _ := http.NewRequest("GET", rawURL, nil)
	req.Header.Set("Proxy-Authorization", "Basic c2VjcmV0")
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", rawURL, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header.Get(egressHeader), string(b)
}

// connect opens a CONNECT tunnel and returns the conn and the status line.
func (f *egressFixture) connect(t *testing.T, hostport string) (net.Conn, *bufio.Reader, string) {
	t.Helper()
	c, err := net.DialTimeout("tcp", f.proxyURL.Host, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	c.SetDeadline(time.Now().Add(10 * time.Second))
	fmt.Fprintf(c, "CONNECT %s HTTP/1.1\r\nHost: %s\r\n\r\n", hostport, hostport)
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, &http.Request{Method: "CONNECT"})
	if err != nil {
		c.Close()
		t.Fatalf("CONNECT %s: %v", hostport, err)
	}
	if resp.StatusCode != 200 {
		b, _ := io.ReadAll(resp.Body)
		c.Close()
		return nil, nil, fmt.Sprintf("%d %s %s", resp.StatusCode, resp.Header.Get(egressHeader), b)
	}
	return c, br, "200"
}

func TestEgressProxyAllowsOnlyTheRules(t *testing.T) {
	f := startEgress(t, 0)
	// Allowed name and port: forwarded, and the proxy's credentials header
	// does not reach the upstream.
	f.proxy.SetRules(mustRules(t, "allowed.test:"+f.upPort, "echo.test:"+f.echoPort))
	code, verdict, body := f.get(t, "http://allowed.test:"+f.upPort+"/hello")
	if code != 200 || !strings.Contains(body, "upstream saw GET /hello") || !strings.Contains(body, `proxy-auth=""`) {
		t.Fatalf("allowed GET: %d %s %q", code, verdict, body)
	}
	// A tunnel to an allowed destination carries bytes both ways.
	c, br, status := f.connect(t, "echo.test:"+f.echoPort)
	if status != "200" {
		t.Fatalf("allowed CONNECT: %s", status)
	}
	fmt.Fprint(c, "ping\n")
	if line, err := br.ReadString('\n'); err != nil || line != "ping\n" {
		t.Fatalf("tunnel echo: %q %v", line, err)
	}
	c.Close()

	// The attacker's side: every other destination is refused with a reason.
	for _, dest := range []string{
		"other.test:" + f.upPort,          // not in the rules
		"allowed.test:" + f.echoPort,      // allowed name, other port
		"127.0.0.1:" + f.upPort,           // an address, not a name
		"secret.test:" + f.upPort,         // not in the rules (and loopback)
		"[::1]:" + f.upPort,               // an address
		"allowed.test.:" + f.upPort + "x", // malformed
	} {
		_, _, status := f.connect(t, dest)
		if !strings.HasPrefix(status, "403 denied") && !strings.HasPrefix(status, "400") {
			t.Errorf("CONNECT %s: %s, want a 403 refusal", dest, status)
		}
		if strings.HasPrefix(status, "403") && !strings.Contains(status, "egress allowlist") && !strings.Contains(status, "port") {
			t.Errorf("CONNECT %s: refusal without a reason: %s", dest, status)
		}
	}
	code, verdict, body = f.get(t, "http://other.test:"+f.upPort+"/")
	if code != 403 || verdict != "denied" || !strings.Contains(body, "egress.allow") {
		t.Fatalf("refused GET: %d %s %q", code, verdict, body)
	}
	if f.proxy.Stats().Refused.Load() == 0 || f.proxy.Stats().Allowed.Load() != 2 {
		t.Fatalf("stats: refused %d allowed %d", f.proxy.Stats().Refused.Load(), f.proxy.Stats().Allowed.Load())
	}
}

// A tenant's rules cannot open what the operator's guard refuses: a name
// in the rules that resolves to loopback without the operator's consent.
func TestEgressRulesCannotOverrideTheGuard(t *testing.T) {
	f := startEgress(t, 0)
	f.proxy.SetRules(mustRules(t, "secret.test:"+f.upPort))
	_, _, status := f.connect(t, "secret.test:"+f.upPort)
	if !strings.HasPrefix(status, "403 blocked") || !strings.Contains(status, "loopback") {
		t.Fatalf("CONNECT to a name resolving to loopback: %s", status)
	}
	code, verdict, body := f.get(t, "http://secret.test:"+f.upPort+"/")
	if code != 403 || verdict != "blocked" {
		t.Fatalf("GET to a name resolving to loopback: %d %s %q", code, verdict, body)
	}
}

// Rules changed at runtime apply to the next request, and the zero rules
// refuse everything.
func TestEgressSetRulesTakesEffect(t *testing.T) {
	f := startEgress(t, 0)
	if code, verdict, _ := f.get(t, "http://allowed.test:"+f.upPort+"/"); code != 403 || verdict != "denied" {
		t.Fatalf("empty rules: %d %s", code, verdict)
	}
	f.proxy.SetRules(mustRules(t, "allowed.test:"+f.upPort))
	if code, _, _ := f.get(t, "http://allowed.test:"+f.upPort+"/"); code != 200 {
		t.Fatalf("after allowing: %d", code)
	}
	f.proxy.SetRules(EgressRules{})
	if code, verdict, _ := f.get(t, "http://allowed.test:"+f.upPort+"/"); code != 403 || verdict != "denied" {
		t.Fatalf("after revoking: %d %s (a kept-alive upstream connection must not bypass the rules)", code, verdict)
	}
}

// A sandbox cannot hold more than MaxConns host connections; Close ends
// open tunnels.
func TestEgressConnectionLimitAndClose(t *testing.T) {
	f := startEgress(t, 2)
	f.proxy.SetRules(mustRules(t, "echo.test:"+f.echoPort))
	var open []net.Conn
	for range 2 {
		c, _, status := f.connect(t, "echo.test:"+f.echoPort)
		if status != "200" {
			t.Fatalf("CONNECT: %s", status)
		}
		open = append(open, c)
	}
	third, err := net.DialTimeout("tcp", f.proxyURL.Host, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer third.Close()
	fmt.Fprintf(third, "CONNECT echo.test:%s HTTP/1.1\r\nHost: x\r\n\r\n", f.echoPort)
	third.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
	if n, _ := third.Read(make([]byte, 1)); n != 0 {
		t.Fatal("a third connection was served past MaxConns=2")
	}
	open[0].Close()
	third.SetReadDeadline(time.Now().Add(10 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(third), &http.Request{Method: "CONNECT"})
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("third connection after a slot freed: %v %v", resp, err)
	}
	f.proxy.Close()
	open[1].SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := open[1].Read(make([]byte, 1)); err == nil {
		t.Fatal("a tunnel survived Close")
	}
}

func mustRules(t *testing.T, entries ...string) EgressRules {
	t.Helper()
	r, err := ParseEgressRules(entries)
	if err != nil {
		t.Fatal(err)
	}
	return r
}
