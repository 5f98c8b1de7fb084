package netguard

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"testing"
	"time"
)

// BenchmarkEgressTunnel compares a CONNECT tunnel through the egress proxy
// with a direct loopback connection to the same sink, in the same run:
// connection setup (dial, or dial + CONNECT + the guard's checks) and bulk
// throughput (8 MiB written per connection). It reports both and the
// ratios.
func BenchmarkEgressTunnel(b *testing.B) {
	sink, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer sink.Close()
	go func() {
		for {
			c, err := sink.Accept()
			if err != nil {
				return
			}
			go func() { io.Copy(io.Discard, c); c.Write([]byte{1}); c.Close() }()
		}
	}()
	_, port, _ := net.SplitHostPort(sink.Addr().String())
	dest := "sink.test:" + port
	g, err := New(Config{Allow: []string{dest}, Resolver: staticResolver{"sink.test": netip.MustParseAddr("127.0.0.1")}})
	if err != nil {
		b.Fatal(err)
	}
	rules, err := ParseEgressRules([]string{dest})
	if err != nil {
		b.Fatal(err)
	}
	p, err := NewEgressProxy(EgressOptions{Guard: g, Rules: rules})
	if err != nil {
		b.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	go p.Serve(ln)
	defer p.Close()

	const payload = 8 << 20
	buf := make([]byte, 64<<10)
	direct := func() net.Conn {
		c, err := net.Dial("tcp", sink.Addr().String())
		if err != nil {
			b.Fatal(err)
		}
		return c
	}
	tunnel := func() net.Conn {
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			b.Fatal(err)
		}
		fmt.Fprintf(c, "CONNECT %s HTTP/1.1\r\nHost: %s\r\n\r\n", dest, dest)
		br := bufio.NewReader(c)
		resp, err := http.ReadResponse(br, &http.Request{Method: "CONNECT"})
		if err != nil || resp.StatusCode != 200 {
			b.Fatalf("CONNECT: %v %v", resp, err)
		}
		return c
	}
	// send writes the payload, half-closes and waits for the sink's byte.
	send := func(c net.Conn) {
		for n := 0; n < payload; n += len(buf) {
			if _, err := c.Write(buf); err != nil {
				b.Fatal(err)
			}
		}
		c.(*net.TCPConn).CloseWrite()
		io.ReadFull(c, make([]byte, 1))
		c.Close()
	}
	var setD, setT, bulkD, bulkT time.Duration
	for b.Loop() {
		t0 := time.Now()
		cd := direct()
		t1 := time.Now()
		send(cd)
		t2 := time.Now()
		ct := tunnel()
		t3 := time.Now()
		send(ct)
		t4 := time.Now()
		setD += t1.Sub(t0)
		bulkD += t2.Sub(t1)
		setT += t3.Sub(t2)
		bulkT += t4.Sub(t3)
	}
	n := float64(b.N)
	mbps := func(d time.Duration) float64 { return float64(payload) * n / d.Seconds() / (1 << 20) }
	b.ReportMetric(float64(setD.Microseconds())/n, "direct-setup-µs")
	b.ReportMetric(float64(setT.Microseconds())/n, "tunnel-setup-µs")
	b.ReportMetric(mbps(bulkD), "direct-MiB/s")
	b.ReportMetric(mbps(bulkT), "tunnel-MiB/s")
	b.ReportMetric(mbps(bulkT)/mbps(bulkD), "throughput-ratio")
}
