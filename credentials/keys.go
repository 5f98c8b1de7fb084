package credentials

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/binary"
	"fmt"
	"log/slog"

	"golang.org/x/crypto/argon2"
)

// KeySize is the size of node and data keys in bytes (AES-256).
const KeySize = 32

// Default Argon2id cost. RFC 9106's second recommended option is t=3,
// m=64 MiB; it costs about 0.1-0.2 s here, paid once per process.
const (
	DefaultTime      = 3
	DefaultMemoryKiB = 64 * 1024
	DefaultThreads   = 2
)

// Minimums below which stored parameters are refused: a tampered control DB
// must not be able to downgrade the KDF to something trivially brute-forced.
const (
	minTime      = 1
	minMemoryKiB = 8 * 1024
	minSaltLen   = 16
)

const sealVersion = 1

// KDFParams are the stored Argon2id parameters for the node key. Check is a
// value sealed under the derived key; it tells a wrong passphrase apart.
type KDFParams struct {
	Alg       string `json:"alg"`
	Time      uint32 `json:"time"`
	MemoryKiB uint32 `json:"memory_kib"`
	Threads   uint8  `json:"threads"`
	Salt      []byte `json:"salt"`
	Check     []byte `json:"check,omitempty"`
}

// NewKDFParams returns parameters with the default cost and a fresh salt.
func NewKDFParams() (KDFParams, error) {
	salt := make([]byte, 32)
	if _, err := rand.Read(salt); err != nil {
		return KDFParams{}, fmt.Errorf("generate salt: %w", err)
	}
	return KDFParams{Alg: "argon2id", Time: DefaultTime, MemoryKiB: DefaultMemoryKiB, Threads: DefaultThreads, Salt: salt}, nil
}

func (p KDFParams) validate() error {
	switch {
	case p.Alg != "argon2id":
		return fmt.Errorf("%w: algorithm %q, want argon2id", ErrBadParams, p.Alg)
	case p.Time < minTime:
		return fmt.Errorf("%w: time %d below %d", ErrBadParams, p.Time, minTime)
	case p.MemoryKiB < minMemoryKiB:
		return fmt.Errorf("%w: memory %d KiB below %d KiB", ErrBadParams, p.MemoryKiB, minMemoryKiB)
	case p.Threads == 0:
		return fmt.Errorf("%w: zero threads", ErrBadParams)
	case len(p.Salt) < minSaltLen:
		return fmt.Errorf("%w: salt of %d bytes, want at least %d", ErrBadParams, len(p.Salt), minSaltLen)
	}
	return nil
}

// NodeKey is the key derived from the operator passphrase. It only wraps and
// unwraps data keys.
type NodeKey struct {
	aead cipher.AEAD
}

// String implements fmt.Stringer without revealing the key.
func (*NodeKey) String() string { return redacted }

// LogValue implements slog.LogValuer.
func (*NodeKey) LogValue() slog.Value { return slog.StringValue(redacted) }

var checkPlain = []byte("bulkhead node key check v1")

// DeriveNodeKey derives the node key from passphrase with p. If p.Check is
// empty (first use), it is filled in, and the caller must store p. Otherwise
// the check is verified and ErrWrongPassphrase returned on mismatch.
func DeriveNodeKey(passphrase []byte, p *KDFParams) (*NodeKey, error) {
	if len(passphrase) == 0 {
		return nil, ErrNoPassphrase
	}
	if err := p.validate(); err != nil {
		return nil, err
	}
	raw := argon2.IDKey(passphrase, p.Salt, p.Time, p.MemoryKiB, p.Threads, KeySize)
	defer Secret(raw).Wipe()
	aead, err := newAEAD(raw)
	if err != nil {
		return nil, err
	}
	k := &NodeKey{aead: aead}
	if len(p.Check) == 0 {
		p.Check = seal(aead, checkPlain, []byte("node-check"))
		return k, nil
	}
	got, err := open(aead, p.Check, []byte("node-check"))
	if err != nil || subtle.ConstantTimeCompare(got, checkPlain) != 1 {
		return nil, ErrWrongPassphrase
	}
	return k, nil
}

