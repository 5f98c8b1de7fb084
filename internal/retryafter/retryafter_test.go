package retryafter

import (
	"net/http"
	"testing"
	"time"
)

func TestParse(t *testing.T) {
	now := time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)
	for _, c := range []struct {
		name, value string
		ms          string
		want        time.Duration
	}{
		{"seconds", "30", "", 30 * time.Second},
		{"fraction", "1.5", "", 1500 * time.Millisecond},
		{"date", now.Add(90 * time.Second).Format(http.TimeFormat), "", 90 * time.Second},
		{"past date", now.Add(-time.Minute).Format(http.TimeFormat), "", 0},
		{"ms wins", "30", "2500", 2500 * time.Millisecond},
		{"bad ms falls back", "7", "soon", 7 * time.Second},
		{"empty", "", "", 0},
		{"zero", "0", "", 0},
		{"negative", "-5", "", 0},
		{"NaN", "NaN", "", 0},
		{"Inf", "+Inf", "", 0},
		{"absurd", "999999999", "", 0},
		{"far date", now.Add(48 * time.Hour).Format(http.TimeFormat), "", 0},
		{"garbage", "tomorrow", "", 0},
	} {
		h := http.Header{}
		if c.value != "" {
			h.Set("Retry-After", c.value)
		}
		if c.ms != "" {
			h.Set("retry-after-ms", c.ms)
		}
		if got := Parse(h, now); got != c.want {
			t.Errorf("%s: Parse(%q, ms %q) = %v, want %v", c.name, c.value, c.ms, got, c.want)
		}
	}
}
