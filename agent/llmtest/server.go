package llmtest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"
)

// Protocol names a wire protocol.
type Protocol string

const (
	Anthropic Protocol = "anthropic"
	OpenAI    Protocol = "openai"
)

// Key is accepted by both protocols unless a test replaces the accepted set
// with SetKeys.
const Key = "llmtest-key"

// AnthropicVersion is the anthropic-version header value the server requires.
const AnthropicVersion = "2023-06-01"

// Block is one piece of assistant output: text, or a tool call when ToolName
// is set. ToolInput is the raw JSON arguments text exactly as the model would
// stream it (it may be malformed on purpose).
type Block struct {
	Text      string
	ToolID    string
	ToolName  string
	ToolInput string
}

// Usage is the token usage the server reports.
type Usage struct {
	InputTokens  int
	OutputTokens int
}

// ErrorKind is an abstract failure that the server renders in the protocol's
// own status code and error body.
type ErrorKind int

const (
	RateLimited      ErrorKind = iota + 1 // 429
	Overloaded                            // Anthropic 529 overloaded_error; OpenAI 503 "engine is currently overloaded"
	Unavailable                           // 503
	ServerError                           // 500
	ContextOverflow                       // 400 with the provider's context-length text
	InvalidKey                            // 401
	PermissionDenied                      // Anthropic 403 permission_error; OpenAI 401 insufficient permissions
	Billing                               // Anthropic 400 credit balance too low; OpenAI 429 insufficient_quota
	ModelNotFound                         // 404
	BadRequest                            // 400 invalid_request_error
)

// Error scripts a failed reply.
type Error struct {
	Kind ErrorKind
	// RetryAfter, if set, is sent verbatim as the Retry-After header.
	RetryAfter string
	// RetryAfterMS, if set, is sent as retry-after-ms (OpenAI sends it).
	RetryAfterMS string
	// Message replaces the provider's default message text.
	Message string
	// MidStream sends the error inside a started stream (after
	// message_start / the first chunk) with status 200, as both services do
	// when they fail after the response has begun.
	MidStream bool
}

// Reply scripts the answer to one request.
type Reply struct {
	Blocks []Block
	// StopReason overrides the derived stop reason (Anthropic end_turn /
	// tool_use, OpenAI stop / tool_calls).
	StopReason string
	Usage      Usage
	Err        *Error
	// Chunk is the maximum size in bytes of each text or argument delta
	// (split at rune boundaries). 0 sends each block's text in one delta.
	Chunk int
	// WriteSize splits the raw response body into writes of this many bytes,
	// each flushed, so SSE lines and JSON break anywhere. 0 writes whole events.
	WriteSize int
	// Delay is slept before each event.
	Delay time.Duration
	// DropAfter aborts the connection after this many events have been
	// written (0: never).
	DropAfter int
	// EndDelay is slept after the last event, before the response ends
	// (a server that is slow to close the stream).
	EndDelay time.Duration
	// Hold blocks the reply until the channel is closed or the request is
	// cancelled (for tests of cancellation and timeouts).
	Hold <-chan struct{}
}

// Text is a reply with one text block.
func Text(s string) Reply { return Reply{Blocks: []Block{{Text: s}}} }

// ToolCall is a reply with one tool call.
func ToolCall(id, name, input string) Reply {
	return Reply{Blocks: []Block{{ToolID: id, ToolName: name, ToolInput: input}}}
}

// Fail is a reply that fails with kind.
func Fail(kind ErrorKind) Reply { return Reply{Err: &Error{Kind: kind}} }

// Request is one request as the server received it.
type Request struct {
	Protocol Protocol
	Path     string
	Key      string
	Header   http.Header
	Body     []byte
	Model    string
	Stream   bool
	// System is the system prompt: Anthropic's system field (string or
	// text blocks joined), or OpenAI's system/developer messages joined.
	System string
	// Messages are the non-system messages as sent.
	Messages []json.RawMessage
	// Tools are the names of the tools offered.
	Tools []string
	// IncludeUsage is OpenAI's stream_options.include_usage.
	IncludeUsage bool
}

// Server is the loopback model server.
type Server struct {
	// URL is the server root, e.g. http://127.0.0.1:41234. Anthropic clients
	// use it as the base URL; OpenAI clients use URL + "/v1".
	URL string

	srv *httptest.Server

	mu      sync.Mutex
	keys    map[Protocol]map[string]bool
	queue   []Reply
	handler func(*Request) Reply
	reqs    []*Request
	seq     int
}

// New starts a server on a loopback port.
func New() *Server {
	s := &Server{keys: map[Protocol]map[string]bool{
		Anthropic: {Key: true},
		OpenAI:    {Key: true},
	}}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/messages", func(w http.ResponseWriter, r *http.Request) { s.serve(w, r, Anthropic) })
	mux.HandleFunc("POST /v1/chat/completions", func(w http.ResponseWriter, r *http.Request) { s.serve(w, r, OpenAI) })
	s.srv = httptest.NewServer(mux)
	s.URL = s.srv.URL
	return s
}

// Start starts a server that is closed when t ends.
func Start(t testing.TB) *Server {
	s := New()
	t.Cleanup(s.Close)
	return s
}

// Close stops the server and closes open connections.
func (s *Server) Close() {
	s.srv.CloseClientConnections()
	s.srv.Close()
}

// Client returns an *http.Client that reaches the server.
func (s *Server) Client() *http.Client { return s.srv.Client() }

