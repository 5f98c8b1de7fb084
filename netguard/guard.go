package netguard

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Resolver looks up the addresses of a host name. *net.Resolver satisfies it.
type Resolver interface {
	LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error)
}

// Config configures a Guard. The zero value is a strict guard.
type Config struct {
	// Allow lists local destinations the operator trusts: "host:port"
	// ("localhost:11434"), "ip:port" ("127.0.0.1:11434", "[::1]:8080") or a
	// CIDR prefix ("10.20.0.0/16", any port). A name entry lets that name
	// through the name checks on that port and lets its answers be loopback,
	// private, CGNAT or unique-local; link-local and metadata addresses need an
	// address or prefix entry. Unspecified, multicast and broadcast addresses
	// are never dialed.
	Allow []string
	// MaxRedirects caps redirects per request; 0 means 3, negative means none.
	MaxRedirects int
	// DialTimeout bounds each TCP connect; 0 means 10s.
	DialTimeout time.Duration
	// Timeout bounds a whole request made by Client(); 0 means none (use ctx).
	Timeout time.Duration
	// Resolver answers DNS lookups; nil means net.DefaultResolver.
	Resolver Resolver
	// Logger receives one debug line per refusal; nil means slog.Default().
	Logger *slog.Logger
}

// Guard makes guarded HTTP clients. See the package documentation.
type Guard struct {
	allow        allowlist
	maxRedirects int
	timeout      time.Duration
	resolver     Resolver
	log          *slog.Logger
	// dial connects to an already checked "ip:port"; tests replace it.
	dial func(ctx context.Context, network, address string) (net.Conn, error)
}

// New returns a Guard, or an error if an allowlist entry is malformed or too broad.
func New(cfg Config) (*Guard, error) {
	al, err := parseAllowlist(cfg.Allow)
	if err != nil {
		return nil, fmt.Errorf("netguard: %w", err)
	}
	g := &Guard{allow: al, maxRedirects: cfg.MaxRedirects, timeout: cfg.Timeout, resolver: cfg.Resolver, log: cfg.Logger}
	if g.maxRedirects == 0 {
		g.maxRedirects = 3
	}
	if g.resolver == nil {
		g.resolver = net.DefaultResolver
	}
	if g.log == nil {
		g.log = slog.Default()
	}
	g.log = g.log.With("subsystem", "netguard")
	dt := cfg.DialTimeout
	if dt <= 0 {
		dt = 10 * time.Second
	}
	d := &net.Dialer{Timeout: dt, KeepAlive: 30 * time.Second, ControlContext: controlPinned}
	g.dial = d.DialContext
	return g, nil
}

type pinKey struct{}

// controlPinned is the last line: the socket must connect to exactly the
// address the guard checked, whatever the code between did.
func controlPinned(ctx context.Context, network, address string, _ syscall.RawConn) error {
	want, ok := ctx.Value(pinKey{}).(netip.AddrPort)
	if !ok {
		return &BlockedError{Host: address, Reason: "connection without a checked address"}
	}
	got, err := netip.ParseAddrPort(address)
	if err != nil || got.Addr().Unmap() != want.Addr().Unmap() || got.Port() != want.Port() {
		return &BlockedError{Host: address, Reason: "socket address differs from the checked address " + want.String()}
	}
	return nil
}

// DialContext is a guarded net.Dialer.DialContext for TCP: it checks the
// host, resolves names once, checks every answer and connects to a checked IP.
func (g *Guard) DialContext(ctx context.Context, network, address string) (net.Conn, error) {
	conn, err := g.dialContext(ctx, network, address)
	if err != nil {
		var be *BlockedError
		if errors.As(err, &be) {
			g.log.DebugContext(ctx, "outbound connection refused", "host", be.Host, "addr", be.Addr, "reason", be.Reason)
		}
	}
	return conn, err
}

func (g *Guard) dialContext(ctx context.Context, network, address string) (net.Conn, error) {
	lookupNet := "ip"
	switch network {
	case "tcp":
	case "tcp4":
		lookupNet = "ip4"
	case "tcp6":
		lookupNet = "ip6"
	default:
		return nil, &BlockedError{Host: address, Reason: "network " + strconv.Quote(network) + " is not TCP"}
	}
	host, portStr, err := net.SplitHostPort(address)
	if err != nil {
		return nil, &BlockedError{Host: address, Reason: "malformed host:port"}
	}
	port, err := strconv.ParseUint(portStr, 10, 16)
	if err != nil || port == 0 {
		return nil, &BlockedError{Host: host, Reason: "invalid port " + strconv.Quote(portStr)}
	}
	addrs, err := g.resolveChecked(ctx, lookupNet, host, uint16(port))
	if err != nil {
		return nil, err
	}
	var errs []error
	for _, a := range addrs {
		ap := netip.AddrPortFrom(a.Unmap(), uint16(port))
		conn, err := g.dial(context.WithValue(ctx, pinKey{}, ap), "tcp", ap.String())
		if err == nil {
			return conn, nil
		}
		errs = append(errs, err)
		if ctx.Err() != nil {
			break
		}
	}
	return nil, errors.Join(errs...)
}

