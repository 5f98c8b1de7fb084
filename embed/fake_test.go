package embed

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sync"
	"testing"
	"time"

	"github.com/bulkhead-dev/bulkhead/netguard"
)

const testKey = "sk-test-0123456789abcdef"

// vecFor is the deterministic vector the fake servers answer for a text:
// multiples of 1/1024, exact in float32 and in JSON.
func vecFor(text string, dims int) []float32 {
	h := sha256.Sum256([]byte(text))
	seed := binary.LittleEndian.Uint64(h[:8])
	v := make([]float32, dims)
	for j := range v {
		v[j] = float32(int64((seed>>uint(j%50))%2048)-1024) / 1024
	}
	return v
}

// reply is what a fault makes the fake answer instead of the real thing.
type reply struct {
	status int
	header map[string]string
	body   string
	delay  time.Duration
}

// fakeProvider is a loopback server speaking one provider's wire format. It
// checks each request the way the provider would (path, auth, body shape)
// and answers with vecFor vectors, unless fault returns a reply for the
// request numbered n (1-based).
type fakeProvider struct {
	t        *testing.T
	provider string
	model    string
	dims     int
	srv      *httptest.Server
	fault    func(n int, texts []string) *reply
	// answer may rewrite a well-formed answer's vectors (wrong count, NaN, ...).
	answer func(n int, vecs [][]float32) any

	mu       sync.Mutex
	requests []map[string]any
	batches  [][]string
}

func newFake(t *testing.T, provider, model string, dims int) *fakeProvider {
	f := &fakeProvider{t: t, provider: provider, model: model, dims: dims}
	f.srv = httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fakeProvider) baseURL() string {
	if f.provider == ProviderGemini {
		return f.srv.URL + "/v1beta"
	}
	return f.srv.URL + "/v1"
}

func (f *fakeProvider) guard() *netguard.Guard {
	u, _ := url.Parse(f.srv.URL)
	g, err := netguard.New(netguard.Config{Allow: []string{u.Host}})
	if err != nil {
		f.t.Fatal(err)
	}
	return g
}

func (f *fakeProvider) config() Config {
	return Config{
		Provider: f.provider, BaseURL: f.baseURL(), Model: f.model, Dimensions: f.dims,
		APIKey: NewAPIKey(testKey), Retry: Retry{BaseDelay: time.Millisecond, MaxDelay: 5 * time.Millisecond},
		Logger: slog.New(slog.DiscardHandler),
	}
}

func (f *fakeProvider) embedder(cfg Config) *httpEmbedder {
	e, err := New(cfg, f.guard())
	if err != nil {
		f.t.Fatal(err)
	}
	return e.(*httpEmbedder)
}

func (f *fakeProvider) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.requests)
}

func (f *fakeProvider) fail(w http.ResponseWriter, status int, msg string) {
	f.t.Errorf("fake %s: %s", f.provider, msg)
	http.Error(w, msg, status)
}

