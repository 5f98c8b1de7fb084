package textindex

import (
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/blugelabs/bluge/analysis"
	"github.com/blugelabs/bluge/analysis/lang/ar"
	"github.com/blugelabs/bluge/analysis/lang/cjk"
	"github.com/blugelabs/bluge/analysis/lang/en"
	"github.com/blugelabs/bluge/analysis/lang/es"
	"github.com/blugelabs/bluge/analysis/lang/pt"
	"github.com/blugelabs/bluge/analysis/token"
	"github.com/blugelabs/bluge/analysis/tokenizer"
	"golang.org/x/text/unicode/norm"
)

// Lang is a keyword language: one of the seven the analysis is tuned for.
type Lang string

// The keyword languages.
const (
	English    Lang = "en"
	Spanish    Lang = "es"
	Portuguese Lang = "pt"
	Chinese    Lang = "zh"
	Japanese   Lang = "ja"
	Korean     Lang = "ko"
	Arabic     Lang = "ar"
)

// latinLangs are the languages with a stemmer; a query is analysed once per each.
var latinLangs = []Lang{English, Spanish, Portuguese}

// detectSample bounds how much of a text language detection reads.
const detectSample = 4096

// DetectLanguage guesses a text's keyword language from its script and, for
// Latin script, from which language's stopwords it uses most. It reads at most
// the first 4 KiB of runes and defaults to English.
func DetectLanguage(text string) Lang {
	var han, kana, hangul, arabic, latin int
	n := 0
	for _, r := range text {
		if n++; n > detectSample {
			break
		}
		switch {
		case unicode.In(r, unicode.Hiragana, unicode.Katakana):
			kana++
		case unicode.Is(unicode.Han, r):
			han++
		case unicode.Is(unicode.Hangul, r):
			hangul++
		case unicode.Is(unicode.Arabic, r):
			arabic++
		case unicode.Is(unicode.Latin, r):
			latin++
		}
	}
	// Ideographs carry a word in one or two runes, so weigh them up.
	nonLatin := 3*(han+kana) + hangul + arabic
	if nonLatin > 0 && nonLatin >= latin {
		switch {
		case kana > 0 && kana+han >= hangul && kana+han >= arabic:
			return Japanese
		case han >= hangul && han >= arabic:
			return Chinese
		case hangul >= arabic:
			return Korean
		default:
			return Arabic
		}
	}
	return detectLatin(text)
}

func detectLatin(text string) Lang {
	counts := map[Lang]int{}
	words := 0
	for _, w := range strings.FieldsFunc(text, func(r rune) bool { return !unicode.IsLetter(r) }) {
		if words++; words > 400 {
			break
		}
		w = strings.ToLower(w)
		for _, l := range latinLangs {
			if stopwords[l][w] {
				counts[l]++
			}
		}
	}
	best := English
	for _, l := range latinLangs {
		if counts[l] > counts[best] {
			best = l
		}
	}
	return best
}

var stopwords = map[Lang]analysis.TokenMap{
	English:    en.StopWords(),
	Spanish:    es.StopWords(),
	Portuguese: pt.StopWords(),
	Arabic:     ar.StopWords(),
}

// cjkStopwords are particles and function characters that, as keywords, match
// nearly everything. They are left out of keyword extraction only; the index
// keeps them inside bigrams.
var cjkStopwords = map[string]bool{
	"的": true, "了": true, "是": true, "在": true, "和": true, "吗": true, "呢": true, "吧": true,
	"我": true, "你": true, "他": true, "她": true, "们": true, "这": true, "那": true, "什么": true,
	"は": true, "が": true, "を": true, "に": true, "の": true, "で": true, "と": true, "も": true,
	"です": true, "ます": true, "した": true, "か": true, "へ": true, "から": true, "まで": true,
	"은": true, "는": true, "이": true, "가": true, "을": true, "를": true, "에": true, "의": true,
	"에서": true, "으로": true, "로": true, "와": true, "과": true, "도": true, "뭐": true,
}

