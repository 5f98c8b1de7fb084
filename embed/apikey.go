package embed

import (
	"os"

	"github.com/bulkhead-dev/bulkhead/internal/secret"
)

const redacted = secret.Redacted

// APIKey holds a provider key; no way of printing it shows it (see
// internal/secret). Only Reveal returns the key.
type APIKey = secret.String

// NewAPIKey wraps a key.
func NewAPIKey(v string) APIKey { return secret.New(v) }

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
