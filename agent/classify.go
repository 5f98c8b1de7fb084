package agent

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/bulkhead-dev/bulkhead/netguard"
)

// Class is what kind of failure an error is, which decides what the chain
// does next.
type Class string

const (
	ClassAuth            Class = "auth"             // key rejected (401): rotate the key
	ClassAuthPermanent   Class = "auth_permanent"   // key lacks permission or is revoked (403): drop the key
	ClassBilling         Class = "billing"          // out of credit / quota: next candidate, long cooldown
	ClassRateLimit       Class = "rate_limit"       // 429: rotate key, wait Retry-After
	ClassOverloaded      Class = "overloaded"       // 529 / 503: retry with backoff, then fall back
	ClassServerError     Class = "server_error"     // other 5xx, malformed stream: retry, then fall back
	ClassTimeout         Class = "timeout"          // transport failure, idle timeout, 408/504: retry, then fall back
	ClassContextOverflow Class = "context_overflow" // prompt too long: the caller compacts
	ClassModelNotFound   Class = "model_not_found"  // 404 / unknown model: next candidate
	ClassFormat          Class = "format"           // request rejected as malformed: not retried
	ClassBlocked         Class = "blocked"          // the SSRF guard refused the destination: not retried, falls back
	ClassCanceled        Class = "canceled"         // the caller's context ended
	ClassUnknown         Class = "unknown"
)

// Retryable reports whether the same candidate may be tried again.
func (c Class) Retryable() bool {
	switch c {
	case ClassRateLimit, ClassOverloaded, ClassServerError, ClassTimeout:
		return true
	}
	return false
}

// FallsBack reports whether the chain moves on to the next candidate.
func (c Class) FallsBack() bool {
	switch c {
	case ClassFormat, ClassContextOverflow, ClassCanceled:
		return false
	}
	return true
}

var (
	overflowRe = sync.OnceValue(func() *regexp.Regexp {
		return regexp.MustCompile(`(?i)prompt is too long|maximum context length|context[_ ]length[_ ]exceeded|context window|exceeds? (the )?(model'?s? )?context|input length and .max_tokens. exceed context limit|too many tokens|reduce the length of the messages|request too large`)
	})
	billingRe = sync.OnceValue(func() *regexp.Regexp {
		return regexp.MustCompile(`(?i)credit balance is too low|exceeded your current quota|insufficient[_ ]quota|billing|payment required|spend limit|insufficient (credits|balance|funds)`)
	})
	permAuthRe = sync.OnceValue(func() *regexp.Regexp {
		return regexp.MustCompile(`(?i)revoked|deactivated|disabled|insufficient permissions|does not have permission|not allowed to|organization has been|account .*suspended`)
	})
	modelRe = sync.OnceValue(func() *regexp.Regexp {
		return regexp.MustCompile(`(?i)model.*(does not exist|not found|not supported|unknown)|(unknown|invalid|no such) model|^model: `)
	})
	overloadRe = sync.OnceValue(func() *regexp.Regexp {
		return regexp.MustCompile(`(?i)overloaded|capacity|temporarily unavailable|service unavailable|not ready yet`)
	})
	rateRe = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`(?i)rate limit|too many requests|rate_limit`) })
)

// Classify sorts err into a Class from the HTTP status, the provider's error
// type and code, and (because providers disagree on status codes) the message
// text. A nil error is ClassUnknown.
func Classify(err error) Class {
	if err == nil {
		return ClassUnknown
	}
	if errors.Is(err, context.Canceled) {
		return ClassCanceled
	}
	var ce *ChainError
	if errors.As(err, &ce) {
		return ce.Class()
	}
	if errors.Is(err, netguard.ErrBlocked) {
		return ClassBlocked
	}
	var ae *APIError
	if errors.As(err, &ae) {
		return classifyAPI(ae)
	}
	var te *TransportError
	if errors.As(err, &te) {
		if errors.Is(te.Err, context.Canceled) && !te.Timeout {
			return ClassCanceled
		}
		return ClassTimeout
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return ClassTimeout
	}
	var ne net.Error
	if errors.As(err, &ne) {
		return ClassTimeout
	}
	if errors.Is(err, ErrNoKeys) {
		return ClassAuth
	}
	return ClassUnknown
}

