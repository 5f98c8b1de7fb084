// Package secret holds API keys so that no way of printing them shows
// them: every fmt verb (%#v and %x included), slog, encoding/json and
// encoding.TextMarshaler yield [REDACTED].
package secret

import (
	"fmt"
	"log/slog"
)

// Redacted is what every printing of a String shows.
const Redacted = "[REDACTED]"

// String holds a key. The value sits behind a pointer, so even
// reflection-based printing of a struct that holds a String in an
// unexported field shows an address, not the key. Only Reveal returns the
// key; call it where the key goes on the wire and nowhere else. The zero
// value is empty.
type String struct {
	p *string
}

// New wraps a key.
func New(v string) String { return String{p: &v} }

// Reveal returns the key.
func (s String) Reveal() string {
	if s.p == nil {
		return ""
	}
	return *s.p
}

// Empty reports whether no key is set.
func (s String) Empty() bool { return s.Reveal() == "" }

// Equal reports whether s and o hold the same key.
func (s String) Equal(o String) bool { return s.Reveal() == o.Reveal() }

func (s String) String() string   { return Redacted }
func (s String) GoString() string { return "secret.String{" + Redacted + "}" }

// Format implements fmt.Formatter so that no verb prints the key.
func (s String) Format(f fmt.State, _ rune) { _, _ = f.Write([]byte(Redacted)) }

// LogValue implements slog.LogValuer.
func (s String) LogValue() slog.Value { return slog.StringValue(Redacted) }

// MarshalText implements encoding.TextMarshaler (and so JSON).
func (s String) MarshalText() ([]byte, error) { return []byte(Redacted), nil }

// MarshalJSON writes "[REDACTED]".
func (s String) MarshalJSON() ([]byte, error) { return []byte(`"` + Redacted + `"`), nil }
