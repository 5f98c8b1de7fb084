package agent

import (
	"errors"
	"fmt"
	"io/fs"
	"strings"
	"unicode/utf8"
)

// BootstrapNames are the persona files read into the system prompt, in the
// order they appear.
var BootstrapNames = []string{"SOUL.md", "IDENTITY.md", "AGENTS.md", "TOOLS.md", "USER.md", "MEMORY.md"}

// BootstrapFile is one persona file.
type BootstrapFile struct {
	Name    string
	Content string
}

// SkillInfo is what the system prompt says about an enabled skill.
type SkillInfo struct {
	Name        string
	Description string
}

// PromptConfig bounds the persona part of the system prompt.
type PromptConfig struct {
	// PerFileMax is the most bytes of one file kept; default 20,000.
	PerFileMax int
	// TotalMax is the most bytes of all files together; default 100,000.
	TotalMax int
}

func (c PromptConfig) withDefaults() PromptConfig {
	if c.PerFileMax <= 0 {
		c.PerFileMax = 20000
	}
	if c.TotalMax <= 0 {
		c.TotalMax = 100000
	}
	return c
}

// PromptInput is everything the system prompt is built from.
type PromptInput struct {
	// Base is the fixed preamble (what the agent is, how tools work).
	Base string
	// Files are the persona's bootstrap files.
	Files []BootstrapFile
	// Workspace is a short description of the workspace (name, layout).
	Workspace string
	// Skills are the enabled skills.
	Skills []SkillInfo
}

// LoadBootstrap reads the BootstrapNames files that exist in fsys. Missing
// files are skipped; other read errors are returned. A file that is not valid
// UTF-8 is read with invalid bytes replaced.
func LoadBootstrap(fsys fs.FS) ([]BootstrapFile, error) {
	var out []BootstrapFile
	for _, name := range BootstrapNames {
		b, err := fs.ReadFile(fsys, name)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("read bootstrap file %s: %w", name, err)
		}
		out = append(out, BootstrapFile{Name: name, Content: strings.ToValidUTF8(string(b), "\uFFFD")})
	}
	return out, nil
}

// BuildSystemPrompt assembles the system prompt: the base text, each
// bootstrap file under its name (each capped at PerFileMax and all of them
// at TotalMax, cut in the middle with a marker so both the start and the end
// survive), the workspace context and the enabled skills.
func BuildSystemPrompt(in PromptInput, cfg PromptConfig) string {
	cfg = cfg.withDefaults()
	var b strings.Builder
	b.WriteString(strings.TrimSpace(in.Base))
	budget := cfg.TotalMax
	for _, f := range in.Files {
		content := strings.TrimSpace(f.Content)
		if content == "" {
			continue
		}
		limit := min(cfg.PerFileMax, budget)
		if limit < 64 {
			fmt.Fprintf(&b, "\n\n## %s\n[%s omitted: bootstrap size limit reached]", f.Name, f.Name)
			continue
		}
		content = TruncateMiddle(content, limit, f.Name)
		budget -= len(content)
		fmt.Fprintf(&b, "\n\n## %s\n%s", f.Name, content)
	}
	if ws := strings.TrimSpace(in.Workspace); ws != "" {
		fmt.Fprintf(&b, "\n\n## Workspace\n%s", ws)
	}
	if len(in.Skills) > 0 {
		b.WriteString("\n\n## Skills\nEach skill is a tool named skill_<name>.")
		for _, s := range in.Skills {
			fmt.Fprintf(&b, "\n- %s: %s", s.Name, strings.TrimSpace(s.Description))
		}
	}
	return strings.TrimSpace(b.String())
}

// TruncateMiddle returns s if it fits in max bytes; otherwise the first
// ~70% and the last ~20% of the budget with a marker naming what and how
// much was cut between them. Cuts fall on rune boundaries. The result is at
// most max bytes when max leaves room for the marker.
func TruncateMiddle(s string, max int, what string) string {
	if len(s) <= max {
		return s
	}
	marker := func(n int) string { return fmt.Sprintf("\n[... %d bytes of %s truncated ...]\n", n, what) }
	room := max - len(marker(len(s)))
	if room <= 0 {
		return marker(len(s))
	}
	head := room * 7 / 9
	tail := room - head
	h := cutRunes(s, head, false)
	t := cutRunes(s, tail, true)
	return h + marker(len(s)-len(h)-len(t)) + t
}

// cutRunes returns the first (or last) at most n bytes of s, on a rune
// boundary.
func cutRunes(s string, n int, fromEnd bool) string {
	if n >= len(s) {
		return s
	}
	if !fromEnd {
		for n > 0 && !utf8.RuneStart(s[n]) {
			n--
		}
		return s[:n]
	}
	i := len(s) - n
	for i < len(s) && !utf8.RuneStart(s[i]) {
		i++
	}
	return s[i:]
}
