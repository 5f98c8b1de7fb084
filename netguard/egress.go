package netguard

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// EgressRules is a parsed egress allowlist: which destinations one tenant's
// sandbox may reach through its EgressProxy. Entries are "name",
// "name:port", "*.suffix" or "*.suffix:port" (a wildcard matches names
// strictly under the suffix); an entry without a port allows 443 and 80.
// IP literals are refused: rules name hosts, and the Guard decides which
// addresses those names may resolve to (so an internal name in the rules is
// reachable only if the operator's Guard allows it too). The zero value
// allows nothing.
type EgressRules struct {
	exact  map[string][]uint16
	suffix map[string][]uint16 // ".example.com" → ports
}

// egressDefaultPorts are the ports of an entry that names none.
var egressDefaultPorts = []uint16{443, 80}

// ParseEgressRules parses an egress allowlist. It rejects malformed
// entries, IP literals and wildcards too broad to mean anything ("*",
// "*.com").
func ParseEgressRules(entries []string) (EgressRules, error) {
	r := EgressRules{exact: map[string][]uint16{}, suffix: map[string][]uint16{}}
	for _, e := range entries {
		e = strings.TrimSpace(e)
		host, ports := e, egressDefaultPorts
		if h, p, err := net.SplitHostPort(e); err == nil {
			n, err := strconv.ParseUint(p, 10, 16)
			if err != nil || n == 0 {
				return EgressRules{}, fmt.Errorf("egress entry %q: invalid port %q", e, p)
			}
			host, ports = h, []uint16{uint16(n)}
		}
		wild := strings.HasPrefix(host, "*.")
		name := strings.TrimPrefix(host, "*.")
		hf, berr := parseHost(name)
		if berr != nil {
			return EgressRules{}, fmt.Errorf("egress entry %q: %s", e, berr.Reason)
		}
		if hf.addr.IsValid() {
			return EgressRules{}, fmt.Errorf("egress entry %q: name a host, not an address", e)
		}
		if strings.Contains(hf.name, "*") {
			return EgressRules{}, fmt.Errorf("egress entry %q: only a leading \"*.\" wildcard is supported", e)
		}
		if wild && !strings.Contains(hf.name, ".") {
			return EgressRules{}, fmt.Errorf("egress entry %q: a wildcard needs at least two labels (*.example.com)", e)
		}
		if wild {
			r.suffix["."+hf.name] = append(r.suffix["."+hf.name], ports...)
		} else {
			r.exact[hf.name] = append(r.exact[hf.name], ports...)
		}
	}
	return r, nil
}

// Allows reports whether host (a name, any case, optional trailing dot) on
// port is in the rules.
func (r EgressRules) Allows(host string, port uint16) bool {
	name := strings.TrimSuffix(strings.ToLower(host), ".")
	if hasPort(r.exact[name], port) {
		return true
	}
	for i := strings.IndexByte(name, '.'); i >= 0; {
		if hasPort(r.suffix[name[i:]], port) {
			return true
		}
		j := strings.IndexByte(name[i+1:], '.')
		if j < 0 {
			break
		}
		i += 1 + j
	}
	return false
}

func hasPort(ports []uint16, p uint16) bool {
	for _, q := range ports {
		if q == p {
			return true
		}
	}
	return false
}

// EgressOptions configures an EgressProxy.
type EgressOptions struct {
	// Guard dials every upstream connection, so the operator's address
	// policy (no loopback, private, metadata…) holds whatever the rules say.
	Guard *Guard
	// Rules are the destinations allowed; SetRules replaces them.
	Rules EgressRules
	// MaxConns caps simultaneous client connections; 0 means 64.
	MaxConns int
	// IdleTimeout closes a tunnel or keep-alive connection idle this long;
	// 0 means 5 minutes.
	IdleTimeout time.Duration
	// Logger gets one line per refusal and per finished tunnel.
	Logger *slog.Logger
	// Observe, when set, is told of every decision ("allowed", "denied" by
	// the rules, "blocked" by the guard, "upstream" failure, "bad-request")
	// and, when a request or tunnel ends, of the bytes it carried
	// (verdict "bytes"). It must not block.
	Observe func(verdict string, bytes int64)
}

// EgressProxy is an HTTP proxy for one tenant's sandbox: CONNECT tunnels
// and absolute-form HTTP requests to destinations its rules allow, dialed
// through the Guard. Everything else is answered 403 with the reason in
// the body and the X-Bulkhead-Egress header, so a tool in the sandbox sees
// a clear refusal rather than a timeout.
type EgressProxy struct {
	guard   *Guard
	rules   atomic.Pointer[EgressRules]
	log     *slog.Logger
	idle    time.Duration
	slots   chan struct{}
	srv     *http.Server
	tr      *http.Transport
	mu      sync.Mutex
	tunnels map[net.Conn]struct{}
	closed  bool
	stats   EgressStats
	observe func(verdict string, bytes int64)
}