// DataKey is a workspace's random key. It seals credential values and yields
// subkeys for other purposes (Badger encryption, snapshots).
type DataKey struct {
	raw  []byte
	aead cipher.AEAD // seals credential values, under Subkey("credentials")
}

// NewDataKey returns a fresh random data key.
func NewDataKey() (*DataKey, error) {
	raw := make([]byte, KeySize)
	if _, err := rand.Read(raw); err != nil {
		return nil, fmt.Errorf("generate data key: %w", err)
	}
	return dataKeyFrom(raw)
}

func dataKeyFrom(raw []byte) (*DataKey, error) {
	d := &DataKey{raw: raw}
	aead, err := newAEAD(d.Subkey("credentials"))
	if err != nil {
		return nil, err
	}
	d.aead = aead
	return d, nil
}

// String implements fmt.Stringer without revealing the key.
func (*DataKey) String() string { return redacted }

// LogValue implements slog.LogValuer.
func (*DataKey) LogValue() slog.Value { return slog.StringValue(redacted) }

// Subkey derives a 32-byte key for purpose with HKDF-SHA256. Different
// purposes give independent keys.
func (d *DataKey) Subkey(purpose string) []byte {
	k, err := hkdf.Key(sha256.New, d.raw, nil, "bulkhead/v1/"+purpose, KeySize)
	if err != nil {
		panic(err) // only fails for absurd lengths
	}
	return k
}

// Wrap encrypts d under the node key, bound to scope (the workspace id).
func (k *NodeKey) Wrap(d *DataKey, scope string) []byte {
	return seal(k.aead, d.raw, aad("datakey", scope, ""))
}

// Unwrap decrypts a wrapped data key bound to scope.
func (k *NodeKey) Unwrap(wrapped []byte, scope string) (*DataKey, error) {
	raw, err := open(k.aead, wrapped, aad("datakey", scope, ""))
	if err != nil {
		return nil, err
	}
	if len(raw) != KeySize {
		return nil, fmt.Errorf("%w: unwrapped key has %d bytes", ErrOpen, len(raw))
	}
	return dataKeyFrom(raw)
}

// Seal encrypts value for (scope, name).
func (d *DataKey) Seal(scope, name string, value []byte) []byte {
	return seal(d.aead, value, aad("credential", scope, name))
}

// Open decrypts a value sealed for (scope, name). It returns ErrOpen when the
// blob was sealed for another scope or name, or altered.
func (d *DataKey) Open(scope, name string, sealed []byte) (Secret, error) {
	v, err := open(d.aead, sealed, aad("credential", scope, name))
	return Secret(v), err
}

// aad builds unambiguous additional data: each part length-prefixed.
func aad(kind, scope, name string) []byte {
	var b []byte
	for _, s := range []string{"bulkhead", kind, scope, name} {
		b = binary.BigEndian.AppendUint32(b, uint32(len(s)))
		b = append(b, s...)
	}
	return b
}

func newAEAD(key []byte) (cipher.AEAD, error) {
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("aes: %w", err)
	}
	return cipher.NewGCM(block)
}

// seal returns version || nonce || ciphertext+tag.
func seal(aead cipher.AEAD, plain, ad []byte) []byte {
	out := make([]byte, 1+aead.NonceSize(), 1+aead.NonceSize()+len(plain)+aead.Overhead())
	out[0] = sealVersion
	if _, err := rand.Read(out[1:]); err != nil {
		panic(fmt.Sprintf("crypto/rand: %v", err)) // crypto/rand does not fail on Linux
	}
	return aead.Seal(out, out[1:], plain, ad)
}

func open(aead cipher.AEAD, sealed, ad []byte) ([]byte, error) {
	n := aead.NonceSize()
	if len(sealed) < 1+n+aead.Overhead() || sealed[0] != sealVersion {
		return nil, ErrOpen
	}
	plain, err := aead.Open(nil, sealed[1:1+n], sealed[1+n:], ad)
	if err != nil {
		return nil, ErrOpen
	}
	return plain, nil
}
