package memory_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/blugelabs/bluge"
	"github.com/bulkhead-dev/bulkhead/memory"
)

// locomoPath is the LoCoMo file, read in place (never copied into the repo).
const locomoPath = "../../shared/datasets/locomo/locomo10.json"

type locomoTurn struct {
	Speaker string `json:"speaker"`
	DiaID   string `json:"dia_id"`
	Text    string `json:"text"`
	Caption string `json:"blip_caption"`
}

type locomoQA struct {
	Question string          `json:"question"`
	Evidence []string        `json:"evidence"`
	Category int             `json:"category"`
	Answer   json.RawMessage `json:"answer"`
}

type locomoSample struct {
	ID   string                     `json:"sample_id"`
	Conv map[string]json.RawMessage `json:"conversation"`
	QA   []locomoQA                 `json:"qa"`
}

type locomoSession struct {
	n     int
	time  time.Time
	turns []locomoTurn
}

var sessionKey = regexp.MustCompile(`^session_(\d+)$`)

func loadLoCoMo(b *testing.B) []locomoSample {
	raw, err := os.ReadFile(locomoPath)
	if err != nil {
		b.Skipf("LoCoMo not available: %v", err)
	}
	var samples []locomoSample
	if err := json.Unmarshal(raw, &samples); err != nil {
		b.Fatal(err)
	}
	return samples
}

func sessions(b *testing.B, s locomoSample) []locomoSession {
	var out []locomoSession
	for k, v := range s.Conv {
		m := sessionKey.FindStringSubmatch(k)
		if m == nil {
			continue
		}
		var ses locomoSession
		fmt.Sscan(m[1], &ses.n)
		if err := json.Unmarshal(v, &ses.turns); err != nil {
			b.Fatal(err)
		}
		var when string
		_ = json.Unmarshal(s.Conv[k+"_date_time"], &when)
		ses.time, _ = time.Parse("3:04 pm on 2 January, 2006", when)
		out = append(out, ses)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].n < out[j].n })
	return out
}

func turnText(t locomoTurn) string {
	if t.Caption != "" {
		return t.Text + " [shares a photo: " + t.Caption + "]"
	}
	return t.Text
}

// evidenceIDs splits evidence entries, some of which hold several ids.
func evidenceIDs(ev []string) []string {
	var out []string
	for _, e := range ev {
		for _, f := range strings.FieldsFunc(e, func(r rune) bool { return r == ';' || r == ',' || r == ' ' }) {
			out = append(out, f)
		}
	}
	return out
}

var ks = []int{1, 5, 10, 25}

type recallTable struct {
	sum   map[int][4]float64
	n     map[int]int
	lat   []time.Duration
	total int
}

func newRecallTable() *recallTable {
	return &recallTable{sum: map[int][4]float64{}, n: map[int]int{}}
}

func (r *recallTable) add(cat int, evidence []string, ranked []string) {
	want := map[string]bool{}
	for _, e := range evidence {
		want[e] = true
	}
	if len(want) == 0 {
		return
	}
	s := r.sum[cat]
	for i, k := range ks {
		found := 0
		for j := 0; j < k && j < len(ranked); j++ {
			if want[ranked[j]] {
				found++
				want[ranked[j]] = false
			}
		}
		// want was consumed by smaller k; recount from scratch.
		for e := range want {
			want[e] = true
		}
		found = 0
		seen := map[string]bool{}
		for j := 0; j < k && j < len(ranked); j++ {
			if want[ranked[j]] && !seen[ranked[j]] {
				seen[ranked[j]] = true
				found++
			}
		}
		s[i] += float64(found) / float64(len(want))
	}
	r.sum[cat] = s
	r.n[cat]++
}

func (r *recallTable) print(b *testing.B, name string) float64 {
	var all [4]float64
	total := 0
	fmt.Printf("\n%s\n%-14s %6s %6s %6s %6s %6s\n", name, "category", "n", "R@1", "R@5", "R@10", "R@25")
	names := map[int]string{1: "1 multi-hop", 2: "2 temporal", 3: "3 open-domain", 4: "4 single-hop"}
	for cat := 1; cat <= 4; cat++ {
		n := r.n[cat]
		if n == 0 {
			continue
		}
		s := r.sum[cat]
		fmt.Printf("%-14s %6d %6.3f %6.3f %6.3f %6.3f\n", names[cat], n, s[0]/float64(n), s[1]/float64(n), s[2]/float64(n), s[3]/float64(n))
		for i := range all {
			all[i] += s[i]
		}
		total += n
	}
	fmt.Printf("%-14s %6d %6.3f %6.3f %6.3f %6.3f\n", "all", total, all[0]/float64(total), all[1]/float64(total), all[2]/float64(total), all[3]/float64(total))
	if len(r.lat) > 0 {
		sort.Slice(r.lat, func(i, j int) bool { return r.lat[i] < r.lat[j] })
		fmt.Printf("search latency p50 %v p99 %v over %d queries\n", r.lat[len(r.lat)/2], r.lat[len(r.lat)*99/100], len(r.lat))
	}
	return all[2] / float64(total)
}

