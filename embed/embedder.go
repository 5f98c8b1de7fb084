package embed

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/bulkhead-dev/bulkhead/netguard"
)

// Embedder turns texts into vectors.
//
// Embed returns one vector per text, in order, each of length Dimensions(),
// every component finite. It sends nothing and returns ErrInvalidInput when a
// text is empty, not UTF-8 or too large; an empty slice returns an empty
// result. Name is the provider ("openai", "gemini", "voyage", "mistral") and
// Model the model name as configured.
type Embedder interface {
	Embed(ctx context.Context, texts []string) ([][]float32, error)
	Dimensions() int
	Name() string
	Model() string
}

// Provider names for Config.Provider.
const (
	ProviderOpenAI  = "openai" // OpenAI and every server speaking its /v1/embeddings: Ollama, vLLM, llama.cpp, OpenRouter
	ProviderGemini  = "gemini"
	ProviderVoyage  = "voyage"
	ProviderMistral = "mistral"
)

// Config selects and tunes a provider. Zero values take the defaults noted.
type Config struct {
	Provider string // one of the Provider constants
	// BaseURL is the API root: https://api.openai.com/v1,
	// https://generativelanguage.googleapis.com/v1beta, https://api.voyageai.com/v1,
	// https://api.mistral.ai/v1 by default; http://127.0.0.1:11434/v1 for an Ollama.
	BaseURL string
	Model   string
	// Dimensions is the vector length expected back. 0 means OutputDimensions
	// if set, else the model's known default; an unknown model needs it set.
	Dimensions int
	// OutputDimensions asks the provider to shorten its vectors (OpenAI
	// "dimensions", Gemini "outputDimensionality", Voyage and Mistral
	// "output_dimension"). 0 leaves the model's default.
	OutputDimensions int
	// InputType is Voyage's input_type ("document", "query") or Gemini's
	// taskType ("RETRIEVAL_DOCUMENT", "RETRIEVAL_QUERY", ...). Ignored by others.
	InputType string
	APIKey    APIKey
	// BatchSize caps texts per request (provider default: openai 256,
	// gemini 100, voyage 128, mistral 64).
	BatchSize int
	// MaxBatchBytes caps the summed text bytes per request; default 256 KiB.
	MaxBatchBytes int
	// MaxTextBytes refuses larger texts with ErrInvalidInput; default 64 KiB.
	MaxTextBytes int
	// Timeout bounds each HTTP attempt; default 60s.
	Timeout time.Duration
	Retry   Retry
	Logger  *slog.Logger
}

// Retry tunes retries of 408, 429, 5xx answers and transport errors.
type Retry struct {
	MaxAttempts   int           // total attempts, default 5; 1 disables retries
	BaseDelay     time.Duration // first backoff, default 500ms, doubled per attempt
	MaxDelay      time.Duration // backoff cap, default 30s
	MaxRetryAfter time.Duration // longest Retry-After honoured, default 2m; longer fails at once
}

var defaultBaseURL = map[string]string{
	ProviderOpenAI:  "https://api.openai.com/v1",
	ProviderGemini:  "https://generativelanguage.googleapis.com/v1beta",
	ProviderVoyage:  "https://api.voyageai.com/v1",
	ProviderMistral: "https://api.mistral.ai/v1",
}

var defaultBatch = map[string]int{ProviderOpenAI: 256, ProviderGemini: 100, ProviderVoyage: 128, ProviderMistral: 64}

// knownDimensions are the default output lengths of common models.
var knownDimensions = map[string]int{
	"text-embedding-3-small": 1536, "text-embedding-3-large": 3072, "text-embedding-ada-002": 1536,
	"nomic-embed-text": 768, "mxbai-embed-large": 1024, "all-minilm": 384, "bge-m3": 1024,
	"snowflake-arctic-embed": 1024, "embeddinggemma": 768,
	"text-embedding-004": 768, "gemini-embedding-001": 3072, "embedding-001": 768,
	"voyage-3": 1024, "voyage-3-lite": 512, "voyage-3-large": 1024, "voyage-3.5": 1024, "voyage-3.5-lite": 1024,
	"voyage-code-3": 1024, "voyage-multilingual-2": 1024, "voyage-large-2": 1536, "voyage-2": 1024,
	"voyage-code-2": 1536, "voyage-finance-2": 1024, "voyage-law-2": 1024,
	"mistral-embed": 1024, "codestral-embed": 1536,
}

