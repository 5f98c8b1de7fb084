// Package logging builds bulkhead's one slog.Logger from the global flags:
// level, text or JSON format, and an optional log file rotated by size.
//
// Secrets are redacted by type (credentials.Secret and the key types implement
// slog.LogValuer) and, as a second line of defence, by attribute name: any
// attribute whose key looks like a secret (password, passphrase, token,
// api_key, authorization, secret, credential value) is replaced with
// [REDACTED] whatever its type.
package logging
