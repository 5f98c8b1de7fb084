package netguard

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"strings"
	"testing"
)

// fakeResolver is a Resolver made of a function field.
type fakeResolver struct {
	lookup func(ctx context.Context, network, host string) ([]netip.Addr, error)
}

func (f fakeResolver) LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error) {
	return f.lookup(ctx, network, host)
}

func addrs(ss ...string) []netip.Addr {
	out := make([]netip.Addr, len(ss))
	for i, s := range ss {
		out[i] = netip.MustParseAddr(s)
	}
	return out
}

// dnsTable answers from a fixed table; names not in it are NXDOMAIN.
func dnsTable(t map[string][]netip.Addr) Resolver {
	return fakeResolver{lookup: func(_ context.Context, _, host string) ([]netip.Addr, error) {
		if a, ok := t[host]; ok {
			return a, nil
		}
		return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
	}}
}

var errDialed = errors.New("test dial reached")

// newTestGuard returns a guard whose dialer records the address and never connects.
func newTestGuard(t *testing.T, cfg Config, dialed *[]string) *Guard {
	t.Helper()
	g, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	g.dial = func(_ context.Context, _, address string) (net.Conn, error) {
		*dialed = append(*dialed, address)
		return nil, errDialed
	}
	return g
}

// Every spelling an attacker can use to point the product at something
// internal. Each must be refused both by CheckURL and at dial time, with a
// reason naming the problem.
func TestBypassFormsRefused(t *testing.T) {
	t.Parallel()
	dns := dnsTable(map[string][]netip.Addr{
		"rebind.example":       addrs("127.0.0.1"),
		"mixed.example":        addrs("93.184.216.34", "10.0.0.1"),
		"mapped.example":       addrs("::ffff:169.254.169.254"),
		"nat64.example":        addrs("64:ff9b::a9fe:a9fe"),
		"v6loop.example":       addrs("2606:4700::1", "::1"),
		"metadata-ip.example":  addrs("169.254.169.254"),
		"teredo-loop.example":  addrs("2001:0:4136:e378:8000:63bf:80ff:fffe"),
		"cgnat.example":        addrs("100.100.100.200"),
		"ula.example":          addrs("fd12:3456::1"),
		"sixtofour.example":    addrs("2002:0a00:0001::1"),
		"compat.example":       addrs("::10.0.0.1"),
		"zero.example":         addrs("0.0.0.0"),
		"documentation.exampl": addrs("203.0.113.5"),
	})
	cases := []struct{ host, reason string }{
		// IPv4 special-purpose ranges.
		{"127.0.0.1", "loopback"},
		{"127.255.255.254", "loopback"},
		{"0.0.0.0", "unspecified"},
		{"0.1.2.3", "this network"},
		{"10.0.0.1", "private"},
		{"172.16.5.4", "private"},
		{"172.31.255.255", "private"},
		{"192.168.1.1", "private"},
		{"100.64.0.1", "carrier-grade NAT"},
		{"100.127.255.255", "carrier-grade NAT"},
		{"100.100.100.200", "metadata"},
		{"169.254.169.254", "metadata"},
		{"169.254.0.1", "link-local"},
		{"192.0.0.170", "IETF protocol"},
		{"192.0.2.1", "documentation"},
		{"198.51.100.7", "documentation"},
		{"203.0.113.9", "documentation"},
		{"198.18.0.1", "benchmarking"},
		{"198.19.255.255", "benchmarking"},
		{"192.88.99.1", "6to4 relay"},
		{"224.0.0.1", "multicast"},
		{"239.255.255.250", "multicast"},
		{"240.0.0.1", "reserved"},
		{"255.255.255.255", "broadcast"},
		// Non-canonical IPv4 literals: refused, naming what they mean.
		{"0177.0.0.1", "means 127.0.0.1"},
		{"0x7f000001", "means 127.0.0.1"},
		{"0x7F000001", "means 127.0.0.1"},
		{"0x7f.0.0.1", "means 127.0.0.1"},
		{"0x7f.0x00.0x00.0x01", "means 127.0.0.1"},
		{"0x7f.1", "means 127.0.0.1"},
		{"127.1", "means 127.0.0.1"},
		{"127.0.1", "means 127.0.0.1"},
		{"2130706433", "means 127.0.0.1"},
		{"017700000001", "means 127.0.0.1"},
		{"127.000.000.001", "means 127.0.0.1"},
		{"127.0.0.1.", "means 127.0.0.1"},
		{"0", "means 0.0.0.0"},
		{"0xa9fea9fe", "means 169.254.169.254"},
		{"2852039166", "means 169.254.169.254"},
		{"0251.0376.0251.0376", "means 169.254.169.254"},
		{"0xA9.254.169.254", "means 169.254.169.254"},
		{"10.1", "means 10.0.0.1"},
		{"134744072", "means 8.8.8.8"}, // even a public address: the spelling is the problem
		{"1.2.3.4.5", "ends in a number"},
		{"256.0.0.1", "ends in a number"},
		{"08.0.0.1", "ends in a number"},
		{"example.0x", "ends in a number"},
		{"foo.123", "ends in a number"},
		// IPv6 ranges and IPv4 embedded in IPv6.
		{"::1", "loopback"},
		{"0:0:0:0:0:0:0:1", "loopback"},
		{"::", "unspecified"},
		{"::ffff:127.0.0.1", "IPv4-mapped 127.0.0.1"},
		{"::ffff:7f00:1", "IPv4-mapped 127.0.0.1"},
		{"::FFFF:A9FE:A9FE", "IPv4-mapped 169.254.169.254"},
		{"::ffff:10.0.0.1", "IPv4-mapped 10.0.0.1"},
		{"::127.0.0.1", "IPv4-compatible address (deprecated) embeds 127.0.0.1"},
		{"::a9fe:a9fe", "IPv4-compatible address (deprecated) embeds 169.254.169.254"},
		{"::ffff:0:127.0.0.1", "IPv4-translated address (::ffff:0:0:0/96) embeds 127.0.0.1"},
		{"64:ff9b::127.0.0.1", "NAT64 address (64:ff9b::/96) embeds 127.0.0.1"},
		{"64:ff9b::a9fe:a9fe", "NAT64 address (64:ff9b::/96) embeds 169.254.169.254"},
		{"64:ff9b:1:7f00:1::", "local-use NAT64"},
		{"64:ff9b:1:a9fe:a9:fe00::", "embeds 169.254.169.254"},
		{"2002:7f00:1::", "6to4 address (2002::/16) embeds 127.0.0.1"},
		{"2002:a9fe:a9fe::1", "6to4 address (2002::/16) embeds 169.254.169.254"},
		{"2002:c0a8:0101::", "6to4 address (2002::/16) embeds 192.168.1.1"},
		{"2001:0:4136:e378:8000:63bf:80ff:fffe", "Teredo address (2001::/32) client embeds 127.0.0.1"},
		{"2001:0:4136:e378:8000:63bf:5601:5601", "Teredo address (2001::/32) client embeds 169.254.169.254"},
		{"2001:0:0a00:0001:8000:63bf:f7f7:f7f7", "Teredo address (2001::/32) server embeds 10.0.0.1"},
		{"fe80::1", "link-local"},
		{"febf:ffff::1", "link-local"},
		{"fec0::1", "site-local"},
		{"fc00::1", "unique local"},
		{"fd00::1", "unique local"},
		{"fd00:ec2::254", "metadata"},
		{"ff02::1", "multicast"},
		{"ff05::2", "multicast"},
		{"2001:db8::1", "documentation"},
		{"3fff::1", "documentation"},
		{"2001:2::1", "benchmarking"},
		{"2001:10::1", "IETF protocol"},
		{"100::1", "discard-only"},
		{"5f00::1", "not global unicast"},
		{"4000::1", "not global unicast"},
		{"fe80::1%eth0", "zone"},
		// Names refused before any lookup.
		{"localhost", "loopback name"},
		{"LOCALHOST", "loopback name"},
		{"localhost.", "loopback name"},
		{"LocalHost.LocalDomain", "loopback name"},
		{"ip6-localhost", "loopback name"},
		{"foo.localhost", "*.localhost"},
		{"printer.local", "*.local"},
		{"metadata", "metadata"},
		{"metadata.google.internal", "*.internal"},
		{"metadata.google.internal.", "*.internal"},
		{"instance-data", "metadata"},
		{"instance-data.ec2.internal", "*.internal"},
		{"db.internal", "*.internal"},
		{"router.home.arpa", "*.home.arpa"},
		{"1.0.0.127.in-addr.arpa", "*.arpa"},
		{"api.svc", "*.svc"},
		{"intranet", "single-label"},
		{"ollama", "single-label"},
		// Malformed hosts.
		{"evil.com@127.0.0.1", "invalid character"},
		{"exa mple.com", "invalid character"},
		{"a..b.com", "empty label"},
		{"１２７.０.０.１", "non-ASCII"},
		{"ⓛⓞⓒⓐⓛⓗⓞⓢⓣ", "non-ASCII"},
		{"127.0.0.1\x00.example.com", "invalid character"},
		// DNS answers checked, every one of them.
		{"rebind.example", "DNS answer loopback"},
		{"mixed.example", "DNS answer private"},
		{"mapped.example", "DNS answer IPv4-mapped 169.254.169.254"},
		{"nat64.example", "embeds 169.254.169.254"},
		{"v6loop.example", "DNS answer loopback"},
		{"metadata-ip.example", "metadata"},
		{"teredo-loop.example", "client embeds 127.0.0.1"},
		{"cgnat.example", "metadata"},
		{"ula.example", "unique local"},
		{"sixtofour.example", "embeds 10.0.0.1"},
		{"compat.example", "embeds 10.0.0.1"},
		{"zero.example", "unspecified"},
		{"documentation.exampl", "documentation"},
	}
	var dialed []string
	g := newTestGuard(t, Config{Resolver: dns}, &dialed)
	for _, c := range cases {
		_, err := g.DialContext(context.Background(), "tcp", net.JoinHostPort(c.host, "80"))
		var be *BlockedError
		if !errors.Is(err, ErrBlocked) || !errors.As(err, &be) {
			t.Errorf("dial %q: got %v, want ErrBlocked", c.host, err)
			continue
		}
		if !strings.Contains(be.Reason, c.reason) {
			t.Errorf("dial %q: reason %q, want it to mention %q", c.host, be.Reason, c.reason)
		}
		if strings.HasSuffix(c.host, ".example") || strings.HasSuffix(c.host, ".exampl") {
			continue // names whose answers are refused pass CheckURL, which does no DNS
		}
		u := "http://" + net.JoinHostPort(c.host, "80") + "/"
		if err := g.CheckURL(u); !errors.Is(err, ErrBlocked) {
			t.Errorf("CheckURL(%q): got %v, want ErrBlocked", u, err)
		}
	}
	if len(dialed) != 0 {
		t.Errorf("refused destinations reached the dialer: %v", dialed)
	}
}

