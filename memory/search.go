package memory

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"math"
	"slices"
	"sort"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/bulkhead-dev/bulkhead/textindex"
	"github.com/dgraph-io/badger/v4"
)

// SearchOptions is one search.
type SearchOptions struct {
	Query string
	// Limit is how many results to return (default and maximum:
	// Config.MaxResults).
	Limit int
	// Source keeps only chunks from this source, if set.
	Source string
	// Tags keeps only chunks carrying every one of these tags.
	Tags []string
}

// ScoreParts explains a result's score.
type ScoreParts struct {
	// Vector is the cosine similarity to the query (0 if not a vector
	// candidate); VectorRank its 1-based rank among vector candidates.
	Vector     float64 `json:"vector"`
	VectorRank int     `json:"vector_rank,omitempty"`
	// Text is the BM25 score divided by the best keyword candidate's;
	// TextRaw the BM25 score itself; TextRank the 1-based rank.
	Text     float64 `json:"text"`
	TextRaw  float64 `json:"text_raw"`
	TextRank int     `json:"text_rank,omitempty"`
	// Fused is the combination of the two halves before decay.
	Fused float64 `json:"fused"`
	// Decay multiplies Fused: 0.5^(age/half-life), 1 for evergreen chunks.
	Decay float64 `json:"decay"`
	// MMR is the diversity-adjusted value the result was picked with.
	MMR float64 `json:"mmr"`
}

// Result is one hit; Score = Fused × Decay.
type Result struct {
	Chunk Chunk      `json:"chunk"`
	Score float64    `json:"score"`
	Parts ScoreParts `json:"parts"`
}

// Results is a search's answer with what the query was turned into.
type Results struct {
	Hits []Result `json:"hits"`
	// Mode is "hybrid" or "keyword".
	Mode string `json:"mode"`
	// Keywords are the words extracted from the query; Expansion the
	// feedback terms added to them.
	Keywords  []string `json:"keywords"`
	Expansion []string `json:"expansion,omitempty"`
}

// checkQuery rejects blank, oversized and non-UTF-8 queries.
func (s *Store) checkQuery(q string) error {
	if len(q) > s.cfg.MaxQueryBytes {
		return fmt.Errorf("%w: %d bytes, limit %d", ErrQueryTooLong, len(q), s.cfg.MaxQueryBytes)
	}
	if !utf8.ValidString(q) {
		return fmt.Errorf("query: %w", ErrInvalidText)
	}
	if strings.TrimSpace(q) == "" {
		return ErrEmptyQuery
	}
	return nil
}

type candidate struct {
	id    string
	parts ScoreParts
	chunk Chunk
	vec   []float32
	terms []uint64
	score float64
}

// Search runs a hybrid (or, without an embedder, keyword-only) search.
func (s *Store) Search(ctx context.Context, o SearchOptions) (Results, error) {
	if err := s.checkQuery(o.Query); err != nil {
		return Results{}, err
	}
	limit := o.Limit
	if limit <= 0 || limit > s.cfg.MaxResults {
		limit = s.cfg.MaxResults
	}
	n := limit * s.cfg.CandidateMultiplier

	// Embed the query before taking any lock: it may be a network call.
	var qvec []float32
	if s.emb != nil {
		vs, err := s.emb.Embed(ctx, []string{o.Query})
		if err != nil {
			return Results{}, fmt.Errorf("embed query: %w", err)
		}
		if len(vs) != 1 {
			return Results{}, fmt.Errorf("embed query: %w: %d vectors for 1 text", ErrBadEmbedding, len(vs))
		}
		if err := checkVector(vs[0], 0); err != nil {
			return Results{}, fmt.Errorf("embed query: %w", err)
		}
		qvec = vs[0]
	}

	ix, err := s.loaded(ctx)
	if err != nil {
		return Results{}, err
	}
	defer s.imu.RUnlock()

	res := Results{Mode: "keyword", Keywords: textindex.Keywords(o.Query)}
	cands := map[string]*candidate{}
	get := func(id string) *candidate {
		c, ok := cands[id]
		if !ok {
			c = &candidate{id: id}
			cands[id] = c
		}
		return c
	}

	textHits, expansion, err := s.keywordSearch(ctx, ix, o.Query, res.Keywords, n)
	if errors.Is(err, textindex.ErrEmptyQuery) {
		if qvec == nil {
			return Results{}, fmt.Errorf("%w: only stopwords", ErrEmptyQuery)
		}
		err = nil // the vector half still has something to go on
	}
	if err != nil {
		return Results{}, err
	}
	res.Expansion = expansion
	for i, h := range textHits {
		c := get(h.ID)
		c.parts.TextRaw, c.parts.TextRank = h.Score, i+1
		if textHits[0].Score > 0 {
			c.parts.Text = h.Score / textHits[0].Score
		}
	}

	useVec := qvec != nil && ix.vec != nil && ix.vec.Len() > 0
	if useVec {
		if dim := ix.vec.Config().Dim; len(qvec) != dim {
			return Results{}, fmt.Errorf("embed query: %w: dimension %d, index holds %d", ErrBadEmbedding, len(qvec), dim)
		}
		hits, err := ix.vec.Search(qvec, n)
		if err != nil {
			return Results{}, fmt.Errorf("vector search: %w", err)
		}
		res.Mode = "hybrid"
		for i, h := range hits {
			c := get(h.ID)
			c.parts.Vector, c.parts.VectorRank = math.Max(0, float64(h.Score)), i+1
		}
	}
	if len(cands) == 0 {
		return res, nil
	}
	list, err := s.loadCandidates(cands, useVec)
	if err != nil {
		return Results{}, err
	}
	list = filter(list, o)
	s.score(list, useVec)
	res.Hits = s.mmr(list, limit, useVec)
	return res, ctx.Err()
}

