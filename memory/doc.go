// Package memory is a store of remembered text chunks with hybrid search.
//
// A Store keeps chunks (text, source, path, time, tags, pinned, and optional
// context: neighbouring text searched at a lower weight) and their
// embeddings in a Badger database the caller opens and owns, under a key
// prefix the caller chooses (one prefix per tenant database; the default is
// "memory/"). Everything else is derived: a keyword index (textindex) and a
// vector index (vectors) kept under an index directory the caller gives,
// loaded on the first search, dropped from memory after an idle period, and
// rebuilt when missing, foreign or stale.
//
// # Badger layout (P is the key prefix)
//
//	P meta                      JSON: instance id, sequence, trimmed-through, embedding dim and model
//	P c/ <id>                   JSON chunk
//	P e/ <id>                   embedding: uint16 model length, model, float32 little-endian values
//	P p/ <source> 0 <path> 0 <id>   empty: chunks by source and path, to replace a file's chunks
//	P l/ <seq:8 bytes BE> <id>  empty: change log, one entry per chunk touched by write <seq>
//
// # Crash repair
//
// Every write bumps the sequence and logs the ids it touched in the same
// Badger transaction, then applies the change to the loaded indexes. The index
// directory records, in state.json, the sequence its contents are known to
// cover; that file is written only after the indexes are flushed (on Evict and
// Close). Opening the indexes replays the log past that sequence (replay is
// idempotent: each logged id is re-read and upserted or deleted), or rebuilds
// everything when the state file is missing, unreadable, from another store
// (instance id) or older than the trimmed log. A crash between the Badger
// write and the index write therefore loses nothing.
//
// # Search
//
// Search runs the keyword query (keywords extracted from the question, plus
// pseudo-relevance-feedback expansion terms) and, when an Embedder is set, the
// vector query; fuses them by weighted sum (default 0.7 vector, 0.3 text) or
// reciprocal rank; applies temporal decay (half-life 30 days; pinned chunks and
// MEMORY.md never decay), a minimum score and MMR re-ranking. Each Result says
// how its score was made. With no embedder, search is keyword-only.
//
// Errors are the sentinels in errors.go, wrapped with the step. A Store is safe
// for concurrent use: writes are serialised, searches run in parallel.
package memory
