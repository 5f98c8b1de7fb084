package embed

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bulkhead-dev/bulkhead/netguard"
)

func texts(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("chunk %d: the quick brown fox", i)
	}
	return out
}

// Each provider: batches split, vectors in input order, the request in the
// provider's own shape.
func TestProvidersRoundTrip(t *testing.T) {
	t.Parallel()
	for _, p := range allProviders {
		t.Run(p.provider, func(t *testing.T) {
			t.Parallel()
			f := newFake(t, p.provider, p.model, 8)
			cfg := f.config()
			cfg.BatchSize = 2
			cfg.InputType = map[string]string{ProviderGemini: "RETRIEVAL_DOCUMENT", ProviderVoyage: "document"}[p.provider]
			e := f.embedder(cfg)
			in := texts(5)
			got, err := e.Embed(bg(), in)
			if err != nil {
				t.Fatal(err)
			}
			for i, v := range got {
				if !reflect.DeepEqual(v, vecFor(in[i], 8)) {
					t.Fatalf("vector %d differs", i)
				}
			}
			if f.count() != 3 {
				t.Errorf("%d requests for 5 texts in batches of 2, want 3", f.count())
			}
			if id := Identity(e); id != p.provider+"/"+p.model+"/8" {
				t.Errorf("Identity = %s", id)
			}
			req := f.requests[0]
			switch p.provider {
			case ProviderOpenAI:
				if req["encoding_format"] != "float" {
					t.Errorf("openai request %v", req)
				}
			case ProviderVoyage:
				if req["input_type"] != "document" || req["truncation"] != true {
					t.Errorf("voyage request %v", req)
				}
			case ProviderGemini:
				r0 := req["requests"].([]any)[0].(map[string]any)
				if r0["taskType"] != "RETRIEVAL_DOCUMENT" {
					t.Errorf("gemini request %v", r0)
				}
			}
		})
	}
}

func TestOutputDimensionsSent(t *testing.T) {
	t.Parallel()
	field := map[string]string{ProviderOpenAI: "dimensions", ProviderVoyage: "output_dimension", ProviderMistral: "output_dimension"}
	for _, p := range allProviders {
		f := newFake(t, p.provider, p.model, 16)
		cfg := f.config()
		cfg.Dimensions, cfg.OutputDimensions = 0, 16
		if _, err := f.embedder(cfg).Embed(bg(), []string{"a"}); err != nil {
			t.Fatalf("%s: %v", p.provider, err)
		}
		req := f.requests[0]
		var got any
		if p.provider == ProviderGemini {
			got = req["requests"].([]any)[0].(map[string]any)["outputDimensionality"]
		} else {
			got = req[field[p.provider]]
		}
		if got != float64(16) {
			t.Errorf("%s: requested dimensions %v, want 16 (request %v)", p.provider, got, req)
		}
	}
}

func TestMaxBatchBytesSplits(t *testing.T) {
	t.Parallel()
	f := newFake(t, ProviderOpenAI, "text-embedding-3-small", 4)
	cfg := f.config()
	cfg.MaxBatchBytes = 100
	in := []string{strings.Repeat("a", 60), strings.Repeat("b", 60), strings.Repeat("c", 30), strings.Repeat("d", 150)}
	if _, err := f.embedder(cfg).Embed(bg(), in); err != nil {
		t.Fatal(err)
	}
	want := [][]string{{in[0]}, {in[1], in[2]}, {in[3]}}
	if !reflect.DeepEqual(f.batches, want) {
		t.Errorf("batches %v, want %v", f.batches, want)
	}
}

// A 429 with Retry-After, in each provider's error format, is waited out.
func TestRateLimitRetryAfter(t *testing.T) {
	t.Parallel()
	for _, p := range allProviders {
		f := newFake(t, p.provider, p.model, 4)
		f.fault = func(n int, _ []string) *reply {
			if n == 1 {
				return &reply{status: 429, header: map[string]string{"Retry-After": "7"}, body: errorBody(p.provider, "rate_limit_exceeded", "slow down")}
			}
			if n == 2 {
				return &reply{status: 503, header: map[string]string{"Retry-After": time.Now().Add(90 * time.Second).UTC().Format(httpTimeFormat)}, body: `{"error":"overloaded"}`}
			}
			return nil
		}
		e := f.embedder(f.config())
		var waits []time.Duration
		e.sleep = func(_ context.Context, d time.Duration) error { waits = append(waits, d); return nil }
		if _, err := e.Embed(bg(), []string{"x"}); err != nil {
			t.Fatalf("%s: %v", p.provider, err)
		}
		if len(waits) != 2 || waits[0] != 7*time.Second || waits[1] < 85*time.Second || waits[1] > 90*time.Second {
			t.Errorf("%s: waits %v, want [7s ~90s] from Retry-After seconds and HTTP-date", p.provider, waits)
		}
		if f.count() != 3 {
			t.Errorf("%s: %d requests, want 3", p.provider, f.count())
		}
	}
}

