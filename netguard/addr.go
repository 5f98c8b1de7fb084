package netguard

import (
	"net/netip"
)

// kind says how far an operator's allowlist may widen a refusal.
type kind int

const (
	kindPublic kind = iota // reachable: not refused at all
	kindLocal              // loopback, private, CGNAT, unique-local: a name, address or prefix entry may allow it
	kindOther              // link-local, metadata, reserved, documentation, embedded forms: only an address or prefix entry
	kindNever              // unspecified, multicast, broadcast, zoned: never dialed
)

// verdict is the classification of one address.
type verdict struct {
	reason string // empty when the address is public
	kind   kind
}

type rangeRule struct {
	prefix netip.Prefix
	reason string
	kind   kind
}

func rule(cidr, reason string, k kind) rangeRule {
	return rangeRule{prefix: netip.MustParsePrefix(cidr), reason: reason, kind: k}
}

// v4Rules follows the IANA IPv4 Special-Purpose Address Registry; more
// specific prefixes come first so the reason names them.
var v4Rules = []rangeRule{
	rule("0.0.0.0/32", "unspecified address", kindNever),
	rule("255.255.255.255/32", "limited broadcast", kindNever),
	rule("169.254.169.254/32", "cloud metadata endpoint (169.254.169.254)", kindOther),
	rule("100.100.100.200/32", "cloud metadata endpoint (100.100.100.200)", kindOther),
	rule("0.0.0.0/8", "\"this network\" (0.0.0.0/8)", kindOther),
	rule("10.0.0.0/8", "private (10.0.0.0/8)", kindLocal),
	rule("100.64.0.0/10", "carrier-grade NAT (100.64.0.0/10)", kindLocal),
	rule("127.0.0.0/8", "loopback (127.0.0.0/8)", kindLocal),
	rule("169.254.0.0/16", "link-local (169.254.0.0/16)", kindOther),
	rule("172.16.0.0/12", "private (172.16.0.0/12)", kindLocal),
	rule("192.0.0.0/24", "IETF protocol assignments (192.0.0.0/24)", kindOther),
	rule("192.0.2.0/24", "documentation (192.0.2.0/24)", kindOther),
	rule("192.88.99.0/24", "6to4 relay anycast (192.88.99.0/24)", kindOther),
	rule("192.168.0.0/16", "private (192.168.0.0/16)", kindLocal),
	rule("198.18.0.0/15", "benchmarking (198.18.0.0/15)", kindOther),
	rule("198.51.100.0/24", "documentation (198.51.100.0/24)", kindOther),
	rule("203.0.113.0/24", "documentation (203.0.113.0/24)", kindOther),
	rule("224.0.0.0/4", "multicast (224.0.0.0/4)", kindNever),
	rule("240.0.0.0/4", "reserved (240.0.0.0/4)", kindOther),
}

// v6Rules follows the IANA IPv6 Special-Purpose Address Registry for the
// ranges that do not embed IPv4 (those are decoded in classify6 first).
var v6Rules = []rangeRule{
	rule("::/128", "unspecified address", kindNever),
	rule("::1/128", "loopback (::1)", kindLocal),
	rule("fd00:ec2::254/128", "cloud metadata endpoint (fd00:ec2::254)", kindOther),
	rule("100::/64", "discard-only (100::/64)", kindOther),
	rule("2001:db8::/32", "documentation (2001:db8::/32)", kindOther),
	rule("2001:2::/48", "benchmarking (2001:2::/48)", kindOther),
	rule("2001::/23", "IETF protocol assignments (2001::/23)", kindOther),
	rule("3fff::/20", "documentation (3fff::/20)", kindOther),
	rule("fc00::/7", "unique local, private (fc00::/7)", kindLocal),
	rule("fe80::/10", "link-local (fe80::/10)", kindOther),
	rule("fec0::/10", "site-local, deprecated (fec0::/10)", kindOther),
	rule("ff00::/8", "multicast (ff00::/8)", kindNever),
}

var (
	globalUnicast6 = netip.MustParsePrefix("2000::/3")
	nat64WellKnown = netip.MustParsePrefix("64:ff9b::/96")
	nat64Local     = netip.MustParsePrefix("64:ff9b:1::/48")
	sixToFour      = netip.MustParsePrefix("2002::/16")
	teredo         = netip.MustParsePrefix("2001::/32")
)

