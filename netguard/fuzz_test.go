package netguard

import (
	"net"
	"net/netip"
	"strings"
	"testing"
)

// FuzzParseHost checks the host parser against independent oracles: the
// standard library's IP parser and its range predicates.
func FuzzParseHost(f *testing.F) {
	for _, s := range []string{
		"127.0.0.1", "0177.0.0.1", "0x7f000001", "127.1", "2130706433", "::ffff:127.0.0.1", "64:ff9b::7f00:1",
		"2002:7f00:1::", "2001:0:4136:e378:8000:63bf:80ff:fffe", "localhost.", "api.openai.com", "fe80::1%lo",
		"1.2.3.4.5", "0x", "0x.0x.0x.0x", "08.1", "１２７.０.０.１", "a..b", "[::1]", "example.com.", "",
	} {
		f.Add(s)
	}
	g, err := New(Config{})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, host string) {
		hf, berr := parseHost(host)
		checkErr := g.CheckURL("http://" + bracket(host) + "/")

		if ip := net.ParseIP(host); ip != nil && stdlibNonPublic(ip) && checkErr == nil {
			t.Fatalf("net.ParseIP(%q) = %v is not public, but CheckURL passed", host, ip)
		}
		if berr != nil {
			if !strings.Contains(berr.Error(), "netguard: blocked") || berr.Reason == "" {
				t.Fatalf("refusal of %q without a reason: %v", host, berr)
			}
			return
		}
		if hf.addr.IsValid() {
			a, err := netip.ParseAddr(host)
			if err != nil || a != hf.addr {
				t.Fatalf("literal %q parsed as %v, stdlib says %v, %v", host, hf.addr, a, err)
			}
			return
		}
		// A name: never something the standard library or inet_aton would read as an address.
		if net.ParseIP(hf.name) != nil || net.ParseIP(host) != nil {
			t.Fatalf("%q accepted as a name but parses as an IP", host)
		}
		labels := strings.Split(hf.name, ".")
		last := labels[len(labels)-1]
		if last == "" || strings.Trim(last, "0123456789") == "" {
			t.Fatalf("%q accepted as a name with numeric last label", host)
		}
		if allNumericish(labels) {
			t.Fatalf("%q accepted as a name but every label is a number", host)
		}
		for _, r := range hf.name {
			if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-' || r == '.' || r == '_') {
				t.Fatalf("%q accepted with character %q", host, r)
			}
		}
	})
}

func bracket(host string) string {
	if strings.Contains(host, ":") {
		return "[" + host + "]"
	}
	return host
}

func stdlibNonPublic(ip net.IP) bool {
	return ip.IsLoopback() || ip.IsPrivate() || ip.IsLinkLocalUnicast() || ip.IsLinkLocalMulticast() ||
		ip.IsInterfaceLocalMulticast() || ip.IsMulticast() || ip.IsUnspecified()
}

// allNumericish reports whether every label is decimal, octal or 0x-hex digits.
func allNumericish(labels []string) bool {
	for _, l := range labels {
		s := l
		if strings.HasPrefix(s, "0x") {
			s = strings.Trim(s[2:], "0123456789abcdef")
		} else {
			s = strings.Trim(s, "0123456789")
		}
		if s != "" {
			return false
		}
	}
	return true
}
