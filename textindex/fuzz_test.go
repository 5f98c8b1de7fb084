package textindex

import "testing"

// Analysis must not panic on any text, and keywords are never empty strings.
func FuzzAnalysis(f *testing.F) {
	for _, s := range []string{"", "What did Caroline say?", "北京大学图书馆", "학교에서", "المكتبات", "\xff\xfe", "a's 's ''s", "ｆｕｌｌｗｉｄｔｈ"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		_ = DetectLanguage(s)
		_ = Terms(s, "")
		_ = queryGroups(s)
		for _, k := range Keywords(s) {
			if k == "" {
				t.Fatal("empty keyword")
			}
		}
	})
}
