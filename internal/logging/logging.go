package logging

import (
	"fmt"
	"io"
	"log/slog"
	"strings"
)

// Options select the handler.
type Options struct {
	Level  string // debug, info, warn, error
	Format string // text or json
	// File, when set, receives the log instead of stderr, rotated when it
	// grows past MaxBytes, keeping Backups old files (file.1 newest).
	File     string
	MaxBytes int64
	Backups  int
}

// ParseLevel maps a level name to a slog.Level.
func ParseLevel(s string) (slog.Level, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(s)); err != nil {
		return 0, fmt.Errorf("log level %q: want debug, info, warn or error", s)
	}
	return l, nil
}

// New returns the logger and a closer for its file (a no-op for stderr).
func New(o Options, stderr io.Writer) (*slog.Logger, io.Closer, error) {
	level, err := ParseLevel(o.Level)
	if err != nil {
		return nil, nil, err
	}
	var w io.Writer = stderr
	var closer io.Closer = io.NopCloser(nil)
	if o.File != "" {
		rf, err := OpenRotating(o.File, o.MaxBytes, o.Backups)
		if err != nil {
			return nil, nil, err
		}
		w, closer = rf, rf
	}
	ho := &slog.HandlerOptions{Level: level, ReplaceAttr: redactByName}
	var h slog.Handler
	switch o.Format {
	case "", "text":
		h = slog.NewTextHandler(w, ho)
	case "json":
		h = slog.NewJSONHandler(w, ho)
	default:
		closer.Close()
		return nil, nil, fmt.Errorf("log format %q: want text or json", o.Format)
	}
	return slog.New(h), closer, nil
}

var secretNames = []string{"password", "passphrase", "token", "api_key", "apikey", "authorization", "secret", "credential_value", "x-api-key"}

// redactByName replaces attributes whose key names a secret.
func redactByName(_ []string, a slog.Attr) slog.Attr {
	k := strings.ToLower(a.Key)
	for _, s := range secretNames {
		if strings.Contains(k, s) {
			return slog.String(a.Key, "[REDACTED]")
		}
	}
	return a
}

// Discard is a logger that drops everything, for library defaults.
func Discard() *slog.Logger { return slog.New(slog.DiscardHandler) }
