package agent

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

// KeyPool is the set of API keys for one provider. Acquire hands keys out
// round-robin, skipping keys that are cooling down (after a rate limit or an
// auth failure) or disabled (after a permanent auth failure). Safe for
// concurrent use.
type KeyPool struct {
	provider string
	mu       sync.Mutex
	keys     []*keyState
	next     int
}

type keyState struct {
	secret    Secret
	coolUntil time.Time
	disabled  bool
}

// NewKeyPool returns a pool of keys for provider; empty and duplicate keys
// are dropped.
func NewKeyPool(provider string, keys ...Secret) *KeyPool {
	p := &KeyPool{provider: provider}
	seen := map[string]bool{}
	for _, k := range keys {
		if k.Empty() || seen[k.Reveal()] {
			continue
		}
		seen[k.Reveal()] = true
		p.keys = append(p.keys, &keyState{secret: k})
	}
	return p
}

// EnvPrefix is the environment variable prefix for provider's keys:
// upper case, other characters than letters and digits as '_'
// ("openrouter" → "OPENROUTER").
func EnvPrefix(provider string) string {
	b := []byte(strings.ToUpper(provider))
	for i, c := range b {
		if (c < 'A' || c > 'Z') && (c < '0' || c > '9') {
			b[i] = '_'
		}
	}
	return string(b)
}

// KeysFromEnv collects provider's keys from environ (os.Environ() form):
// <P>_API_KEYS (comma-separated), then <P>_API_KEY, then <P>_API_KEY_<N> in
// numeric order.
func KeysFromEnv(provider string, environ []string) []Secret {
	prefix := EnvPrefix(provider) + "_API_KEY"
	var list, single []string
	type numbered struct {
		n int
		v string
	}
	var nums []numbered
	for _, kv := range environ {
		name, val, ok := strings.Cut(kv, "=")
		if !ok || !strings.HasPrefix(name, prefix) {
			continue
		}
		switch rest := name[len(prefix):]; {
		case rest == "S":
			for _, k := range strings.Split(val, ",") {
				list = append(list, strings.TrimSpace(k))
			}
		case rest == "":
			single = append(single, strings.TrimSpace(val))
		case rest[0] == '_':
			if n, err := strconv.Atoi(rest[1:]); err == nil && n >= 0 {
				nums = append(nums, numbered{n, strings.TrimSpace(val)})
			}
		}
	}
	sort.Slice(nums, func(i, j int) bool { return nums[i].n < nums[j].n })
	var out []Secret
	for _, v := range append(list, single...) {
		if v != "" {
			out = append(out, NewSecret(v))
		}
	}
	for _, n := range nums {
		if n.v != "" {
			out = append(out, NewSecret(n.v))
		}
	}
	return out
}

// Provider is the provider the pool belongs to.
func (p *KeyPool) Provider() string { return p.provider }

// Len is the number of keys, usable or not.
func (p *KeyPool) Len() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.keys)
}

// Acquire returns the next usable key. If every live key is cooling down it
// returns the one that recovers first and how long until it does. With no
// live key at all it returns ErrNoKeys.
func (p *KeyPool) Acquire(now time.Time) (Secret, time.Duration, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := len(p.keys)
	var soonest *keyState
	for i := range n {
		k := p.keys[(p.next+i)%n]
		if k.disabled {
			continue
		}
		if !k.coolUntil.After(now) {
			p.next = (p.next + i + 1) % n
			return k.secret, 0, nil
		}
		if soonest == nil || k.coolUntil.Before(soonest.coolUntil) {
			soonest = k
		}
	}
	if soonest == nil {
		return Secret{}, 0, fmt.Errorf("%s: %w", p.provider, ErrNoKeys)
	}
	return soonest.secret, soonest.coolUntil.Sub(now), nil
}

// Usable reports how many keys are neither cooling down nor disabled.
func (p *KeyPool) Usable(now time.Time) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	c := 0
	for _, k := range p.keys {
		if !k.disabled && !k.coolUntil.After(now) {
			c++
		}
	}
	return c
}

// CoolDown keeps key out of rotation until until.
func (p *KeyPool) CoolDown(key Secret, until time.Time) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, k := range p.keys {
		if k.secret.Equal(key) && until.After(k.coolUntil) {
			k.coolUntil = until
		}
	}
}

// Disable takes key out of rotation for the life of the pool.
func (p *KeyPool) Disable(key Secret) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, k := range p.keys {
		if k.secret.Equal(key) {
			k.disabled = true
		}
	}
}
