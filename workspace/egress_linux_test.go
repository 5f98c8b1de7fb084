package workspace

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bulkhead-dev/bulkhead/internal/testutil"
	"github.com/bulkhead-dev/bulkhead/netguard"
)

// oneNameResolver resolves name to loopback, standing in for DNS.
type oneNameResolver string

func (r oneNameResolver) LookupNetIP(_ context.Context, _, host string) ([]netip.Addr, error) {
	if host == string(r) {
		return []netip.Addr{netip.MustParseAddr("127.0.0.1")}, nil
	}
	return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
}

// mirrorService serves h on loopback as mirror.test (returning its port)
// and opens a Service whose address guard lets mirror.test through, as an
// operator would for an internal mirror.
func mirrorService(t *testing.T, h http.HandlerFunc) (*Service, string) {
	t.Helper()
	up := httptest.NewServer(h)
	t.Cleanup(up.Close)
	_, port, _ := net.SplitHostPort(strings.TrimPrefix(up.URL, "http://"))
	g, err := netguard.New(netguard.Config{Allow: []string{"mirror.test:" + port}, Resolver: oneNameResolver("mirror.test")})
	if err != nil {
		t.Fatal(err)
	}
	s := openService(t, t.TempDir(), "pw")
	t.Cleanup(func() { s.Close() })
	s.SetAgentOptions(AgentOptions{Guard: g})
	return s, port
}

// A sandbox reaches the network only through its workspace's egress proxy,
// only to the names its config allows, and a config change applies to the
// running sandbox at once. Tried from the attacker's side: direct
// connections, addresses instead of names, another workspace's allowance.
func TestSandboxEgressThroughProxy(t *testing.T) {
	testutil.RequireRoot(t)
	testutil.RequireFUSE(t)
	testutil.RequireUserNS(t)
	curl := testutil.RequireBinary(t, "curl")
	ctx := context.Background()
	s, port := mirrorService(t, func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "mirror says hi to %s", r.URL.Path)
	})
	dest := "mirror.test:" + port
	for _, id := range []string{"alice", "bob"} {
		if _, err := s.Create(ctx, id, nil); err != nil {
			t.Fatal(err)
		}
	}
	get := func(id, url string) string {
		out, _ := execOut(t, s, id, "sh", "-c", curl+" -sS -m 10 "+url+" 2>&1; rc=$?; echo; echo rc=$rc")
		return out
	}
	// No egress configured: the proxy refuses with a reason.
	if out := get("alice", "http://"+dest+"/a"); !strings.Contains(out, "not in this workspace's egress allowlist") || strings.Contains(out, "mirror says") {
		t.Fatalf("egress without an allowlist: %q", out)
	}
	// Allowed while the sandbox runs: the next request goes through.
	if _, err := s.UpdateConfig(ctx, "alice", func(c *Config) error { return c.Set("egress.allow", `["`+dest+`"]`) }); err != nil {
		t.Fatal(err)
	}
	if out := get("alice", "http://"+dest+"/a"); !strings.Contains(out, "mirror says hi to /a") {
		t.Fatalf("allowed egress: %q", out)
	}
	// A CONNECT tunnel (what HTTPS uses) to the allowed name works too.
	if out, _ := execOut(t, s, "alice", "sh", "-c", curl+" -sS -m 10 -p http://"+dest+"/tunnel 2>&1"); !strings.Contains(out, "mirror says hi to /tunnel") {
		t.Fatalf("CONNECT to an allowed name: %q", out)
	}
	// Attacks: bypass the proxy (no DNS, nothing on the sandbox's
	// loopback), name the address instead, or use bob, whose config
	// allows nothing.
	for _, c := range []struct{ id, cmd string }{
		{"alice", curl + " -sS -f -m 5 --noproxy '*' http://" + dest + "/b"},
		{"alice", curl + " -sS -f -m 5 --noproxy '*' http://127.0.0.1:" + port + "/b"},
		{"alice", "NO_PROXY= no_proxy= " + curl + " -sS -f -m 5 http://127.0.0.1:" + port + "/b"},
		{"alice", "NO_PROXY= no_proxy= " + curl + " -sS -f -m 5 -p http://127.0.0.1:" + port + "/b"},
		{"bob", curl + " -sS -f -m 5 http://" + dest + "/b"},
	} {
		out, _ := execOut(t, s, c.id, "sh", "-c", c.cmd+" 2>&1; rc=$?; echo; echo rc=$rc")
		if strings.Contains(out, "mirror says") || strings.Contains(out, "rc=0") {
			t.Errorf("%s: %s reached the mirror: %q", c.id, c.cmd, out)
		}
	}
	// Revoked: refused again at once.
	if _, err := s.UpdateConfig(ctx, "alice", func(c *Config) error { return c.Set("egress.allow", `[]`) }); err != nil {
		t.Fatal(err)
	}
	if out := get("alice", "http://"+dest+"/c"); strings.Contains(out, "mirror says") {
		t.Fatalf("egress after revoking: %q", out)
	}
	// A malformed allowlist is refused with the field named.
	_, err := s.UpdateConfig(ctx, "alice", func(c *Config) error { return c.Set("egress.allow", `["10.0.0.1:443"]`) })
	if err == nil || !strings.Contains(err.Error(), "egress.allow") || !strings.Contains(err.Error(), "not an address") {
		t.Fatalf("an address in egress.allow: %v", err)
	}
}

