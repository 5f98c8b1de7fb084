package vectors

import "errors"

// Sentinel errors. Returned errors wrap one of these with detail, so test
// them with errors.Is.
var (
	// ErrDimension: a vector's length differs from the index's dimension.
	ErrDimension = errors.New("vectors: wrong dimension")
	// ErrNonFinite: a vector holds NaN or ±Inf.
	ErrNonFinite = errors.New("vectors: vector has NaN or Inf")
	// ErrZeroVector: a vector is all zeros (it has no direction to compare).
	ErrZeroVector = errors.New("vectors: zero vector")
	// ErrEmptyID: an id is the empty string.
	ErrEmptyID = errors.New("vectors: empty id")
	// ErrIDTooLong: an id is longer than MaxIDLen bytes.
	ErrIDTooLong = errors.New("vectors: id too long")
	// ErrDuplicateID: Add was given an id already in the index (use Upsert).
	ErrDuplicateID = errors.New("vectors: duplicate id")
	// ErrInvalidK: Search was asked for k < 1 results.
	ErrInvalidK = errors.New("vectors: k must be at least 1")
	// ErrInvalidConfig: a Config field is out of range.
	ErrInvalidConfig = errors.New("vectors: invalid config")
	// ErrFull: the index holds the maximum number of slots.
	ErrFull = errors.New("vectors: index full")
	// ErrCorrupt: persisted bytes are truncated, altered or not an index.
	ErrCorrupt = errors.New("vectors: corrupt index file")
)
