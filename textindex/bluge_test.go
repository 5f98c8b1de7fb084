package textindex

import (
	"context"
	"errors"
	"testing"
)

func openTest(t *testing.T) *Bluge {
	t.Helper()
	ix, err := OpenBluge(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ix.Close() })
	return ix
}

func ids(hits []Hit) []string {
	out := make([]string, len(hits))
	for i, h := range hits {
		out[i] = h.ID
	}
	return out
}

func TestSearchLanguages(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	ix := openTest(t)
	docs := []Doc{
		{ID: "en", Text: "The children were running to the libraries after the storm."},
		{ID: "es", Text: "Los niños corrían hacia las bibliotecas después de la tormenta."},
		{ID: "pt", Text: "As crianças estavam correndo para as bibliotecas depois da tempestade."},
		{ID: "zh", Text: "我们明天去北京大学图书馆看书。"},
		{ID: "ja", Text: "東京の図書館で日本語の本を読みました。"},
		{ID: "ko", Text: "저는 어제 학교에서 친구를 만났어요."},
		{ID: "ar", Text: "ذهب الأطفال إلى المكتبات بعد العاصفة."},
		{ID: "other", Text: "Quarterly revenue grew by eight percent."},
	}
	if err := ix.Upsert(ctx, docs); err != nil {
		t.Fatal(err)
	}
	cases := []struct{ query, want string }{
		{"library run", "en"}, // stemming: libraries/running
		{"biblioteca", "es"},  // es light stemmer: bibliotecas; pt docs also match, es must rank first or second
		{"tempestades", "pt"}, // pt plural
		{"北京大学", "zh"},        // bigrams
		{"図書館", "ja"},         // kanji bigrams
		{"학교", "ko"},          // Hangul bigram out of 학교에서
		{"المكتبة", "ar"},     // Arabic stem/normalisation: al- prefix, plural
		{"revenues growing", "other"},
	}
	for _, c := range cases {
		hits, err := ix.Search(ctx, Query{Text: c.query}, 3)
		if err != nil {
			t.Fatalf("%q: %v", c.query, err)
		}
		found := false
		for _, h := range hits {
			if h.ID == c.want {
				found = true
			}
		}
		if !found {
			t.Errorf("query %q: hits %v, want %s among them", c.query, ids(hits), c.want)
		}
	}
}

func TestDetectLanguage(t *testing.T) {
	t.Parallel()
	cases := map[string]Lang{
		"Where did we put the keys for the house?":  English,
		"¿Dónde pusimos las llaves de la casa?":     Spanish,
		"Onde colocamos as chaves da casa? Não sei": Portuguese,
		"我们把钥匙放在哪里了？":                               Chinese,
		"鍵はどこに置きましたか？":                              Japanese,
		"열쇠를 어디에 두었나요?":                             Korean,
		"أين وضعنا مفاتيح المنزل؟":                  Arabic,
	}
	for text, want := range cases {
		if got := DetectLanguage(text); got != want {
			t.Errorf("DetectLanguage(%q) = %s, want %s", text, got, want)
		}
	}
}

func TestKeywords(t *testing.T) {
	t.Parallel()
	got := Keywords("What did Caroline say about the LGBTQ support group's meeting in 2023?")
	want := []string{"caroline", "say", "lgbtq", "support", "group", "meeting", "2023"}
	if len(got) != len(want) {
		t.Fatalf("Keywords = %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("Keywords = %v, want %v", got, want)
		}
	}
	if kw := Keywords("北京大学"); len(kw) == 0 || kw[0] != "北京" {
		t.Errorf("CJK keywords = %v", kw)
	}
}

