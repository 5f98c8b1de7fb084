package sandbox_test

import (
	"bufio"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/bulkhead-dev/bulkhead/internal/testutil"
)

// ListenTCP gives the host one listener inside the sandbox's loopback-only
// network: commands in the sandbox reach it, the host's own loopback does
// not, and the sandbox cannot take the port over.
func TestListenTCPInsideSandbox(t *testing.T) {
	bb := testutil.RequireBinary(t, "busybox")
	sb := startSandbox(t, "listen", nil)
	ln, err := sb.ListenTCP("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	got := make(chan string, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			got <- "accept: " + err.Error()
			return
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(30 * time.Second))
		c.Write([]byte("hello from the host\n"))
		line, _ := bufio.NewReader(c).ReadString('\n')
		got <- line
	}()
	out := sh(t, sb, "echo from-sandbox | "+bb+" nc 127.0.0.1 "+port)
	if !strings.Contains(out.stdout, "hello from the host") {
		t.Fatalf("sandbox did not reach the host's listener: %+v", out)
	}
	if line := <-got; line != "from-sandbox\n" {
		t.Fatalf("host got %q", line)
	}
	// The socket lives in the sandbox's namespace, not the host's.
	if c, err := net.DialTimeout("tcp", "127.0.0.1:"+port, time.Second); err == nil {
		c.Close()
		t.Errorf("the host's loopback reached the sandbox's listener on %s", port)
	}
	// The attacker's side: a command in the sandbox cannot bind the port.
	out = sh(t, sb, bb+" nc -l -p "+port+" 2>&1; echo exit=$?")
	if strings.Contains(out.stdout, "exit=0") {
		t.Fatalf("the sandbox took over the host's port: %+v", out)
	}
	// After Close, no new listener.
	if err := sb.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := sb.ListenTCP("127.0.0.1:0"); err == nil {
		t.Fatal("ListenTCP on a closed sandbox succeeded")
	}
}