// BenchmarkLoCoMo reports evidence recall@{1,5,10,25} per category on
// LoCoMo, keyword-only: each conversation is one store, each turn one chunk
// indexed through the transcript hook. The baseline in the same run is plain
// Bluge BM25 (standard analyzer, the question as a match query).
func BenchmarkLoCoMo(b *testing.B) {
	samples := loadLoCoMo(b)
	configs := []struct {
		name string
		cfg  memory.Config
	}{
		{"default", memory.Config{MaxResults: 25}},
		{"no decay", memory.Config{MaxResults: 25, DecayHalfLife: -1}},
		{"no decay, no MMR", memory.Config{MaxResults: 25, DecayHalfLife: -1, MMRLambda: 1}},
		{"no decay, no neighbour context", memory.Config{MaxResults: 25, DecayHalfLife: -1, ContextWeight: -1}},
		{"no decay, no expansion", memory.Config{MaxResults: 25, DecayHalfLife: -1, ExpansionTerms: -1}},
		{"no decay, no MMR, no expansion", memory.Config{MaxResults: 25, DecayHalfLife: -1, MMRLambda: 1, ExpansionTerms: -1}},
	}
	if only := os.Getenv("LOCOMO_CONFIG"); only != "" {
		for _, c := range configs {
			if c.name == only {
				configs = configs[:1]
				configs[0] = c
			}
		}
	}
	for b.Loop() {
		for _, c := range configs {
			locomoRun(b, samples, c.name, c.cfg)
		}
	}
}

func locomoRun(b *testing.B, samples []locomoSample, name string, cfg memory.Config) {
	ctx := context.Background()
	{
		ours, base := newRecallTable(), newRecallTable()
		for _, smp := range samples {
			ses := sessions(b, smp)
			dir := b.TempDir()
			db := openDB(b, filepath.Join(dir, "db"))
			last := ses[len(ses)-1].time
			st, err := memory.Open(ctx, memory.Options{DB: db, IndexDir: filepath.Join(dir, "index"), Config: cfg,
				Now: func() time.Time { return last }})
			if err != nil {
				b.Fatal(err)
			}
			idToDia := map[string]string{}
			bw, err := bluge.OpenWriter(bluge.DefaultConfig(filepath.Join(dir, "baseline")))
			if err != nil {
				b.Fatal(err)
			}
			batch := bluge.NewBatch()
			for _, s := range ses {
				turns := make([]memory.Turn, len(s.turns))
				for i, t := range s.turns {
					turns[i] = memory.Turn{Seq: i, Speaker: t.Speaker, Text: turnText(t), Time: s.time}
					batch.Insert(bluge.NewDocument(t.DiaID).AddField(bluge.NewTextField("text", turnText(t))))
				}
				ids, err := st.IndexTranscript(ctx, fmt.Sprintf("%s:session_%d", smp.ID, s.n), turns)
				if err != nil {
					b.Fatal(err)
				}
				for i, id := range ids {
					idToDia[id] = s.turns[i].DiaID
				}
			}
			if err := bw.Batch(batch); err != nil {
				b.Fatal(err)
			}
			br, err := bw.Reader()
			if err != nil {
				b.Fatal(err)
			}
			for _, qa := range smp.QA {
				if qa.Category < 1 || qa.Category > 4 {
					continue
				}
				ev := evidenceIDs(qa.Evidence)
				t0 := time.Now()
				res, err := st.Search(ctx, memory.SearchOptions{Query: qa.Question, Limit: 25})
				ours.lat = append(ours.lat, time.Since(t0))
				if err != nil {
					b.Fatalf("%s: %q: %v", smp.ID, qa.Question, err)
				}
				var ranked []string
				for _, h := range res.Hits {
					ranked = append(ranked, idToDia[h.Chunk.ID])
				}
				ours.add(qa.Category, ev, ranked)

				t0 = time.Now()
				it, err := br.Search(ctx, bluge.NewTopNSearch(25, bluge.NewMatchQuery(qa.Question).SetField("text")))
				if err != nil {
					b.Fatal(err)
				}
				ranked = ranked[:0]
				for m, err := it.Next(); m != nil && err == nil; m, err = it.Next() {
					_ = m.VisitStoredFields(func(f string, v []byte) bool {
						if f == "_id" {
							ranked = append(ranked, string(v))
						}
						return true
					})
				}
				base.lat = append(base.lat, time.Since(t0))
				base.add(qa.Category, ev, ranked)
			}
			_ = br.Close()
			_ = bw.Close()
			if err := st.Close(); err != nil {
				b.Fatal(err)
			}
			_ = db.Close()
		}
		r := ours.print(b, "memory.Store keyword-only: "+name)
		r0 := base.print(b, "baseline: plain Bluge BM25, question as query")
		fmt.Printf("R@10 ours/baseline = %.3f/%.3f = %.2fx\n", r, r0, r/r0)
		if name == "default" {
			b.ReportMetric(r, "R@10")
			b.ReportMetric(r0, "baseline-R@10")
		}
	}
}
