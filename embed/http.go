package embed

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"math/rand/v2"
	"net/http"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/bulkhead-dev/bulkhead/internal/retryafter"
	"github.com/bulkhead-dev/bulkhead/netguard"
)

// wire is what differs between providers: where to post, how to
// authenticate, the request body and how to read vectors from the answer.
type wire interface {
	endpoint(cfg Config) string
	body(cfg Config, texts []string) any
	auth(h http.Header, key APIKey)
	// parse returns the vectors in input order; count and length are checked by the caller.
	parse(body []byte) ([][]float64, error)
}

// httpEmbedder is the Embedder of every provider.
type httpEmbedder struct {
	cfg    Config
	wire   wire
	url    string
	client *http.Client
	log    *slog.Logger
	sleep  func(ctx context.Context, d time.Duration) error
}

func (e *httpEmbedder) Dimensions() int { return e.cfg.Dimensions }
func (e *httpEmbedder) Name() string    { return e.cfg.Provider }
func (e *httpEmbedder) Model() string   { return e.cfg.Model }

// cacheScope separates cache entries of the same model on different servers
// or input types.
func (e *httpEmbedder) cacheScope() string { return e.url + "|" + e.cfg.InputType }

// Embed validates the texts, then embeds them batch by batch.
func (e *httpEmbedder) Embed(ctx context.Context, texts []string) ([][]float32, error) {
	if err := validateTexts(texts, e.cfg.MaxTextBytes); err != nil {
		return nil, err
	}
	out := make([][]float32, 0, len(texts))
	for start := 0; start < len(texts); {
		end, size := start, 0
		for end < len(texts) && end-start < e.cfg.BatchSize && (end == start || size+len(texts[end]) <= e.cfg.MaxBatchBytes) {
			size += len(texts[end])
			end++
		}
		vecs, err := e.embedBatch(ctx, texts[start:end])
		if err != nil {
			return nil, fmt.Errorf("embed %s %s: texts %d..%d: %w", e.cfg.Provider, e.cfg.Model, start, end-1, err)
		}
		out = append(out, vecs...)
		start = end
	}
	return out, nil
}

func validateTexts(texts []string, maxBytes int) error {
	for i, t := range texts {
		switch {
		case t == "":
			return fmt.Errorf("%w: text %d is empty", ErrInvalidInput, i)
		case len(t) > maxBytes:
			return fmt.Errorf("%w: text %d is %d bytes; the limit is %d", ErrInvalidInput, i, len(t), maxBytes)
		case !utf8.ValidString(t):
			return fmt.Errorf("%w: text %d is not valid UTF-8", ErrInvalidInput, i)
		}
	}
	return nil
}

func (e *httpEmbedder) embedBatch(ctx context.Context, texts []string) ([][]float32, error) {
	body, err := json.Marshal(e.wire.body(e.cfg, texts))
	if err != nil {
		return nil, fmt.Errorf("encode request: %w", err)
	}
	// An answer holds about 20 bytes per component; allow generous slack.
	limit := int64(1<<20) + int64(len(texts))*int64(e.cfg.Dimensions)*64
	resp, err := e.post(ctx, body, limit)
	if err != nil {
		return nil, err
	}
	raw, err := e.wire.parse(resp)
	if err != nil {
		return nil, err
	}
	return checkVectors(raw, len(texts), e.cfg.Dimensions)
}

// checkVectors enforces count, length and finiteness, converting to float32.
func checkVectors(raw [][]float64, n, dims int) ([][]float32, error) {
	if len(raw) != n {
		return nil, fmt.Errorf("%w: got %d vectors for %d texts", ErrWrongCount, len(raw), n)
	}
	out := make([][]float32, n)
	for i, v := range raw {
		if len(v) != dims {
			return nil, fmt.Errorf("%w: vector %d has %d dimensions, want %d", ErrDimensions, i, len(v), dims)
		}
		f := make([]float32, dims)
		for j, x := range v {
			if math.IsNaN(x) || math.IsInf(x, 0) || math.Abs(x) > math.MaxFloat32 {
				return nil, fmt.Errorf("%w: vector %d component %d is %v", ErrNonFinite, i, j, x)
			}
			f[j] = float32(x)
		}
		out[i] = f
	}
	return out, nil
}