const httpTimeFormat = "Mon, 02 Jan 2006 15:04:05 GMT"

// The real clock: Retry-After: 1 makes the client wait at least a second.
func TestRetryAfterRealWait(t *testing.T) {
	t.Parallel()
	f := newFake(t, ProviderOpenAI, "text-embedding-3-small", 4)
	f.fault = func(n int, _ []string) *reply {
		if n == 1 {
			return &reply{status: 429, header: map[string]string{"Retry-After": "1"}, body: errorBody(ProviderOpenAI, "rate_limit_exceeded", "Rate limit reached")}
		}
		return nil
	}
	start := time.Now()
	if _, err := f.embedder(f.config()).Embed(bg(), []string{"x"}); err != nil {
		t.Fatal(err)
	}
	if el := time.Since(start); el < time.Second {
		t.Errorf("retried after %s, want >= 1s", el)
	}
}

func TestRetryPolicy(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name      string
		fault     func(n int) *reply
		timeout   time.Duration
		wantErr   error
		wantCalls int
	}{
		{"500 until give up", func(int) *reply { return &reply{status: 500, body: `{"error":{"message":"boom"}}`} }, 0, nil, 5},
		{"502 then ok", func(n int) *reply {
			if n == 1 {
				return &reply{status: 502, body: "<html>bad gateway</html>"}
			}
			return nil
		}, 0, nil, 2},
		{"400 not retried", func(int) *reply {
			return &reply{status: 400, body: errorBody(ProviderOpenAI, "invalid_request_error", "bad input")}
		}, 0, nil, 1},
		{"401 not retried", func(int) *reply {
			return &reply{status: 401, body: errorBody(ProviderOpenAI, "invalid_api_key", "Incorrect API key provided: "+testKey)}
		}, 0, ErrUnauthorized, 1},
		{"429 exhausts attempts", func(int) *reply { return &reply{status: 429, body: `{}`} }, 0, ErrRateLimited, 5},
		{"Retry-After beyond the cap fails at once", func(int) *reply {
			return &reply{status: 429, header: map[string]string{"Retry-After": "3600"}, body: `{}`}
		}, 0, ErrRateLimited, 1},
		{"slow answer times out then succeeds", func(n int) *reply {
			if n == 1 {
				return &reply{status: 200, body: `{}`, delay: 800 * time.Millisecond}
			}
			return nil
		}, 250 * time.Millisecond, nil, 2},
		{"malformed JSON not retried", func(int) *reply { return &reply{status: 200, body: `{"data":[{"index":0,"embedding":[0.1,`} }, 0, ErrMalformedResponse, 1},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			f := newFake(t, ProviderOpenAI, "text-embedding-3-small", 4)
			f.fault = func(n int, _ []string) *reply { return c.fault(n) }
			cfg := f.config()
			if c.timeout > 0 {
				cfg.Timeout = c.timeout
			}
			_, err := f.embedder(cfg).Embed(bg(), []string{"x"})
			if f.count() != c.wantCalls {
				t.Errorf("%d requests, want %d (err %v)", f.count(), c.wantCalls, err)
			}
			if c.wantErr != nil && !errors.Is(err, c.wantErr) {
				t.Errorf("err %v, want %v", err, c.wantErr)
			}
			if c.fault(c.wantCalls) == nil && err != nil {
				t.Errorf("want success after retry, got %v", err)
			}
			if err != nil && strings.Contains(err.Error(), testKey) {
				t.Errorf("error reveals the key: %v", err)
			}
		})
	}
}

func TestAPIErrorMessages(t *testing.T) {
	t.Parallel()
	for _, p := range allProviders {
		f := newFake(t, p.provider, p.model, 4)
		f.fault = func(int, []string) *reply {
			return &reply{status: 400, body: errorBody(p.provider, "invalid_request_error", "input too long\x1b[31m; your key "+testKey+" is fine")}
		}
		_, err := f.embedder(f.config()).Embed(bg(), []string{"x"})
		var ae *APIError
		if !errors.As(err, &ae) || ae.Status != 400 || ae.Provider != p.provider {
			t.Fatalf("%s: got %v, want *APIError 400", p.provider, err)
		}
		if !strings.Contains(ae.Message, "input too long") || strings.Contains(err.Error(), testKey) || strings.Contains(ae.Message, "\x1b") {
			t.Errorf("%s: message %q", p.provider, ae.Message)
		}
	}
}

