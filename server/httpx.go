package server

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/bulkhead-dev/bulkhead/credentials"
	"github.com/bulkhead-dev/bulkhead/workspace"
)

// APIError is the body of every error response:
// {"error": {"code": "...", "message": "...", "request_id": "..."}}.
type APIError struct {
	Status    int    `json:"-"`
	Code      string `json:"code"`
	Message   string `json:"message"`
	RequestID string `json:"request_id,omitempty"`
}

func (e *APIError) Error() string { return e.Message }

// Error codes. The Go client maps them back to the sentinels they came from.
const (
	CodeBadRequest    = "bad_request"
	CodeInvalidID     = "invalid_id"
	CodeInvalidConfig = "invalid_config"
	CodeInvalidCred   = "invalid_credential"
	CodeUnauthorized  = "unauthorized"
	CodeForbidden     = "forbidden"
	CodeNotFound      = "not_found"
	CodeCredNotFound  = "credential_not_found"
	CodeExists        = "exists"
	CodeInUse         = "in_use"
	CodeTooLarge      = "too_large"
	CodeRateLimited   = "rate_limited"
	CodeLocked        = "locked"
	CodeInternal      = "internal"
	CodeMethod        = "method_not_allowed"
)

// apiErr builds a client error whose message is safe to show.
func apiErr(status int, code, format string, args ...any) *APIError {
	return &APIError{Status: status, Code: code, Message: fmt.Sprintf(format, args...)}
}

// toAPIError maps errors to statuses. Only known, user-caused errors keep
// their text (they name what the caller sent, never host paths or other
// tenants); everything else becomes a 500 that only carries the request id.
func toAPIError(err error) *APIError {
	var ae *APIError
	if errors.As(err, &ae) {
		return ae
	}
	msg := err.Error()
	switch {
	case errors.Is(err, workspace.ErrInvalidID):
		return apiErr(400, CodeInvalidID, "%s", msg)
	case errors.Is(err, workspace.ErrInvalidConfig):
		return apiErr(400, CodeInvalidConfig, "%s", msg)
	case errors.Is(err, workspace.ErrInvalidCredential):
		return apiErr(400, CodeInvalidCred, "%s", msg)
	case errors.Is(err, workspace.ErrNotFound):
		return apiErr(404, CodeNotFound, "%s", msg)
	case errors.Is(err, workspace.ErrCredentialNotFound):
		return apiErr(404, CodeCredNotFound, "%s", msg)
	case errors.Is(err, ErrTokenNotFound):
		return apiErr(404, CodeNotFound, "%s", msg)
	case errors.Is(err, workspace.ErrExists):
		return apiErr(409, CodeExists, "%s", msg)
	case errors.Is(err, workspace.ErrInUse):
		return apiErr(409, CodeInUse, "%s", msg)
	case errors.Is(err, credentials.ErrNoPassphrase), errors.Is(err, credentials.ErrWrongPassphrase):
		return apiErr(503, CodeLocked, "%s", msg)
	}
	return &APIError{Status: 500, Code: CodeInternal, Message: "internal error; see the server log for this request id"}
}

type ctxKey int

const (
	keyRequestID ctxKey = iota
	keyPrincipal
)

func requestID(ctx context.Context) string {
	id, _ := ctx.Value(keyRequestID).(string)
	return id
}

func principal(ctx context.Context) *Token {
	t, _ := ctx.Value(keyPrincipal).(*Token)
	return t
}

func newRequestID() string {
	b := make([]byte, 8)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// writeError writes err as JSON and logs internal errors with the request id.
func (s *Server) writeError(w http.ResponseWriter, r *http.Request, err error) {
	ae := toAPIError(err)
	body := *ae
	body.RequestID = requestID(r.Context())
	if ae.Status >= 500 {
		s.log.Error("request failed", "request_id", body.RequestID, "method", r.Method, "path", r.URL.Path, "err", err)
	}
	if ae.Status == 429 || ae.Status == 503 {
		if w.Header().Get("Retry-After") == "" {
			w.Header().Set("Retry-After", "1")
		}
	}
	writeJSON(w, ae.Status, map[string]any{"error": body})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(v)
}

// decodeJSON reads a JSON body strictly: size-capped, unknown fields and
// trailing data refused, type errors naming the field.
func decodeJSON(w http.ResponseWriter, r *http.Request, limit int64, v any) error {
	if ct := r.Header.Get("Content-Type"); ct != "" && !strings.HasPrefix(ct, "application/json") {
		return apiErr(415, CodeBadRequest, "Content-Type %q: send application/json", ct)
	}
	body := http.MaxBytesReader(w, r.Body, limit)
	dec := json.NewDecoder(body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return decodeError(err, limit)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return apiErr(400, CodeBadRequest, "trailing data after the JSON body")
	}
	return nil
}

func decodeError(err error, limit int64) error {
	var mbe *http.MaxBytesError
	var te *json.UnmarshalTypeError
	var se *json.SyntaxError
	switch {
	case errors.As(err, &mbe):
		return apiErr(413, CodeTooLarge, "request body larger than %d bytes", limit)
	case errors.As(err, &te):
		return apiErr(400, CodeBadRequest, "field %q: want %s, got a JSON %s", te.Field, te.Type, te.Value)
	case errors.As(err, &se):
		return apiErr(400, CodeBadRequest, "malformed JSON at byte %d: %v", se.Offset, se)
	case errors.Is(err, io.EOF):
		return apiErr(400, CodeBadRequest, "empty body: send a JSON object")
	case errors.Is(err, io.ErrUnexpectedEOF):
		return apiErr(400, CodeBadRequest, "truncated JSON body")
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		return apiErr(400, CodeBadRequest, "unknown field %s", strings.TrimPrefix(err.Error(), "json: unknown field "))
	}
	var ce *workspace.ConfigError
	if errors.As(err, &ce) {
		return err
	}
	return apiErr(400, CodeBadRequest, "bad JSON body: %v", err)
}

// statusWriter records the status for logs and metrics and passes Flush on.
type statusWriter struct {
	http.ResponseWriter
	status int
	bytes  int64
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = 200
	}
	n, err := w.ResponseWriter.Write(b)
	w.bytes += int64(n)
	return n, err
}

func (w *statusWriter) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// observe wraps a route with request ids, panic recovery, logging and metrics.
func (s *Server) observe(route string, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := newRequestID()
		w.Header().Set("X-Request-Id", id)
		ctx := context.WithValue(r.Context(), keyRequestID, id)
		r = r.WithContext(ctx)
		sw := &statusWriter{ResponseWriter: w}
		start := time.Now()
		defer func() {
			if p := recover(); p != nil {
				if p == http.ErrAbortHandler {
					panic(p)
				}
				s.log.Error("handler panic", "request_id", id, "route", route, "panic", fmt.Sprint(p))
				if sw.status == 0 {
					s.writeError(sw, r, fmt.Errorf("panic: %v", p))
				}
			}
			status := sw.status
			if status == 0 {
				status = 200
			}
			d := time.Since(start)
			s.metrics.requests.Inc(route, fmt.Sprint(status))
			s.metrics.latency.Observe(d.Seconds(), route)
			s.log.LogAttrs(ctx, slog.LevelDebug, "request", slog.String("request_id", id), slog.String("method", r.Method),
				slog.String("route", route), slog.Int("status", status), slog.Duration("took", d))
		}()
		h.ServeHTTP(sw, r)
	})
}
