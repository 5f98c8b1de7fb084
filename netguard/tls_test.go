package netguard

import (
	"crypto/tls"
	"crypto/x509"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"testing"
)

// Pinning dials the IP, but TLS still verifies the certificate against the
// host name: a pinned connection is not a weaker one.
func TestPinnedTLSVerifiesName(t *testing.T) {
	t.Parallel()
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, r.TLS.ServerName)
	}))
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // the refused handshake is expected
	srv.StartTLS()
	defer srv.Close()
	port := serverPort(t, srv)
	pool := x509.NewCertPool()
	pool.AddCert(srv.Certificate()) // valid for example.com and 127.0.0.1
	resolver := dnsTable(map[string][]netip.Addr{
		"example.com":  addrs("127.0.0.1"),
		"attacker.com": addrs("127.0.0.1"),
	})
	g := mustGuard(t, Config{Resolver: resolver, Allow: []string{"example.com:" + port, "attacker.com:" + port}})
	client := g.Client()
	client.Transport.(*http.Transport).TLSClientConfig = &tls.Config{RootCAs: pool}

	resp, err := client.Get("https://example.com:" + port + "/")
	if err != nil {
		t.Fatalf("pinned TLS to example.com: %v", err)
	}
	sni, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(sni) != "example.com" {
		t.Errorf("server saw SNI %q, want example.com", sni)
	}
	// Same IP, a name the certificate does not cover: refused by TLS.
	if _, err := client.Get("https://attacker.com:" + port + "/"); err == nil {
		t.Error("certificate for example.com accepted for attacker.com")
	}
}
