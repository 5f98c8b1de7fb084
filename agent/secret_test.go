package agent

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"testing"
)

// An attacker who gets any log line, error or JSON dump that contains a key
// holder must not learn the key.
func TestSecretNeverPrints(t *testing.T) {
	const key = "sk-ant-api03-VERYSECRETVALUE"
	s := NewSecret(key)
	type holder struct {
		name string
		key  Secret   // unexported: fmt uses reflection, not methods
		keys []Secret // in a slice
		Pub  Secret
	}
	h := holder{name: "x", key: s, keys: []Secret{s}, Pub: s}
	pool := NewKeyPool("anthropic", s)

	var outs []string
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%X", "%d", "%T"} {
		outs = append(outs, fmt.Sprintf(verb, s), fmt.Sprintf(verb, h), fmt.Sprintf(verb, &h), fmt.Sprintf(verb, pool))
	}
	outs = append(outs, fmt.Sprint(s), fmt.Sprintln(h))
	j, err := json.Marshal(h)
	if err != nil {
		t.Fatal(err)
	}
	outs = append(outs, string(j))
	var buf bytes.Buffer
	log := slog.New(slog.NewJSONHandler(&buf, nil))
	log.Info("call", "key", s, "holder", h, "pool", pool)
	slog.New(slog.NewTextHandler(&buf, nil)).Info("call", "key", s, "holder", h)
	outs = append(outs, buf.String())
	for _, o := range outs {
		if strings.Contains(o, "VERYSECRET") {
			t.Fatalf("key printed: %s", o)
		}
	}
	if s.Reveal() != key {
		t.Fatal("Reveal lost the key")
	}
}