// EgressStats counts what a proxy did.
type EgressStats struct {
	Allowed, Refused atomic.Int64
	BytesUp          atomic.Int64 // from the sandbox
	BytesDown        atomic.Int64 // to the sandbox
}

// NewEgressProxy returns a proxy; call Serve with a listener.
func NewEgressProxy(o EgressOptions) (*EgressProxy, error) {
	if o.Guard == nil {
		return nil, errors.New("egress proxy: no guard")
	}
	if o.MaxConns <= 0 {
		o.MaxConns = 64
	}
	if o.IdleTimeout <= 0 {
		o.IdleTimeout = 5 * time.Minute
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Observe == nil {
		o.Observe = func(string, int64) {}
	}
	p := &EgressProxy{guard: o.Guard, log: o.Logger.With("subsystem", "egress"), idle: o.IdleTimeout,
		slots: make(chan struct{}, o.MaxConns), tunnels: map[net.Conn]struct{}{}, observe: o.Observe}
	p.SetRules(o.Rules)
	tr := o.Guard.Transport()
	tr.Proxy = nil
	tr.DialContext = p.dialAllowed
	p.tr = tr
	p.srv = &http.Server{
		Handler:           p,
		ReadHeaderTimeout: 30 * time.Second,
		IdleTimeout:       o.IdleTimeout,
		ErrorLog:          slog.NewLogLogger(p.log.Handler(), slog.LevelDebug),
	}
	return p, nil
}

// SetRules replaces the rules; new requests and tunnels see them at once
// (open tunnels keep running until they end).
func (p *EgressProxy) SetRules(r EgressRules) {
	p.rules.Store(&r)
}

// Stats returns the proxy's counters.
func (p *EgressProxy) Stats() *EgressStats { return &p.stats }

// Serve accepts clients on ln until Close. It returns nil after Close.
func (p *EgressProxy) Serve(ln net.Listener) error {
	err := p.srv.Serve(&limitListener{Listener: ln, slots: p.slots})
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}

// Close stops accepting, and ends every request and tunnel.
func (p *EgressProxy) Close() error {
	p.mu.Lock()
	p.closed = true
	for c := range p.tunnels {
		c.Close()
	}
	p.mu.Unlock()
	err := p.srv.Close()
	p.tr.CloseIdleConnections()
	return err
}

// egressHeader carries the proxy's verdict on a refusal.
const egressHeader = "X-Bulkhead-Egress"

func (p *EgressProxy) refuse(w http.ResponseWriter, status int, verdict, msg string) {
	p.stats.Refused.Add(1)
	p.observe(verdict, 0)
	w.Header().Set(egressHeader, verdict)
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Connection", "close")
	w.WriteHeader(status)
	io.WriteString(w, "bulkhead egress: "+msg+"\n")
}

// check decides hostport ("host:port") against the rules.
func (p *EgressProxy) check(hostport string) error {
	h, ps, err := net.SplitHostPort(hostport)
	if err != nil {
		return fmt.Errorf("malformed destination %q", hostport)
	}
	n, err := strconv.ParseUint(ps, 10, 16)
	if err != nil || n == 0 {
		return fmt.Errorf("invalid port in %q", hostport)
	}
	if !p.rules.Load().Allows(h, uint16(n)) {
		return fmt.Errorf("%s is not in this workspace's egress allowlist (an operator sets egress.allow)", net.JoinHostPort(h, ps))
	}
	return nil
}

// dialAllowed is the transport's dialer: the rules again (a request's host
// is checked before, this also covers anything the transport dials), then
// the guard.
func (p *EgressProxy) dialAllowed(ctx context.Context, network, addr string) (net.Conn, error) {
	if err := p.check(addr); err != nil {
		return nil, err
	}
	return p.guard.DialContext(ctx, network, addr)
}

func (p *EgressProxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method == http.MethodConnect {
		p.connect(w, r)
		return
	}
	if r.URL.Scheme != "http" || r.URL.Host == "" {
		p.refuse(w, http.StatusBadRequest, "bad-request", "this is a proxy: send absolute http:// URLs or CONNECT host:port (for https)")
		return
	}
	hostport := r.URL.Host
	if r.URL.Port() == "" {
		hostport = net.JoinHostPort(r.URL.Hostname(), "80")
	}
	if err := p.check(hostport); err != nil {
		p.log.Info("egress refused", "dest", hostport, "reason", err)
		p.refuse(w, http.StatusForbidden, "denied", err.Error())
		return
	}
	out := r.Clone(r.Context())
	out.RequestURI = ""
	removeHopHeaders(out.Header)
	out.Header.Del("Proxy-Authorization")
	resp, err := p.tr.RoundTrip(out)
	if err != nil {
		p.upstreamError(w, hostport, err)
		return
	}
	defer resp.Body.Close()
	p.stats.Allowed.Add(1)
	p.observe("allowed", 0)
	removeHopHeaders(resp.Header)
	for k, vs := range resp.Header {
		w.Header()[k] = vs
	}
	w.WriteHeader(resp.StatusCode)
	n, _ := io.Copy(w, resp.Body)
	p.stats.BytesDown.Add(n)
	p.observe("bytes", n)
}

func (p *EgressProxy) upstreamError(w http.ResponseWriter, hostport string, err error) {
	if errors.Is(err, ErrBlocked) {
		p.log.Info("egress refused by the address guard", "dest", hostport, "reason", err)
		p.refuse(w, http.StatusForbidden, "blocked", err.Error())
		return
	}
	p.log.Debug("egress upstream failed", "dest", hostport, "err", err)
	p.refuse(w, http.StatusBadGateway, "upstream", "connect "+hostport+": "+err.Error())
}

func (p *EgressProxy) connect(w http.ResponseWriter, r *http.Request) {
	hostport := r.Host
	if err := p.check(hostport); err != nil {
		p.log.Info("egress refused", "dest", hostport, "reason", err)
		p.refuse(w, http.StatusForbidden, "denied", err.Error())
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), 30*time.Second)
	up, err := p.guard.DialContext(ctx, "tcp", hostport)
	cancel()
	if err != nil {
		p.upstreamError(w, hostport, err)
		return
	}
	hj, ok := w.(http.Hijacker)
	if !ok {
		up.Close()
		p.refuse(w, http.StatusInternalServerError, "internal", "connection cannot be hijacked")
		return
	}
	client, brw, err := hj.Hijack()
	if err != nil {
		up.Close()
		return
	}
	if !p.track(client, up) {
		client.Close()
		up.Close()
		return
	}
	defer p.untrack(client, up)
	p.stats.Allowed.Add(1)
	p.observe("allowed", 0)
	if _, err := io.WriteString(client, "HTTP/1.1 200 Connection established\r\n\r\n"); err != nil {
		return
	}
	start := time.Now()
	upN, downN := p.splice(client, brw.Reader, up)
	p.log.Debug("egress tunnel closed", "dest", hostport, "up", upN, "down", downN, "dur", time.Since(start).Round(time.Millisecond))
}