// SetKeys replaces the keys accepted for p.
func (s *Server) SetKeys(p Protocol, keys ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	m := make(map[string]bool, len(keys))
	for _, k := range keys {
		m[k] = true
	}
	s.keys[p] = m
}

// Push appends replies to the queue.
func (s *Server) Push(replies ...Reply) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.queue = append(s.queue, replies...)
}

// Handle sets the function that answers requests when the queue is empty.
func (s *Server) Handle(fn func(*Request) Reply) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.handler = fn
}

// Pending reports how many queued replies have not been used.
func (s *Server) Pending() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.queue)
}

// Requests returns the requests that passed authentication, in arrival order.
func (s *Server) Requests() []*Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]*Request(nil), s.reqs...)
}

// Reset drops recorded requests and queued replies.
func (s *Server) Reset() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.reqs = nil
	s.queue = nil
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request, p Protocol) {
	body, err := io.ReadAll(io.LimitReader(r.Body, 64<<20))
	if err != nil {
		return
	}
	key := ""
	switch p {
	case Anthropic:
		key = r.Header.Get("x-api-key")
	case OpenAI:
		if v, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer "); ok {
			key = v
		}
	}
	s.mu.Lock()
	okKey := s.keys[p][key]
	s.mu.Unlock()
	if !okKey {
		writeError(w, p, &Error{Kind: InvalidKey}, "")
		return
	}
	if p == Anthropic && r.Header.Get("anthropic-version") == "" {
		writeError(w, p, &Error{Kind: BadRequest, Message: "anthropic-version: header is required"}, "")
		return
	}

	req, perr := parseRequest(p, r, key, body)
	if perr != "" {
		writeError(w, p, &Error{Kind: BadRequest, Message: perr}, "")
		return
	}

	s.mu.Lock()
	s.reqs = append(s.reqs, req)
	s.seq++
	seq := s.seq
	var reply Reply
	var ok bool
	if len(s.queue) > 0 {
		reply, s.queue = s.queue[0], s.queue[1:]
		ok = true
	} else if s.handler != nil {
		h := s.handler
		s.mu.Unlock()
		reply, ok = h(req), true
		s.mu.Lock()
	}
	s.mu.Unlock()
	if !ok {
		reply = Reply{Err: &Error{Kind: ServerError, Message: "llmtest: no scripted reply for this request"}}
	}

	if reply.Hold != nil {
		select {
		case <-reply.Hold:
		case <-r.Context().Done():
			return
		}
	}
	if reply.Err != nil && !reply.Err.MidStream {
		writeError(w, p, reply.Err, req.Model)
		return
	}
	id := fmt.Sprintf("%d", seq)
	var events []string
	switch {
	case p == Anthropic && req.Stream:
		events = anthropicEvents(id, req.Model, reply)
	case p == Anthropic:
		events = []string{anthropicMessage(id, req.Model, reply)}
	case req.Stream:
		events = openaiEvents(id, req.Model, reply, req.IncludeUsage)
	default:
		events = []string{openaiMessage(id, req.Model, reply)}
	}
	if req.Stream {
		w.Header().Set("Content-Type", "text/event-stream; charset=utf-8")
		w.Header().Set("Cache-Control", "no-cache")
	} else {
		w.Header().Set("Content-Type", "application/json")
	}
	if p == Anthropic {
		w.Header().Set("request-id", "req_llmtest_"+id)
	} else {
		w.Header().Set("x-request-id", "req_llmtest_"+id)
	}
	w.WriteHeader(http.StatusOK)
	writeEvents(w, r, events, reply)
}

// writeEvents delivers events with the reply's delays, write sizes and drop.
func writeEvents(w http.ResponseWriter, r *http.Request, events []string, reply Reply) {
	fl, _ := w.(http.Flusher)
	for i, ev := range events {
		if reply.DropAfter > 0 && i >= reply.DropAfter {
			// Abort the connection without finishing the chunked body: the
			// client sees an unexpected EOF, like a dropped TCP connection.
			panic(http.ErrAbortHandler)
		}
		if reply.Delay > 0 {
			t := time.NewTimer(reply.Delay)
			select {
			case <-t.C:
			case <-r.Context().Done():
				t.Stop()
				return
			}
		}
		b := []byte(ev)
		step := len(b)
		if reply.WriteSize > 0 {
			step = reply.WriteSize
		}
		for len(b) > 0 {
			n := min(step, len(b))
			if _, err := w.Write(b[:n]); err != nil {
				return
			}
			if fl != nil {
				fl.Flush()
			}
			b = b[n:]
		}
	}
	if reply.EndDelay > 0 {
		t := time.NewTimer(reply.EndDelay)
		defer t.Stop()
		select {
		case <-t.C:
		case <-r.Context().Done():
		}
	}
}

// split cuts s into pieces of at most n bytes at rune boundaries.
func split(s string, n int) []string {
	if n <= 0 || len(s) <= n {
		return []string{s}
	}
	var out []string
	for len(s) > n {
		cut := n
		for cut > 0 && !utf8.RuneStart(s[cut]) {
			cut--
		}
		if cut == 0 {
			_, cut = utf8.DecodeRuneInString(s)
		}
		out = append(out, s[:cut])
		s = s[cut:]
	}
	if s != "" {
		out = append(out, s)
	}
	return out
}

func mustJSON(v any) string {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		panic(err)
	}
	return strings.TrimSuffix(buf.String(), "\n")
}

func hasTool(r Reply) bool {
	for _, b := range r.Blocks {
		if b.ToolName != "" {
			return true
		}
	}
	return false
}
