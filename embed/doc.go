// Package embed turns texts into vectors through a hosted or local embedding
// provider, behind one small interface:
//
//	type Embedder interface {
//		Embed(ctx context.Context, texts []string) ([][]float32, error)
//		Dimensions() int
//		Name() string
//		Model() string
//	}
//
// Providers, each speaking its own wire format: "openai" (POST /v1/embeddings;
// the same API serves Ollama, vLLM, llama.cpp and OpenRouter), "gemini"
// (models/{model}:batchEmbedContents), "voyage" (/v1/embeddings with
// input_type), "mistral" (/v1/embeddings). New builds one from a Config.
//
// Every request goes through a netguard.Guard, which the caller must pass: the
// provider URL is checked when the embedder is made (a URL pointing at
// 169.254.169.254 or 10.0.0.1 is refused there with netguard.ErrBlocked) and
// every connection is checked again at dial time. A local endpoint such as an
// Ollama on loopback needs the operator's netguard allowlist entry.
//
// Embed splits its input into batches (Config.BatchSize texts and at most
// Config.MaxBatchBytes each), retries 408/429/5xx answers and transport
// errors with exponential backoff and jitter, honouring Retry-After, bounds
// each attempt with Config.Timeout, and validates every answer: the count,
// the order, the dimensions, finite values and well-formed JSON. A bad answer
// fails the whole call with an error matching ErrMalformedResponse,
// ErrWrongCount, ErrDimensions or ErrNonFinite; provider errors are *APIError.
// Bad input (no text, an empty text, invalid UTF-8, a text above
// Config.MaxTextBytes) matches ErrInvalidInput and sends nothing.
//
// API keys are APIKey values: every way of printing or logging one yields
// [REDACTED]; only the request builder calls Reveal. Keys come from the
// caller (the workspace's credentials, or EnvKey), never from this package's
// own lookups.
//
// WithCache wraps an Embedder with a Cache keyed by (provider, model,
// dimensions, endpoint and input type, sha256(text)). MemoryCache is an LRU
// capped in bytes; BadgerCache persists into a Badger DB the caller passes
// under a key prefix, capped in entries. A cache must belong to one workspace:
// pass each workspace its own DB (or MemoryCache), so that neither vectors nor
// the fact that a text was embedded can cross tenants.
//
// Concurrency: embedders and caches are safe for concurrent use.
package embed
