package textindex

import (
	"context"
	"fmt"
	"sync"

	"github.com/blugelabs/bluge"
	"github.com/blugelabs/bluge/index"
	"github.com/blugelabs/bluge/search"
)

const (
	textField    = "text"
	contextField = "context"
)

// Bluge is an Index kept by github.com/blugelabs/bluge in one directory.
type Bluge struct {
	mu     sync.RWMutex
	writer *bluge.Writer
	closed bool
}

var _ Index = (*Bluge)(nil)

// OpenBluge opens, or creates, the Bluge index in dir.
func OpenBluge(dir string) (*Bluge, error) {
	w, err := bluge.OpenWriter(bluge.DefaultConfig(dir))
	if err != nil {
		return nil, fmt.Errorf("open bluge index: %w", err)
	}
	return &Bluge{writer: w}, nil
}

func document(d Doc) *bluge.Document {
	lang := d.Lang
	if lang == "" {
		lang = DetectLanguage(d.Text)
	}
	doc := bluge.NewDocument(d.ID)
	doc.AddField(bluge.NewTextField(textField, d.Text).WithAnalyzer(analyzerFor(lang)))
	if d.Context != "" {
		doc.AddField(bluge.NewTextField(contextField, d.Context).WithAnalyzer(analyzerFor(lang)))
	}
	return doc
}

// Upsert adds or replaces docs in one batch.
func (b *Bluge) Upsert(ctx context.Context, docs []Doc) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	batch := bluge.NewBatch()
	for _, d := range docs {
		doc := document(d)
		batch.Update(doc.ID(), doc)
	}
	return b.apply(batch)
}

// Delete removes ids in one batch.
func (b *Bluge) Delete(ctx context.Context, ids []string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	batch := bluge.NewBatch()
	for _, id := range ids {
		batch.Delete(bluge.Identifier(id))
	}
	return b.apply(batch)
}

func (b *Bluge) apply(batch *index.Batch) error {
	b.mu.RLock()
	defer b.mu.RUnlock()
	if b.closed {
		return ErrClosed
	}
	if err := b.writer.Batch(batch); err != nil {
		return fmt.Errorf("write bluge batch: %w", err)
	}
	return nil
}

// Search runs q and returns the k best hits.
func (b *Bluge) Search(ctx context.Context, q Query, k int) ([]Hit, error) {
	query, err := buildQuery(q)
	if err != nil {
		return nil, err
	}
	if k <= 0 {
		return nil, nil
	}
	r, done, err := b.reader()
	if err != nil {
		return nil, err
	}
	defer done()
	it, err := r.Search(ctx, bluge.NewTopNSearch(k, query))
	if err != nil {
		return nil, fmt.Errorf("bluge search: %w", err)
	}
	var hits []Hit
	for {
		m, err := it.Next()
		if err != nil {
			return nil, fmt.Errorf("bluge search: %w", err)
		}
		if m == nil {
			return hits, nil
		}
		id, err := matchID(m)
		if err != nil {
			return nil, err
		}
		hits = append(hits, Hit{ID: id, Score: m.Score})
	}
}

// reader returns a snapshot reader and the function that releases it.
func (b *Bluge) reader() (*bluge.Reader, func(), error) {
	b.mu.RLock()
	if b.closed {
		b.mu.RUnlock()
		return nil, nil, ErrClosed
	}
	r, err := b.writer.Reader()
	if err != nil {
		b.mu.RUnlock()
		return nil, nil, fmt.Errorf("open bluge reader: %w", err)
	}
	return r, func() { _ = r.Close(); b.mu.RUnlock() }, nil
}

func matchID(m *search.DocumentMatch) (string, error) {
	var id string
	err := m.VisitStoredFields(func(field string, value []byte) bool {
		if field == "_id" {
			id = string(value)
			return false
		}
		return true
	})
	if err != nil {
		return "", fmt.Errorf("read bluge hit id: %w", err)
	}
	return id, nil
}

// buildQuery turns q into a disjunction: one clause per query word, which
// matches any of the word's stems, plus one per extra term.
func buildQuery(q Query) (bluge.Query, error) {
	bq := bluge.NewBooleanQuery()
	clauses := 0
	fields := []struct {
		name  string
		boost float64
	}{{textField, 1}}
	if q.ContextBoost > 0 {
		fields = append(fields, struct {
			name  string
			boost float64
		}{contextField, q.ContextBoost})
	}
	addGroup := func(terms []string, boost float64) {
		for _, f := range fields {
			if len(terms) == 1 {
				bq.AddShould(bluge.NewTermQuery(terms[0]).SetField(f.name).SetBoost(boost * f.boost))
				continue
			}
			g := bluge.NewBooleanQuery()
			for _, t := range terms {
				g.AddShould(bluge.NewTermQuery(t).SetField(f.name))
			}
			bq.AddShould(g.SetBoost(boost * f.boost))
		}
		clauses++
	}
	for _, g := range queryGroups(q.Text) {
		addGroup(g, 1)
	}
	for _, e := range q.Extra {
		if e.Boost <= 0 {
			continue
		}
		if e.Term != "" {
			addGroup([]string{e.Term}, e.Boost)
		}
	}
	if clauses == 0 {
		return nil, ErrEmptyQuery
	}
	return bq, nil
}

// DocFreq reports the document frequency of each analysed term, read from
// the term dictionary: documents deleted or replaced since the last segment
// merge may still be counted, which is fine for weighting terms.
func (b *Bluge) DocFreq(ctx context.Context, terms []string) (map[string]uint64, error) {
	r, done, err := b.reader()
	if err != nil {
		return nil, err
	}
	defer done()
	out := make(map[string]uint64, len(terms))
	for _, t := range terms {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		it, err := r.DictionaryIterator(textField, nil, []byte(t), []byte(t+"\x00"))
		if err != nil {
			return nil, fmt.Errorf("bluge doc freq: %w", err)
		}
		for {
			e, err := it.Next()
			if err != nil {
				_ = it.Close()
				return nil, fmt.Errorf("bluge doc freq: %w", err)
			}
			if e == nil {
				break
			}
			if e.Term() == t {
				out[t] += e.Count()
			}
		}
		_ = it.Close()
	}
	return out, nil
}

// Count reports how many documents the index holds.
func (b *Bluge) Count(ctx context.Context) (uint64, error) {
	r, done, err := b.reader()
	if err != nil {
		return 0, err
	}
	defer done()
	n, err := r.Count()
	if err != nil {
		return 0, fmt.Errorf("count bluge documents: %w", err)
	}
	return n, nil
}

// Close flushes and closes the index. Further calls return ErrClosed.
func (b *Bluge) Close() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return ErrClosed
	}
	b.closed = true
	if err := b.writer.Close(); err != nil {
		return fmt.Errorf("close bluge index: %w", err)
	}
	return nil
}
