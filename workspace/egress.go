package workspace

import "os"

// ObserveEgress registers fn to hear every egress decision of every
// sandbox's proxy (verdict "allowed", "denied", "blocked", "upstream",
// "bad-request"; "bytes" with the bytes a finished request or tunnel
// carried). The server counts them in its metrics. fn must not block.
func (s *Service) ObserveEgress(fn func(ws, verdict string, bytes int64)) {
	s.ag.mu.Lock()
	defer s.ag.mu.Unlock()
	s.ag.egressObs = fn
}

func (s *Service) egressObserver() func(ws, verdict string, bytes int64) {
	s.ag.mu.Lock()
	defer s.ag.mu.Unlock()
	return s.ag.egressObs
}

// egressAvailable reports whether sandboxes can get an egress proxy: the
// host enters the sandbox's network namespace to open its listener, which
// needs CAP_SYS_ADMIN in bulkhead's own user namespace, so an unprivileged
// bulkhead runs sandboxes with loopback only.
func egressAvailable() bool { return os.Geteuid() == 0 }

// EgressProxyAddr is where a sandbox's commands find the egress proxy, on
// the sandbox's own loopback.
const EgressProxyAddr = "127.0.0.1:3128"

// egressEnv points HTTP clients in the sandbox at the egress proxy.
var egressEnv = []string{
	"HTTP_PROXY=http://" + EgressProxyAddr, "HTTPS_PROXY=http://" + EgressProxyAddr,
	"http_proxy=http://" + EgressProxyAddr, "https_proxy=http://" + EgressProxyAddr,
	"NO_PROXY=localhost,127.0.0.1,::1", "no_proxy=localhost,127.0.0.1,::1",
}