// Public addresses, including embedded forms whose IPv4 is public, pass and
// are dialed as the checked IP literal.
func TestPublicDestinationsDialedByIP(t *testing.T) {
	t.Parallel()
	dns := dnsTable(map[string][]netip.Addr{
		"api.openai.com":    addrs("162.159.140.245", "2606:4700::6812:1"),
		"mapped-pub.test":   addrs("::ffff:8.8.8.8"),
		"dns64.example.org": addrs("64:ff9b::8.8.4.4"),
	})
	cases := []struct{ host, want string }{
		{"8.8.8.8", "8.8.8.8:443"},
		{"1.1.1.1", "1.1.1.1:443"},
		{"172.32.0.1", "172.32.0.1:443"},
		{"100.63.255.255", "100.63.255.255:443"},
		{"198.20.0.1", "198.20.0.1:443"},
		{"2606:4700:4700::1111", "[2606:4700:4700::1111]:443"},
		{"::ffff:8.8.8.8", "8.8.8.8:443"},
		{"64:ff9b::8.8.8.8", "[64:ff9b::808:808]:443"},
		{"2002:808:808::1", "[2002:808:808::1]:443"},
		{"2001:0:4136:e378:8000:63bf:f7f7:f7f7", "[2001:0:4136:e378:8000:63bf:f7f7:f7f7]:443"},
		{"api.openai.com", "162.159.140.245:443"},
		{"API.OpenAI.com.", "162.159.140.245:443"},
		{"mapped-pub.test", "8.8.8.8:443"},
		{"dns64.example.org", "[64:ff9b::808:404]:443"},
	}
	for _, c := range cases {
		var dialed []string
		g := newTestGuard(t, Config{Resolver: dns}, &dialed)
		_, err := g.DialContext(context.Background(), "tcp", net.JoinHostPort(c.host, "443"))
		if !errors.Is(err, errDialed) {
			t.Errorf("dial %q: got %v, want it to reach the dialer", c.host, err)
			continue
		}
		if len(dialed) == 0 || dialed[0] != c.want {
			t.Errorf("dial %q: dialed %v, want first %s", c.host, dialed, c.want)
		}
		for _, d := range dialed {
			if _, err := netip.ParseAddrPort(d); err != nil {
				t.Errorf("dial %q: dialer got %q, not a pinned ip:port", c.host, d)
			}
		}
		if err := g.CheckURL("https://" + net.JoinHostPort(c.host, "443") + "/v1"); err != nil {
			t.Errorf("CheckURL %q: %v", c.host, err)
		}
	}
}

