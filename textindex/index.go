package textindex

import "context"

// Doc is one document: a caller-chosen id and its text. Context is optional
// text around it (say, the turn a reply answers), searched at a lower weight.
// Lang may name the text's language; empty means detect it.
type Doc struct {
	ID      string
	Text    string
	Context string
	Lang    Lang
}

// Term is an extra weighted query term (a query expansion), given as an index
// term: one of the strings Terms returns, matched without further analysis.
type Term struct {
	Term  string
	Boost float64
}

// Query is a keyword query: Text is analysed into terms, each word matching
// any of its stems; Extra adds weighted words on top. With ContextBoost > 0
// every term also matches documents' Context, its score scaled by it.
type Query struct {
	Text         string
	Extra        []Term
	ContextBoost float64
}

// Hit is one ranked result. Score is BM25 (higher is better, unbounded).
type Hit struct {
	ID    string
	Score float64
}

// Index is a keyword index over short documents.
//
// Upsert replaces documents by id; Delete of an unknown id is not an error, so
// both can be replayed. Search returns at most k hits, best first, and
// ErrEmptyQuery when the query has no searchable terms. Close releases the
// index; its contents persist in its directory.
type Index interface {
	Upsert(ctx context.Context, docs []Doc) error
	Delete(ctx context.Context, ids []string) error
	Search(ctx context.Context, q Query, k int) ([]Hit, error)
	// DocFreq reports in how many documents each analysed term occurs.
	DocFreq(ctx context.Context, terms []string) (map[string]uint64, error)
	Count(ctx context.Context) (uint64, error)
	Close() error
}
