// Package textindex is the keyword (BM25) half of memory search.
//
// An Index holds short documents (an id and a text) and answers ranked keyword
// queries. The package knows nothing of tenants: it takes a directory and keeps
// one index there. The Bluge implementation (OpenBluge) is the only one today;
// callers depend on the Index interface so it can be swapped.
//
// Analysis covers the seven keyword languages: English, Spanish and Portuguese
// get stopwords and a stemmer chosen by detecting the document's language;
// Chinese and Japanese are split into overlapping character bigrams, Korean
// (Hangul) words likewise, so particles glued to a word still let the stem
// match; Arabic is normalised, stopword-filtered and light-stemmed. A query is
// analysed once per Latin language and each word matches any of its stems, so
// a short query does not need its language detected.
//
// Errors: ErrClosed after Close, ErrEmptyQuery when a query has no searchable
// terms at all. An Index is safe for concurrent use; writes are serialised by
// the underlying writer and searches read a consistent snapshot.
package textindex