func TestResolverFailureFailsClosed(t *testing.T) {
	t.Parallel()
	var dialed []string
	boom := errors.New("servfail")
	g := newTestGuard(t, Config{Resolver: fakeResolver{lookup: func(_ context.Context, _, host string) ([]netip.Addr, error) {
		if host == "empty.example" {
			return nil, nil
		}
		return nil, boom
	}}}, &dialed)
	if _, err := g.DialContext(context.Background(), "tcp", "down.example:443"); !errors.Is(err, boom) {
		t.Errorf("resolver error: got %v", err)
	}
	if _, err := g.DialContext(context.Background(), "tcp", "empty.example:443"); err == nil || errors.Is(err, errDialed) {
		t.Errorf("empty answer: got %v, want an error before dialing", err)
	}
	for _, network := range []string{"udp", "unix", "ip", "tcp4 "} {
		if _, err := g.DialContext(context.Background(), network, "8.8.8.8:53"); !errors.Is(err, ErrBlocked) {
			t.Errorf("network %q: got %v, want ErrBlocked", network, err)
		}
	}
	for _, addr := range []string{"8.8.8.8", "8.8.8.8:0", "8.8.8.8:99999", "8.8.8.8:http"} {
		if _, err := g.DialContext(context.Background(), "tcp", addr); !errors.Is(err, ErrBlocked) {
			t.Errorf("address %q: got %v, want ErrBlocked", addr, err)
		}
	}
	if len(dialed) != 0 {
		t.Errorf("dialer reached: %v", dialed)
	}
}

