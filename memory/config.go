package memory

import (
	"fmt"
	"math"
	"time"
)

// Fusion names how vector and keyword scores are combined.
type Fusion string

const (
	// FusionWeighted sums the normalised scores, weighted (the default).
	FusionWeighted Fusion = "weighted"
	// FusionRRF sums weight/(RRFK + rank) over the two ranked lists.
	FusionRRF Fusion = "rrf"
)

// Duration is a time.Duration that reads and writes as text ("720h", "2s"),
// so a workspace config file can hold it.
type Duration time.Duration

// MarshalText writes d as time.Duration.String does.
func (d Duration) MarshalText() ([]byte, error) { return []byte(time.Duration(d).String()), nil }

// UnmarshalText parses a time.ParseDuration string.
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	if err != nil {
		return fmt.Errorf("parse duration: %w", err)
	}
	*d = Duration(v)
	return nil
}

// Config holds every memory setting. The zero value of a field means its
// default (see DefaultConfig); WithDefaults fills them in and Validate checks
// the result. The workspace config embeds it.
type Config struct {
	// Fusion is "weighted" (default) or "rrf".
	Fusion Fusion `json:"fusion,omitempty"`
	// VectorWeight and TextWeight weigh the two halves (defaults 0.7 and
	// 0.3; if both are zero the defaults apply). With no embedder the text
	// half alone decides.
	VectorWeight float64 `json:"vector_weight,omitempty"`
	TextWeight   float64 `json:"text_weight,omitempty"`
	// RRFK is the rank offset of reciprocal-rank fusion (default 60).
	RRFK int `json:"rrf_k,omitempty"`
	// CandidateMultiplier: each half fetches MaxResults × this many
	// candidates before fusion (default 4).
	CandidateMultiplier int `json:"candidate_multiplier,omitempty"`
	// MaxResults is the default and largest number of results (default 10,
	// at most 1000).
	MaxResults int `json:"max_results,omitempty"`
	// MinScore drops results whose final score is below it (default 0).
	MinScore float64 `json:"min_score,omitempty"`
	// MMRLambda trades relevance (1) against diversity (0) when re-ranking
	// (default 0.7; 1 turns MMR off).
	MMRLambda float64 `json:"mmr_lambda,omitempty"`
	// DecayHalfLife is the age at which a chunk's score halves (default
	// 720h = 30 days; negative turns decay off). Pinned chunks and MEMORY.md
	// never decay.
	DecayHalfLife Duration `json:"decay_half_life,omitempty"`
	// ExpansionTerms is how many pseudo-relevance-feedback terms are added to
	// the keyword query (default 5; negative turns expansion off).
	ExpansionTerms int `json:"expansion_terms,omitempty"`
	// ExpansionDocs is how many top keyword hits feed expansion (default 1).
	ExpansionDocs int `json:"expansion_docs,omitempty"`
	// ExpansionBoost weighs an expansion term against a query word
	// (default 0.1; measured on LoCoMo, 0.3 cost a third of recall@1).
	ExpansionBoost float64 `json:"expansion_boost,omitempty"`
	// ContextWeight scales matches in a chunk's Context against matches in
	// its text (default 0.3; negative ignores context).
	ContextWeight float64 `json:"context_weight,omitempty"`
	// MaxQueryBytes bounds a query (default 8 KiB, at most 1 MiB).
	MaxQueryBytes int `json:"max_query_bytes,omitempty"`
	// MaxChunkBytes bounds one chunk's text (default 64 KiB).
	MaxChunkBytes int `json:"max_chunk_bytes,omitempty"`
	// ChunkChars and ChunkOverlap size the chunks files are split into
	// (defaults 1600 and 200 characters).
	ChunkChars   int `json:"chunk_chars,omitempty"`
	ChunkOverlap int `json:"chunk_overlap,omitempty"`
	// IdleTimeout: loaded indexes are flushed and dropped from memory after
	// this long without use (default 5m; negative keeps them loaded).
	IdleTimeout Duration `json:"idle_timeout,omitempty"`
	// WatchInterval is how often the file watcher scans (default 2s), and
	// WatchDebounce how long a file must stay unchanged before it is indexed
	// (default 1s).
	WatchInterval Duration `json:"watch_interval,omitempty"`
	WatchDebounce Duration `json:"watch_debounce,omitempty"`
	// EmbedBatch is how many texts go to the embedder per call (default 64).
	EmbedBatch int `json:"embed_batch,omitempty"`
}

// DefaultConfig returns the defaults.
func DefaultConfig() Config {
	return Config{}.WithDefaults()
}

