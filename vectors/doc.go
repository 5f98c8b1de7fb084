// Package vectors is an in-process nearest-neighbour index over float32
// vectors keyed by string ids, for one workspace's memory.
//
// # Modes
//
// Below Config.ExactThreshold live vectors an Index is a flat array scored
// by brute force: exact, and at that size as fast as a graph. The Add that
// reaches the threshold builds an HNSW graph (Malkov & Yashunin), written in
// this package from the paper; from then on Search walks the graph and
// SearchExact still scores everything.
//
// # Terms
//
//   - slot: a vector's position in the index's arrays; ids map to slots.
//   - tombstone: in graph mode Delete, and Upsert of an existing id, leave the
//     old slot in the graph, walked through by searches but never returned.
//   - compaction: relinks every node that pointed at a tombstone from its
//     surviving neighbours and the tombstone's neighbours (the insert
//     heuristic again), then renumbers the live slots densely. It runs when
//     tombstones pass Config.MaxTombstoneRatio of the slots, or on Compact;
//     below the threshold it drops the graph instead.
//
// # Scores
//
// Metric Cosine stores unit vectors and returns cosine similarity; Metric Dot
// stores vectors as given and returns the inner product. Both rank larger
// scores first. Inner product is not a distance (a vector need not be its
// own nearest neighbour), so on vectors of varying length the graph finds
// fewer of the true top k under Dot than under Cosine; embedders that
// already return unit vectors score the same under both.
//
// # Errors
//
// Invalid input is refused before the index changes, with an error wrapping
// one of the sentinels in errors.go: wrong dimension, NaN or Inf components,
// zero vectors, empty or oversized ids, k < 1. Load and LoadFile refuse any
// truncated, altered or trailing-data file with ErrCorrupt; a missing file
// is fs.ErrNotExist, which callers answer by rebuilding from their source
// of truth.
//
// # Concurrency
//
// An Index is safe for concurrent use. Searches, Len and Stats share a read
// lock and run in parallel. Writers (Add, Upsert, Delete, Compact, and Save,
// which needs a still index) are serialised by a mutex of their own and take
// the write lock only to change the layout: a search sees each write
// entirely or not at all. The two long writes, building the graph at the
// threshold and compaction, do their work under the read lock into a new
// layout and take the write lock only to swap it in, so searches go on
// during them (brute force while the graph is built). Each search borrows
// pooled scratch space and allocates only its result slice.
//
// # Persistence
//
// Save writes a versioned little-endian format ending in a CRC-32C; SaveFile
// writes it into a temporary file in the target directory, fsyncs it,
// renames it over FileName and fsyncs the directory, so a crash leaves the
// old index or the new one, never a mix.
package vectors
