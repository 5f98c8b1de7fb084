package netguard

import (
	"net/netip"
	"strconv"
	"strings"
)

// blockedNames are refused outright; blockedSuffixes refuse every name under them.
var (
	blockedNames = map[string]string{
		"localhost":             "loopback name",
		"localhost.localdomain": "loopback name",
		"ip6-localhost":         "loopback name",
		"ip6-loopback":          "loopback name",
		"metadata":              "cloud metadata name",
		"metadata.google":       "cloud metadata name",
		"metadata.goog":         "cloud metadata name",
		"instance-data":         "cloud metadata name",
		"kubernetes.default":    "cluster-internal name",
	}
	blockedSuffixes = []string{
		".localhost", ".local", ".internal", ".localdomain", ".home.arpa", ".arpa", ".lan", ".intranet", ".corp",
		".svc", ".cluster.local",
	}
)

// hostForm is a host split into the two shapes the guard accepts.
type hostForm struct {
	name string     // lowercased DNS name without trailing dot; empty for a literal
	addr netip.Addr // the literal; invalid for a name
}

// parseHost checks the syntax of a host (no port, no brackets) and refuses
// every spelling of an IP address other than the canonical ones. It does not
// apply the name policy; see nameReason.
func parseHost(host string) (hostForm, *BlockedError) {
	refuse := func(reason string) (hostForm, *BlockedError) {
		return hostForm{}, &BlockedError{Host: host, Reason: reason}
	}
	if host == "" {
		return refuse("empty host")
	}
	if len(host) > 253+1 {
		return refuse("host name longer than 253 bytes")
	}
	if strings.Contains(host, "%") {
		return refuse("IPv6 zone or percent-encoding in host")
	}
	if strings.Contains(host, ":") {
		a, err := netip.ParseAddr(host)
		if err != nil {
			return refuse("malformed IPv6 literal")
		}
		return hostForm{addr: a}, nil
	}
	for i := 0; i < len(host); i++ {
		c := host[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '-', c == '.', c == '_':
		case c >= 0x80:
			return refuse("non-ASCII host name (give its punycode form)")
		default:
			return refuse("invalid character " + strconv.QuoteRune(rune(c)) + " in host name")
		}
	}
	if a, err := netip.ParseAddr(host); err == nil {
		return hostForm{addr: a}, nil
	}
	name := strings.ToLower(strings.TrimSuffix(host, "."))
	labels := strings.Split(name, ".")
	for _, l := range labels {
		if l == "" {
			return refuse("empty label in host name")
		}
		if len(l) > 63 {
			return refuse("host name label longer than 63 bytes")
		}
	}
	// WHATWG URL: a host whose last label is a number is an IPv4 address.
	// Only the canonical dotted-quad (parsed above) is accepted; every other
	// spelling is refused, naming what it would mean to inet_aton.
	if endsInNumber(labels[len(labels)-1]) {
		if a, ok := parseLegacyIPv4(labels); ok {
			return refuse("non-canonical IPv4 literal (means " + a.String() + "); write it as dotted decimal")
		}
		return refuse("host name ends in a number but is not an IPv4 address")
	}
	return hostForm{name: name}, nil
}

// nameReason returns why a DNS name is refused before any lookup, or "".
func nameReason(name string) string {
	if r, ok := blockedNames[name]; ok {
		return r
	}
	for _, s := range blockedSuffixes {
		if strings.HasSuffix(name, s) {
			return "reserved or internal domain (*" + s + ")"
		}
	}
	if !strings.Contains(name, ".") {
		return "single-label name (resolved through local search domains)"
	}
	return ""
}

// endsInNumber is the WHATWG "ends in a number" test for the last label.
func endsInNumber(last string) bool {
	if last == "" {
		return false
	}
	if allIn(last, "0123456789") {
		return true
	}
	if len(last) >= 2 && last[0] == '0' && (last[1] == 'x' || last[1] == 'X') {
		return allIn(last[2:], "0123456789abcdefABCDEF")
	}
	return false
}

func allIn(s, set string) bool {
	for i := 0; i < len(s); i++ {
		if !strings.ContainsRune(set, rune(s[i])) {
			return false
		}
	}
	return true
}

// parseLegacyIPv4 parses the forms inet_aton and WHATWG accept: one to four
// parts, each decimal, octal (leading 0) or hex (0x), the last part filling
// the remaining bytes. It exists to name what a refused literal means.
func parseLegacyIPv4(parts []string) (netip.Addr, bool) {
	if len(parts) == 0 || len(parts) > 4 {
		return netip.Addr{}, false
	}
	nums := make([]uint64, len(parts))
	for i, p := range parts {
		n, ok := parseLegacyNumber(p)
		if !ok {
			return netip.Addr{}, false
		}
		nums[i] = n
	}
	var v uint64
	for i, n := range nums[:len(nums)-1] {
		if n > 255 {
			return netip.Addr{}, false
		}
		v |= n << (8 * (3 - i))
	}
	last := nums[len(nums)-1]
	if last >= 1<<(8*(5-len(nums))) {
		return netip.Addr{}, false
	}
	v |= last
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)}), true
}

func parseLegacyNumber(p string) (uint64, bool) {
	base := 10
	switch {
	case len(p) >= 2 && p[0] == '0' && (p[1] == 'x' || p[1] == 'X'):
		base, p = 16, p[2:]
		if p == "" {
			return 0, true
		}
	case len(p) >= 2 && p[0] == '0':
		base, p = 8, p[1:]
	}
	if p == "" || len(p) > 32 {
		return 0, false
	}
	n, err := strconv.ParseUint(p, base, 64)
	if err != nil || n > 0xffffffff {
		return 0, false
	}
	return n, true
}