// A skill that declares egress reaches exactly the hosts it declared,
// through its own proxy, whatever the workspace's own egress list says.
func TestSkillEgress(t *testing.T) {
	testutil.RequireRoot(t)
	testutil.RequireUserNS(t)
	curl := testutil.RequireBinary(t, "curl")
	ctx := context.Background()
	s, port := mirrorService(t, func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "mirror got token %s", r.Header.Get("X-Token"))
	})
	dest := "mirror.test:" + port
	if _, err := s.Create(ctx, "alice", nil); err != nil {
		t.Fatal(err)
	}
	if err := s.SetCredential(ctx, "alice", "mirror_token", []byte("TOKEN-789")); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "fetch")
	os.MkdirAll(dir, 0o755)
	md := "---\nname: fetch\ndescription: fetches from the mirror\ncredentials: mirror_token\negress: [" + dest + "]\ntimeout: 20s\n---\n"
	script := "#!/bin/sh\n" +
		curl + " -sS -m 10 -H \"X-Token: $MIRROR_TOKEN\" http://" + dest + "/; echo\n" +
		curl + " -sS -m 10 http://other.test:" + port + "/ 2>&1; echo\n" +
		"NO_PROXY= no_proxy= " + curl + " -sS -m 10 http://127.0.0.1:" + port + "/ 2>&1; echo\n"
	os.WriteFile(filepath.Join(dir, "SKILL.md"), []byte(md), 0o644)
	os.WriteFile(filepath.Join(dir, "run"), []byte(script), 0o755)
	sk, err := s.AddSkill(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	if !sk.Network || len(sk.Egress) != 1 {
		t.Fatalf("skill: %+v", sk)
	}
	if err := s.EnableSkill(ctx, "alice", "fetch"); err != nil {
		t.Fatal(err)
	}
	out, err := s.RunSkill(ctx, "alice", "fetch", nil)
	if err != nil {
		t.Fatalf("run skill: %v\n%s", err, out)
	}
	// It sent its credential to the host it declared (and the agent sees
	// the value redacted), and nothing else was reachable.
	if !strings.Contains(out, "mirror got token [REDACTED]") {
		t.Fatalf("declared host: %q", out)
	}
	if strings.Count(out, "mirror got") != 1 || strings.Count(out, "egress allowlist") != 2 {
		t.Fatalf("undeclared destinations: %q", out)
	}
}
