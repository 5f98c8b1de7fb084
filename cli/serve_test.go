package cli

import (
	"errors"
	"strings"
	"testing"

	"github.com/bulkhead-dev/bulkhead/netguard"
)

// The memory embedding config of serve is checked against the SSRF guard:
// a private endpoint needs --egress-allow.
func TestServeEmbedder(t *testing.T) {
	g := &Globals{}
	strict, _ := netguard.New(netguard.Config{})
	if e, err := (&ServeCmd{}).embedding(strict, g); e != nil || err != nil {
		t.Fatalf("no provider: %v %v", e, err)
	}
	if _, err := (&ServeCmd{EmbedProvider: "openai"}).embedding(strict, g); err == nil || !strings.Contains(err.Error(), "--embed-model") {
		t.Fatalf("missing model: %v", err)
	}
	c := &ServeCmd{EmbedProvider: "openai", EmbedModel: "nomic-embed-text", EmbedBaseURL: "http://127.0.0.1:11434/v1", EmbedDimensions: 768}
	if _, err := c.embedding(strict, g); !errors.Is(err, netguard.ErrBlocked) {
		t.Fatalf("loopback embedder without --egress-allow: %v", err)
	}
	allowed, err := netguard.New(netguard.Config{Allow: []string{"127.0.0.1:11434"}})
	if err != nil {
		t.Fatal(err)
	}
	e, err := c.embedding(allowed, g)
	if err != nil {
		t.Fatal(err)
	}
	if e.Provider != "openai" || e.Model != "nomic-embed-text" || e.Dimensions != 768 {
		t.Fatalf("embedding config %+v", e)
	}
}
