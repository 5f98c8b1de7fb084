package memory

import "errors"

var (
	// ErrEmptyQuery: the query is blank or holds no searchable term.
	ErrEmptyQuery = errors.New("memory: empty query")
	// ErrQueryTooLong: the query exceeds Config.MaxQueryBytes.
	ErrQueryTooLong = errors.New("memory: query too long")
	// ErrInvalidText: a query or chunk text is not valid UTF-8.
	ErrInvalidText = errors.New("memory: text is not valid UTF-8")
	// ErrInvalidChunk: a chunk is empty, too large, or has a bad field.
	ErrInvalidChunk = errors.New("memory: invalid chunk")
	// ErrNotFound: no chunk has the id.
	ErrNotFound = errors.New("memory: chunk not found")
	// ErrBadEmbedding: the embedder returned the wrong number of vectors, a
	// vector of the wrong dimension, or one holding NaN, Inf or only zeros.
	ErrBadEmbedding = errors.New("memory: bad embedding")
	// ErrInvalidConfig: a Config field is out of range.
	ErrInvalidConfig = errors.New("memory: invalid config")
	// ErrClosed: the store is closed.
	ErrClosed = errors.New("memory: store closed")
)