// post sends body, retrying what may succeed later, and returns a 2xx body.
func (e *httpEmbedder) post(ctx context.Context, body []byte, limit int64) ([]byte, error) {
	r := e.cfg.Retry
	for attempt := 1; ; attempt++ {
		data, err := e.attempt(ctx, body, limit)
		if err == nil {
			return data, nil
		}
		wait, retry := e.retryable(ctx, err, attempt)
		if !retry || attempt >= r.MaxAttempts {
			if retry {
				return nil, fmt.Errorf("giving up after %d attempts: %w", attempt, err)
			}
			return nil, err
		}
		if dl, ok := ctx.Deadline(); ok && time.Until(dl) < wait {
			return nil, fmt.Errorf("no time left to wait %s before retrying: %w", wait, err)
		}
		e.log.WarnContext(ctx, "embedding request retried", "attempt", attempt, "wait", wait, "err", err)
		if err := e.sleep(ctx, wait); err != nil {
			return nil, err
		}
	}
}

// retryable says whether err may pass on a later attempt and how long to wait.
func (e *httpEmbedder) retryable(ctx context.Context, err error, attempt int) (time.Duration, bool) {
	r := e.cfg.Retry
	if ctx.Err() != nil || errors.Is(err, netguard.ErrBlocked) || errors.Is(err, netguard.ErrTooManyRedirects) {
		return 0, false
	}
	var apiErr *APIError
	if errors.As(err, &apiErr) {
		switch apiErr.Status {
		case http.StatusRequestTimeout, http.StatusTooManyRequests, http.StatusInternalServerError,
			http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout, 529:
		default:
			return 0, false
		}
		if apiErr.RetryAfter > 0 {
			if apiErr.RetryAfter > r.MaxRetryAfter {
				return 0, false
			}
			return apiErr.RetryAfter, true
		}
	} else if !isTransportError(err) {
		return 0, false // malformed answers are not retried: they are a server bug, not a blip
	}
	d := r.BaseDelay << (attempt - 1)
	if d > r.MaxDelay || d <= 0 {
		d = r.MaxDelay
	}
	// Jitter in [d/2, d): spreads clients that failed together.
	return d/2 + rand.N(d/2+1), true
}

// transportError marks errors from the HTTP exchange itself (connect, timeout, reset).
type transportError struct{ err error }

func (t *transportError) Error() string { return t.err.Error() }
func (t *transportError) Unwrap() error { return t.err }

func isTransportError(err error) bool {
	var t *transportError
	return errors.As(err, &t)
}

