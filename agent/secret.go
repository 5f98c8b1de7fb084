package agent

import (
	"fmt"
	"log/slog"
)

const redacted = "[REDACTED]"

// Secret holds an API key. Every way of printing it — fmt verbs including %#v
// and %x, slog, encoding/json, encoding.TextMarshaler — yields [REDACTED].
// The value sits behind a pointer, so even reflection-based printing of a
// struct that holds a Secret in an unexported field shows an address, not the
// key. Only Reveal returns the key; call it at the point where it goes on the
// wire and nowhere else.
type Secret struct {
	p *string
}

// NewSecret wraps a key.
func NewSecret(v string) Secret { return Secret{p: &v} }

// Reveal returns the key.
func (s Secret) Reveal() string {
	if s.p == nil {
		return ""
	}
	return *s.p
}

// Empty reports whether the secret holds no key.
func (s Secret) Empty() bool { return s.p == nil || *s.p == "" }

// Equal reports whether s and o hold the same key.
func (s Secret) Equal(o Secret) bool { return s.Reveal() == o.Reveal() }

func (s Secret) String() string   { return redacted }
func (s Secret) GoString() string { return "agent.Secret{" + redacted + "}" }

// Format implements fmt.Formatter so that no verb prints the key.
func (s Secret) Format(f fmt.State, verb rune) { _, _ = f.Write([]byte(redacted)) }

// LogValue implements slog.LogValuer.
func (s Secret) LogValue() slog.Value { return slog.StringValue(redacted) }

// MarshalText implements encoding.TextMarshaler (and so JSON).
func (s Secret) MarshalText() ([]byte, error) { return []byte(redacted), nil }