func (f *fakeProvider) serve(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost || r.Header.Get("Content-Type") != "application/json" {
		f.fail(w, 400, "want POST application/json, got "+r.Method+" "+r.Header.Get("Content-Type"))
		return
	}
	wantPath := "/v1/embeddings"
	if f.provider == ProviderGemini {
		wantPath = "/v1beta/models/" + f.model + ":batchEmbedContents"
		if got := r.Header.Get("x-goog-api-key"); got != testKey {
			f.fail(w, 401, "x-goog-api-key "+got)
			return
		}
		if r.URL.Query().Get("key") != "" || r.Header.Get("Authorization") != "" {
			f.fail(w, 400, "gemini key must travel only in x-goog-api-key")
			return
		}
	} else if got := r.Header.Get("Authorization"); got != "Bearer "+testKey {
		f.fail(w, 401, "authorization "+got)
		return
	}
	if r.URL.Path != wantPath {
		f.fail(w, 404, "path "+r.URL.Path+", want "+wantPath)
		return
	}
	raw, _ := io.ReadAll(r.Body)
	var req map[string]any
	if err := json.Unmarshal(raw, &req); err != nil {
		f.fail(w, 400, "request JSON: "+err.Error())
		return
	}
	texts, err := f.texts(req)
	if err != nil {
		f.fail(w, 400, err.Error())
		return
	}
	f.mu.Lock()
	f.requests = append(f.requests, req)
	f.batches = append(f.batches, texts)
	n := len(f.requests)
	f.mu.Unlock()

	if f.fault != nil {
		if rep := f.fault(n, texts); rep != nil {
			time.Sleep(rep.delay)
			for k, v := range rep.header {
				w.Header().Set(k, v)
			}
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(rep.status)
			io.WriteString(w, rep.body)
			return
		}
	}
	vecs := make([][]float32, len(texts))
	for i, t := range texts {
		vecs[i] = vecFor(t, f.dims)
	}
	var out any
	if f.answer != nil {
		out = f.answer(n, vecs)
	} else {
		out = f.wireAnswer(vecs)
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(out)
}

// texts checks the request body has the provider's shape and returns its texts.
func (f *fakeProvider) texts(req map[string]any) ([]string, error) {
	strs := func(v any) ([]string, error) {
		arr, ok := v.([]any)
		if !ok {
			return nil, fmt.Errorf("input is %T, want a list", v)
		}
		out := make([]string, len(arr))
		for i, x := range arr {
			s, ok := x.(string)
			if !ok {
				return nil, fmt.Errorf("input %d is %T", i, x)
			}
			out[i] = s
		}
		return out, nil
	}
	switch f.provider {
	case ProviderGemini:
		reqs, ok := req["requests"].([]any)
		if !ok || len(req) != 1 {
			return nil, fmt.Errorf("gemini body %v, want only requests[]", req)
		}
		var out []string
		for _, x := range reqs {
			m := x.(map[string]any)
			if m["model"] != "models/"+f.model {
				return nil, fmt.Errorf("gemini request model %v", m["model"])
			}
			parts := m["content"].(map[string]any)["parts"].([]any)
			out = append(out, parts[0].(map[string]any)["text"].(string))
		}
		return out, nil
	default:
		if req["model"] != f.model {
			return nil, fmt.Errorf("model %v, want %s", req["model"], f.model)
		}
		return strs(req["input"])
	}
}

// wireAnswer renders vectors in the provider's response format.
func (f *fakeProvider) wireAnswer(vecs [][]float32) any {
	if f.provider == ProviderGemini {
		embs := make([]map[string]any, len(vecs))
		for i, v := range vecs {
			embs[i] = map[string]any{"values": v}
		}
		return map[string]any{"embeddings": embs}
	}
	return dataAnswer(f.provider, f.model, vecs, nil)
}

// dataAnswer is the OpenAI/Voyage/Mistral list; order permutes the items.
func dataAnswer(provider, model string, vecs [][]float32, order []int) map[string]any {
	items := make([]map[string]any, len(vecs))
	for i := range vecs {
		j := i
		if order != nil {
			j = order[i]
		}
		items[i] = map[string]any{"object": "embedding", "index": j, "embedding": vecs[j]}
	}
	out := map[string]any{"object": "list", "data": items, "model": model}
	switch provider {
	case ProviderVoyage:
		out["usage"] = map[string]any{"total_tokens": 10}
	case ProviderMistral:
		out["id"] = "embd-1"
		out["usage"] = map[string]any{"prompt_tokens": 10, "total_tokens": 10, "completion_tokens": 0}
	default:
		out["usage"] = map[string]any{"prompt_tokens": 10, "total_tokens": 10}
	}
	return out
}

// errorBody is each provider's real error document.
func errorBody(provider, code, msg string) string {
	var v any
	switch provider {
	case ProviderGemini:
		v = map[string]any{"error": map[string]any{"code": 429, "message": msg, "status": code}}
	case ProviderVoyage:
		v = map[string]any{"detail": msg}
	case ProviderMistral:
		v = map[string]any{"object": "error", "message": msg, "type": code, "param": nil, "code": nil}
	default:
		v = map[string]any{"error": map[string]any{"message": msg, "type": code, "param": nil, "code": code}}
	}
	b, _ := json.Marshal(v)
	return string(b)
}

var allProviders = []struct{ provider, model string }{
	{ProviderOpenAI, "text-embedding-3-small"},
	{ProviderGemini, "text-embedding-004"},
	{ProviderVoyage, "voyage-3"},
	{ProviderMistral, "mistral-embed"},
}

func bg() context.Context { return context.Background() }
