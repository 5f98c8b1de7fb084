package netguard

import (
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
)

// allowlist is the operator's parsed Config.Allow.
type allowlist struct {
	names     map[string]map[uint16]bool // DNS name → ports
	addrPorts map[netip.AddrPort]bool
	prefixes  []netip.Prefix
}

// parseAllowlist accepts "name:port", "ip:port", "[ipv6]:port" and CIDR
// prefixes ("10.1.2.0/24", "fd00::/64", "127.0.0.1/32"). A prefix allows
// every port. Entries that would allow everything are refused.
func parseAllowlist(entries []string) (allowlist, error) {
	al := allowlist{names: map[string]map[uint16]bool{}, addrPorts: map[netip.AddrPort]bool{}}
	for _, e := range entries {
		e = strings.TrimSpace(e)
		if strings.Contains(e, "/") {
			p, err := netip.ParsePrefix(e)
			if err != nil {
				return allowlist{}, fmt.Errorf("allowlist entry %q: %w", e, err)
			}
			if p.Addr().Zone() != "" {
				return allowlist{}, fmt.Errorf("allowlist entry %q: zoned prefixes are not supported", e)
			}
			a, bits := p.Addr().Unmap(), unmapBits(p)
			minBits := 8
			if a.Is6() {
				minBits = 16
			}
			if bits < minBits {
				return allowlist{}, fmt.Errorf("allowlist entry %q: prefix shorter than /%d would disable the guard", e, minBits)
			}
			al.prefixes = append(al.prefixes, netip.PrefixFrom(a, bits).Masked())
			continue
		}
		host, portStr, err := net.SplitHostPort(e)
		if err != nil {
			return allowlist{}, fmt.Errorf("allowlist entry %q: want host:port or a CIDR prefix: %w", e, err)
		}
		port, err := strconv.ParseUint(portStr, 10, 16)
		if err != nil || port == 0 {
			return allowlist{}, fmt.Errorf("allowlist entry %q: invalid port %q", e, portStr)
		}
		hf, berr := parseHost(host)
		if berr != nil {
			return allowlist{}, fmt.Errorf("allowlist entry %q: %s", e, berr.Reason)
		}
		if hf.addr.IsValid() {
			al.addrPorts[netip.AddrPortFrom(hf.addr.Unmap(), uint16(port))] = true
			continue
		}
		if al.names[hf.name] == nil {
			al.names[hf.name] = map[uint16]bool{}
		}
		al.names[hf.name][uint16(port)] = true
	}
	return al, nil
}

func unmapBits(p netip.Prefix) int {
	if p.Addr().Is4In6() {
		return max(p.Bits()-96, 0)
	}
	return p.Bits()
}

func (al allowlist) allowsName(name string, port uint16) bool {
	return al.names[name][port]
}

// decide returns nil if addr may be dialed on port. viaName is the allowlisted
// name the address was resolved from, if any.
func (al allowlist) decide(host string, addr netip.Addr, port uint16, viaName bool) *BlockedError {
	v := classify(addr)
	if v.reason == "" {
		return nil
	}
	if v.kind != kindNever {
		a := addr.Unmap()
		if al.addrPorts[netip.AddrPortFrom(a, port)] {
			return nil
		}
		for _, p := range al.prefixes {
			if p.Contains(a) {
				return nil
			}
		}
		if viaName && v.kind == kindLocal {
			return nil
		}
	}
	return &BlockedError{Host: host, Addr: addr, Reason: v.reason}
}