func TestCheckURL(t *testing.T) {
	t.Parallel()
	g, err := New(Config{Allow: []string{"localhost:11434", "127.0.0.1:8080"}})
	if err != nil {
		t.Fatal(err)
	}
	bad := []string{
		"http://169.254.169.254/latest/meta-data/",
		"http://10.0.0.1:8080/v1",
		"http://[::1]:11434/v1",
		"http://127.0.0.1:8081/v1", // allowlisted port is 8080
		"http://localhost:11435/v1",
		"file:///etc/passwd",
		"gopher://example.com/",
		"ftp://example.com/",
		"http://user:pass@example.com/",
		"http://example.com:0/",
		"http://example.com:65536/",
		"http:///path",
		"://nope",
	}
	for _, u := range bad {
		if err := g.CheckURL(u); !errors.Is(err, ErrBlocked) {
			t.Errorf("CheckURL(%q) = %v, want ErrBlocked", u, err)
		}
	}
	good := []string{
		"https://api.openai.com/v1",
		"https://generativelanguage.googleapis.com/v1beta",
		"http://localhost:11434/v1",
		"http://LOCALHOST:11434/v1",
		"http://127.0.0.1:8080/v1",
	}
	for _, u := range good {
		if err := g.CheckURL(u); err != nil {
			t.Errorf("CheckURL(%q) = %v, want nil", u, err)
		}
	}
}

