package credentials

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
)

// cheap parameters keep the tests fast; the validation floor still applies.
func testParams(t testing.TB) KDFParams {
	t.Helper()
	p, err := NewKDFParams()
	if err != nil {
		t.Fatal(err)
	}
	p.Time, p.MemoryKiB = 1, minMemoryKiB
	return p
}

func TestDeriveNodeKey(t *testing.T) {
	t.Parallel()
	p := testParams(t)
	if _, err := DeriveNodeKey(nil, &p); !errors.Is(err, ErrNoPassphrase) {
		t.Fatalf("empty passphrase: got %v, want ErrNoPassphrase", err)
	}
	if !strings.Contains(ErrNoPassphrase.Error(), PassphraseEnv) {
		t.Fatalf("ErrNoPassphrase does not name %s: %v", PassphraseEnv, ErrNoPassphrase)
	}
	k1, err := DeriveNodeKey([]byte("correct horse"), &p)
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Check) == 0 {
		t.Fatal("first derivation did not set Check")
	}
	if _, err := DeriveNodeKey([]byte("wrong horse"), &p); !errors.Is(err, ErrWrongPassphrase) {
		t.Fatalf("wrong passphrase: got %v, want ErrWrongPassphrase", err)
	}
	k2, err := DeriveNodeKey([]byte("correct horse"), &p)
	if err != nil {
		t.Fatal(err)
	}
	dk, _ := NewDataKey()
	w := k1.Wrap(dk, "alice")
	got, err := k2.Unwrap(w, "alice")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got.raw, dk.raw) {
		t.Fatal("unwrapped key differs")
	}
	if _, err := k2.Unwrap(w, "bob"); !errors.Is(err, ErrOpen) {
		t.Fatalf("unwrap under another scope: got %v, want ErrOpen", err)
	}
}

func TestParamsRejectDowngrade(t *testing.T) {
	t.Parallel()
	for _, mut := range []func(*KDFParams){
		func(p *KDFParams) { p.Alg = "pbkdf2" },
		func(p *KDFParams) { p.Time = 0 },
		func(p *KDFParams) { p.MemoryKiB = 64 },
		func(p *KDFParams) { p.Threads = 0 },
		func(p *KDFParams) { p.Salt = p.Salt[:4] },
	} {
		p := testParams(t)
		mut(&p)
		if _, err := DeriveNodeKey([]byte("x"), &p); !errors.Is(err, ErrBadParams) {
			t.Errorf("params %+v: got %v, want ErrBadParams", p, err)
		}
	}
}

func TestSealBoundToScopeAndName(t *testing.T) {
	t.Parallel()
	dk, _ := NewDataKey()
	sealed := dk.Seal("alice", "github", []byte("ghp_secret"))
	if bytes.Contains(sealed, []byte("ghp_secret")) {
		t.Fatal("plaintext visible in sealed value")
	}
	v, err := dk.Open("alice", "github", sealed)
	if err != nil || string(v.Reveal()) != "ghp_secret" {
		t.Fatalf("open: %q, %v", v.Reveal(), err)
	}
	cases := []struct {
		scope, name string
		blob        []byte
	}{
		{"bob", "github", sealed},
		{"alice", "gitlab", sealed},
		// AAD parts are length-prefixed, so shifting the boundary does not help.
		{"alicegit", "hub", sealed},
		{"alice", "github", sealed[:len(sealed)-1]},
		{"alice", "github", nil},
		{"alice", "github", flip(sealed, 20)},
		{"alice", "github", flip(sealed, 0)},
	}
	for _, c := range cases {
		if _, err := dk.Open(c.scope, c.name, c.blob); !errors.Is(err, ErrOpen) {
			t.Errorf("Open(%q, %q, len %d): got %v, want ErrOpen", c.scope, c.name, len(c.blob), err)
		}
	}
	other, _ := NewDataKey()
	if _, err := other.Open("alice", "github", sealed); !errors.Is(err, ErrOpen) {
		t.Errorf("open with another data key: got %v, want ErrOpen", err)
	}
}

func flip(b []byte, i int) []byte {
	c := bytes.Clone(b)
	c[i] ^= 1
	return c
}

func TestSubkeysIndependent(t *testing.T) {
	t.Parallel()
	dk, _ := NewDataKey()
	a, b := dk.Subkey("badger"), dk.Subkey("snapshots")
	if bytes.Equal(a, b) || bytes.Equal(a, dk.raw) || len(a) != KeySize {
		t.Fatal("subkeys are not independent 32-byte keys")
	}
	if !bytes.Equal(a, dk.Subkey("badger")) {
		t.Fatal("subkey not deterministic")
	}
}

func TestSecretsRedacted(t *testing.T) {
	t.Parallel()
	dk, _ := NewDataKey()
	s := Secret("hunter2-value")
	var buf bytes.Buffer
	log := slog.New(slog.NewJSONHandler(&buf, nil))
	log.Info("x", "secret", s, "key", dk)
	out := buf.String() + fmt.Sprintf("%v %s %q %x %#v %+v", s, s, s, s, s, s) + dk.String()
	if strings.Contains(out, "hunter2") || strings.Contains(out, fmt.Sprintf("%x", dk.raw[:4])) {
		t.Fatalf("secret leaked: %s", out)
	}
}

func BenchmarkSeal(b *testing.B) {
	dk, _ := NewDataKey()
	v := bytes.Repeat([]byte("k"), 256)
	b.SetBytes(int64(len(v)))
	for b.Loop() {
		dk.Seal("alice", "github", v)
	}
}

func BenchmarkOpen(b *testing.B) {
	dk, _ := NewDataKey()
	v := bytes.Repeat([]byte("k"), 256)
	s := dk.Seal("alice", "github", v)
	b.SetBytes(int64(len(v)))
	for b.Loop() {
		if _, err := dk.Open("alice", "github", s); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDeriveNodeKeyDefault(b *testing.B) {
	p, _ := NewKDFParams()
	for b.Loop() {
		q := p
		q.Check = nil
		if _, err := DeriveNodeKey([]byte("passphrase"), &q); err != nil {
			b.Fatal(err)
		}
	}
}
