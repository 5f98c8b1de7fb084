package credentials

import "errors"

// PassphraseEnv is the environment variable that holds the operator
// passphrase.
const PassphraseEnv = "BULKHEAD_CREDENTIAL_KEY"

var (
	// ErrNoPassphrase means the passphrase is unset or empty.
	ErrNoPassphrase = errors.New("no credential passphrase: set " + PassphraseEnv + " to the node's passphrase")
	// ErrWrongPassphrase means the passphrase does not match the one the
	// state dir was initialised with.
	ErrWrongPassphrase = errors.New("wrong credential passphrase: " + PassphraseEnv + " does not match the one this state dir was created with")
	// ErrOpen means a wrapped key or sealed value failed authentication: it
	// was tampered with, truncated, or belongs to another scope or name.
	ErrOpen = errors.New("sealed value does not authenticate (tampered, truncated, or from another workspace or name)")
	// ErrBadParams means stored KDF parameters are unusable.
	ErrBadParams = errors.New("invalid key derivation parameters")
)
