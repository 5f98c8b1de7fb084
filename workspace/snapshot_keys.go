package workspace

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/bulkhead-dev/bulkhead/credentials"
)

// ExportedKey is a workspace key taken out of the node so that the
// workspace's snapshots stay readable after it is deleted (an exception to
// crypto-shredding the operator asks for explicitly). It is either the whole
// data key wrapped under a passphrase (Argon2id + AES-GCM, bound to the
// workspace id), which also re-opens the snapshot's credentials, or the bare
// snapshot subkey in hex, which reads files and state but leaves the
// credentials sealed for good.
type ExportedKey struct {
	Version   int                    `json:"version"`
	Workspace string                 `json:"workspace"`
	KDF       *credentials.KDFParams `json:"kdf,omitempty"`
	Wrapped   []byte                 `json:"wrapped,omitempty"`
	// SnapshotKey is hex; set only in the unwrapped form.
	SnapshotKey string `json:"snapshot_key,omitempty"`
}

// ErrKeyFile means an exported key file is malformed or for another workspace.
var ErrKeyFile = errors.New("invalid exported key")

func exportScope(id string) string { return "export/" + id }

// ExportKey exports workspace id's key: wrapped under passphrase, or, with an
// empty passphrase, the bare snapshot subkey. kdf sets the Argon2id cost (zero:
// the defaults).
func (s *Service) ExportKey(ctx context.Context, id string, passphrase []byte, kdf credentials.KDFParams) (*ExportedKey, error) {
	if _, err := s.Get(ctx, id); err != nil {
		return nil, err
	}
	dk, err := s.DataKey(ctx, id)
	if err != nil {
		return nil, err
	}
	out := &ExportedKey{Version: 1, Workspace: id}
	if len(passphrase) == 0 {
		out.SnapshotKey = hex.EncodeToString(dk.Subkey(SnapshotKeyPurpose))
		return out, nil
	}
	p, err := credentials.NewKDFParams()
	if err != nil {
		return nil, err
	}
	if kdf.Time > 0 {
		p.Time, p.MemoryKiB, p.Threads = kdf.Time, kdf.MemoryKiB, kdf.Threads
	}
	nk, err := credentials.DeriveNodeKey(passphrase, &p)
	if err != nil {
		return nil, fmt.Errorf("export key of %s: %w", id, err)
	}
	out.KDF, out.Wrapped = &p, nk.Wrap(dk, exportScope(id))
	return out, nil
}

// ParseExportedKey reads an exported key file for workspace id.
func ParseExportedKey(b []byte, id string) (*ExportedKey, error) {
	var k ExportedKey
	if err := json.Unmarshal(b, &k); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrKeyFile, err)
	}
	switch {
	case k.Version != 1:
		return nil, fmt.Errorf("%w: version %d", ErrKeyFile, k.Version)
	case k.Workspace != id:
		return nil, fmt.Errorf("%w: the key is for workspace %q, not %q", ErrKeyFile, k.Workspace, id)
	case (k.Wrapped == nil) == (k.SnapshotKey == ""):
		return nil, fmt.Errorf("%w: want either a wrapped key or a snapshot key", ErrKeyFile)
	}
	return &k, nil
}

// NeedsPassphrase reports whether the key needs a passphrase to open.
func (k *ExportedKey) NeedsPassphrase() bool { return k.Wrapped != nil }

// Open returns the snapshot repository key and, for a wrapped export, the
// data key (nil otherwise).
func (k *ExportedKey) Open(passphrase []byte) (snapshotKey []byte, dk *credentials.DataKey, err error) {
	if k.Wrapped == nil {
		b, err := hex.DecodeString(k.SnapshotKey)
		if err != nil || len(b) != credentials.KeySize {
			return nil, nil, fmt.Errorf("%w: snapshot key is not %d hex bytes", ErrKeyFile, credentials.KeySize)
		}
		return b, nil, nil
	}
	if k.KDF == nil {
		return nil, nil, fmt.Errorf("%w: wrapped key without KDF parameters", ErrKeyFile)
	}
	p := *k.KDF
	nk, err := credentials.DeriveNodeKey(passphrase, &p)
	if err != nil {
		return nil, nil, err
	}
	dk, err = nk.Unwrap(k.Wrapped, exportScope(k.Workspace))
	if err != nil {
		return nil, nil, fmt.Errorf("open exported key of %s (wrong passphrase?): %w", k.Workspace, err)
	}
	return dk.Subkey(SnapshotKeyPurpose), dk, nil
}
