package cli

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/bulkhead-dev/bulkhead/memory"
	"github.com/bulkhead-dev/bulkhead/workspace"
)

// MemoryCmd groups the workspace memory commands. They open the workspace's
// database in this process, so they need the state dir without a running
// server holding it.
type MemoryCmd struct {
	Add     MemoryAddCmd     `cmd:"" help:"Remember a piece of text (the argument, or stdin)."`
	Search  MemorySearchCmd  `cmd:"" help:"Search a workspace's memory (keyword-only until an embedder is configured)."`
	List    MemoryListCmd    `cmd:"" aliases:"ls" help:"List remembered chunks, newest first."`
	Rm      MemoryRmCmd      `cmd:"" aliases:"delete" help:"Forget chunks by id."`
	Reindex MemoryReindexCmd `cmd:"" help:"Index MEMORY.md and memory/**.md from the workspace files, then rebuild the search indexes from the database."`
}

// openMemory opens workspace id's memory store; close it with the returned
// function.
func openMemory(g *Globals, id string) (*memory.Store, func(), error) {
	if err := workspace.ValidateID(id); err != nil {
		return nil, nil, &UsageError{err}
	}
	svc, err := g.Service()
	if err != nil {
		return nil, nil, err
	}
	w, err := svc.Get(g.Context(), id)
	if err != nil {
		return nil, nil, err
	}
	db, release, err := svc.DB(g.Context(), id)
	if err != nil {
		return nil, nil, err
	}
	st, err := memory.Open(g.Context(), memory.Options{
		DB: db, IndexDir: filepath.Join(svc.IndexDir(id), "memory"),
		Config: w.Config.Memory, // the workspace's own search settings
		Logger: g.Log.With("workspace", id),
	})
	if err != nil {
		release()
		return nil, nil, err
	}
	return st, func() {
		if err := st.Close(); err != nil {
			g.Log.Warn("close memory", "workspace", id, "err", err)
		}
		release()
	}, nil
}

// MemoryAddCmd stores one chunk.
type MemoryAddCmd struct {
	ID   string   `arg:"" help:"Workspace id."`
	Text string   `arg:"" optional:"" help:"Text to remember; read from stdin when absent."`
	Tag  []string `name:"tag" help:"Tag the chunk (repeatable)."`
	Pin  bool     `help:"Pin the chunk: it never decays."`
}

// Run adds.
func (c *MemoryAddCmd) Run(g *Globals) error {
	text := c.Text
	if text == "" {
		b, err := io.ReadAll(io.LimitReader(g.Stdin, 1<<20))
		if err != nil {
			return fmt.Errorf("read text from stdin: %w", err)
		}
		text = string(b)
	}
	st, done, err := openMemory(g, c.ID)
	if err != nil {
		return err
	}
	defer done()
	ids, err := st.Add(g.Context(), []memory.Chunk{{Text: text, Tags: c.Tag, Pinned: c.Pin}})
	if errors.Is(err, memory.ErrInvalidChunk) || errors.Is(err, memory.ErrInvalidText) {
		return &UsageError{err}
	}
	if err != nil {
		return err
	}
	fmt.Fprintln(g.Stdout, ids[0])
	return nil
}

// MemorySearchCmd searches.
type MemorySearchCmd struct {
	ID      string   `arg:"" help:"Workspace id."`
	Query   string   `arg:"" help:"What to look for."`
	Limit   int      `short:"n" default:"10" help:"Results to show."`
	Source  string   `help:"Only chunks from this source (manual, file, session)."`
	Tag     []string `name:"tag" help:"Only chunks with this tag (repeatable)."`
	Explain bool     `help:"Show how each score was made: vector, text (BM25) and decay parts."`
	JSON    bool     `help:"Print as JSON."`
}

