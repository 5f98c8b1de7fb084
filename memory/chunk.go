package memory

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"math"
	"path"
	"strings"
	"time"
	"unicode/utf8"
)

// Chunk sources.
const (
	SourceManual  = "manual"  // added by a person or the agent
	SourceFile    = "file"    // MEMORY.md or memory/**.md in the workspace files
	SourceSession = "session" // a session transcript
)

// evergreenPath is the one file whose chunks never decay.
const evergreenPath = "MEMORY.md"

// Chunk is one remembered piece of text.
type Chunk struct {
	// ID is assigned by Add when empty: random for manual chunks; file and
	// session indexers derive it from source, path and content or turn.
	ID     string    `json:"id"`
	Text   string    `json:"text"`
	Source string    `json:"source"`
	Path   string    `json:"path,omitempty"`
	Time   time.Time `json:"time"`
	Tags   []string  `json:"tags,omitempty"`
	Pinned bool      `json:"pinned,omitempty"`
	// Context is text around the chunk that helps find it but is not part
	// of it (a transcript turn's preceding turn); keyword search matches it
	// at Config.ContextWeight.
	Context string `json:"context,omitempty"`
	// Model names the embedding model of the stored embedding, if any.
	Model string `json:"model,omitempty"`
}

// Evergreen reports whether the chunk is exempt from temporal decay.
func (c Chunk) Evergreen() bool {
	return c.Pinned || (c.Source == SourceFile && c.Path == evergreenPath)
}

const maxIDLen = 128

func validID(id string) bool {
	if id == "" || len(id) > maxIDLen {
		return false
	}
	for _, r := range id {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.' || r == ':') {
			return false
		}
	}
	return true
}

// check validates c and fills in defaults (source, time, id).
func (c *Chunk) check(maxBytes int, now time.Time) error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: "+format, append([]any{ErrInvalidChunk}, args...)...)
	}
	if !utf8.ValidString(c.Text) {
		return fmt.Errorf("chunk text: %w", ErrInvalidText)
	}
	if strings.TrimSpace(c.Text) == "" {
		return bad("empty text")
	}
	if len(c.Text) > maxBytes {
		return bad("text is %d bytes, more than %d", len(c.Text), maxBytes)
	}
	if !utf8.ValidString(c.Context) {
		return fmt.Errorf("chunk context: %w", ErrInvalidText)
	}
	if len(c.Context) > maxBytes {
		return bad("context is %d bytes, more than %d", len(c.Context), maxBytes)
	}
	if c.Source == "" {
		c.Source = SourceManual
	}
	for name, v := range map[string]string{"source": c.Source, "path": c.Path} {
		if !utf8.ValidString(v) || strings.ContainsRune(v, 0) || len(v) > 1024 {
			return bad("%s must be valid UTF-8 without NUL, at most 1 KiB", name)
		}
	}
	if c.Path != "" && (path.IsAbs(c.Path) || path.Clean(c.Path) != c.Path && c.Source == SourceFile) {
		return bad("file path %q must be relative and clean", c.Path)
	}
	for _, t := range c.Tags {
		if t == "" || len(t) > 64 || !utf8.ValidString(t) || strings.ContainsAny(t, "\x00\n,") {
			return bad("tag %q must be 1-64 bytes without NUL, comma or newline", t)
		}
	}
	if c.Time.IsZero() {
		c.Time = now
	}
	if c.ID == "" {
		c.ID = randomID()
	}
	if !validID(c.ID) {
		return bad("id %q must be 1-%d of [A-Za-z0-9._:-]", c.ID, maxIDLen)
	}
	c.Model = ""
	return nil
}

func randomID() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return "m-" + hex.EncodeToString(b[:])
}

// derivedID names a chunk by what it is, so indexing the same thing twice
// replaces rather than duplicates it.
func derivedID(prefix string, parts ...string) string {
	h := sha256.New()
	for _, p := range parts {
		h.Write([]byte(p))
		h.Write([]byte{0})
	}
	return prefix + hex.EncodeToString(h.Sum(nil)[:10])
}

// Embedder turns texts into vectors. Implementations (the embedding provider
// package) batch, retry and cache as they see fit; the store checks what comes
// back.
type Embedder interface {
	// Model identifies provider and model, e.g. "openai/text-embedding-3-small".
	// Embeddings are stored with it; a different model means re-embedding.
	Model() string
	// Embed returns one vector per text, in order, all of one dimension.
	Embed(ctx context.Context, texts []string) ([][]float32, error)
}

// checkVector rejects vectors of the wrong dimension (dim 0 accepts any),
// or holding NaN, Inf or only zeros.
func checkVector(v []float32, dim int) error {
	if len(v) == 0 || (dim > 0 && len(v) != dim) {
		return fmt.Errorf("%w: dimension %d, want %d", ErrBadEmbedding, len(v), dim)
	}
	var sum float64
	for _, x := range v {
		f := float64(x)
		if math.IsNaN(f) || math.IsInf(f, 0) {
			return fmt.Errorf("%w: vector holds NaN or Inf", ErrBadEmbedding)
		}
		sum += f * f
	}
	if sum == 0 {
		return fmt.Errorf("%w: zero vector", ErrBadEmbedding)
	}
	return nil
}