func modelDimensions(model string) int {
	m := strings.TrimPrefix(model, "models/")
	if i := strings.LastIndexByte(m, ':'); i >= 0 { // Ollama tags: nomic-embed-text:latest
		m = m[:i]
	}
	return knownDimensions[m]
}

// New makes the embedder cfg describes. Every request it makes goes through
// guard, which must not be nil; the base URL is checked against it now.
func New(cfg Config, guard *netguard.Guard) (Embedder, error) {
	if guard == nil {
		return nil, fmt.Errorf("%w: a netguard.Guard is required", ErrConfig)
	}
	var w wire
	switch cfg.Provider {
	case ProviderOpenAI:
		w = openAIWire{}
	case ProviderGemini:
		w = geminiWire{}
	case ProviderVoyage:
		w = voyageWire{}
	case ProviderMistral:
		w = mistralWire{}
	default:
		return nil, fmt.Errorf("%w: unknown provider %q", ErrConfig, cfg.Provider)
	}
	if cfg.Model == "" {
		return nil, fmt.Errorf("%w: %s: model is required", ErrConfig, cfg.Provider)
	}
	if cfg.BaseURL == "" {
		cfg.BaseURL = defaultBaseURL[cfg.Provider]
	}
	cfg.BaseURL = strings.TrimRight(cfg.BaseURL, "/")
	if err := guard.CheckURL(cfg.BaseURL); err != nil {
		return nil, fmt.Errorf("embed %s base URL: %w", cfg.Provider, err)
	}
	if cfg.OutputDimensions < 0 || cfg.Dimensions < 0 {
		return nil, fmt.Errorf("%w: negative dimensions", ErrConfig)
	}
	if cfg.Dimensions == 0 {
		cfg.Dimensions = cfg.OutputDimensions
	}
	if cfg.Dimensions == 0 {
		cfg.Dimensions = modelDimensions(cfg.Model)
	}
	if cfg.Dimensions == 0 {
		return nil, fmt.Errorf("%w: %s: dimensions of model %q unknown; set Dimensions", ErrConfig, cfg.Provider, cfg.Model)
	}
	if cfg.OutputDimensions != 0 && cfg.OutputDimensions != cfg.Dimensions {
		return nil, fmt.Errorf("%w: Dimensions %d and OutputDimensions %d differ", ErrConfig, cfg.Dimensions, cfg.OutputDimensions)
	}
	if cfg.BatchSize <= 0 {
		cfg.BatchSize = defaultBatch[cfg.Provider]
	}
	if cfg.MaxBatchBytes <= 0 {
		cfg.MaxBatchBytes = 256 << 10
	}
	if cfg.MaxTextBytes <= 0 {
		cfg.MaxTextBytes = 64 << 10
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 60 * time.Second
	}
	r := &cfg.Retry
	if r.MaxAttempts <= 0 {
		r.MaxAttempts = 5
	}
	if r.BaseDelay <= 0 {
		r.BaseDelay = 500 * time.Millisecond
	}
	if r.MaxDelay <= 0 {
		r.MaxDelay = 30 * time.Second
	}
	if r.MaxRetryAfter <= 0 {
		r.MaxRetryAfter = 2 * time.Minute
	}
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	e := &httpEmbedder{
		cfg:    cfg,
		wire:   w,
		url:    w.endpoint(cfg),
		client: guard.Client(),
		log:    log.With("subsystem", "embed", "provider", cfg.Provider, "model", cfg.Model),
		sleep:  sleepCtx,
	}
	return e, nil
}

// Identity names what produced a vector: "provider/model/dimensions", e.g.
// "openai/text-embedding-3-small/1536". Store it with embeddings; vectors
// under different identities are not comparable.
func Identity(e Embedder) string {
	return fmt.Sprintf("%s/%s/%d", e.Name(), e.Model(), e.Dimensions())
}