// keywordSearch runs the keyword query with pseudo-relevance feedback: the
// terms that best characterise the first round's top hits, and occur in more
// than one chunk, are added at a lower weight and the query is run again.
func (s *Store) keywordSearch(ctx context.Context, ix *indexes, query string, keywords []string, n int) ([]textindex.Hit, []string, error) {
	q := textindex.Query{Text: strings.Join(keywords, " "), ContextBoost: max(0, s.cfg.ContextWeight)}
	if len(keywords) == 0 {
		q.Text = query
	}
	hits, err := ix.text.Search(ctx, q, n)
	if err != nil || s.cfg.ExpansionTerms <= 0 || len(hits) == 0 {
		return hits, nil, err
	}
	extra, err := s.feedbackTerms(ctx, ix, q.Text, hits)
	if err != nil || len(extra) == 0 {
		return hits, nil, err
	}
	q.Extra = make([]textindex.Term, len(extra))
	for i, t := range extra {
		q.Extra[i] = textindex.Term{Term: t, Boost: s.cfg.ExpansionBoost}
	}
	hits, err = ix.text.Search(ctx, q, n)
	return hits, extra, err
}

func (s *Store) feedbackTerms(ctx context.Context, ix *indexes, query string, hits []textindex.Hit) ([]string, error) {
	inQuery := map[string]bool{}
	for _, t := range textindex.Terms(query, "") {
		inQuery[t] = true
	}
	weight := map[string]float64{}
	top := hits[:min(len(hits), s.cfg.ExpansionDocs)]
	err := s.db.View(func(txn *badger.Txn) error {
		for _, h := range top {
			var c Chunk
			if _, err := getJSON(txn, s.k.chunk(h.ID), &c); err != nil {
				return err
			}
			terms := textindex.Terms(c.Text, "")
			for _, t := range terms {
				if !inQuery[t] && utf8.RuneCountInString(t) > 1 {
					weight[t] += h.Score / hits[0].Score / float64(len(terms))
				}
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read feedback chunks: %w", err)
	}
	if len(weight) == 0 {
		return nil, nil
	}
	terms := make([]string, 0, len(weight))
	for t := range weight {
		terms = append(terms, t)
	}
	df, err := ix.text.DocFreq(ctx, terms)
	if err != nil {
		return nil, err
	}
	total, err := ix.text.Count(ctx)
	if err != nil {
		return nil, err
	}
	type scored struct {
		t string
		w float64
	}
	var ranked []scored
	for _, t := range terms {
		d := float64(df[t])
		if d < 2 {
			continue // only in the hit itself: finds nothing new
		}
		idf := math.Log(1 + (float64(total)-d+0.5)/(d+0.5))
		ranked = append(ranked, scored{t, weight[t] * idf})
	}
	sort.Slice(ranked, func(i, j int) bool {
		if ranked[i].w != ranked[j].w {
			return ranked[i].w > ranked[j].w
		}
		return ranked[i].t < ranked[j].t
	})
	var out []string
	for _, r := range ranked[:min(len(ranked), s.cfg.ExpansionTerms)] {
		out = append(out, r.t)
	}
	return out, nil
}

// loadCandidates reads the candidates' chunks (and embeddings, for MMR).
// Ids the indexes hold but Badger does not are skipped.
func (s *Store) loadCandidates(cands map[string]*candidate, withVec bool) ([]*candidate, error) {
	list := make([]*candidate, 0, len(cands))
	err := s.db.View(func(txn *badger.Txn) error {
		for _, c := range cands {
			found, err := getJSON(txn, s.k.chunk(c.id), &c.chunk)
			if err != nil {
				return fmt.Errorf("read chunk %s: %w", c.id, err)
			}
			if !found {
				continue
			}
			if withVec && c.chunk.Model != "" {
				if item, err := txn.Get(s.k.embed(c.id)); err == nil {
					_ = item.Value(func(b []byte) error {
						_, c.vec, err = decodeEmbedding(b)
						return err
					})
				}
			}
			list = append(list, c)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("load candidates: %w", err)
	}
	return list, nil
}

func filter(list []*candidate, o SearchOptions) []*candidate {
	out := list[:0]
next:
	for _, c := range list {
		if o.Source != "" && c.chunk.Source != o.Source {
			continue
		}
		for _, want := range o.Tags {
			found := false
			for _, t := range c.chunk.Tags {
				found = found || t == want
			}
			if !found {
				continue next
			}
		}
		out = append(out, c)
	}
	return out
}

// score fuses the halves, applies decay and sorts best first.
func (s *Store) score(list []*candidate, useVec bool) {
	wv, wt := s.cfg.VectorWeight, s.cfg.TextWeight
	if !useVec {
		wv, wt = 0, 1
	}
	k := float64(s.cfg.RRFK)
	now := s.now()
	hl := time.Duration(s.cfg.DecayHalfLife)
	for _, c := range list {
		p := &c.parts
		if s.cfg.Fusion == FusionRRF {
			var f float64
			if p.VectorRank > 0 {
				f += wv / (k + float64(p.VectorRank))
			}
			if p.TextRank > 0 {
				f += wt / (k + float64(p.TextRank))
			}
			p.Fused = f / ((wv + wt) / (k + 1))
		} else {
			p.Fused = (wv*p.Vector + wt*p.Text) / (wv + wt)
		}
		p.Decay = 1
		if hl > 0 && !c.chunk.Evergreen() {
			if age := now.Sub(c.chunk.Time); age > 0 {
				p.Decay = math.Exp2(-float64(age) / float64(hl))
			}
		}
		c.score = p.Fused * p.Decay
	}
	sort.Slice(list, func(i, j int) bool {
		if list[i].score != list[j].score {
			return list[i].score > list[j].score
		}
		return list[i].id < list[j].id
	})
}

// mmr picks up to limit results, each maximising
// λ·score − (1−λ)·(greatest similarity to one already picked),
// after dropping those under the minimum score.
func (s *Store) mmr(list []*candidate, limit int, useVec bool) []Result {
	for len(list) > 0 && list[len(list)-1].score < s.cfg.MinScore {
		list = list[:len(list)-1]
	}
	lambda := s.cfg.MMRLambda
	var picked []*candidate
	used := make([]bool, len(list))
	maxSim := make([]float64, len(list)) // greatest similarity to any picked result
	for len(picked) < limit && len(picked) < len(list) {
		best, bestVal := -1, math.Inf(-1)
		for i, c := range list {
			if used[i] {
				continue
			}
			val := c.score
			if lambda < 1 {
				val = lambda*c.score - (1-lambda)*maxSim[i]
			}
			if val > bestVal {
				best, bestVal = i, val
			}
		}
		used[best] = true
		list[best].parts.MMR = bestVal
		picked = append(picked, list[best])
		if lambda < 1 {
			for i, c := range list {
				if !used[i] {
					maxSim[i] = math.Max(maxSim[i], similarity(c, list[best], useVec))
				}
			}
		}
	}
	out := make([]Result, len(picked))
	for i, c := range picked {
		out[i] = Result{Chunk: c.chunk, Score: c.score, Parts: c.parts}
	}
	return out
}

// similarity is the cosine of the two embeddings when both exist, else the
// Jaccard overlap of their words.
func similarity(a, b *candidate, useVec bool) float64 {
	if useVec && a.vec != nil && b.vec != nil && len(a.vec) == len(b.vec) {
		var dot, na, nb float64
		for i := range a.vec {
			dot += float64(a.vec[i]) * float64(b.vec[i])
			na += float64(a.vec[i]) * float64(a.vec[i])
			nb += float64(b.vec[i]) * float64(b.vec[i])
		}
		return math.Max(0, dot/math.Sqrt(na*nb))
	}
	return jaccard(termSet(a), termSet(b))
}

// termSet is the candidate's words as sorted hashes: lowercased, without
// stopwords, not stemmed — cheap, and enough to tell near-duplicates apart.
func termSet(c *candidate) []uint64 {
	if c.terms == nil {
		c.terms = []uint64{}
		for _, w := range strings.FieldsFunc(c.chunk.Text, func(r rune) bool {
			return !unicode.IsLetter(r) && !unicode.IsNumber(r)
		}) {
			w = strings.ToLower(w)
			if textindex.IsStopword(w) {
				continue
			}
			h := fnv.New64a()
			h.Write([]byte(w))
			c.terms = append(c.terms, h.Sum64())
		}
		slices.Sort(c.terms)
		c.terms = slices.Compact(c.terms)
	}
	return c.terms
}

// jaccard is |a∩b| / |a∪b| of two sorted sets.
func jaccard(a, b []uint64) float64 {
	if len(a) == 0 || len(b) == 0 {
		return 0
	}
	inter := 0
	for i, j := 0, 0; i < len(a) && j < len(b); {
		switch {
		case a[i] == b[j]:
			inter++
			i++
			j++
		case a[i] < b[j]:
			i++
		default:
			j++
		}
	}
	return float64(inter) / float64(len(a)+len(b)-inter)
}
