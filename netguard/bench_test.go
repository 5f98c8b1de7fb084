package netguard

import (
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

// BenchmarkGuardOverhead times a guarded and a plain request to the same
// loopback server in each iteration, on a fresh connection each (so the
// dial-time checks count), and reports both and their ratio.
func BenchmarkGuardOverhead(b *testing.B) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "ok")
	}))
	defer srv.Close()
	g, err := New(Config{Allow: []string{"localhost:" + serverPort(b, srv)}})
	if err != nil {
		b.Fatal(err)
	}
	guarded := g.Client()
	guarded.Transport.(*http.Transport).DisableKeepAlives = true
	plain := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	url := "http://localhost:" + serverPort(b, srv) + "/"
	get := func(c *http.Client) time.Duration {
		start := time.Now()
		resp, err := c.Get(url)
		if err != nil {
			b.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return time.Since(start)
	}
	var tg, tp time.Duration
	n := 0
	for b.Loop() {
		tg += get(guarded)
		tp += get(plain)
		n++
	}
	b.ReportMetric(float64(tg.Nanoseconds())/float64(n), "guarded-ns/req")
	b.ReportMetric(float64(tp.Nanoseconds())/float64(n), "plain-ns/req")
	b.ReportMetric(float64(tg)/float64(tp), "guarded/plain")
}

// BenchmarkCheckURL measures the static check of a mix of hosts.
func BenchmarkCheckURL(b *testing.B) {
	g, err := New(Config{})
	if err != nil {
		b.Fatal(err)
	}
	urls := []string{"https://api.openai.com/v1", "http://0x7f000001/", "http://[64:ff9b::a9fe:a9fe]/", "http://metadata.google.internal/"}
	for b.Loop() {
		for _, u := range urls {
			_ = g.CheckURL(u)
		}
	}
}