// Run searches.
func (c *MemorySearchCmd) Run(g *Globals) error {
	st, done, err := openMemory(g, c.ID)
	if err != nil {
		return err
	}
	defer done()
	res, err := st.Search(g.Context(), memory.SearchOptions{Query: c.Query, Limit: c.Limit, Source: c.Source, Tags: c.Tag})
	switch {
	case errors.Is(err, memory.ErrEmptyQuery), errors.Is(err, memory.ErrQueryTooLong), errors.Is(err, memory.ErrInvalidText):
		return &UsageError{err}
	case err != nil:
		return err
	}
	if c.JSON {
		if res.Hits == nil {
			res.Hits = []memory.Result{}
		}
		return writeJSON(g, res)
	}
	if c.Explain {
		fmt.Fprintf(g.Stdout, "mode %s; keywords %s", res.Mode, strings.Join(res.Keywords, " "))
		if len(res.Expansion) > 0 {
			fmt.Fprintf(g.Stdout, "; expanded with %s", strings.Join(res.Expansion, " "))
		}
		fmt.Fprintln(g.Stdout)
	}
	if len(res.Hits) == 0 {
		fmt.Fprintln(g.Stdout, "no matches")
		return nil
	}
	for _, h := range res.Hits {
		fmt.Fprintf(g.Stdout, "%.3f  %s  %s%s\n", h.Score, h.Chunk.ID, where(h.Chunk), oneLine(h.Chunk.Text, 100))
		if c.Explain {
			p := h.Parts
			fmt.Fprintf(g.Stdout, "       vector %.3f (rank %d)  text %.3f (bm25 %.2f, rank %d)  fused %.3f  × decay %.3f  mmr %.3f\n",
				p.Vector, p.VectorRank, p.Text, p.TextRaw, p.TextRank, p.Fused, p.Decay, p.MMR)
		}
	}
	return nil
}

func where(c memory.Chunk) string {
	s := c.Source
	if c.Path != "" {
		s += ":" + c.Path
	}
	if c.Pinned {
		s += " pinned"
	}
	return "[" + s + "] "
}

func oneLine(s string, n int) string {
	s = strings.Join(strings.Fields(s), " ")
	if r := []rune(s); len(r) > n {
		return string(r[:n-1]) + "…"
	}
	return s
}

// MemoryListCmd lists chunks.
type MemoryListCmd struct {
	ID     string `arg:"" help:"Workspace id."`
	Source string `help:"Only chunks from this source (manual, file, session)."`
	Limit  int    `short:"n" default:"50" help:"Chunks to show (0: all)."`
	JSON   bool   `help:"Print as JSON."`
}

// Run lists.
func (c *MemoryListCmd) Run(g *Globals) error {
	st, done, err := openMemory(g, c.ID)
	if err != nil {
		return err
	}
	defer done()
	list, err := st.List(g.Context(), memory.ListOptions{Source: c.Source, Limit: c.Limit})
	if err != nil {
		return err
	}
	if c.JSON {
		if list == nil {
			list = []memory.Chunk{}
		}
		return writeJSON(g, list)
	}
	if len(list) == 0 {
		fmt.Fprintf(g.Stdout, "%s has no memory chunks\n", c.ID)
		return nil
	}
	tw := tabwriter.NewWriter(g.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tTIME\tSOURCE\tTEXT")
	for _, ch := range list {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", ch.ID, ch.Time.Local().Format(time.DateTime), strings.TrimSpace(where(ch)), oneLine(ch.Text, 60))
	}
	return tw.Flush()
}

// MemoryRmCmd deletes chunks.
type MemoryRmCmd struct {
	ID     string   `arg:"" help:"Workspace id."`
	Chunks []string `arg:"" name:"chunk" help:"Chunk ids."`
}

// Run deletes.
func (c *MemoryRmCmd) Run(g *Globals) error {
	st, done, err := openMemory(g, c.ID)
	if err != nil {
		return err
	}
	defer done()
	if err := st.Delete(g.Context(), c.Chunks...); err != nil {
		return err
	}
	fmt.Fprintf(g.Stderr, "deleted %d chunk(s) from %s\n", len(c.Chunks), c.ID)
	return nil
}

// MemoryReindexCmd re-reads the memory files and rebuilds the indexes.
type MemoryReindexCmd struct {
	ID string `arg:"" help:"Workspace id."`
}

// Run reindexes.
func (c *MemoryReindexCmd) Run(g *Globals) error {
	st, done, err := openMemory(g, c.ID)
	if err != nil {
		return err
	}
	defer done()
	svc, err := g.Service()
	if err != nil {
		return err
	}
	ferr := st.IndexFiles(g.Context(), svc.FilesDir(c.ID))
	if errors.Is(ferr, fs.ErrNotExist) {
		ferr = nil // no files directory yet: nothing to index
	}
	if err := st.Reindex(g.Context()); err != nil {
		return err
	}
	stats, err := st.Stats(g.Context())
	if err != nil {
		return err
	}
	fmt.Fprintf(g.Stderr, "reindexed %s: %d chunks, %d embeddings\n", c.ID, stats.Chunks, stats.Embeddings)
	if ferr != nil {
		return fmt.Errorf("some memory files were not indexed: %w", ferr)
	}
	return nil
}
