package agent

import "github.com/bulkhead-dev/bulkhead/internal/secret"

const redacted = secret.Redacted

// Secret holds an API key; no way of printing it shows it (see
// internal/secret). Only Reveal returns the key.
type Secret = secret.String

// NewSecret wraps a key.
func NewSecret(v string) Secret { return secret.New(v) }
