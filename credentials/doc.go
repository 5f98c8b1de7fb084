// Package credentials holds bulkhead's key hierarchy and sealing.
//
// Terms:
//
//   - passphrase: the operator secret in BULKHEAD_CREDENTIAL_KEY. It is never
//     stored anywhere.
//   - node key: 32 bytes derived from the passphrase with Argon2id. The KDF
//     parameters and salt are stored (KDFParams) so the cost can be raised
//     later; a sealed check value tells a wrong passphrase from corruption.
//   - data key: 32 random bytes per workspace, wrapped (AES-256-GCM) by the
//     node key with the workspace id as additional data, so a wrapped key
//     cannot be moved to another workspace. Destroying the wrapped key makes
//     everything encrypted under it unreadable (crypto-shredding).
//   - sealed value: a credential value encrypted with AES-256-GCM under a
//     subkey of the data key, with AAD = (scope, name), so a sealed blob
//     copied to another workspace or another name does not open.
//
// The package knows nothing of storage: callers keep KDFParams, wrapped keys
// and sealed values wherever they like (bulkhead keeps them in Badger).
//
// Secret and DataKey redact themselves when printed or logged. All types are
// safe for concurrent use once constructed.
package credentials
