package embed

import (
	"errors"
	"fmt"
	"net/http"
	"time"
)

var (
	// ErrInvalidInput: the texts cannot be sent (empty, not UTF-8, too large).
	ErrInvalidInput = errors.New("embed: invalid input")
	// ErrConfig: the Config cannot make an embedder.
	ErrConfig = errors.New("embed: invalid config")
	// ErrMalformedResponse: the provider's answer is not the JSON it should be.
	ErrMalformedResponse = errors.New("embed: malformed response")
	// ErrWrongCount: the answer has a different number of vectors than texts sent.
	ErrWrongCount = errors.New("embed: wrong number of vectors")
	// ErrDimensions: a vector has a different length than Dimensions().
	ErrDimensions = errors.New("embed: wrong vector dimensions")
	// ErrNonFinite: a vector holds NaN or ±Inf, or a value beyond float32.
	ErrNonFinite = errors.New("embed: non-finite vector component")
	// ErrRateLimited matches an *APIError with status 429.
	ErrRateLimited = errors.New("embed: rate limited")
	// ErrUnauthorized matches an *APIError with status 401 or 403.
	ErrUnauthorized = errors.New("embed: unauthorized")
)

// APIError is a non-2xx answer from a provider. Message is the provider's
// own error text, truncated and with the API key masked. Embed wraps it with
// the provider, model and texts concerned.
type APIError struct {
	Provider   string
	Model      string
	Status     int
	Code       string        // provider error code or type, if any
	Message    string        // provider error message, if any
	RetryAfter time.Duration // from the Retry-After header, if any
}

func (e *APIError) Error() string {
	// Provider and model are named by the wrapping error from Embed.
	s := fmt.Sprintf("HTTP %d %s", e.Status, http.StatusText(e.Status))
	if e.Code != "" {
		s += " (" + e.Code + ")"
	}
	if e.Message != "" {
		s += ": " + e.Message
	}
	if e.RetryAfter > 0 {
		s += fmt.Sprintf(" [retry after %s]", e.RetryAfter)
	}
	return s
}

// Is matches ErrRateLimited and ErrUnauthorized by status.
func (e *APIError) Is(target error) bool {
	switch target {
	case ErrRateLimited:
		return e.Status == http.StatusTooManyRequests
	case ErrUnauthorized:
		return e.Status == http.StatusUnauthorized || e.Status == http.StatusForbidden
	}
	return false
}
