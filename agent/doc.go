// Package agent is the host-side agent runtime: provider adapters behind one
// message and event type, the resilience layer around them (error
// classification, fallback chain with cooldowns, API-key pools, retry with
// backoff, context-window guard), and the loop that turns a user message into
// model calls and tool calls until the model is done or a limit is hit.
//
// The package knows nothing of tenants, sandboxes or storage. Where the loop
// needs the world it declares a small interface: ToolExecutor (runs a command
// in a workspace's sandbox), Files (the workspace tree under its path policy;
// *fusefs.Tree), Memory (search and store), MemoryFlusher, Journal
// (append-only run events), and the caller wires implementations in. The
// tools built on them — bash, read_file, write_file, edit_file, list_dir,
// glob, grep, memory_search, memory_store, spawn_subagent — live here.
//
// # Terms
//
//   - Provider: one model API (Anthropic, or an OpenAI-compatible endpoint),
//     named for key pools and cooldowns.
//   - Candidate: a (provider, model) pair with its context window; a Chain
//     tries candidates in order.
//   - Class: what kind of failure an error is (auth, rate_limit, ...); it
//     decides retry, key rotation, fallback and cooldown.
//   - Run: one user message turned into a final answer by a Runner.
//
// # Thin client, not the official SDKs
//
// The adapters are about 300 lines each over net/http rather than
// anthropic-sdk-go and openai-go, for four reasons:
//
//  1. The HTTP client is injected. Every outbound call must go through the
//     SSRF-guarded *http.Client (netguard/), with the DNS pinning and
//     redirect checks it does. The SDKs accept a client too, but also read
//     ANTHROPIC_API_KEY / OPENAI_API_KEY / *_BASE_URL from the environment by
//     default and carry their own retry loops; both would have to be
//     disabled at every construction site, and one forgotten option would
//     let a key or a base URL come from somewhere the workspace policy does
//     not control.
//  2. Retries, key rotation and fallback are ours. The SDKs retry 429/5xx
//     internally with their own backoff, which would hide the classes the
//     fallback chain and the key pools need to see, and multiply waits.
//  3. One message type for both protocols. Both SDKs expose large generated
//     type trees; we would translate to our own types anyway, so the SDK
//     would add a dependency tree (and for openai-go, tagged versions that
//     move quickly; the module proxy here serves only tagged versions) for
//     the part we would not use.
//  4. The wire formats we need are small and stable: one POST per call and
//     an SSE stream of a dozen event types, tested here against
//     agent/llmtest, which speaks both protocols byte for byte.
//
// What the adapters do to the injected client: they copy it, keep its
// transport (the guard's pinned dialer), refuse redirects (Go would forward
// x-api-key to the redirect target) and clear its overall Timeout (streams
// are bounded by the idle timeout and the run's context instead). A
// destination the guard refuses is ClassBlocked: not retried, and the chain
// moves on to the next candidate.
//
// The cost is keeping up with new event types (thinking blocks are skipped
// today) and new error shapes; the classifier falls back on status codes
// and message text for those.
//
// # Errors
//
// Provider calls fail with *APIError (the provider answered with an error)
// or *TransportError (network, idle timeout, truncated stream). Classify
// maps any error to a Class. Keys never appear in errors or logs: they are
// held in Secret, which prints as [REDACTED], and error messages from
// providers are scrubbed of the key and of key-shaped strings.
//
// # Concurrency
//
// Providers, KeyPools, Chains and Runners are safe for concurrent use; one
// Runner serves many concurrent runs. Stream callbacks and run event
// callbacks are called from the goroutine running the call.
package agent