// WithDefaults returns c with every zero field set to its default.
func (c Config) WithDefaults() Config {
	if c.Fusion == "" {
		c.Fusion = FusionWeighted
	}
	if c.VectorWeight == 0 && c.TextWeight == 0 {
		c.VectorWeight, c.TextWeight = 0.7, 0.3
	}
	setInt(&c.RRFK, 60)
	setInt(&c.CandidateMultiplier, 4)
	setInt(&c.MaxResults, 10)
	if c.MMRLambda == 0 {
		c.MMRLambda = 0.7
	}
	if c.DecayHalfLife == 0 {
		c.DecayHalfLife = Duration(30 * 24 * time.Hour)
	}
	setInt(&c.ExpansionTerms, 5)
	setInt(&c.ExpansionDocs, 1)
	if c.ExpansionBoost == 0 {
		c.ExpansionBoost = 0.1
	}
	if c.ContextWeight == 0 {
		c.ContextWeight = 0.3
	}
	setInt(&c.MaxQueryBytes, 8<<10)
	setInt(&c.MaxChunkBytes, 64<<10)
	setInt(&c.ChunkChars, 1600)
	setInt(&c.ChunkOverlap, 200)
	if c.IdleTimeout == 0 {
		c.IdleTimeout = Duration(5 * time.Minute)
	}
	if c.WatchInterval == 0 {
		c.WatchInterval = Duration(2 * time.Second)
	}
	if c.WatchDebounce == 0 {
		c.WatchDebounce = Duration(time.Second)
	}
	setInt(&c.EmbedBatch, 64)
	return c
}

func setInt(p *int, def int) {
	if *p == 0 {
		*p = def
	}
}

// Validate checks a config with defaults filled in.
func (c Config) Validate() error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: "+format, append([]any{ErrInvalidConfig}, args...)...)
	}
	finite := func(v float64) bool { return !math.IsNaN(v) && !math.IsInf(v, 0) }
	switch {
	case c.Fusion != FusionWeighted && c.Fusion != FusionRRF:
		return bad("fusion %q is not weighted or rrf", c.Fusion)
	case !finite(c.VectorWeight) || !finite(c.TextWeight) || c.VectorWeight < 0 || c.TextWeight < 0:
		return bad("weights %v/%v must be finite and not negative", c.VectorWeight, c.TextWeight)
	case c.VectorWeight+c.TextWeight == 0:
		return bad("vector and text weights are both zero")
	case c.RRFK < 1 || c.RRFK > 10000:
		return bad("rrf_k %d not in [1, 10000]", c.RRFK)
	case c.CandidateMultiplier < 1 || c.CandidateMultiplier > 100:
		return bad("candidate_multiplier %d not in [1, 100]", c.CandidateMultiplier)
	case c.MaxResults < 1 || c.MaxResults > 1000:
		return bad("max_results %d not in [1, 1000]", c.MaxResults)
	case !finite(c.MinScore) || c.MinScore < 0 || c.MinScore > 1:
		return bad("min_score %v not in [0, 1]", c.MinScore)
	case !finite(c.MMRLambda) || c.MMRLambda <= 0 || c.MMRLambda > 1:
		return bad("mmr_lambda %v not in (0, 1]", c.MMRLambda)
	case c.ExpansionTerms > 50:
		return bad("expansion_terms %d > 50", c.ExpansionTerms)
	case c.ExpansionDocs < 1 || c.ExpansionDocs > 50:
		return bad("expansion_docs %d not in [1, 50]", c.ExpansionDocs)
	case !finite(c.ExpansionBoost) || c.ExpansionBoost <= 0 || c.ExpansionBoost > 1:
		return bad("expansion_boost %v not in (0, 1]", c.ExpansionBoost)
	case !finite(c.ContextWeight) || c.ContextWeight > 1:
		return bad("context_weight %v must be at most 1", c.ContextWeight)
	case c.MaxQueryBytes < 1 || c.MaxQueryBytes > 1<<20:
		return bad("max_query_bytes %d not in [1, 1 MiB]", c.MaxQueryBytes)
	case c.MaxChunkBytes < 64 || c.MaxChunkBytes > 16<<20:
		return bad("max_chunk_bytes %d not in [64, 16 MiB]", c.MaxChunkBytes)
	case c.ChunkChars < 100 || c.ChunkChars > c.MaxChunkBytes:
		return bad("chunk_chars %d not in [100, max_chunk_bytes]", c.ChunkChars)
	case c.ChunkOverlap < 0 || c.ChunkOverlap >= c.ChunkChars:
		return bad("chunk_overlap %d not in [0, chunk_chars)", c.ChunkOverlap)
	case c.WatchInterval < Duration(10*time.Millisecond) || c.WatchDebounce < 0:
		return bad("watch_interval %v must be at least 10ms and watch_debounce not negative",
			time.Duration(c.WatchInterval))
	case c.EmbedBatch < 1 || c.EmbedBatch > 4096:
		return bad("embed_batch %d not in [1, 4096]", c.EmbedBatch)
	}
	return nil
}
