package embed

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"
)

// The key must not come out of any printing path, including through structs
// that hold it and the embedder's own retry logging.
func TestAPIKeyNeverPrinted(t *testing.T) {
	t.Parallel()
	k := NewAPIKey(testKey)
	if k.Reveal() != testKey {
		t.Fatal("Reveal lost the key")
	}
	type holder struct {
		Exported APIKey
		hidden   APIKey
	}
	h := holder{k, k}
	var outs []string
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%X", "%d", "%T %v"} {
		outs = append(outs, fmt.Sprintf(verb, k), fmt.Sprintf(verb, h), fmt.Sprintf(verb, &h), fmt.Sprintf(verb, []APIKey{k}))
	}
	outs = append(outs, fmt.Sprint(k), fmt.Sprintln(h), k.String(), k.GoString())
	js, err := json.Marshal(h)
	if err != nil {
		t.Fatal(err)
	}
	outs = append(outs, string(js))
	var buf bytes.Buffer
	for _, hd := range []slog.Handler{slog.NewJSONHandler(&buf, nil), slog.NewTextHandler(&buf, nil)} {
		slog.New(hd).Info("key", "key", k, "holder", h, "cfg", Config{APIKey: k})
	}
	outs = append(outs, buf.String(), fmt.Sprintf("%+v", Config{APIKey: k}))
	for _, o := range outs {
		if strings.Contains(o, testKey) || strings.Contains(o, "0123456789abcdef") {
			t.Errorf("key printed: %s", o)
		}
	}
	if !strings.Contains(fmt.Sprint(k), redacted) {
		t.Errorf("fmt.Sprint(key) = %q, want %s", fmt.Sprint(k), redacted)
	}
}

func TestEmbedderLogsNeitherKeyNorText(t *testing.T) {
	t.Parallel()
	f := newFake(t, ProviderMistral, "mistral-embed", 4)
	f.fault = func(n int, _ []string) *reply {
		if n < 3 {
			return &reply{status: 503, body: errorBody(ProviderMistral, "unavailable", "echo Bearer "+testKey)}
		}
		return nil
	}
	var buf bytes.Buffer
	cfg := f.config()
	cfg.Logger = slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	cfg.Retry.BaseDelay = time.Millisecond
	e := f.embedder(cfg)
	secretText := "patient record 4711"
	if _, err := e.Embed(bg(), []string{secretText}); err != nil {
		t.Fatal(err)
	}
	logs := buf.String()
	if !strings.Contains(logs, "embedding request retried") {
		t.Fatalf("no retry logged: %s", logs)
	}
	if strings.Contains(logs, testKey) || strings.Contains(logs, secretText) {
		t.Errorf("log leaks key or text: %s", logs)
	}
	if s := fmt.Sprintf("%+v %#v", e, e); strings.Contains(s, testKey) {
		t.Errorf("embedder printing leaks the key: %s", s)
	}
}

func TestEnvKey(t *testing.T) {
	t.Setenv("GEMINI_API_KEY", "")
	t.Setenv("GOOGLE_API_KEY", "g-key")
	if k, ok := EnvKey(ProviderGemini); !ok || k.Reveal() != "g-key" {
		t.Errorf("gemini from GOOGLE_API_KEY: %v %v", ok, k.Reveal() == "g-key")
	}
	t.Setenv("VOYAGE_API_KEY", "")
	if _, ok := EnvKey(ProviderVoyage); ok {
		t.Error("empty VOYAGE_API_KEY reported as set")
	}
	if _, ok := EnvKey("nope"); ok {
		t.Error("unknown provider has a key")
	}
}

func TestAPIErrorIs(t *testing.T) {
	t.Parallel()
	err := fmt.Errorf("wrapped: %w", &APIError{Provider: "openai", Status: 429})
	if !errors.Is(err, ErrRateLimited) || errors.Is(err, ErrUnauthorized) {
		t.Errorf("429 classification wrong")
	}
	if !errors.Is(&APIError{Status: 403}, ErrUnauthorized) {
		t.Errorf("403 not unauthorized")
	}
}
