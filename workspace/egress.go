package workspace

// EgressProxyAddr is where a sandbox's commands find the egress proxy, on
// the sandbox's own loopback.
const EgressProxyAddr = "127.0.0.1:3128"

// egressEnv points HTTP clients in the sandbox at the egress proxy.
var egressEnv = []string{
	"HTTP_PROXY=http://" + EgressProxyAddr, "HTTPS_PROXY=http://" + EgressProxyAddr,
	"http_proxy=http://" + EgressProxyAddr, "https_proxy=http://" + EgressProxyAddr,
	"NO_PROXY=localhost,127.0.0.1,::1", "no_proxy=localhost,127.0.0.1,::1",
}
