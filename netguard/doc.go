// Package netguard is the one guard against server-side request forgery
// (SSRF) for every outbound HTTP call bulkhead makes: embedding providers,
// LLM providers, anything that fetches a URL an operator or a tenant chose.
//
// A Guard builds http.Clients and http.Transports whose connections can only
// reach public unicast addresses. Every decision is made at dial time, on the
// address actually dialed:
//
//   - host names: localhost, *.localhost, *.local, *.internal, metadata and
//     similar names are refused before any lookup;
//   - IP literals in any spelling other than canonical dotted-quad or RFC 4291
//     IPv6 are refused (0177.0.0.1, 0x7f000001, 127.1, 2130706433, 127.000.0.1),
//     because resolvers and URL parsers disagree on what they mean;
//   - every address a name resolves to is checked against the IANA
//     special-purpose ranges (private, loopback, link-local, CGNAT, multicast,
//     reserved, benchmarking, documentation, unspecified, broadcast), with IPv4
//     embedded in IPv6 (mapped, compatible, NAT64, 6to4, Teredo) decoded and
//     checked again; if any answer is refused the whole name is refused;
//   - the connection is then made to the checked IP itself, so a second DNS
//     answer (rebinding) can never slip in between check and dial; a
//     net.Dialer Control hook re-checks the socket address as a last line;
//   - redirects are followed at most Config.MaxRedirects times (3 by default),
//     each through the same dial checks; an https→http downgrade is refused,
//     and a redirect to another origin loses Authorization, Cookie and API-key
//     headers;
//   - proxy environment variables (HTTP_PROXY, HTTPS_PROXY, ALL_PROXY) are
//     ignored: a proxy would dial on our behalf and defeat the checks.
//
// The operator may allow local endpoints (an Ollama on loopback, a vLLM on the
// LAN) with Config.Allow entries: "host:port", "ip:port", or a CIDR prefix.
// An allowed destination still goes through resolution, checking and pinning;
// the entry only widens which addresses pass.
//
// Errors: a refused destination yields an error that matches ErrBlocked with
// errors.Is and carries a *BlockedError (errors.As) with the host, the address
// and the reason. Too many redirects match ErrTooManyRedirects. The guard fails
// closed: an unparseable host, a resolver error or an empty answer refuses.
//
// EgressProxy is the one way out of a sandbox: an HTTP proxy (CONNECT and
// absolute-URI requests) serving one tenant, which allows only the names in
// its EgressRules and dials them through a Guard, so a tenant's rules can
// never open what the operator's guard refuses. Refusals are 403 with the
// reason in the body and the X-Bulkhead-Egress header.
//
// Concurrency: a Guard is immutable after New and safe for concurrent use; the
// clients and transports it returns are as safe as the standard library's. An
// EgressProxy is safe for concurrent use; SetRules may be called at any time.
package netguard