// classify decides whether an address is public, and if not, why.
func classify(a netip.Addr) verdict {
	if !a.IsValid() {
		return verdict{reason: "invalid address", kind: kindNever}
	}
	if a.Zone() != "" {
		return verdict{reason: "address with an IPv6 zone", kind: kindNever}
	}
	if a.Is4() {
		return classify4(a)
	}
	return classify6(a)
}

func classify4(a netip.Addr) verdict {
	for _, r := range v4Rules {
		if r.prefix.Contains(a) {
			return verdict{reason: r.reason, kind: r.kind}
		}
	}
	return verdict{}
}

func v4At(b [16]byte, i int) netip.Addr {
	return netip.AddrFrom4([4]byte{b[i], b[i+1], b[i+2], b[i+3]})
}

// checkEmbedded re-checks the IPv4 address an IPv6 form carries; a refusal
// names the form and the decoded address.
func checkEmbedded(form string, v4 netip.Addr) verdict {
	if v := classify4(v4); v.reason != "" {
		return verdict{reason: form + " embeds " + v4.String() + ": " + v.reason, kind: kindOther}
	}
	return verdict{}
}

func classify6(a netip.Addr) verdict {
	b := a.As16()
	switch {
	case a.Is4In6():
		// ::ffff:a.b.c.d reaches a.b.c.d on a dual-stack socket.
		v4 := a.Unmap()
		if v := classify4(v4); v.reason != "" {
			return verdict{reason: "IPv4-mapped " + v4.String() + ": " + v.reason, kind: v.kind}
		}
		return verdict{}
	case nat64WellKnown.Contains(a):
		// RFC 6052: the last 32 bits are the IPv4 destination of the translator.
		return checkEmbedded("NAT64 address (64:ff9b::/96)", v4At(b, 12))
	case nat64Local.Contains(a):
		// RFC 8215 local-use prefix; RFC 6052 /48 layout: bits 48-63 and 72-87.
		v4 := netip.AddrFrom4([4]byte{b[6], b[7], b[9], b[10]})
		return verdict{reason: "local-use NAT64 (64:ff9b:1::/48), embeds " + v4.String(), kind: kindOther}
	case sixToFour.Contains(a):
		// RFC 3056: 2002:AABB:CCDD::/48 tunnels to AA.BB.CC.DD.
		return checkEmbedded("6to4 address (2002::/16)", v4At(b, 2))
	case teredo.Contains(a):
		// RFC 4380: server IPv4 in bits 32-63, client IPv4 inverted in the last 32 bits.
		server := v4At(b, 4)
		c := v4At(b, 12).As4()
		client := netip.AddrFrom4([4]byte{^c[0], ^c[1], ^c[2], ^c[3]})
		if v := checkEmbedded("Teredo address (2001::/32) client", client); v.reason != "" {
			return v
		}
		return checkEmbedded("Teredo address (2001::/32) server", server)
	}
	for _, r := range v6Rules {
		if r.prefix.Contains(a) {
			return verdict{reason: r.reason, kind: r.kind}
		}
	}
	if isZero(b[:12]) {
		// ::a.b.c.d, the deprecated IPv4-compatible form (RFC 4291 2.5.5.1).
		v4 := v4At(b, 12)
		return verdict{reason: "IPv4-compatible address (deprecated) embeds " + v4.String(), kind: kindOther}
	}
	if isZero(b[:8]) && b[8] == 0xff && b[9] == 0xff && b[10] == 0 && b[11] == 0 {
		// ::ffff:0:a.b.c.d, the IPv4-translated form (RFC 2765).
		v4 := v4At(b, 12)
		return verdict{reason: "IPv4-translated address (::ffff:0:0:0/96) embeds " + v4.String(), kind: kindOther}
	}
	if !globalUnicast6.Contains(a) {
		return verdict{reason: "not global unicast (outside 2000::/3)", kind: kindOther}
	}
	return verdict{}
}

func isZero(b []byte) bool {
	for _, x := range b {
		if x != 0 {
			return false
		}
	}
	return true
}

// CheckAddr returns nil when a is a public unicast address a Guard would
// dial without an allowlist entry, and a *BlockedError saying why not otherwise.
func CheckAddr(a netip.Addr) error {
	if v := classify(a); v.reason != "" {
		return &BlockedError{Host: a.String(), Addr: a, Reason: v.reason}
	}
	return nil
}
