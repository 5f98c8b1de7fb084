package workspace

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	gosync "sync"
	"testing"
	"time"

	"github.com/bulkhead-dev/bulkhead/embed"
	"github.com/bulkhead-dev/bulkhead/memory"
	"github.com/bulkhead-dev/bulkhead/netguard"
)

// embedServer speaks OpenAI's embeddings API on loopback and records the
// key of every request.
type embedServer struct {
	*httptest.Server
	mu   gosync.Mutex
	keys []string
}

func startEmbedServer(t *testing.T) *embedServer {
	t.Helper()
	es := &embedServer{}
	es.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var req struct {
			Input []string `json:"input"`
			Model string   `json:"model"`
		}
		if r.URL.Path != "/v1/embeddings" || json.NewDecoder(r.Body).Decode(&req) != nil {
			http.Error(w, `{"error":{"message":"bad request"}}`, 400)
			return
		}
		es.mu.Lock()
		es.keys = append(es.keys, r.Header.Get("Authorization"))
		es.mu.Unlock()
		type item struct {
			Object    string    `json:"object"`
			Index     int       `json:"index"`
			Embedding []float64 `json:"embedding"`
		}
		var data []item
		for i, in := range req.Input {
			v := []float64{1, float64(len(in)%7) + 1, float64(i) + 1, 0.5}
			data = append(data, item{"embedding", i, v})
		}
		json.NewEncoder(w).Encode(map[string]any{"object": "list", "data": data, "model": req.Model,
			"usage": map[string]int{"prompt_tokens": 1, "total_tokens": 1}})
	}))
	t.Cleanup(es.Close)
	return es
}

func (es *embedServer) calls() []string {
	es.mu.Lock()
	defer es.mu.Unlock()
	return append([]string(nil), es.keys...)
}

// Each workspace's memory embeds with its own credential (the host's key
// only when it has none), and the vectors are cached in its own database,
// so reopening the memory does not pay for the same text again.
func TestWorkspaceEmbedderKeysAndCache(t *testing.T) {
	ctx := context.Background()
	es := startEmbedServer(t)
	_, port, _ := net.SplitHostPort(es.Listener.Addr().String())
	g, err := netguard.New(netguard.Config{Allow: []string{"127.0.0.1:" + port}})
	if err != nil {
		t.Fatal(err)
	}
	s := openService(t, t.TempDir(), "pw")
	defer s.Close()
	s.SetAgentOptions(AgentOptions{Guard: g, Embedding: &embed.Config{
		Provider: "openai", Model: "test-embed", BaseURL: es.URL + "/v1", Dimensions: 4, APIKey: embed.NewAPIKey("HOST-KEY"),
	}})
	for _, id := range []string{"alice", "bob"} {
		if _, err := s.Create(ctx, id, nil); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.SetCredential(ctx, "alice", "openai_api_key", []byte("ALICE-KEY")); err != nil {
		t.Fatal(err)
	}
	search := func(ws, q string) {
		t.Helper()
		st, release, err := s.Memory(ctx, ws)
		if err != nil {
			t.Fatal(err)
		}
		defer release()
		if _, err := st.Add(ctx, []memory.Chunk{{Text: "the deploy key rotates on Mondays", Source: memory.SourceManual}}); err != nil {
			t.Fatal(err)
		}
		if _, err := st.Search(ctx, memory.SearchOptions{Query: q}); err != nil {
			t.Fatal(err)
		}
	}
	search("alice", "when does the key rotate")
	calls := es.calls()
	if len(calls) == 0 {
		t.Fatal("alice's memory never called the embedder")
	}
	for _, k := range calls {
		if k != "Bearer ALICE-KEY" {
			t.Fatalf("alice's memory embedded with %q", k)
		}
	}
	search("bob", "when does the key rotate")
	calls = es.calls()
	if last := calls[len(calls)-1]; last != "Bearer HOST-KEY" {
		t.Fatalf("bob (no credential) embedded with %q", last)
	}
	// Reopened (the store closes when its last user releases it): the same
	// texts come from alice's cache, not the provider.
	before := len(es.calls())
	search("alice", "when does the key rotate")
	if n := len(es.calls()); n != before {
		t.Fatalf("reopened memory re-embedded cached texts: %d calls, want %d", n, before)
	}
}

// Memory files are indexed and watched whenever the workspace's memory is
// open (an API or CLI search, not only an agent run).
func TestMemoryFilesWatchedOutsideRuns(t *testing.T) {
	ctx := context.Background()
	s := openService(t, t.TempDir(), "pw")
	defer s.Close()
	cfg := DefaultConfig()
	cfg.Memory.WatchInterval = memory.Duration(50 * time.Millisecond)
	cfg.Memory.WatchDebounce = memory.Duration(50 * time.Millisecond)
	if _, err := s.Create(ctx, "alice", &cfg); err != nil {
		t.Fatal(err)
	}
	files := s.FilesDir("alice")
	if err := os.WriteFile(filepath.Join(files, "MEMORY.md"), []byte("# Facts\n\nThe staging database is called heron.\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	st, release, err := s.Memory(ctx, "alice")
	if err != nil {
		t.Fatal(err)
	}
	defer release()
	found := func(q, want string) bool {
		res, err := st.Search(ctx, memory.SearchOptions{Query: q})
		if err != nil {
			t.Fatal(err)
		}
		for _, h := range res.Hits {
			if strings.Contains(h.Chunk.Text, want) {
				return true
			}
		}
		return false
	}
	if !found("staging database name", "heron") {
		t.Fatal("MEMORY.md written before the memory opened is not indexed")
	}
	os.MkdirAll(filepath.Join(files, "memory"), 0o755)
	if err := os.WriteFile(filepath.Join(files, "memory", "deploys.md"), []byte("Deploys freeze on Fridays after noon.\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for !found("when do deploys freeze", "Fridays") {
		if time.Now().After(deadline) {
			t.Fatal("memory/deploys.md written while the memory was open was never indexed")
		}
		time.Sleep(50 * time.Millisecond)
	}
}
