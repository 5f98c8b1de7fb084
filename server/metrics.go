package server

import (
	"fmt"
	"io"
	"sort"
	"strings"
	gosync "sync"
)

// A deliberately small Prometheus text-format registry: counters and
// histograms with fixed label names. It avoids pulling client_golang into a
// static binary for a handful of series.

type metric interface {
	write(w io.Writer)
}

// Registry holds metrics in registration order.
type Registry struct {
	mu      gosync.Mutex
	metrics []metric
}

// Write writes the exposition format.
func (r *Registry) Write(w io.Writer) {
	r.mu.Lock()
	ms := append([]metric(nil), r.metrics...)
	r.mu.Unlock()
	for _, m := range ms {
		m.write(w)
	}
}

func (r *Registry) add(m metric) {
	r.mu.Lock()
	r.metrics = append(r.metrics, m)
	r.mu.Unlock()
}

// Counter is a counter vector.
type Counter struct {
	name, help string
	labels     []string
	mu         gosync.Mutex
	values     map[string]float64
}

// NewCounter registers a counter with label names.
func (r *Registry) NewCounter(name, help string, labels ...string) *Counter {
	c := &Counter{name: name, help: help, labels: labels, values: map[string]float64{}}
	r.add(c)
	return c
}

// Inc adds one for the label values.
func (c *Counter) Inc(lv ...string) { c.Add(1, lv...) }

// Add adds v for the label values.
func (c *Counter) Add(v float64, lv ...string) {
	k := strings.Join(lv, "\x00")
	c.mu.Lock()
	c.values[k] += v
	c.mu.Unlock()
}

// Value returns the current value for the label values.
func (c *Counter) Value(lv ...string) float64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.values[strings.Join(lv, "\x00")]
}

func (c *Counter) write(w io.Writer) {
	fmt.Fprintf(w, "# HELP %s %s\n# TYPE %s counter\n", c.name, c.help, c.name)
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, k := range sortedKeys(c.values) {
		fmt.Fprintf(w, "%s%s %g\n", c.name, labelString(c.labels, k, "", ""), c.values[k])
	}
}

// Histogram is a histogram vector with fixed buckets.
type Histogram struct {
	name, help string
	labels     []string
	buckets    []float64
	mu         gosync.Mutex
	series     map[string]*hseries
}

type hseries struct {
	counts []uint64
	sum    float64
	n      uint64
}

// DefaultBuckets suit request latencies in seconds.
var DefaultBuckets = []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60}

// NewHistogram registers a histogram.
func (r *Registry) NewHistogram(name, help string, buckets []float64, labels ...string) *Histogram {
	h := &Histogram{name: name, help: help, labels: labels, buckets: buckets, series: map[string]*hseries{}}
	r.add(h)
	return h
}

// Observe records v for the label values.
func (h *Histogram) Observe(v float64, lv ...string) {
	k := strings.Join(lv, "\x00")
	h.mu.Lock()
	defer h.mu.Unlock()
	s := h.series[k]
	if s == nil {
		s = &hseries{counts: make([]uint64, len(h.buckets))}
		h.series[k] = s
	}
	for i, b := range h.buckets {
		if v <= b {
			s.counts[i]++
		}
	}
	s.sum += v
	s.n++
}

func (h *Histogram) write(w io.Writer) {
	fmt.Fprintf(w, "# HELP %s %s\n# TYPE %s histogram\n", h.name, h.help, h.name)
	h.mu.Lock()
	defer h.mu.Unlock()
	keys := make([]string, 0, len(h.series))
	for k := range h.series {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		s := h.series[k]
		for i, b := range h.buckets {
			fmt.Fprintf(w, "%s_bucket%s %d\n", h.name, labelString(h.labels, k, "le", fmt.Sprint(b)), s.counts[i])
		}
		fmt.Fprintf(w, "%s_bucket%s %d\n", h.name, labelString(h.labels, k, "le", "+Inf"), s.n)
		fmt.Fprintf(w, "%s_sum%s %g\n%s_count%s %d\n", h.name, labelString(h.labels, k, "", ""), s.sum, h.name, labelString(h.labels, k, "", ""), s.n)
	}
}

func sortedKeys(m map[string]float64) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func labelString(names []string, joined, extraName, extraValue string) string {
	var parts []string
	if len(names) > 0 {
		vals := strings.Split(joined, "\x00")
		for i, n := range names {
			v := ""
			if i < len(vals) {
				v = vals[i]
			}
			parts = append(parts, fmt.Sprintf("%s=%q", n, v))
		}
	}
	if extraName != "" {
		parts = append(parts, fmt.Sprintf("%s=%q", extraName, extraValue))
	}
	if len(parts) == 0 {
		return ""
	}
	return "{" + strings.Join(parts, ",") + "}"
}

// Metrics are the series the server exports.
type Metrics struct {
	Registry
	requests      *Counter
	latency       *Histogram
	Runs          *Counter
	ToolCalls     *Counter
	SandboxStarts *Counter
	Tokens        *Counter
	Errors        *Counter
	RunLatency    *Histogram
	Egress        *Counter
	EgressBytes   *Counter
}

func newMetrics() *Metrics {
	m := &Metrics{}
	m.requests = m.NewCounter("bulkhead_http_requests_total", "HTTP requests by route and status.", "route", "code")
	m.latency = m.NewHistogram("bulkhead_http_request_duration_seconds", "HTTP request latency by route.", DefaultBuckets, "route")
	m.Runs = m.NewCounter("bulkhead_runs_total", "Agent runs by workspace and outcome.", "workspace", "outcome")
	m.RunLatency = m.NewHistogram("bulkhead_run_duration_seconds", "Agent run wall time.", DefaultBuckets, "workspace")
	m.ToolCalls = m.NewCounter("bulkhead_tool_calls_total", "Tool calls by workspace and tool.", "workspace", "tool")
	m.SandboxStarts = m.NewCounter("bulkhead_sandbox_execs_total", "Commands run in sandboxes by workspace and outcome.", "workspace", "outcome")
	m.Tokens = m.NewCounter("bulkhead_model_tokens_total", "Model tokens by workspace and direction.", "workspace", "direction")
	m.Errors = m.NewCounter("bulkhead_errors_total", "Errors by class.", "class")
	m.Egress = m.NewCounter("bulkhead_egress_requests_total", "Sandbox egress proxy decisions by workspace and verdict (allowed, denied, blocked, upstream, bad-request).", "workspace", "verdict")
	m.EgressBytes = m.NewCounter("bulkhead_egress_bytes_total", "Bytes carried by sandbox egress proxies, both directions.", "workspace")
	return m
}
