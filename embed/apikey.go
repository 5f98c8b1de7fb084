package embed

import (
	"fmt"
	"log/slog"
	"os"
)

const redacted = "[REDACTED]"

// APIKey holds a provider key. Every way of printing it (fmt verbs including
// %#v and %x, slog, encoding/json and encoding.TextMarshaler) yields
// [REDACTED]. The value sits behind a pointer, so reflection-based printing
// of a struct holding an APIKey in an unexported field shows an address, not
// the key. Only Reveal returns the key.
type APIKey struct {
	p *string
}

// NewAPIKey wraps a key.
func NewAPIKey(v string) APIKey { return APIKey{p: &v} }

// Reveal returns the key; call it only where the key goes on the wire.
func (k APIKey) Reveal() string {
	if k.p == nil {
		return ""
	}
	return *k.p
}

// Empty reports whether no key is set.
func (k APIKey) Empty() bool { return k.Reveal() == "" }

func (k APIKey) String() string               { return redacted }
func (k APIKey) GoString() string             { return "embed.APIKey{" + redacted + "}" }
func (k APIKey) Format(f fmt.State, _ rune)   { _, _ = f.Write([]byte(redacted)) }
func (k APIKey) LogValue() slog.Value         { return slog.StringValue(redacted) }
func (k APIKey) MarshalText() ([]byte, error) { return []byte(redacted), nil }
func (k APIKey) MarshalJSON() ([]byte, error) { return []byte(`"` + redacted + `"`), nil }

// envKeys names the environment variables EnvKey reads, in order.
var envKeys = map[string][]string{
	ProviderOpenAI:  {"OPENAI_API_KEY"},
	ProviderGemini:  {"GEMINI_API_KEY", "GOOGLE_API_KEY"},
	ProviderVoyage:  {"VOYAGE_API_KEY"},
	ProviderMistral: {"MISTRAL_API_KEY"},
}

// EnvKey returns the provider's key from the conventional environment
// variable (OPENAI_API_KEY, GEMINI_API_KEY or GOOGLE_API_KEY, VOYAGE_API_KEY,
// MISTRAL_API_KEY), for callers whose workspace holds no key of its own.
func EnvKey(provider string) (APIKey, bool) {
	for _, name := range envKeys[provider] {
		if v := os.Getenv(name); v != "" {
			return NewAPIKey(v), true
		}
	}
	return APIKey{}, false
}