// Answers that are well-formed HTTP but wrong must never reach the caller as vectors.
func TestMalformedAnswers(t *testing.T) {
	t.Parallel()
	type answerFn func(vecs [][]float32) any
	data := func(items ...map[string]any) any { return map[string]any{"object": "list", "data": items} }
	cases := []struct {
		name     string
		provider string
		body     string   // raw body, if set
		answer   answerFn // else a rewritten answer
		want     error
	}{
		{"not JSON", ProviderOpenAI, "<html>oops</html>", nil, ErrMalformedResponse},
		{"truncated", ProviderGemini, `{"embeddings":[{"values":[0.1,0.2`, nil, ErrMalformedResponse},
		{"trailing garbage", ProviderVoyage, `{"data":[]} {"data":[]}`, nil, ErrMalformedResponse},
		{"no data list", ProviderMistral, `{"object":"list"}`, nil, ErrMalformedResponse},
		{"no embeddings list", ProviderGemini, `{"embedding":{"values":[1,2,3,4]}}`, nil, ErrMalformedResponse},
		{"string vector (base64)", ProviderOpenAI, `{"data":[{"index":0,"embedding":"AAAA"}]}`, nil, ErrMalformedResponse},
		{"NaN literal", ProviderOpenAI, `{"data":[{"index":0,"embedding":[NaN,0,0,0]},{"index":1,"embedding":[0,0,0,0]}]}`, nil, ErrNonFinite},
		{"Infinity literal", ProviderGemini, `{"embeddings":[{"values":[Infinity,0,0,0]},{"values":[0,0,0,0]}]}`, nil, ErrNonFinite},
		{"beyond float32", ProviderVoyage, `{"data":[{"index":0,"embedding":[1e39,0,0,0]},{"index":1,"embedding":[0,0,0,0]}]}`, nil, ErrNonFinite},
		{"too few vectors", ProviderOpenAI, "", func(v [][]float32) any { return dataAnswer(ProviderOpenAI, "m", v[:1], nil) }, ErrWrongCount},
		{"too many vectors", ProviderGemini, `{"embeddings":[{"values":[0,0,0,0]},{"values":[0,0,0,0]},{"values":[0,0,0,0]}]}`, nil, ErrWrongCount},
		{"wrong dimensions", ProviderMistral, "", func(v [][]float32) any {
			return data(map[string]any{"index": 0, "embedding": v[0]}, map[string]any{"index": 1, "embedding": v[1][:3]})
		}, ErrDimensions},
		{"duplicate index", ProviderOpenAI, "", func(v [][]float32) any {
			return data(map[string]any{"index": 0, "embedding": v[0]}, map[string]any{"index": 0, "embedding": v[1]})
		}, ErrMalformedResponse},
		{"index out of range", ProviderVoyage, "", func(v [][]float32) any {
			return data(map[string]any{"index": 0, "embedding": v[0]}, map[string]any{"index": 5, "embedding": v[1]})
		}, ErrMalformedResponse},
		{"some indices missing", ProviderOpenAI, "", func(v [][]float32) any {
			return data(map[string]any{"index": 1, "embedding": v[0]}, map[string]any{"embedding": v[1]})
		}, ErrMalformedResponse},
		{"null embedding", ProviderMistral, `{"data":[{"index":0,"embedding":null},{"index":1,"embedding":[0,0,0,0]}]}`, nil, ErrMalformedResponse},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			model := map[string]string{ProviderOpenAI: "text-embedding-3-small", ProviderGemini: "text-embedding-004", ProviderVoyage: "voyage-3", ProviderMistral: "mistral-embed"}[c.provider]
			f := newFake(t, c.provider, model, 4)
			if c.body != "" {
				f.fault = func(int, []string) *reply { return &reply{status: 200, body: c.body} }
			} else {
				f.answer = func(_ int, v [][]float32) any { return c.answer(v) }
			}
			got, err := f.embedder(f.config()).Embed(bg(), []string{"a", "b"})
			if !errors.Is(err, c.want) || got != nil {
				t.Errorf("got %v, %v; want %v", got, err, c.want)
			}
			if f.count() != 1 {
				t.Errorf("%d requests; a bad answer must not be retried", f.count())
			}
		})
	}
}