// splice copies both ways until either side ends or idles past the
// timeout; bytes the client sent after the CONNECT header (buffered in br)
// go first.
func (p *EgressProxy) splice(client net.Conn, br *bufio.Reader, up net.Conn) (upN, downN int64) {
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		downN = copyIdle(client, up, p.idle)
		client.Close()
	}()
	var src io.Reader = client
	if br.Buffered() > 0 {
		src = io.MultiReader(io.LimitReader(br, int64(br.Buffered())), client)
	}
	upN = copyIdle(up, readerConn{src, client}, p.idle)
	up.Close()
	wg.Wait()
	p.stats.BytesUp.Add(upN)
	p.stats.BytesDown.Add(downN)
	p.observe("bytes", upN+downN)
	return upN, downN
}

// readerConn reads from r but sets deadlines on the conn underneath.
type readerConn struct {
	r io.Reader
	c net.Conn
}

func (rc readerConn) Read(b []byte) (int, error)        { return rc.r.Read(b) }
func (rc readerConn) SetReadDeadline(t time.Time) error { return rc.c.SetReadDeadline(t) }

// copyIdle copies src to dst, failing once src is silent for idle.
func copyIdle(dst io.Writer, src interface {
	io.Reader
	SetReadDeadline(time.Time) error
}, idle time.Duration) int64 {
	buf := make([]byte, 64<<10)
	var n int64
	for {
		src.SetReadDeadline(time.Now().Add(idle))
		k, err := src.Read(buf)
		if k > 0 {
			if _, werr := dst.Write(buf[:k]); werr != nil {
				return n
			}
			n += int64(k)
		}
		if err != nil {
			return n
		}
	}
}

func (p *EgressProxy) track(cs ...net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return false
	}
	for _, c := range cs {
		p.tunnels[c] = struct{}{}
	}
	return true
}

func (p *EgressProxy) untrack(cs ...net.Conn) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range cs {
		delete(p.tunnels, c)
	}
}

var hopHeaders = []string{"Connection", "Proxy-Connection", "Keep-Alive", "Proxy-Authenticate", "Te", "Trailer", "Transfer-Encoding", "Upgrade"}

func removeHopHeaders(h http.Header) {
	for _, f := range strings.Split(h.Get("Connection"), ",") {
		if f = strings.TrimSpace(f); f != "" {
			h.Del(f)
		}
	}
	for _, k := range hopHeaders {
		h.Del(k)
	}
}

// limitListener holds a slot per accepted connection; Accept waits while
// all are taken, so a sandbox cannot open unbounded host sockets.
type limitListener struct {
	net.Listener
	slots chan struct{}
}

func (l *limitListener) Accept() (net.Conn, error) {
	l.slots <- struct{}{}
	c, err := l.Listener.Accept()
	if err != nil {
		<-l.slots
		return nil, err
	}
	return &slotConn{Conn: c, release: func() { <-l.slots }}, nil
}

type slotConn struct {
	net.Conn
	once    sync.Once
	release func()
}

func (c *slotConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(c.release)
	return err
}
