package sync

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"hash"
	gosync "sync"
)

// KeySize is the size of the data key a repository is opened with.
const KeySize = 32

// ID names a blob: HMAC-SHA256 of its plaintext under the repository's MAC key.
type ID [32]byte

func (id ID) String() string { return hex.EncodeToString(id[:]) }

// MarshalText encodes the id as hex.
func (id ID) MarshalText() ([]byte, error) { return []byte(id.String()), nil }

// UnmarshalText decodes a hex id.
func (id *ID) UnmarshalText(b []byte) error {
	if len(b) != 2*len(id) {
		return fmt.Errorf("id %.70q: want %d hex digits", b, 2*len(id))
	}
	if _, err := hex.Decode(id[:], b); err != nil {
		return fmt.Errorf("id %.70q: %w", b, err)
	}
	return nil
}

// keys are the per-repository secrets derived from the data key.
type keys struct {
	aead    cipher.AEAD
	macPool gosync.Pool // of hash.Hash (HMAC-SHA256 under the MAC key)
	gear    [256]uint64 // chunker gear table
}

func deriveKeys(dataKey []byte) (*keys, error) {
	if len(dataKey) != KeySize {
		return nil, fmt.Errorf("derive keys: data key is %d bytes, want %d", len(dataKey), KeySize)
	}
	derive := func(info string, n int) ([]byte, error) {
		return hkdf.Key(sha256.New, dataKey, nil, "bulkhead sync v1 "+info, n)
	}
	encKey, err := derive("encryption", 32)
	if err != nil {
		return nil, fmt.Errorf("derive keys: %w", err)
	}
	macKey, err := derive("blob id", 32)
	if err != nil {
		return nil, fmt.Errorf("derive keys: %w", err)
	}
	gear, err := derive("chunker gear", 256*8)
	if err != nil {
		return nil, fmt.Errorf("derive keys: %w", err)
	}
	block, err := aes.NewCipher(encKey)
	if err != nil {
		return nil, fmt.Errorf("derive keys: %w", err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, fmt.Errorf("derive keys: %w", err)
	}
	k := &keys{aead: aead}
	k.macPool.New = func() any { return hmac.New(sha256.New, macKey) }
	for i := range k.gear {
		k.gear[i] = binary.LittleEndian.Uint64(gear[8*i:])
	}
	return k, nil
}

// blobID returns the id of plaintext data.
func (k *keys) blobID(data []byte) ID {
	h := k.macPool.Get().(hash.Hash)
	h.Reset()
	h.Write(data)
	var id ID
	h.Sum(id[:0])
	k.macPool.Put(h)
	return id
}

// sealOverhead is what seal adds to a plaintext: nonce and tag.
const sealOverhead = 12 + 16

// seal encrypts plaintext with AES-256-GCM under a random nonce, binding aad
// (the object's purpose and name), and returns nonce||ciphertext||tag
// appended to dst.
func (k *keys) seal(dst, plaintext []byte, aad string) []byte {
	var nonce [12]byte
	if _, err := rand.Read(nonce[:]); err != nil {
		panic(err) // crypto/rand never fails on supported platforms
	}
	dst = append(dst, nonce[:]...)
	return k.aead.Seal(dst, nonce[:], plaintext, []byte(aad))
}

// open reverses seal. Any tampering, truncation or wrong key is ErrCorrupt.
func (k *keys) open(sealed []byte, aad string) ([]byte, error) {
	if len(sealed) < sealOverhead {
		return nil, fmt.Errorf("%w: %s: sealed data too short (%d bytes)", ErrCorrupt, aad, len(sealed))
	}
	pt, err := k.aead.Open(nil, sealed[:12], sealed[12:], []byte(aad))
	if err != nil {
		return nil, fmt.Errorf("%w: %s: authentication failed", ErrCorrupt, aad)
	}
	return pt, nil
}
