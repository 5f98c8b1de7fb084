package server

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/bulkhead-dev/bulkhead/kv"
)

// AdminScope is the scope of tokens that may act on every workspace.
const AdminScope = "*"

// tokenPrefix starts every token so leaked ones are easy to grep for.
const tokenPrefix = "bh_"

// Token is an API token as stored: only the SHA-256 of the secret is kept.
// Tokens are 32 random bytes, so a plain hash is as strong as a slow one.
type Token struct {
	ID    string `json:"id"`    // public identifier: first 16 hex digits of the hash
	Name  string `json:"name"`  // free text, e.g. "ci"
	Scope string `json:"scope"` // AdminScope or a workspace id
	// ScopeUID is the host uid of the workspace the token was made for. Ids
	// can be reused after a delete; uids never are, so a token for a deleted
	// workspace never opens a new one of the same name.
	ScopeUID  uint32    `json:"scope_uid,omitempty"`
	CreatedAt time.Time `json:"created_at"`
}

// Admin reports whether t may act on every workspace.
func (t *Token) Admin() bool { return t.Scope == AdminScope }

// TokenStore keeps tokens in the control database under token/ and
// tokenid/.
type TokenStore struct {
	db *badger.DB
}

var (
	errBadToken = errors.New("invalid or revoked token")
	// ErrTokenNotFound means no token has the id.
	ErrTokenNotFound = errors.New("token not found")
)

func hashToken(secret string) string {
	h := sha256.Sum256([]byte(secret))
	return hex.EncodeToString(h[:])
}

// Create makes a token and returns its secret, which is shown only now.
func (ts *TokenStore) Create(name, scope string, scopeUID uint32) (string, *Token, error) {
	raw := make([]byte, 32)
	if _, err := rand.Read(raw); err != nil {
		return "", nil, err
	}
	secret := tokenPrefix + base64.RawURLEncoding.EncodeToString(raw)
	h := hashToken(secret)
	t := &Token{ID: h[:16], Name: name, Scope: scope, ScopeUID: scopeUID, CreatedAt: time.Now().UTC()}
	b, _ := json.Marshal(t)
	err := kv.UpdateSync(ts.db, func(txn *badger.Txn) error {
		if err := txn.Set([]byte("token/"+h), b); err != nil {
			return err
		}
		return txn.Set([]byte("tokenid/"+t.ID), []byte(h))
	})
	if err != nil {
		return "", nil, fmt.Errorf("store token: %w", err)
	}
	return secret, t, nil
}

// Lookup returns the token whose secret is given.
func (ts *TokenStore) Lookup(secret string) (*Token, error) {
	if !strings.HasPrefix(secret, tokenPrefix) || len(secret) > 128 {
		return nil, errBadToken
	}
	var t Token
	err := ts.db.View(func(txn *badger.Txn) error {
		item, err := txn.Get([]byte("token/" + hashToken(secret)))
		if err != nil {
			return err
		}
		return item.Value(func(v []byte) error { return json.Unmarshal(v, &t) })
	})
	if err != nil {
		return nil, errBadToken
	}
	return &t, nil
}

// List returns the tokens of scope ("" for all), without secrets.
func (ts *TokenStore) List(scope string) ([]Token, error) {
	out := []Token{}
	err := ts.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte("token/"), PrefetchValues: true})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			var t Token
			if err := it.Item().Value(func(v []byte) error { return json.Unmarshal(v, &t) }); err != nil {
				return err
			}
			if scope == "" || t.Scope == scope {
				out = append(out, t)
			}
		}
		return nil
	})
	sort.Slice(out, func(i, j int) bool { return out[i].CreatedAt.Before(out[j].CreatedAt) })
	return out, err
}

// Get returns the token with id.
func (ts *TokenStore) Get(id string) (*Token, error) {
	var t Token
	err := ts.db.View(func(txn *badger.Txn) error {
		item, err := txn.Get([]byte("tokenid/" + id))
		if err != nil {
			return err
		}
		h, err := item.ValueCopy(nil)
		if err != nil {
			return err
		}
		item, err = txn.Get(append([]byte("token/"), h...))
		if err != nil {
			return err
		}
		return item.Value(func(v []byte) error { return json.Unmarshal(v, &t) })
	})
	if errors.Is(err, badger.ErrKeyNotFound) {
		return nil, fmt.Errorf("%w: %q", ErrTokenNotFound, id)
	}
	return &t, err
}

// Revoke deletes the token with id.
func (ts *TokenStore) Revoke(id string) error {
	err := kv.UpdateSync(ts.db, func(txn *badger.Txn) error {
		item, err := txn.Get([]byte("tokenid/" + id))
		if err != nil {
			return err
		}
		h, err := item.ValueCopy(nil)
		if err != nil {
			return err
		}
		if err := txn.Delete(append([]byte("token/"), h...)); err != nil {
			return err
		}
		return txn.Delete([]byte("tokenid/" + id))
	})
	if errors.Is(err, badger.ErrKeyNotFound) {
		return fmt.Errorf("%w: %q", ErrTokenNotFound, id)
	}
	return err
}

// RevokeScope deletes every token of a workspace (used when it is deleted).
func (ts *TokenStore) RevokeScope(scope string) error {
	list, err := ts.List(scope)
	if err != nil {
		return err
	}
	for _, t := range list {
		if err := ts.Revoke(t.ID); err != nil && !errors.Is(err, ErrTokenNotFound) {
			return err
		}
	}
	return nil
}

// AdminTokenFile is where the first admin token is written (mode 0600).
const AdminTokenFile = "admin.token"

// EnsureAdmin creates an admin token if none exists, writes it to
// <stateDir>/admin.token with mode 0600 and returns it; it returns "" when
// an admin token already exists.
func (ts *TokenStore) EnsureAdmin(stateDir string) (string, error) {
	list, err := ts.List(AdminScope)
	if err != nil {
		return "", err
	}
	if len(list) > 0 {
		return "", nil
	}
	secret, _, err := ts.Create("admin", AdminScope, 0)
	if err != nil {
		return "", err
	}
	path := filepath.Join(stateDir, AdminTokenFile)
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(secret+"\n"), 0o600); err != nil {
		return "", fmt.Errorf("write admin token: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return "", fmt.Errorf("write admin token: %w", err)
	}
	return secret, nil
}

// NewTokenStore returns the token store kept in the control database db.
func NewTokenStore(db *badger.DB) *TokenStore { return &TokenStore{db: db} }