// questionWords are words of a question that say what is asked, not about
// what; keyword extraction drops them in every Latin language.
var questionWords = map[string]bool{
	"what": true, "when": true, "where": true, "which": true, "who": true, "whom": true, "whose": true,
	"why": true, "how": true, "did": true, "does": true, "do": true, "is": true, "are": true, "was": true,
	"were": true, "can": true, "could": true, "would": true, "should": true, "will": true, "has": true,
	"have": true, "had": true, "tell": true, "me": true, "remember": true, "recall": true, "about": true,
	"qué": true, "cuándo": true, "dónde": true, "cuál": true, "quién": true, "cómo": true, "por": true,
	"quando": true, "onde": true, "qual": true, "quem": true, "como": true, "porque": true,
	"ماذا": true, "متى": true, "أين": true, "كيف": true, "لماذا": true, "من": true, "هل": true,
}

// analyzer builds the analysis chain for documents whose Latin words are in
// latin (English, Spanish or Portuguese). Every chain also handles Arabic,
// CJK and Hangul, so a document mixing scripts is still searchable.
func analyzer(latin Lang) *analysis.Analyzer {
	stop := analysis.NewTokenMap()
	for w := range stopwords[latin] {
		stop.AddToken(w)
	}
	for w := range stopwords[Arabic] {
		stop.AddToken(w)
	}
	var stemmer analysis.TokenFilter
	switch latin {
	case Spanish:
		stemmer = es.LightStemmerFilter()
	case Portuguese:
		stemmer = pt.LightStemmerFilter()
	default:
		stemmer = en.StemmerFilter()
	}
	return &analysis.Analyzer{
		Tokenizer: tokenizer.NewUnicodeTokenizer(),
		TokenFilters: []analysis.TokenFilter{
			cjk.NewWidthFilter(),
			en.NewPossessiveFilter(),
			token.NewLowerCaseFilter(),
			token.NewUnicodeNormalizeFilter(norm.NFKC),
			token.NewStopTokensFilter(stop),
			ar.NormalizeFilter(),
			&scriptFilter{latin: stemmer, arabic: ar.StemmerFilter()},
			hangulBigramFilter{},
			cjk.NewBigramFilter(true),
		},
	}
}

// scriptFilter applies the Latin stemmer to Latin words and the Arabic stemmer
// to Arabic words, leaving everything else alone.
type scriptFilter struct {
	latin, arabic analysis.TokenFilter
}

func (f *scriptFilter) Filter(input analysis.TokenStream) analysis.TokenStream {
	one := make(analysis.TokenStream, 1)
	for _, tok := range input {
		if tok.Type != analysis.AlphaNumeric {
			continue
		}
		r, _ := utf8.DecodeRune(tok.Term)
		var inner analysis.TokenFilter
		switch {
		case unicode.Is(unicode.Latin, r):
			inner = f.latin
		case unicode.Is(unicode.Arabic, r):
			inner = f.arabic
		default:
			continue
		}
		one[0] = tok
		inner.Filter(one)
	}
	return input
}

// hangulBigramFilter splits Hangul words of three or more syllables into
// overlapping syllable bigrams and keeps the word itself, so "학교에서" (at
// school) matches "학교" (school).
type hangulBigramFilter struct{}

func (hangulBigramFilter) Filter(input analysis.TokenStream) analysis.TokenStream {
	var out analysis.TokenStream
	for i, tok := range input {
		runes := []rune(string(tok.Term))
		if tok.Type != analysis.AlphaNumeric || len(runes) < 3 || !allHangul(runes) {
			if out != nil {
				out = append(out, tok)
			}
			continue
		}
		if out == nil {
			out = append(make(analysis.TokenStream, 0, len(input)+len(runes)), input[:i]...)
		}
		out = append(out, tok)
		off := tok.Start
		for j := 0; j+1 < len(runes); j++ {
			w := utf8.RuneLen(runes[j])
			term := string(runes[j : j+2])
			out = append(out, &analysis.Token{
				Term: []byte(term), Start: off, End: off + len(term),
				PositionIncr: 0, Type: analysis.Double,
			})
			off += w
		}
	}
	if out == nil {
		return input
	}
	return out
}

