package workspace

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/bulkhead-dev/bulkhead/credentials"
	"github.com/bulkhead-dev/bulkhead/kv"
)

// CredentialNameRule is the pattern credential names must match.
const CredentialNameRule = "^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$"

// MaxCredentialSize is the largest credential value accepted.
const MaxCredentialSize = 64 << 10

var credNameRE = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(CredentialNameRule) })

const prefixCred = "cred/"

// CredentialInfo describes a stored credential without its value.
type CredentialInfo struct {
	Name      string    `json:"name"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
}

type credRecord struct {
	CredentialInfo
	Sealed []byte `json:"sealed"`
}

// ValidateCredentialName returns an error quoting the rule unless name is valid.
func ValidateCredentialName(name string) error {
	if !credNameRE().MatchString(name) {
		return fmt.Errorf("%w: name %q must match %s", ErrInvalidCredential, name, CredentialNameRule)
	}
	return nil
}

// ValidateCredentialValue checks a value before it is sealed.
func ValidateCredentialValue(v []byte) error {
	switch {
	case len(v) == 0:
		return fmt.Errorf("%w: empty value", ErrInvalidCredential)
	case len(v) > MaxCredentialSize:
		return fmt.Errorf("%w: value of %d bytes, at most %d", ErrInvalidCredential, len(v), MaxCredentialSize)
	}
	return nil
}

// SetCredential seals value under workspace id's data key and stores it,
// replacing any previous value of that name.
func (s *Service) SetCredential(ctx context.Context, id, name string, value []byte) error {
	if err := ValidateCredentialName(name); err != nil {
		return err
	}
	if err := ValidateCredentialValue(value); err != nil {
		return err
	}
	db, release, err := s.DB(ctx, id)
	if err != nil {
		return err
	}
	defer release()
	dk, err := s.DataKey(ctx, id)
	if err != nil {
		return err
	}
	now := time.Now().UTC()
	rec := credRecord{CredentialInfo: CredentialInfo{Name: name, CreatedAt: now, UpdatedAt: now}, Sealed: dk.Seal(id, name, value)}
	return kv.UpdateSync(db, func(txn *badger.Txn) error {
		if old, err := getCred(txn, name); err == nil {
			rec.CreatedAt = old.CreatedAt
		} else if !errors.Is(err, ErrCredentialNotFound) {
			return err
		}
		b, err := json.Marshal(rec)
		if err != nil {
			return err
		}
		return txn.Set([]byte(prefixCred+name), b)
	})
}

func getCred(txn *badger.Txn, name string) (*credRecord, error) {
	item, err := txn.Get([]byte(prefixCred + name))
	if errors.Is(err, badger.ErrKeyNotFound) {
		return nil, fmt.Errorf("%w: %q", ErrCredentialNotFound, name)
	}
	if err != nil {
		return nil, err
	}
	var r credRecord
	if err := item.Value(func(v []byte) error { return json.Unmarshal(v, &r) }); err != nil {
		return nil, fmt.Errorf("decode credential %s: %w", name, err)
	}
	return &r, nil
}

// Credential opens credential name of workspace id. It is for host-side use
// only (provider clients, skill launch); the value never enters a sandbox.
func (s *Service) Credential(ctx context.Context, id, name string) (credentials.Secret, error) {
	if err := ValidateCredentialName(name); err != nil {
		return nil, err
	}
	db, release, err := s.DB(ctx, id)
	if err != nil {
		return nil, err
	}
	defer release()
	var rec *credRecord
	if err := db.View(func(txn *badger.Txn) error {
		var err error
		rec, err = getCred(txn, name)
		return err
	}); err != nil {
		return nil, err
	}
	dk, err := s.DataKey(ctx, id)
	if err != nil {
		return nil, err
	}
	v, err := dk.Open(id, name, rec.Sealed)
	if err != nil {
		return nil, fmt.Errorf("open credential %s of %s: %w", name, id, err)
	}
	return v, nil
}

// ListCredentials returns the names and dates of workspace id's credentials.
func (s *Service) ListCredentials(ctx context.Context, id string) ([]CredentialInfo, error) {
	db, release, err := s.DB(ctx, id)
	if err != nil {
		return nil, err
	}
	defer release()
	var out []CredentialInfo
	err = db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte(prefixCred), PrefetchValues: true})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			var r credRecord
			if err := it.Item().Value(func(v []byte) error { return json.Unmarshal(v, &r) }); err != nil {
				return err
			}
			out = append(out, r.CredentialInfo)
		}
		return nil
	})
	return out, err
}

// DeleteCredential removes credential name of workspace id.
func (s *Service) DeleteCredential(ctx context.Context, id, name string) error {
	if err := ValidateCredentialName(name); err != nil {
		return err
	}
	db, release, err := s.DB(ctx, id)
	if err != nil {
		return err
	}
	defer release()
	return kv.UpdateSync(db, func(txn *badger.Txn) error {
		if _, err := getCred(txn, name); err != nil {
			return err
		}
		return txn.Delete([]byte(prefixCred + name))
	})
}

// TrimCredentialInput removes one trailing newline (what `echo` and most
// editors add) from a value read from stdin or a file; anything else is kept.
func TrimCredentialInput(b []byte) []byte {
	s := string(b)
	s = strings.TrimSuffix(s, "\n")
	s = strings.TrimSuffix(s, "\r")
	return []byte(s)
}