func TestAllowlistEntries(t *testing.T) {
	t.Parallel()
	bad := []string{"0.0.0.0/0", "::/0", "10.0.0.0/4", "2000::/3", "::ffff:0.0.0.0/96", "localhost", "host:0",
		"host:http", "0x7f.1:80", "fe80::/64%eth0", "10.0.0.300/32", ":80", "a b:80"}
	for _, e := range bad {
		if _, err := New(Config{Allow: []string{e}}); err == nil {
			t.Errorf("allow entry %q accepted", e)
		}
	}
	good := []string{"localhost:11434", "127.0.0.1:11434", "[::1]:11434", "10.20.0.0/16", "fd00::/64",
		"169.254.169.254/32", "gpu-box.lan:8000", "::ffff:10.0.0.0/104"}
	for _, e := range good {
		if _, err := New(Config{Allow: []string{e}}); err != nil {
			t.Errorf("allow entry %q refused: %v", e, err)
		}
	}
}

// The allowlist widens only what it names: the port, the address kind, and
// never multicast or unspecified.
func TestAllowlistScope(t *testing.T) {
	t.Parallel()
	dns := dnsTable(map[string][]netip.Addr{
		"ollama.test":     addrs("127.0.0.1"),
		"gpu-box.lan":     addrs("192.168.7.20"),
		"sneaky.lan":      addrs("169.254.169.254"),
		"other.example":   addrs("127.0.0.1"),
		"multicast.test":  addrs("224.0.0.1"),
		"lan-prefix.test": addrs("10.20.3.4"),
	})
	var dialed []string
	g := newTestGuard(t, Config{Resolver: dns, Allow: []string{
		"ollama.test:11434", "gpu-box.lan:8000", "sneaky.lan:80", "multicast.test:80", "10.20.0.0/16", "0.0.0.0/8",
	}}, &dialed)
	allowed := map[string]string{
		"ollama.test:11434": "127.0.0.1:11434",
		"gpu-box.lan:8000":  "192.168.7.20:8000", // .lan is refused by name unless allowlisted
		"10.20.9.9:5000":    "10.20.9.9:5000",
		"lan-prefix.test:1": "10.20.3.4:1",
	}
	for addr, want := range allowed {
		dialed = dialed[:0]
		if _, err := g.DialContext(context.Background(), "tcp", addr); !errors.Is(err, errDialed) || len(dialed) != 1 || dialed[0] != want {
			t.Errorf("allowlisted %s: err %v dialed %v, want %s", addr, err, dialed, want)
		}
	}
	refused := []string{
		"ollama.test:11435",   // other port
		"gpu-box.lan:22",      // other port, and .lan
		"other.example:11434", // other name resolving to loopback
		"127.0.0.1:11434",     // the name entry does not allow the address
		"sneaky.lan:80",       // a name entry never allows link-local/metadata answers
		"multicast.test:80",   // never multicast
		"0.0.0.0:80",          // never unspecified, even under an allowed prefix
		"10.21.0.1:80",
	}
	dialed = dialed[:0]
	for _, addr := range refused {
		if _, err := g.DialContext(context.Background(), "tcp", addr); !errors.Is(err, ErrBlocked) {
			t.Errorf("%s: got %v, want ErrBlocked", addr, err)
		}
	}
	if len(dialed) != 0 {
		t.Errorf("dialer reached: %v", dialed)
	}
}

// The last line: the socket hook refuses any address other than the pinned one.
func TestControlHookPins(t *testing.T) {
	t.Parallel()
	pinned := context.WithValue(context.Background(), pinKey{}, netip.MustParseAddrPort("93.184.216.34:443"))
	if err := controlPinned(pinned, "tcp4", "93.184.216.34:443", nil); err != nil {
		t.Errorf("pinned address refused: %v", err)
	}
	for ctx, addr := range map[context.Context]string{
		pinned:               "127.0.0.1:443",
		context.Background(): "93.184.216.34:443",
	} {
		if err := controlPinned(ctx, "tcp4", addr, nil); !errors.Is(err, ErrBlocked) {
			t.Errorf("control %s: got %v, want ErrBlocked", addr, err)
		}
	}
	if err := controlPinned(pinned, "tcp4", "93.184.216.34:80", nil); !errors.Is(err, ErrBlocked) {
		t.Errorf("other port accepted: %v", err)
	}
}
