package textindex

import "errors"

var (
	// ErrClosed is returned by every method of a closed Index.
	ErrClosed = errors.New("text index closed")
	// ErrEmptyQuery is returned when a query holds no searchable term.
	ErrEmptyQuery = errors.New("query has no searchable terms")
)