// Items answered out of order are put back by index; without indices the order is positional.
func TestIndexOrdering(t *testing.T) {
	t.Parallel()
	f := newFake(t, ProviderOpenAI, "nomic-embed-text", 4)
	f.answer = func(n int, v [][]float32) any {
		if n == 1 {
			return dataAnswer(ProviderOpenAI, "m", v, []int{2, 0, 1})
		}
		items := make([]map[string]any, len(v))
		for i := range v {
			items[i] = map[string]any{"embedding": v[i]}
		}
		return map[string]any{"data": items}
	}
	e := f.embedder(f.config())
	in := []string{"a", "b", "c"}
	for range 2 {
		got, err := e.Embed(bg(), in)
		if err != nil {
			t.Fatal(err)
		}
		for i := range in {
			if !reflect.DeepEqual(got[i], vecFor(in[i], 4)) {
				t.Fatalf("vector %d out of place", i)
			}
		}
	}
}

func TestBadInputSendsNothing(t *testing.T) {
	t.Parallel()
	f := newFake(t, ProviderOpenAI, "text-embedding-3-small", 4)
	e := f.embedder(f.config())
	for name, in := range map[string][]string{
		"empty text":   {"ok", ""},
		"invalid UTF8": {"ok", "bad \xff\xfe"},
		"10 MB text":   {strings.Repeat("x", 10<<20)},
	} {
		if _, err := e.Embed(bg(), in); !errors.Is(err, ErrInvalidInput) {
			t.Errorf("%s: got %v, want ErrInvalidInput", name, err)
		}
	}
	if got, err := e.Embed(bg(), nil); err != nil || len(got) != 0 {
		t.Errorf("no texts: %v, %v", got, err)
	}
	if f.count() != 0 {
		t.Errorf("%d requests sent for bad input", f.count())
	}
}

// Every provider URL goes through the SSRF guard, at construction and at dial.
func TestProviderURLGuarded(t *testing.T) {
	t.Parallel()
	strict, err := netguard.New(netguard.Config{})
	if err != nil {
		t.Fatal(err)
	}
	for _, u := range []string{
		"http://169.254.169.254/v1", "http://10.0.0.1/v1", "http://127.0.0.1:11434/v1", "http://localhost:11434/v1",
		"http://[::ffff:a9fe:a9fe]/v1", "http://0x7f000001/v1", "http://metadata.google.internal/v1", "file:///etc/passwd",
	} {
		for _, p := range allProviders {
			_, err := New(Config{Provider: p.provider, Model: p.model, BaseURL: u}, strict)
			if !errors.Is(err, netguard.ErrBlocked) {
				t.Errorf("%s at %s: got %v, want netguard.ErrBlocked", p.provider, u, err)
			}
		}
	}
	if _, err := New(Config{Provider: ProviderOpenAI, Model: "text-embedding-3-small"}, nil); !errors.Is(err, ErrConfig) {
		t.Errorf("nil guard: %v", err)
	}
	for _, cfg := range []Config{
		{Provider: "cohere", Model: "x"},
		{Provider: ProviderOpenAI},
		{Provider: ProviderOpenAI, Model: "my-own-model"}, // dimensions unknown
		{Provider: ProviderOpenAI, Model: "text-embedding-3-small", Dimensions: 256, OutputDimensions: 512},
	} {
		if _, err := New(cfg, strict); !errors.Is(err, ErrConfig) {
			t.Errorf("config %+v: got %v, want ErrConfig", cfg, err)
		}
	}
	// A provider that redirects to the metadata service is refused, not retried.
	f := newFake(t, ProviderOpenAI, "text-embedding-3-small", 4)
	f.fault = func(int, []string) *reply {
		return &reply{status: 307, header: map[string]string{"Location": "http://169.254.169.254/latest/meta-data/"}}
	}
	if _, err := f.embedder(f.config()).Embed(bg(), []string{"x"}); !errors.Is(err, netguard.ErrBlocked) || f.count() != 1 {
		t.Errorf("redirect to metadata: %v after %d requests", err, f.count())
	}
}

func TestConcurrentEmbed(t *testing.T) {
	t.Parallel()
	f := newFake(t, ProviderVoyage, "voyage-3-lite", 512)
	e := f.embedder(f.config())
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			in := []string{fmt.Sprintf("goroutine %d", g)}
			v, err := e.Embed(bg(), in)
			if err == nil && !reflect.DeepEqual(v[0], vecFor(in[0], 512)) {
				err = fmt.Errorf("goroutine %d got another's vector", g)
			}
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
}
