// Package retryafter reads how long an HTTP server asks a client to wait:
// the retry-after-ms header some providers send, then Retry-After as
// delay-seconds or an HTTP date (RFC 9110 10.2.3).
package retryafter

import (
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Max is the longest wait believed; a larger value is treated as absent
// (the caller's own backoff applies) rather than stalling for days.
const Max = 24 * time.Hour

// Parse returns the wait h asks for as of now, or 0 when it asks none or
// the value is malformed, negative, NaN or beyond Max.
func Parse(h http.Header, now time.Time) time.Duration {
	if v := strings.TrimSpace(h.Get("retry-after-ms")); v != "" {
		if ms, err := strconv.ParseFloat(v, 64); err == nil {
			if d, ok := within(ms * float64(time.Millisecond)); ok {
				return d
			}
		}
	}
	v := strings.TrimSpace(h.Get("Retry-After"))
	if v == "" {
		return 0
	}
	if s, err := strconv.ParseFloat(v, 64); err == nil {
		d, _ := within(s * float64(time.Second))
		return d
	}
	if t, err := http.ParseTime(v); err == nil {
		if d := t.Sub(now); d > 0 && d <= Max {
			return d
		}
	}
	return 0
}

func within(ns float64) (time.Duration, bool) {
	if math.IsNaN(ns) || ns <= 0 || ns > float64(Max) {
		return 0, false
	}
	return time.Duration(ns), true
}