func allHangul(runes []rune) bool {
	for _, r := range runes {
		if !unicode.Is(unicode.Hangul, r) {
			return false
		}
	}
	return true
}

// analyzers holds one chain per Latin language; non-Latin documents use the
// English chain, whose non-Latin handling is the same as the others'.
var analyzers = map[Lang]*analysis.Analyzer{
	English:    analyzer(English),
	Spanish:    analyzer(Spanish),
	Portuguese: analyzer(Portuguese),
}

func analyzerFor(l Lang) *analysis.Analyzer {
	if a, ok := analyzers[l]; ok {
		return a
	}
	return analyzers[English]
}

// Terms returns the index terms of text as the document analysis for lang
// produces them (lang "" detects it). Use it to compare texts by their terms.
func Terms(text string, lang Lang) []string {
	if lang == "" {
		lang = DetectLanguage(text)
	}
	stream := analyzerFor(lang).Analyze([]byte(text))
	out := make([]string, 0, len(stream))
	for _, t := range stream {
		out = append(out, string(t.Term))
	}
	return out
}

// queryGroups analyses a query once per Latin language and groups the terms by
// the span of text they came from: each group lists the distinct index terms
// one query word may appear as. Which words are stopwords is decided by the
// query's own detected language, so "son" stays in an English query although
// it is a Spanish stopword.
func queryGroups(text string) [][]string {
	type span struct{ start, end int }
	keep := map[span]bool{}
	for _, t := range analyzerFor(DetectLanguage(text)).Analyze([]byte(text)) {
		keep[span{t.Start, t.End}] = true
	}
	var order []span
	groups := map[span][]string{}
	for _, l := range latinLangs {
		for _, t := range analyzers[l].Analyze([]byte(text)) {
			s := span{t.Start, t.End}
			if !keep[s] {
				continue
			}
			g, seen := groups[s]
			if !seen {
				order = append(order, s)
			}
			term := string(t.Term)
			dup := false
			for _, x := range g {
				if x == term {
					dup = true
					break
				}
			}
			if !dup {
				groups[s] = append(g, term)
			}
		}
	}
	out := make([][]string, 0, len(order))
	for _, s := range order {
		out = append(out, groups[s])
	}
	return out
}

// Keywords extracts the words of a query that say what it is about: lowercased
// surface words without stopwords of any keyword language and without question
// words, CJK runs as bigrams, in order of first appearance and without repeats.
func Keywords(text string) []string {
	seen := map[string]bool{}
	var out []string
	add := func(w string) {
		if w != "" && !seen[w] {
			seen[w] = true
			out = append(out, w)
		}
	}
	tokens := tokenizer.NewUnicodeTokenizer().Tokenize([]byte(text))
	tokens = cjk.NewWidthFilter().Filter(tokens)
	tokens = en.NewPossessiveFilter().Filter(tokens)
	tokens = token.NewLowerCaseFilter().Filter(tokens)
	for _, t := range cjk.NewBigramFilter(false).Filter(tokens) {
		w := norm.NFKC.String(string(t.Term))
		if t.Type == analysis.Numeric {
			add(w)
			continue
		}
		if isStopword(w) || cjkStopwords[w] || questionWords[w] {
			continue
		}
		if utf8.RuneCountInString(w) < 2 && t.Type == analysis.AlphaNumeric {
			continue
		}
		add(w)
	}
	return out
}

// IsStopword reports whether the lowercased word w is a stopword of any
// keyword language.
func IsStopword(w string) bool { return isStopword(w) || cjkStopwords[w] }

func isStopword(w string) bool {
	for _, m := range stopwords {
		if m[w] {
			return true
		}
	}
	return false
}