// resolveChecked returns the addresses host may be dialed at on port, each
// checked; it fails if any answer is refused.
func (g *Guard) resolveChecked(ctx context.Context, lookupNet, host string, port uint16) ([]netip.Addr, error) {
	hf, berr := parseHost(host)
	if berr != nil {
		return nil, berr
	}
	if hf.addr.IsValid() {
		if berr := g.allow.decide(host, hf.addr, port, false); berr != nil {
			return nil, berr
		}
		return []netip.Addr{hf.addr}, nil
	}
	viaName := g.allow.allowsName(hf.name, port)
	if r := nameReason(hf.name); r != "" && !viaName {
		return nil, &BlockedError{Host: host, Reason: r}
	}
	answers, err := g.resolver.LookupNetIP(ctx, lookupNet, hf.name)
	if err != nil {
		return nil, fmt.Errorf("netguard: resolve %s: %w", hf.name, err)
	}
	if len(answers) == 0 {
		return nil, fmt.Errorf("netguard: resolve %s: no addresses", hf.name)
	}
	seen := make(map[netip.Addr]bool, len(answers))
	out := make([]netip.Addr, 0, len(answers))
	for _, a := range answers {
		if berr := g.allow.decide(host, a, port, viaName); berr != nil {
			berr.Reason = "DNS answer " + berr.Reason
			return nil, berr
		}
		if !seen[a.Unmap()] {
			seen[a.Unmap()] = true
			out = append(out, a)
		}
	}
	return out, nil
}

// Transport returns a new http.Transport that dials only through the guard
// and never uses a proxy. Callers may tune its timeouts but must not set
// Proxy, DialContext or DialTLSContext.
func (g *Guard) Transport() *http.Transport {
	return &http.Transport{
		Proxy:                 nil,
		DialContext:           g.DialContext,
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          32,
		MaxIdleConnsPerHost:   8,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   10 * time.Second,
		ExpectContinueTimeout: time.Second,
	}
}

// Client returns a new http.Client over Transport() with the redirect policy.
func (g *Guard) Client() *http.Client {
	return &http.Client{Transport: g.Transport(), CheckRedirect: g.CheckRedirect, Timeout: g.timeout}
}

// CheckRedirect is the http.Client redirect policy: at most MaxRedirects
// hops, http and https only, no https→http downgrade, the target host checked
// without DNS, and credentials stripped when the origin changes.
func (g *Guard) CheckRedirect(req *http.Request, via []*http.Request) error {
	if len(via) > g.maxRedirects || g.maxRedirects < 0 {
		return fmt.Errorf("%w: more than %d", ErrTooManyRedirects, max(g.maxRedirects, 0))
	}
	prev := via[len(via)-1]
	if prev.URL.Scheme == "https" && req.URL.Scheme == "http" {
		return &BlockedError{Host: req.URL.Hostname(), Reason: "redirect downgrades https to http"}
	}
	if err := g.CheckURL(req.URL.String()); err != nil {
		return err
	}
	if origin(req.URL) != origin(via[0].URL) {
		stripCredentials(req.Header)
	}
	return nil
}

// CheckURL checks a URL without DNS: scheme http or https, no user info, and
// a host the guard would not refuse by its spelling, its name or its literal
// address. Use it to reject a configured endpoint early with a clear error;
// the dial checks still apply to every connection.
func (g *Guard) CheckURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil {
		return &BlockedError{Host: raw, Reason: "malformed URL"}
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return &BlockedError{Host: u.Host, Reason: "scheme " + strconv.Quote(u.Scheme) + " is not http or https"}
	}
	if u.User != nil {
		return &BlockedError{Host: u.Hostname(), Reason: "credentials in URL"}
	}
	host := u.Hostname()
	port := uint16(80)
	if u.Scheme == "https" {
		port = 443
	}
	if p := u.Port(); p != "" {
		n, err := strconv.ParseUint(p, 10, 16)
		if err != nil || n == 0 {
			return &BlockedError{Host: host, Reason: "invalid port " + strconv.Quote(p)}
		}
		port = uint16(n)
	}
	hf, berr := parseHost(host)
	if berr != nil {
		return berr
	}
	if hf.addr.IsValid() {
		if berr := g.allow.decide(host, hf.addr, port, false); berr != nil {
			return berr
		}
		return nil
	}
	if r := nameReason(hf.name); r != "" && !g.allow.allowsName(hf.name, port) {
		return &BlockedError{Host: host, Reason: r}
	}
	return nil
}

// origin is scheme://host:port with the default port filled in.
func origin(u *url.URL) string {
	port := u.Port()
	if port == "" {
		port = map[string]string{"http": "80", "https": "443"}[u.Scheme]
	}
	return u.Scheme + "://" + strings.ToLower(u.Hostname()) + ":" + port
}

// stripCredentials removes every header that may carry a credential.
func stripCredentials(h http.Header) {
	for k := range h {
		if isCredentialHeader(k) {
			delete(h, k)
		}
	}
}

func isCredentialHeader(name string) bool {
	n := strings.ToLower(name)
	switch n {
	case "authorization", "proxy-authorization", "cookie", "cookie2":
		return true
	}
	for _, s := range []string{"key", "token", "secret", "auth", "session", "password", "credential", "signature"} {
		if strings.Contains(n, s) {
			return true
		}
	}
	return false
}
