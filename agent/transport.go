package agent

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"

	"github.com/bulkhead-dev/bulkhead/internal/retryafter"
)

// DefaultIdleTimeout is how long a model call may go without receiving a
// byte (before the headers, or between stream chunks) before it fails with
// ClassTimeout.
const DefaultIdleTimeout = 90 * time.Second

const maxSSELine = 16 << 20

// maxResponseBytes bounds what one model call may send back.
const maxResponseBytes = 64 << 20

// noRedirects returns a copy of c (http.DefaultClient if nil) that does not
// follow redirects (the 3xx response becomes an *APIError) and has no overall
// Timeout: a stream may rightly last many minutes, so calls are bounded by the
// idle timeout and the caller's context instead. A model API never redirects a POST it serves, and Go forwards
// custom headers such as x-api-key to the redirect target, so following one
// could hand the key to another host. The transport (the SSRF guard) is
// shared, not copied.
func noRedirects(c *http.Client) *http.Client {
	if c == nil {
		c = http.DefaultClient
	}
	cp := *c
	cp.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	cp.Timeout = 0
	return &cp
}

var errIdle = errors.New("no data from server within idle timeout")

// sseReader reads server-sent events. Lines may end in \n or \r\n; lines
// starting with ':' are comments; several data lines join with \n.
type sseReader struct {
	r    *bufio.Reader
	line []byte
	data []byte
}

func newSSEReader(r io.Reader) *sseReader {
	return &sseReader{r: bufio.NewReaderSize(r, 16<<10)}
}

// next returns the next event. data is valid until the following call.
// It returns io.EOF at a clean end of stream; an event cut off by EOF is
// dropped, as the SSE spec says.
func (s *sseReader) next() (name string, data []byte, err error) {
	s.data = s.data[:0]
	hasData := false
	for {
		line, err := s.readLine()
		if err != nil {
			return "", nil, err
		}
		if len(line) == 0 {
			if hasData {
				return name, s.data, nil
			}
			name = ""
			continue
		}
		if line[0] == ':' {
			continue
		}
		field, value, _ := bytes.Cut(line, []byte{':'})
		value = bytes.TrimPrefix(value, []byte{' '})
		switch string(field) {
		case "event":
			name = string(value)
		case "data":
			if hasData {
				s.data = append(s.data, '\n')
			}
			s.data = append(s.data, value...)
			hasData = true
		}
	}
}

func (s *sseReader) readLine() ([]byte, error) {
	s.line = s.line[:0]
	for {
		frag, err := s.r.ReadSlice('\n')
		s.line = append(s.line, frag...)
		if err == bufio.ErrBufferFull {
			if len(s.line) > maxSSELine {
				return nil, fmt.Errorf("sse line longer than %d bytes", maxSSELine)
			}
			continue
		}
		if err != nil {
			if err == io.EOF && len(s.line) > 0 {
				return nil, io.ErrUnexpectedEOF
			}
			return nil, err
		}
		line := s.line[:len(s.line)-1]
		if n := len(line); n > 0 && line[n-1] == '\r' {
			line = line[:n-1]
		}
		return line, nil
	}
}

// call is one HTTP request to a model API, with an idle watchdog that
// cancels it when no bytes arrive for idle.
type call struct {
	provider string
	model    string
	ctx      context.Context
	cancel   context.CancelCauseFunc
	timer    *time.Timer
	idle     time.Duration
	resp     *http.Response
	read     int64
}

// startCall sends body to url and returns the open response, or an
// *APIError for a non-2xx status, or a *TransportError.
func startCall(ctx context.Context, client *http.Client, provider, model, url string, hdr http.Header, body []byte, key Secret, idle time.Duration) (*call, error) {
	if client == nil {
		client = noRedirects(nil)
	}
	if idle <= 0 {
		idle = DefaultIdleTimeout
	}
	c := &call{provider: provider, model: model, idle: idle}
	c.ctx, c.cancel = context.WithCancelCause(ctx)
	c.timer = time.AfterFunc(idle, func() { c.cancel(errIdle) })
	req, err := http.NewRequestWithContext(c.ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		c.close()
		return nil, fmt.Errorf("%s: build request: %w", provider, err)
	}
	req.Header = hdr
	resp, err := client.Do(req)
	if err != nil {
		c.close()
		return nil, c.transportErr("send request", err)
	}
	c.resp = resp
	if resp.StatusCode/100 == 3 {
		c.close()
		return nil, &APIError{Provider: provider, Model: model, Status: resp.StatusCode, Type: "redirect",
			Message: "the api answered with a redirect, which is not followed"}
	}
	if resp.StatusCode/100 != 2 {
		defer c.close()
		b, _ := io.ReadAll(io.LimitReader(c.reader(), 64<<10))
		ae := &APIError{Provider: provider, Model: model, Status: resp.StatusCode,
			RetryAfter: retryafter.Parse(resp.Header, time.Now()),
			RequestID:  firstHeader(resp.Header, "request-id", "x-request-id")}
		ae.fillFromBody(b, key)
		return nil, ae
	}
	return c, nil
}

func firstHeader(h http.Header, names ...string) string {
	for _, n := range names {
		if v := h.Get(n); v != "" {
			return v
		}
	}
	return ""
}

// reader returns the response body; every read pushes the idle deadline.
func (c *call) reader() io.Reader { return idleReader{c} }

type idleReader struct{ c *call }

func (r idleReader) Read(p []byte) (int, error) {
	if r.c.read >= maxResponseBytes {
		return 0, fmt.Errorf("response longer than %d bytes", maxResponseBytes)
	}
	n, err := r.c.resp.Body.Read(p)
	if n > 0 {
		r.c.read += int64(n)
		r.c.timer.Reset(r.c.idle)
	}
	return n, err
}

// drain reads what is left of a finished stream (the end of the chunked
// body) so the connection can be reused; bounded, and still under the idle
// watchdog, shortened to a second for a server that keeps it open.
func (c *call) drain() {
	if c.resp != nil {
		c.idle = time.Second
		c.timer.Reset(c.idle)
		_, _ = io.CopyN(io.Discard, c.reader(), 64<<10)
	}
}

func (c *call) close() {
	c.timer.Stop()
	if c.resp != nil {
		c.resp.Body.Close()
	}
	c.cancel(nil)
}

// transportErr wraps a network or read error, marking idle timeouts.
func (c *call) transportErr(op string, err error) error {
	if cause := context.Cause(c.ctx); errors.Is(cause, errIdle) {
		return &TransportError{Provider: c.provider, Op: op, Timeout: true, Err: errIdle}
	}
	if errors.Is(err, io.EOF) {
		err = io.ErrUnexpectedEOF
	}
	var ne net.Error
	timeout := errors.Is(err, context.DeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout())
	return &TransportError{Provider: c.provider, Op: op, Timeout: timeout, Err: err}
}

// normalizeInput makes raw tool arguments valid JSON: "" becomes {}, valid
// JSON stays, anything else becomes a JSON string holding the text.
func normalizeInput(raw []byte) []byte {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 {
		return []byte("{}")
	}
	if json.Valid(raw) {
		return append([]byte(nil), raw...)
	}
	b, _ := json.Marshal(string(raw))
	return b
}