func TestUpsertDeleteDocFreq(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	ix := openTest(t)
	if err := ix.Upsert(ctx, []Doc{{ID: "a", Text: "apple pie"}, {ID: "b", Text: "apple juice"}}); err != nil {
		t.Fatal(err)
	}
	df, err := ix.DocFreq(ctx, []string{"appl", "pie", "missing"})
	if err != nil {
		t.Fatal(err)
	}
	if df["appl"] != 2 || df["pie"] != 1 || df["missing"] != 0 {
		t.Errorf("DocFreq = %v", df)
	}
	// Replacing a document drops its old terms.
	if err := ix.Upsert(ctx, []Doc{{ID: "a", Text: "cherry tart"}}); err != nil {
		t.Fatal(err)
	}
	hits, err := ix.Search(ctx, Query{Text: "pie"}, 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(hits) != 0 {
		t.Errorf("old text still found: %v", ids(hits))
	}
	if err := ix.Delete(ctx, []string{"b", "never-existed"}); err != nil {
		t.Fatal(err)
	}
	hits, err = ix.Search(ctx, Query{Text: "apple juice cherry"}, 10)
	if err != nil {
		t.Fatal(err)
	}
	if got := ids(hits); len(got) != 1 || got[0] != "a" {
		t.Errorf("after delete: %v, want [a]", got)
	}
	if n, err := ix.Count(ctx); err != nil || n != 1 {
		t.Errorf("Count = %d, %v; want 1", n, err)
	}
}

func TestExtraTermsAndErrors(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	ix := openTest(t)
	if err := ix.Upsert(ctx, []Doc{{ID: "a", Text: "hiking in the mountains"}, {ID: "b", Text: "swimming at the beach"}}); err != nil {
		t.Fatal(err)
	}
	hits, err := ix.Search(ctx, Query{Text: "outdoors", Extra: []Term{{Term: "beach", Boost: 0.5}}}, 5)
	if err != nil {
		t.Fatal(err)
	}
	if got := ids(hits); len(got) != 1 || got[0] != "b" {
		t.Errorf("extra terms: %v, want [b]", got)
	}
	if _, err := ix.Search(ctx, Query{Text: "the of and"}, 5); !errors.Is(err, ErrEmptyQuery) {
		t.Errorf("stopword-only query: err %v, want ErrEmptyQuery", err)
	}
	if _, err := ix.Search(ctx, Query{Text: "  "}, 5); !errors.Is(err, ErrEmptyQuery) {
		t.Errorf("blank query: err %v, want ErrEmptyQuery", err)
	}
	// Persisted: reopen and find again.
	dir := t.TempDir()
	a, err := OpenBluge(dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Upsert(ctx, []Doc{{ID: "x", Text: "persistent memory"}}); err != nil {
		t.Fatal(err)
	}
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Search(ctx, Query{Text: "memory"}, 1); !errors.Is(err, ErrClosed) {
		t.Errorf("search after close: %v, want ErrClosed", err)
	}
	b, err := OpenBluge(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	hits, err = b.Search(ctx, Query{Text: "memories"}, 1)
	if err != nil || len(hits) != 1 || hits[0].ID != "x" {
		t.Errorf("after reopen: %v, %v", hits, err)
	}
}

func TestContextField(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	ix := openTest(t)
	if err := ix.Upsert(ctx, []Doc{
		{ID: "reply", Text: "Yes, last summer.", Context: "Did you ever visit Lisbon?"},
		{ID: "direct", Text: "Lisbon is lovely in spring."},
	}); err != nil {
		t.Fatal(err)
	}
	hits, err := ix.Search(ctx, Query{Text: "Lisbon"}, 5)
	if err != nil || len(hits) != 1 || hits[0].ID != "direct" {
		t.Fatalf("without context: %v %v", hits, err)
	}
	hits, err = ix.Search(ctx, Query{Text: "Lisbon", ContextBoost: 0.3}, 5)
	if err != nil || len(hits) != 2 || hits[0].ID != "direct" || hits[1].ID != "reply" {
		t.Fatalf("with context: %v %v; want the direct match first, the reply second", hits, err)
	}
}
