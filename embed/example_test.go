package embed_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"

	"github.com/bulkhead-dev/bulkhead/embed"
	"github.com/bulkhead-dev/bulkhead/netguard"
)

// An Ollama on loopback: the operator allowlists it in the guard, and the
// embedder speaks the OpenAI-compatible API to it, behind a cache.
func Example() {
	ollama := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var req struct{ Input []string }
		json.NewDecoder(r.Body).Decode(&req)
		data := make([]map[string]any, len(req.Input))
		for i, s := range req.Input {
			data[i] = map[string]any{"index": i, "embedding": []float32{float32(len(s)), 0, 1}}
		}
		json.NewEncoder(w).Encode(map[string]any{"object": "list", "data": data})
	}))
	defer ollama.Close()
	host := strings.TrimPrefix(ollama.URL, "http://")

	guard, err := netguard.New(netguard.Config{Allow: []string{host}})
	if err != nil {
		panic(err)
	}
	e, err := embed.New(embed.Config{
		Provider:   embed.ProviderOpenAI,
		BaseURL:    ollama.URL + "/v1",
		Model:      "my-local-model",
		Dimensions: 3,
	}, guard)
	if err != nil {
		panic(err)
	}
	e = embed.WithCache(e, embed.NewMemoryCache(1<<20))
	vecs, err := e.Embed(context.Background(), []string{"hello", "bulkhead"})
	if err != nil {
		panic(err)
	}
	fmt.Println(e.Name(), e.Model(), e.Dimensions(), vecs)

	_, err = embed.New(embed.Config{Provider: embed.ProviderOpenAI, BaseURL: "http://169.254.169.254/v1", Model: "text-embedding-3-small"}, guard)
	fmt.Println(err)
	// Output:
	// openai my-local-model 3 [[5 0 1] [8 0 1]]
	// embed openai base URL: netguard: blocked 169.254.169.254: cloud metadata endpoint (169.254.169.254)
}
