package credentials

import (
	"fmt"
	"log/slog"
)

const redacted = "[REDACTED]"

// Secret is a byte string that never shows its value when formatted or
// logged. Use Reveal to get at the bytes.
type Secret []byte

// Reveal returns the secret's bytes.
func (s Secret) Reveal() []byte { return []byte(s) }

// String implements fmt.Stringer without revealing the value.
func (s Secret) String() string { return redacted }

// GoString implements fmt.GoStringer without revealing the value.
func (s Secret) GoString() string { return redacted }

// Format implements fmt.Formatter so every verb (%s %v %x %q %#v) redacts.
func (s Secret) Format(f fmt.State, _ rune) { fmt.Fprint(f, redacted) }

// LogValue implements slog.LogValuer.
func (s Secret) LogValue() slog.Value { return slog.StringValue(redacted) }

// MarshalText keeps secrets out of JSON and text encodings.
func (s Secret) MarshalText() ([]byte, error) { return []byte(redacted), nil }

// Wipe overwrites the secret in place.
func (s Secret) Wipe() {
	for i := range s {
		s[i] = 0
	}
}