func classifyAPI(e *APIError) Class {
	typ, code, msg := strings.ToLower(e.Type), strings.ToLower(e.Code), e.Message
	all := typ + " " + code + " " + msg
	switch {
	case code == "context_length_exceeded", e.Status == http.StatusRequestEntityTooLarge, typ == "request_too_large",
		(e.Status == 400 || e.Status == 0) && overflowRe().MatchString(msg):
		return ClassContextOverflow
	case e.Status == http.StatusPaymentRequired, typ == "billing_error", code == "insufficient_quota",
		code == "enforced_spend_limit_reached", billingRe().MatchString(all):
		return ClassBilling
	case e.Status == http.StatusTooManyRequests, typ == "rate_limit_error", code == "rate_limit_exceeded":
		return ClassRateLimit
	case e.Status == http.StatusForbidden, typ == "permission_error":
		return ClassAuthPermanent
	case e.Status == http.StatusUnauthorized, typ == "authentication_error", code == "invalid_api_key":
		if permAuthRe().MatchString(msg) {
			return ClassAuthPermanent
		}
		return ClassAuth
	case code == "model_not_found", typ == "not_found_error" && strings.Contains(strings.ToLower(msg), "model"),
		e.Status == http.StatusNotFound, modelRe().MatchString(msg) && e.Status < 500:
		return ClassModelNotFound
	case e.Status == 529, typ == "overloaded_error", e.Status == http.StatusServiceUnavailable, overloadRe().MatchString(msg):
		return ClassOverloaded
	case e.Status == http.StatusRequestTimeout, e.Status == http.StatusGatewayTimeout, e.Status == 524, typ == "timeout_error":
		return ClassTimeout
	case e.Status >= 500, typ == "api_error", typ == "server_error":
		return ClassServerError
	case e.Status == 0 && rateRe().MatchString(all):
		return ClassRateLimit
	case e.Status == 0:
		// An error event inside a stream with no recognisable type.
		return ClassServerError
	case e.Status >= 400:
		return ClassFormat
	}
	return ClassUnknown
}

// RetryAfter returns the server's retry hint carried by err, or 0.
func RetryAfter(err error) time.Duration {
	var ae *APIError
	if errors.As(err, &ae) {
		return ae.RetryAfter
	}
	return 0
}

// errorBody covers the error JSON of Anthropic ({"type":"error","error":{...}}),
// OpenAI ({"error":{...}}) and the compatible servers that send
// {"error":"text"} or {"message":"text"}.
type errorBody struct {
	Error   json.RawMessage `json:"error"`
	Message string          `json:"message"`
}

type errorObject struct {
	Type    string          `json:"type"`
	Code    json.RawMessage `json:"code"`
	Message string          `json:"message"`
	Details struct {
		ErrorCode string `json:"error_code"`
	} `json:"details"`
}

var keyishRe = sync.OnceValue(func() *regexp.Regexp {
	return regexp.MustCompile(`(?i)(api key provided:\s*)\S+|\b(sk|gsk|xai|csk)-[A-Za-z0-9_*\-]{6,}`)
})

// fillFromBody sets e's Type, Code and Message from an error body, removing
// key from the message along with anything that looks like a key.
func (e *APIError) fillFromBody(body []byte, key Secret) {
	var eb errorBody
	if json.Unmarshal(body, &eb) == nil {
		var obj errorObject
		var s string
		switch {
		case len(eb.Error) > 0 && json.Unmarshal(eb.Error, &obj) == nil:
			e.Type, e.Message = obj.Type, obj.Message
			e.Code = jsonScalar(obj.Code)
			if obj.Details.ErrorCode != "" {
				e.Code = obj.Details.ErrorCode
			}
		case len(eb.Error) > 0 && json.Unmarshal(eb.Error, &s) == nil:
			e.Message = s
		case eb.Message != "":
			e.Message = eb.Message
		}
	}
	if e.Message == "" && e.Type == "" {
		e.Message = strings.TrimSpace(string(body))
		if len(e.Message) > 512 {
			e.Message = e.Message[:512]
		}
	}
	e.Message = scrub(e.Message, key)
}

func scrub(msg string, key Secret) string {
	if k := key.Reveal(); k != "" {
		msg = strings.ReplaceAll(msg, k, redacted)
	}
	return keyishRe().ReplaceAllStringFunc(msg, func(m string) string {
		if i := strings.Index(strings.ToLower(m), "provided:"); i >= 0 {
			return m[:i+len("provided:")] + " " + redacted
		}
		return redacted
	})
}

func jsonScalar(raw json.RawMessage) string {
	if len(raw) == 0 || string(raw) == "null" {
		return ""
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s
	}
	return string(raw)
}