// attempt makes one request under the per-attempt timeout.
func (e *httpEmbedder) attempt(ctx context.Context, body []byte, limit int64) ([]byte, error) {
	actx, cancel := context.WithTimeout(ctx, e.cfg.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(actx, http.MethodPost, e.url, bytes.NewReader(body))
	if err != nil {
		return nil, fmt.Errorf("build request: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	e.wire.auth(req.Header, e.cfg.APIKey)
	resp, err := e.client.Do(req)
	if err != nil {
		if errors.Is(err, netguard.ErrBlocked) || errors.Is(err, netguard.ErrTooManyRedirects) {
			return nil, err
		}
		return nil, &transportError{fmt.Errorf("post: %w", err)}
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, limit+1))
	if err != nil {
		return nil, &transportError{fmt.Errorf("read response: %w", err)}
	}
	if resp.StatusCode/100 != 2 {
		return nil, e.apiError(resp, data)
	}
	if int64(len(data)) > limit {
		return nil, fmt.Errorf("%w: response larger than %d bytes", ErrMalformedResponse, limit)
	}
	return data, nil
}

func (e *httpEmbedder) apiError(resp *http.Response, body []byte) *APIError {
	code, msg := errorFields(body)
	return &APIError{
		Provider:   e.cfg.Provider,
		Model:      e.cfg.Model,
		Status:     resp.StatusCode,
		Code:       sanitize(code, e.cfg.APIKey, 80),
		Message:    sanitize(msg, e.cfg.APIKey, 300),
		RetryAfter: retryafter.Parse(resp.Header, time.Now()),
	}
}

// errorFields pulls a code and message out of the error bodies providers
// send: {"error":{"message","type","code","status"}}, {"error":"..."},
// {"message","type","code"} (Mistral), {"detail":"..."} (Voyage).
func errorFields(body []byte) (code, msg string) {
	var v struct {
		Error   json.RawMessage `json:"error"`
		Message string          `json:"message"`
		Type    string          `json:"type"`
		Code    json.RawMessage `json:"code"`
		Detail  json.RawMessage `json:"detail"`
	}
	if json.Unmarshal(body, &v) != nil {
		return "", strings.TrimSpace(string(body))
	}
	var nested struct {
		Message string          `json:"message"`
		Type    string          `json:"type"`
		Status  string          `json:"status"`
		Code    json.RawMessage `json:"code"`
	}
	var flat string
	switch {
	case json.Unmarshal(v.Error, &nested) == nil && nested.Message != "":
		return firstNonEmpty(nested.Status, rawString(nested.Code), nested.Type), nested.Message
	case json.Unmarshal(v.Error, &flat) == nil && flat != "":
		return "", flat
	case v.Message != "":
		return firstNonEmpty(rawString(v.Code), v.Type), v.Message
	case len(v.Detail) > 0:
		if json.Unmarshal(v.Detail, &flat) == nil {
			return "", flat
		}
		return "", string(v.Detail)
	}
	return "", ""
}

func rawString(r json.RawMessage) string {
	var s string
	if json.Unmarshal(r, &s) == nil {
		return s
	}
	var n json.Number
	if json.Unmarshal(r, &n) == nil {
		return n.String()
	}
	return ""
}

func firstNonEmpty(ss ...string) string {
	for _, s := range ss {
		if s != "" {
			return s
		}
	}
	return ""
}

// sanitize masks the key, drops control characters and truncates to max bytes.
func sanitize(s string, key APIKey, max int) string {
	if k := key.Reveal(); len(k) >= 4 {
		s = strings.ReplaceAll(s, k, redacted)
	}
	s = strings.Map(func(r rune) rune {
		if r == utf8.RuneError || unicode.IsControl(r) {
			return ' '
		}
		return r
	}, s)
	s = strings.TrimSpace(s)
	if len(s) > max {
		cut := max
		for cut > 0 && !utf8.RuneStart(s[cut]) {
			cut--
		}
		s = s[:cut] + "…"
	}
	return s
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// bearer sets Authorization: Bearer when a key is present (local servers need none).
func bearer(h http.Header, key APIKey) {
	if !key.Empty() {
		h.Set("Authorization", "Bearer "+key.Reveal())
	}
}

// decodeStrict decodes a whole JSON document into v, naming the provider on failure.
func decodeStrict(body []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(body))
	if err := dec.Decode(v); err != nil {
		if bytes.Contains(body, []byte("NaN")) || bytes.Contains(body, []byte("Infinity")) {
			return fmt.Errorf("%w (%w: NaN or Infinity literal): %v", ErrMalformedResponse, ErrNonFinite, err)
		}
		return fmt.Errorf("%w: %v", ErrMalformedResponse, err)
	}
	if dec.More() {
		return fmt.Errorf("%w: trailing data after JSON", ErrMalformedResponse)
	}
	return nil
}
