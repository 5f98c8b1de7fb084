package secret

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"testing"
)

func TestNothingPrintsTheKey(t *testing.T) {
	k := New("sk-live-123456")
	type holder struct {
		Key   String
		inner String
	}
	h := holder{Key: k, inner: k}
	var outs []string
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%X", "%d"} {
		outs = append(outs, fmt.Sprintf(verb, k), fmt.Sprintf(verb, h), fmt.Sprintf(verb, &h))
	}
	j, _ := json.Marshal(h)
	outs = append(outs, string(j), k.String(), k.GoString(), fmt.Sprint(k), fmt.Sprintln(h))
	var logs bytes.Buffer
	slog.New(slog.NewJSONHandler(&logs, nil)).Info("x", "key", k, "holder", h)
	slog.New(slog.NewTextHandler(&logs, nil)).Info("x", "key", k)
	outs = append(outs, logs.String())
	for _, o := range outs {
		if strings.Contains(o, "sk-live") || strings.Contains(o, fmt.Sprintf("%x", "sk-live")) {
			t.Fatalf("key printed: %s", o)
		}
	}
	if k.Reveal() != "sk-live-123456" || k.Empty() || !(String{}).Empty() || !k.Equal(New("sk-live-123456")) || k.Equal(String{}) {
		t.Fatal("Reveal/Empty/Equal")
	}
}
